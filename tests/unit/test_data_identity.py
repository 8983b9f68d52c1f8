"""Data identity and alignment: the xxh3 fingerprint, computed lazily, and the fast alignment paths."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa

from autotrader.adapters.storage.parquet_store import _to_numpy
from autotrader.backtest.runner import BacktestConfig, run_backtest
from autotrader.domain.aligned import AlignedCandles, _sorted_union, align
from autotrader.domain.candles import Candles
from autotrader.strategy.library.sma_cross import SmaCross

HOUR_MS = 3_600_000
T0 = 1_704_067_200_000


def _candles(ts: np.ndarray, seed: int) -> Candles:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, len(ts))))
    open_ = np.r_[close[0], close[:-1]]
    return Candles(
        ts.astype(np.int64), open_, np.maximum(open_, close) * 1.001, np.minimum(open_, close) * 0.999, close,
        np.ones(len(ts)),
    )  # fmt: skip


def _general_align(series: dict[str, Candles]) -> AlignedCandles:
    """The reference: every symbol scattered onto the union grid (what ``align`` did before its fast paths)."""
    symbols = tuple(series)
    ts = np.unique(np.concatenate([c.ts for c in series.values()]))
    shape = (len(ts), len(symbols))
    out = {name: np.full(shape, np.nan) for name in ("open", "high", "low", "close")}
    volume = np.zeros(shape)
    present = np.zeros(shape, dtype=bool)
    for j, sym in enumerate(symbols):
        rows = np.searchsorted(ts, series[sym].ts)
        for name in out:
            out[name][rows, j] = getattr(series[sym], name)
        volume[rows, j] = series[sym].volume
        present[rows, j] = True
    return AlignedCandles(symbols, ts, out["open"], out["high"], out["low"], out["close"], volume, present)


def _assert_same(a: AlignedCandles, b: AlignedCandles) -> None:
    assert a.symbols == b.symbols
    for f in ("ts", "open", "high", "low", "close", "volume", "present"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)


def test_align_same_grid_fast_path_equals_general_alignment() -> None:
    ts = T0 + HOUR_MS * np.arange(50)
    for series in ({"A": _candles(ts, 1)}, {"A": _candles(ts, 1), "B": _candles(ts, 2), "C": _candles(ts, 3)}):
        _assert_same(align(series), _general_align(series))


def test_align_different_grids_equals_general_alignment() -> None:
    series = {
        "A": _candles(T0 + HOUR_MS * np.arange(0, 40), 1),
        "B": _candles(T0 + HOUR_MS * np.r_[10:30, 35:60], 2),
    }
    _assert_same(align(series), _general_align(series))


def test_sorted_union_equals_numpy_unique() -> None:
    rng = np.random.default_rng(7)
    parts = [np.sort(rng.integers(0, 1000, n)) for n in (0, 5, 300, 1000)]
    np.testing.assert_array_equal(_sorted_union(parts), np.unique(np.concatenate(parts)))
    assert len(_sorted_union([np.empty(0, np.int64)])) == 0


def test_to_numpy_multi_chunk_and_sliced_columns_equal_pyarrow() -> None:
    chunked = pa.chunked_array([pa.array([1, 2, 3], pa.int64()), pa.array([4, 5], pa.int64()).slice(1)])
    table = pa.table({"ts": chunked, "x": pa.chunked_array([pa.array([0.5, 1.5, 2.5, 3.5, 4.5, 5.5]).slice(1, 4)])})
    np.testing.assert_array_equal(_to_numpy(table, "ts"), [1, 2, 3, 5])
    np.testing.assert_array_equal(_to_numpy(table, "x"), [1.5, 2.5, 3.5, 4.5])


def test_fingerprint_changes_with_any_price_symbol_or_time() -> None:
    ts = T0 + HOUR_MS * np.arange(30)
    data = align({"A": _candles(ts, 1)})
    again = align({"A": _candles(ts, 1)})
    assert data.fingerprint == again.fingerprint
    assert len(data.fingerprint) == 32
    for name in ("open", "high", "low", "close", "volume"):
        arr = getattr(data, name).copy()
        arr[17, 0] = np.nextafter(arr[17, 0], np.inf)
        assert dataclasses.replace(data, **{name: arr}).fingerprint != data.fingerprint, name
    later = data.ts.copy()
    later[-1] += 1
    assert dataclasses.replace(data, ts=later).fingerprint != data.fingerprint
    assert dataclasses.replace(data, symbols=("B",)).fingerprint != data.fingerprint


def test_run_backtest_without_report_never_computes_fingerprint() -> None:
    ts = T0 + HOUR_MS * np.arange(400)
    data = align({"BTCUSDT": _candles(ts, 3)})
    config = BacktestConfig(symbols=("BTCUSDT",), strategy="sma_cross", params={"fast": 5, "slow": 20})
    result = run_backtest(config, data, SmaCross(fast=5, slow=20))
    assert "fingerprint" not in data.__dict__  # the cached_property has not run
    assert result.data_fingerprint == data.fingerprint


def test_aligned_from_frames_equals_align_of_candles_zero_copy() -> None:
    import pandas as pd

    from autotrader.marketdata.frames import aligned_from_frames

    ts = T0 + HOUR_MS * np.arange(40)
    c = _candles(ts, 9)
    frame = pd.DataFrame(
        {"Open": c.open, "High": c.high, "Low": c.low, "Close": c.close, "Volume": c.volume},
        index=pd.to_datetime(ts, unit="ms", utc=True),
    )
    got = aligned_from_frames({"btcusdt": frame})
    _assert_same(got, align({"BTCUSDT": c}))
    assert np.shares_memory(got.close, frame["Close"].to_numpy())
    by_ms = frame.set_axis(ts).rename(columns=str.lower)
    _assert_same(aligned_from_frames({"BTCUSDT": by_ms}), got)


def test_aligned_from_frames_any_datetime_resolution_gives_utc_ms() -> None:
    import pandas as pd

    from autotrader.marketdata.frames import aligned_from_frames

    ts = T0 + HOUR_MS * np.arange(5)
    c = _candles(ts, 2)
    cols = {"open": c.open, "high": c.high, "low": c.low, "close": c.close, "volume": c.volume}
    for unit in ("ns", "us", "ms", "s"):
        index = pd.DatetimeIndex(pd.to_datetime(ts, unit="ms")).as_unit(unit)
        got = aligned_from_frames({"X": pd.DataFrame(cols, index=index)})
        np.testing.assert_array_equal(got.ts, ts, err_msg=unit)
