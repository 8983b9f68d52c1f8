"""Specification of ``autotrader.marketdata.resample``: UTC buckets, gaps kept, exchange-equal bars."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autotrader.domain.candles import COLUMNS, Candles, parse_date_ms
from autotrader.domain.errors import DataError
from autotrader.marketdata.bundled import bundled_dir, read_parquet_candles
from autotrader.marketdata.resample import bars_per_bucket, resample

M30 = 1_800_000
H = 3_600_000
D = 86_400_000
T0 = parse_date_ms("2024-01-01")


def bars(ts: list[int], **columns: list[float]) -> Candles:
    n = len(ts)
    close = np.asarray(columns.get("close", np.arange(n) + 100.0), dtype=np.float64)
    data = {
        "ts": ts,
        "open": columns.get("open", close - 0.5),
        "high": columns.get("high", close + 1.0),
        "low": columns.get("low", close - 1.0),
        "close": close,
        "volume": columns.get("volume", np.ones(n)),
    }
    return Candles.from_columns(data)


def test_resample_30m_to_1h_first_open_max_high_min_low_last_close_sum_volume():
    source = bars(
        [T0, T0 + M30, T0 + H, T0 + H + M30],
        open=[10, 11, 12, 13],
        high=[15, 12, 14, 20],
        low=[9, 8, 11, 12],
        close=[11, 12, 13, 14],
        volume=[1, 2, 3, 4],
    )
    out = resample(source, M30, H)
    np.testing.assert_array_equal(out.ts, [T0, T0 + H])
    np.testing.assert_array_equal(out.open, [10, 12])
    np.testing.assert_array_equal(out.high, [15, 20])
    np.testing.assert_array_equal(out.low, [8, 11])
    np.testing.assert_array_equal(out.close, [12, 14])
    np.testing.assert_array_equal(out.volume, [3, 7])


def test_resample_gap_bucket_not_created():
    source = bars([T0, T0 + M30, T0 + 3 * H, T0 + 3 * H + M30])
    out = resample(source, M30, H)
    np.testing.assert_array_equal(out.ts, [T0, T0 + 3 * H])


def test_resample_partial_bucket_kept_and_counted():
    source = bars([T0, T0 + M30, T0 + H + M30])  # the 01:00 bucket lacks its first half hour
    out = resample(source, M30, H)
    np.testing.assert_array_equal(out.ts, [T0, T0 + H])
    assert out.open[1] == source.open[2]
    np.testing.assert_array_equal(bars_per_bucket(source, H), [2, 1])


def test_resample_1d_buckets_start_midnight_utc():
    ts = [T0 - H, T0, T0 + 23 * H, T0 + D]
    out = resample(bars(ts), H, D)
    np.testing.assert_array_equal(out.ts, [T0 - D, T0, T0 + D])
    np.testing.assert_array_equal(bars_per_bucket(bars(ts), D), [1, 2, 1])


def test_resample_4h_buckets_aligned_to_utc_multiples_of_four():
    ts = list(T0 + np.arange(3, 10) * H)
    out = resample(bars(ts), H, 4 * H)
    np.testing.assert_array_equal(out.ts, [T0, T0 + 4 * H, T0 + 8 * H])


def test_resample_same_timeframe_equal_copy():
    source = bars(list(T0 + np.arange(5) * H))
    out = resample(source, H, H)
    for name in COLUMNS:
        np.testing.assert_array_equal(getattr(out, name), getattr(source, name))
    assert out.open is not source.open


def test_resample_empty_returns_empty():
    assert len(resample(Candles.empty(), M30, H)) == 0


def test_resample_target_not_multiple_raises_data_error():
    with pytest.raises(DataError, match="cannot resample 1h bars to 90m: 90m is not a multiple of 1h"):
        resample(bars([T0]), H, 90 * 60_000)


def test_resample_weekly_target_refused():
    with pytest.raises(DataError, match="weekly targets are not supported"):
        resample(bars([T0]), D, 7 * D)


def test_resample_unsorted_source_raises_data_error():
    with pytest.raises(DataError, match="sorted and unique"):
        resample(bars([T0 + H, T0]), H, 2 * H)


def test_resample_bundled_btc_30m_to_1h_equals_bundled_1h():
    """Binance's own 1h bars are exactly our aggregation of its 30m bars, from the first 30m bar
    (2020-09-20) on. This holds for ALL buckets, including the 5 partial ones next to exchange
    outages, because Binance built those 1h bars from the same incomplete trades. Volumes agree to
    the exchange's 8 decimals (summing two float64 values can add one unit in the last place)."""
    folder = bundled_dir()
    source = read_parquet_candles(folder / "binance_BTCUSDT_30m.parquet")
    exchange = read_parquet_candles(folder / "binance_BTCUSDT_1h.parquet")
    ours = resample(source, M30, H)
    exchange = exchange.slice_range(int(ours.ts[0]), int(ours.ts[-1]))

    assert ours.ts[0] == parse_date_ms("2020-09-20")
    np.testing.assert_array_equal(ours.ts, exchange.ts)
    for name in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(getattr(ours, name), getattr(exchange, name), err_msg=name)
    np.testing.assert_array_equal(np.round(ours.volume, 8), exchange.volume)
    partial = bars_per_bucket(source, H) < 2
    assert partial.sum() == 5  # source gaps that end or start mid-hour; the other gaps stay gaps


# --- properties -------------------------------------------------------------------------------------


@st.composite
def candle_series(draw: st.DrawFn) -> tuple[Candles, int]:
    """Valid candles of a random source timeframe, with random gaps."""
    source_ms = draw(st.sampled_from([60_000, 5 * 60_000, M30, H]))
    n = draw(st.integers(min_value=1, max_value=60))
    steps = draw(st.lists(st.integers(min_value=1, max_value=6), min_size=n, max_size=n))
    start = draw(st.integers(min_value=0, max_value=10_000)) * source_ms + T0
    price = st.floats(min_value=1.0, max_value=1e6, allow_nan=False)
    fraction = st.floats(min_value=0.0, max_value=0.5, allow_nan=False)
    opens = np.array(draw(st.lists(price, min_size=n, max_size=n)))
    closes = np.array(draw(st.lists(price, min_size=n, max_size=n)))
    up = np.array(draw(st.lists(fraction, min_size=n, max_size=n)))
    down = np.array(draw(st.lists(fraction, min_size=n, max_size=n)))
    volume = draw(st.lists(st.floats(min_value=0.0, max_value=1e6, allow_nan=False), min_size=n, max_size=n))
    candles = Candles.from_columns(
        {
            "ts": start + np.cumsum(steps) * source_ms,
            "open": opens,
            "high": np.maximum(opens, closes) * (1 + up),
            "low": np.minimum(opens, closes) * (1 - down),
            "close": closes,
            "volume": volume,
        }
    )
    return candles, source_ms


@settings(max_examples=200, deadline=None)
@given(series=candle_series(), factor=st.sampled_from([1, 2, 3, 4, 6, 12, 24]))
def test_resample_any_series_ohlc_consistent_and_volume_preserved(series, factor):
    source, source_ms = series
    target_ms = source_ms * factor
    out = resample(source, source_ms, target_ms)

    assert np.all(out.high >= np.maximum(out.open, out.close))
    assert np.all(out.low <= np.minimum(out.open, out.close))
    assert np.all(out.ts % target_ms == 0)
    assert np.all(np.diff(out.ts) > 0)
    assert np.isclose(out.volume.sum(), source.volume.sum(), rtol=1e-12, atol=1e-6)
    assert out.high.max() == source.high.max()
    assert out.low.min() == source.low.min()
    assert out.open[0] == source.open[0]
    assert out.close[-1] == source.close[-1]
    # every output bar comes from source bars, no bucket is invented
    np.testing.assert_array_equal(out.ts, np.unique(source.ts // target_ms * target_ms))
    assert bars_per_bucket(source, target_ms).sum() == len(source)


@settings(max_examples=100, deadline=None)
@given(series=candle_series())
def test_resample_in_two_steps_equals_one_step(series):
    source, source_ms = series
    direct = resample(source, source_ms, 4 * source_ms)
    stepped = resample(resample(source, source_ms, 2 * source_ms), 2 * source_ms, 4 * source_ms)
    for name in ("ts", "open", "high", "low", "close"):
        np.testing.assert_array_equal(getattr(stepped, name), getattr(direct, name), err_msg=name)
    np.testing.assert_allclose(stepped.volume, direct.volume, rtol=1e-12, atol=1e-6)
