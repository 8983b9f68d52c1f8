"""The built-in strategies: signals at known bars, backtesting.py parity, causality, replay, ML cache."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autotrader.domain.aligned import AlignedCandles, align
from autotrader.domain.candles import Candles, SeriesKey
from autotrader.domain.errors import ConfigError, DataError
from autotrader.marketdata.bundled import bundled_files, read_parquet_candles
from autotrader.signals.files import read_predictions
from autotrader.signals.prediction import Prediction
from autotrader.strategy.base import get_strategy, registered_strategies
from autotrader.strategy.cache import NpzPredictionCache
from autotrader.strategy.library.ml import (
    FEATURE_NAMES,
    bars_since_nb,
    forward_returns,
    hold_rule_nb,
    platt_fit,
    primary_signal,
)

HOUR_MS = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC

# ML settings small enough for unit tests (the defaults need a year of bars before the first model)
SMALL_ML = {"train_bars": 1503, "retrain_every": 500, "horizon": 6, "calibration_bars": 300}


def _bundled(symbol: str, timeframe: str = "1h") -> Candles:
    return read_parquet_candles(bundled_files()[SeriesKey.of("binance", symbol, timeframe)])


@pytest.fixture(scope="module")
def btc_1h() -> AlignedCandles:
    return align({"BTCUSDT": _bundled("BTCUSDT")})


@pytest.fixture(scope="module")
def three_symbols() -> AlignedCandles:
    """BTC and ETH 1h for 2024-01-01 + 4000 bars, and STRK listed on 2024-02-20 13:00 (inside the window)."""
    end = T0 + 3999 * HOUR_MS
    series = {s: _bundled(s).slice_range(T0, end) for s in ("BTCUSDT", "ETHUSDT", "STRKUSDT")}
    return align(series)


def _synthetic(close: np.ndarray, present: np.ndarray | None = None, start_ms: int = T0) -> AlignedCandles:
    """Aligned candles with open = high = low = close on an hourly grid; absent bars are NaN."""
    close = np.asarray(close, dtype=float).reshape(len(close), -1).copy()
    present = np.ones(close.shape, bool) if present is None else present.reshape(close.shape)
    close[~present] = np.nan
    ts = start_ms + HOUR_MS * np.arange(len(close), dtype=np.int64)
    symbols = ("AAAUSDT", "BBBUSDT", "CCCUSDT")[: close.shape[1]]
    volume = np.where(present, 1.0, 0.0)
    return AlignedCandles(symbols, ts, close, close.copy(), close.copy(), close.copy(), volume, present)


def _truncate(data: AlignedCandles, cut: int) -> AlignedCandles:
    return AlignedCandles(
        data.symbols,
        data.ts[:cut],
        data.open[:cut],
        data.high[:cut],
        data.low[:cut],
        data.close[:cut],
        data.volume[:cut],
        data.present[:cut],
    )


def _events(direction: np.ndarray, column: int = 0) -> list[tuple[int, float]]:
    rows = np.flatnonzero(~np.isnan(direction[:, column]))
    return [(int(r), float(direction[r, column])) for r in rows]


# ------------------------------------------------------------------------------------------------
# registry and parameters
# ------------------------------------------------------------------------------------------------


def test_get_strategy_builtins_all_registered():
    get_strategy("buy_and_hold")
    assert {"sma_cross", "rsi_reversion", "donchian_breakout", "buy_and_hold", "signals", "ml"} <= set(
        registered_strategies()
    )


def test_strategy_unknown_parameter_raises_config_error_with_did_you_mean():
    with pytest.raises(ConfigError, match=r"no parameter 'fats'.*did you mean 'fast'"):
        get_strategy("sma_cross", fats=5)


def test_strategy_unknown_name_raises_config_error_with_did_you_mean():
    with pytest.raises(ConfigError, match="did you mean 'sma_cross'"):
        get_strategy("sma_cros")


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("sma_cross", {"fast": 50, "slow": 50}, "fast=50 must be below slow=50"),
        ("rsi_reversion", {"lower": 70, "upper": 30}, "lower=70.0 must be below upper=30.0"),
        ("ml", {"train_bars": 60, "horizon": 100}, "train_bars=60 must exceed horizon"),
        ("ml", {"threshold": 0.4}, "below its minimum"),
    ],
)
def test_strategy_inconsistent_parameters_raise_config_error(name, params, message):
    with pytest.raises(ConfigError, match=message):
        get_strategy(name, **params)


def test_strategy_string_parameters_are_coerced():
    strategy = get_strategy("sma_cross", fast="3", slow="7", short="true")
    assert strategy.params == {"fast": 3, "slow": 7, "short": True}


# ------------------------------------------------------------------------------------------------
# rule-based strategies on constructed paths
# ------------------------------------------------------------------------------------------------


def test_sma_cross_constructed_path_signals_at_cross_bars():
    # fast=2, slow=4. slow first defined at bar 3.
    close = np.array([10, 10, 10, 10, 12, 14, 14, 9, 8, 8, 8, 7, 13, 13], dtype=float)
    fast = pd.Series(close).rolling(2).mean().to_numpy()
    slow = pd.Series(close).rolling(4).mean().to_numpy()
    # bar 3: equal (10=10); bar 4: 11 > 10.5 but previous was equal, not below: no cross (strict)
    assert fast[3] == slow[3]
    assert fast[4] > slow[4]
    signals = get_strategy("sma_cross", fast=2, slow=4).generate(_synthetic(close))
    assert _events(signals.direction) == [(7, 0.0), (12, 1.0)]
    assert np.all(np.isnan(signals.confidence[[7, 12], 0]))  # rule-based: no confidence, read as sure
    short = get_strategy("sma_cross", fast=2, slow=4, short=True).generate(_synthetic(close))
    assert _events(short.direction) == [(7, -1.0), (12, 1.0)]


def test_sma_cross_real_btc_1h_matches_pandas_rolling_crossover(btc_1h):
    close = pd.Series(btc_1h.close[:, 0])
    fast, slow = close.rolling(20).mean(), close.rolling(100).mean()
    up = (fast.shift(1) < slow.shift(1)) & (fast > slow)
    down = (slow.shift(1) < fast.shift(1)) & (slow > fast)
    expected = sorted([(int(i), 1.0) for i in np.flatnonzero(up)] + [(int(i), 0.0) for i in np.flatnonzero(down)])
    got = _events(get_strategy("sma_cross").generate(btc_1h).direction)
    assert len(got) > 300
    assert got == expected


@pytest.mark.filterwarnings("ignore:DatetimeIndex.dayofweek is deprecated")  # inside backtesting.py's stats
def test_sma_cross_real_btc_1h_matches_backtesting_py_crossover(btc_1h):
    from backtesting import Backtest
    from backtesting import Strategy as BtStrategy
    from backtesting.lib import crossover

    n = 8000
    frame = pd.DataFrame(
        {
            "Open": btc_1h.open[:n, 0],
            "High": btc_1h.high[:n, 0],
            "Low": btc_1h.low[:n, 0],
            "Close": btc_1h.close[:n, 0],
            "Volume": btc_1h.volume[:n, 0],
        },
        index=pd.to_datetime(btc_1h.ts[:n], unit="ms"),
    )
    seen: list[tuple[int, float]] = []

    class Recorder(BtStrategy):
        def init(self):
            self.fast = self.I(lambda x: pd.Series(x).rolling(20).mean().to_numpy(), self.data.Close)
            self.slow = self.I(lambda x: pd.Series(x).rolling(100).mean().to_numpy(), self.data.Close)

        def next(self):
            if crossover(self.fast, self.slow):
                seen.append((len(self.data) - 1, 1.0))
            elif crossover(self.slow, self.fast):
                seen.append((len(self.data) - 1, 0.0))

    Backtest(frame, Recorder, cash=1e12).run()
    got = _events(get_strategy("sma_cross").generate(_truncate(btc_1h, n)).direction)
    assert len(seen) > 50
    assert got == seen


def test_rsi_reversion_constructed_path_enters_on_recovery_exits_when_overbought():
    close = np.concatenate([np.linspace(100, 60, 30), np.linspace(60, 64, 3), np.linspace(64, 110, 25)])
    signals = get_strategy("rsi_reversion", period=5, lower=30, upper=70).generate(_synthetic(close))
    events = _events(signals.direction)
    from autotrader.strategy.indicators import rsi

    r = rsi(close, 5)
    entries = [i for i in range(1, len(r)) if r[i - 1] < 30 < r[i]]
    exits = [i for i in range(1, len(r)) if r[i - 1] < 70 < r[i]]
    assert entries
    assert exits
    assert events == sorted([(i, 1.0) for i in entries] + [(i, 0.0) for i in exits])
    assert events[0][1] == 1.0
    assert events[0][0] > 29  # not before the bottom


def test_donchian_breakout_constructed_path_signals_on_breakout_and_breakdown():
    close = np.array([10, 11, 10, 11, 10, 12, 12.5, 11, 9, 10.5, 11], dtype=float)
    signals = get_strategy("donchian_breakout", entry=4, exit=2).generate(_synthetic(close))
    # bar 5: 12 > max(11,10,11,10); bar 6: 12.5 > 12; bar 8: 9 < min(12.5, 11); bar 7: 11 < min(12, 12.5)
    assert _events(signals.direction) == [(5, 1.0), (6, 1.0), (7, 0.0), (8, 0.0)]


def test_buy_and_hold_later_listing_buys_on_first_present_bar():
    close = np.tile(np.arange(1.0, 11.0)[:, None], (1, 2))
    present = np.ones((10, 2), bool)
    present[:4, 1] = False
    signals = get_strategy("buy_and_hold").generate(_synthetic(close, present))
    assert _events(signals.direction, 0) == [(0, 1.0)]
    assert _events(signals.direction, 1) == [(4, 1.0)]


# ------------------------------------------------------------------------------------------------
# causality: every strategy on truncated data gives the same signals before the cut
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prediction_file(tmp_path_factory, three_symbols) -> Path:
    rng = np.random.default_rng(3)
    first, last = int(three_symbols.ts[0]), int(three_symbols.ts[-1])
    rows = [
        {
            "id": f"p{k}",
            "symbol": ["BTCUSDT", "ETHUSDT", "STRKUSDT", "DOGEUSDT"][k % 4],
            "ts": int(rng.integers(first - 5 * HOUR_MS, last + 5 * HOUR_MS)),
            "direction": ["long", "short", "flat"][int(rng.integers(0, 3))],
            "confidence": round(float(rng.uniform()), 3),
            "horizon": "4h",
            "model": "test",
        }
        for k in range(600)
    ]
    path = tmp_path_factory.mktemp("signals") / "predictions.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


CAUSAL_CASES = [
    ("sma_cross", {"fast": 10, "slow": 40}),
    ("sma_cross", {"fast": 10, "slow": 40, "short": True}),
    ("rsi_reversion", {}),
    ("donchian_breakout", {}),
    ("buy_and_hold", {}),
    ("signals", None),
    ("ml", {**SMALL_ML, "threshold": 0.5}),
]


@pytest.mark.parametrize(("name", "params"), CAUSAL_CASES, ids=[c[0] + str(i) for i, c in enumerate(CAUSAL_CASES)])
def test_strategy_truncated_data_identical_signals_before_cut(name, params, three_symbols, prediction_file):
    strategy = get_strategy(name, **(params if params is not None else {"path": str(prediction_file)}))
    full = strategy.generate(three_symbols)
    assert full.direction.shape == three_symbols.close.shape
    assert np.count_nonzero(~np.isnan(full.direction)) > 0
    for cut in (1200, 1504, 2003, 2750, 3999):
        part = strategy.generate(_truncate(three_symbols, cut))
        np.testing.assert_array_equal(part.direction, full.direction[:cut], err_msg=f"{name} direction, cut {cut}")
        np.testing.assert_array_equal(part.confidence, full.confidence[:cut], err_msg=f"{name} confidence, cut {cut}")


# ------------------------------------------------------------------------------------------------
# stored predictions
# ------------------------------------------------------------------------------------------------


def _prediction(pid: str, symbol: str, ts: int, direction: str = "long", horizon: str = "4h", conf: float = 0.7):
    return {
        "id": pid,
        "symbol": symbol,
        "ts": ts,
        "direction": direction,
        "confidence": conf,
        "horizon": horizon,
        "model": "m",
    }


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_signals_replay_places_prediction_on_first_bar_closing_at_or_after_ts(tmp_path):
    close = np.ones((12, 2))
    present = np.ones((12, 2), bool)
    present[7, 0] = False  # a gap
    data = _synthetic(close, present)
    rows = [
        _prediction("inside", "AAAUSDT", T0 + 3 * HOUR_MS + 1_800_000, "long", conf=0.6),  # inside bar 3 → 3
        _prediction("at-close", "AAAUSDT", T0 + 6 * HOUR_MS, "short"),  # = close of bar 5 → 5
        _prediction("in-gap", "AAAUSDT", T0 + 7 * HOUR_MS + 1, "flat"),  # bar 7 absent → bar 8
        _prediction("early", "BBBUSDT", T0 - 600_000, "short"),  # before the data, horizon not over → bar 0
        _prediction("stale", "BBBUSDT", T0 - 2 * HOUR_MS, "long", horizon="1h"),  # over by bar 0's close
        _prediction("older", "BBBUSDT", T0 + 4 * HOUR_MS + 1000, "long"),  # superseded by "newer"
        _prediction("newer", "BBBUSDT", T0 + 4 * HOUR_MS + 2000, "short", conf=0.9),
        _prediction("late", "BBBUSDT", T0 + 12 * HOUR_MS + 1, "long"),  # after the last close
        _prediction("x1", "DOGEUSDT", T0, "long"),
        _prediction("x2", "DOGE/usdt", T0 + HOUR_MS, "long"),
    ]
    path = _write_jsonl(tmp_path / "p.jsonl", rows)
    signals = get_strategy("signals", path=str(path)).generate(data)
    assert _events(signals.direction, 0) == [(3, 1.0), (5, -1.0), (8, 0.0)]
    assert _events(signals.direction, 1) == [(0, -1.0), (4, -1.0)]
    assert signals.confidence[3, 0] == 0.6
    assert signals.confidence[4, 1] == 0.9
    assert signals.horizon_bars == 4
    assert signals.meta["unknown_symbols"] == {"DOGEUSDT": 2}
    assert (signals.meta["stale"], signals.meta["after_end"], signals.meta["superseded"]) == (1, 1, 1)


def test_signals_replay_csv_parquet_and_jsonl_give_same_signals(tmp_path, three_symbols, prediction_file):
    frame = pd.read_csv(prediction_file)
    frame.to_parquet(tmp_path / "p.parquet")
    _write_jsonl(tmp_path / "p.jsonl", frame.to_dict("records"))
    results = [
        get_strategy("signals", path=str(p)).generate(three_symbols)
        for p in (prediction_file, tmp_path / "p.parquet", tmp_path / "p.jsonl")
    ]
    for other in results[1:]:
        np.testing.assert_array_equal(other.direction, results[0].direction)
        np.testing.assert_array_equal(other.confidence, results[0].confidence)
    assert results[0].meta["unknown_symbols"] == {"DOGEUSDT": 150}


def test_signals_replay_iso_timestamps_and_integer_directions_accepted(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text(
        "id,symbol,ts,direction,confidence,horizon,model\n"
        "a,AAAUSDT,2024-01-01T02:30:00Z,1,0.6,4h,m\n"
        "b,AAAUSDT,2024-01-01 05:00,-1,0.6,4H,m\n"
    )
    predictions = read_predictions(path)
    assert [p.ts for p in predictions] == [T0 + 9_000_000, T0 + 5 * HOUR_MS]
    assert [p.direction for p in predictions] == ["long", "short"]
    assert predictions[1].horizon == "4h"
    signals = get_strategy("signals", path=str(path)).generate(_synthetic(np.ones(10)))
    assert _events(signals.direction) == [(2, 1.0), (4, -1.0)]


BAD_CSV_ROWS = [
    ("c,AAAUSDT,1704067200000,long,1.5,4h,m", "line 4: confidence: .*less than or equal to 1"),
    ("c,AAAUSDT,1704067200,long,0.5,4h,m", "line 4: ts: .*seconds instead"),
    ("c,AAAUSDT,yesterday,long,0.5,4h,m", "line 4: ts: 'yesterday' is neither"),
    ("c,AAAUSDT,1704067200000,up,0.5,4h,m", "line 4: direction: "),
    ("c,AAAUSDT,1704067200000,long,0.5,4 hours,m", "line 4: horizon: '4 hours' is not a duration"),
    ("a,AAAUSDT,1704067200000,long,0.5,4h,m", r"line 4: duplicate id 'a' \(first at line 2\)"),
    ("c,AAAUSDT,1704067200000,long,0.5,4h", "line 4: fewer values"),
    ("c,AAAUSDT,1704067200000,long,0.5,4h,m,extra", "line 4: more values"),
    ("c,,1704067200000,long,0.5,4h,m", "line 4: symbol: "),
]


@pytest.mark.parametrize(("row", "message"), BAD_CSV_ROWS)
def test_signals_replay_corrupt_csv_row_raises_data_error_naming_row(tmp_path, row, message):
    path = tmp_path / "bad.csv"
    path.write_text(
        "id,symbol,ts,direction,confidence,horizon,model\n"
        "a,AAAUSDT,1704067200000,long,0.5,4h,m\n"
        "b,AAAUSDT,1704070800000,flat,0.5,4h,m\n" + row + "\n"
    )
    with pytest.raises(DataError, match=f"bad.csv: {message}") as excinfo:
        get_strategy("signals", path=str(path)).generate(_synthetic(np.ones(10)))
    assert "\n" not in str(excinfo.value)


def test_signals_replay_corrupt_jsonl_raises_data_error_naming_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(_prediction("a", "AAAUSDT", T0)) + "\n\n{not json\n")
    with pytest.raises(DataError, match=r"bad.jsonl: line 3: invalid JSON"):
        read_predictions(path)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("id,symbol,ts,direction,confidence,horizon", "missing column.*model"),
        ("id,symbol,ts,direction,confidence,horizon,model,note", "unknown column.*note"),
    ],
)
def test_signals_replay_wrong_columns_raise_data_error(tmp_path, header, message):
    path = tmp_path / "cols.csv"
    values = ["a", "AAAUSDT", "1704067200000", "long", "0.5", "4h", "m", "x"][: len(header.split(","))]
    path.write_text(header + "\n" + ",".join(values) + "\n")
    with pytest.raises(DataError, match=f"cols.csv: line 2: {message}"):
        read_predictions(path)


def test_signals_replay_missing_or_empty_file_raises(tmp_path):
    with pytest.raises(ConfigError, match="needs a prediction file"):
        get_strategy("signals").generate(_synthetic(np.ones(3)))
    with pytest.raises(ConfigError, match="not found"):
        read_predictions(tmp_path / "nope.csv")
    with pytest.raises(ConfigError, match="unknown prediction file type"):
        read_predictions(tmp_path / "p.xlsx")
    (tmp_path / "empty.csv").write_text("id,symbol,ts,direction,confidence,horizon,model\n")
    with pytest.raises(DataError, match="no predictions"):
        read_predictions(tmp_path / "empty.csv")


def test_prediction_model_extra_field_or_float_ts_refused():
    good = _prediction("a", "btc/usdt", T0)
    assert Prediction.model_validate(good).symbol == "BTCUSDT"
    assert Prediction.model_validate({**good, "direction": -1}).sign == -1
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        Prediction.model_validate({**good, "price": 1.0})
    with pytest.raises(ValueError, match="valid integer"):
        Prediction.model_validate({**good, "ts": float(T0)})
    with pytest.raises(ValueError, match="direction"):
        Prediction.model_validate({**good, "direction": True})


# ------------------------------------------------------------------------------------------------
# ML
# ------------------------------------------------------------------------------------------------


def test_ml_hold_rule_enters_only_above_threshold_and_edge_holds_horizon_then_exits():
    #             0    1     2     3     4     5     6     7     8     9     10    11
    p = np.array([0.7, 0.56, 0.70, 0.40, 0.30, 0.58, 0.60, 0.45, 0.45, 0.45, 0.60, 0.6])[:, None]
    e = np.array([-0.1, 0.01, 0.01, 0.00, 0.00, 0.02, 0.01, 0.00, 0.00, 0.00, -0.01, 0.0])[:, None]
    out = hold_rule_nb(p, e, 0.55, 0.005, 3)
    # bar 0: p high but the edge is below min_edge, no entry; bar 1 enters and holds 3 bars whatever p does
    # (bar 2 does not renew, bars 3-4 do not exit early); bar 4 exits; bar 5 enters again, bar 8 exits;
    # bar 10: the edge is too low
    assert _events(out) == [(1, 1.0), (4, 0.0), (5, 1.0), (8, 0.0)]
    out = hold_rule_nb(p, e, 0.55, -1.0, 3)  # any edge: bar 0 enters, exits at 3; 5 enters, exits at 8; 10 enters
    assert _events(out) == [(0, 1.0), (3, 0.0), (5, 1.0), (8, 0.0), (10, 1.0)]


def test_ml_forward_returns_known_only_at_horizon_bar_skipping_gaps():
    close = np.array([1.0, 2, 3, 2, 1, 5])
    present = np.ones(6, bool)
    present[2] = False
    fwd, known = forward_returns(np.where(present, close, np.nan)[:, None], present[:, None], 2)
    # present rows 0,1,3,4,5: row 0 → row 3 (2 / 1), row 1 → row 4 (1 / 2), row 3 → row 5 (5 / 2)
    np.testing.assert_allclose(fwd[:, 0], np.log([2.0, 0.5, np.nan, 2.5, np.nan, np.nan]))
    assert known[[0, 1, 3], 0].tolist() == [3, 4, 5]


def test_ml_primary_proposes_on_a_close_above_the_previous_entry_bars_high():
    #                 0  1  2  3  4  5  6  7
    close = np.array([5, 6, 4, 6, 7, 7, 3, 8.0])
    present = np.ones(8, bool)
    present[5] = False  # a gap: the channel counts present bars
    proposed = primary_signal(_synthetic(close, present), 2)[:, 0]
    # bar 2: 4 < max(5, 6); bar 3: 6 = max(6, 4), not above; bar 4: 7 > max(4, 6); bar 7: 8 > max(7, 3)
    assert np.flatnonzero(proposed).tolist() == [4, 7]


def test_ml_trend_age_counts_rows_since_the_last_event_capped():
    event = np.array([False, True, False, False, True, False, False, False])[:, None]
    age = bars_since_nb(event, 2)[:, 0]
    np.testing.assert_array_equal(age, [np.nan, 0, 1, 2, 0, 1, 2, 2])


def test_ml_model_is_asked_and_enters_only_where_the_primary_proposes(three_symbols):
    strategy = get_strategy("ml", **SMALL_CAL, threshold=0.5)
    strategy.cache = _DictCache()
    signals = strategy.generate(three_symbols)
    proposed = primary_signal(three_symbols, int(strategy.params["entry"]))
    p = signals.meta["p_up"]
    asked = np.isfinite(p)
    assert asked.sum() > 200
    assert not np.any(asked & ~proposed)  # no probability, hence no entry, without a primary proposal
    assert np.all(proposed[signals.direction == 1])
    after = proposed.copy()
    after[: SMALL_CAL["train_bars"] + 2 * SMALL_CAL["retrain_every"]] = False  # every model fitted by then
    assert np.all(asked[after])  # and every proposal once models exist is asked


def test_ml_platt_fit_recovers_known_calibration():
    rng = np.random.default_rng(3)
    score = rng.normal(0.0, 1.5, 40_000)
    y = (rng.uniform(size=score.size) < 1 / (1 + np.exp(-(0.6 * score - 0.4)))).astype(float)
    a, b = platt_fit(score, y)
    assert a == pytest.approx(0.6, abs=0.03)
    assert b == pytest.approx(-0.4, abs=0.03)


class _FakeModel:
    """Stands in for LGBMClassifier: records what it was trained on, scores with the first feature's sign."""

    fits: list[tuple[np.ndarray, np.ndarray]]

    def __init__(self, **_: object) -> None:
        pass

    def fit(self, x: np.ndarray, y: np.ndarray) -> _FakeModel:
        self.fits.append((x.copy(), y.copy()))
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        up = np.where(x[:, 0] > 0, 0.6, 0.4)
        return np.column_stack((1 - up, up))


SMALL_CAL = SMALL_ML


def _all_training_sets(monkeypatch, data: AlignedCandles) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(features fitted on, labels fitted on, labels calibrated on) of every model, in block order."""
    import lightgbm

    from autotrader.strategy.library import ml

    fits: list[tuple[np.ndarray, np.ndarray]] = []
    calibrations: list[np.ndarray] = []
    real_platt = ml.platt_fit

    def recording_platt(score: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        calibrations.append(y.copy())
        return real_platt(score, y)

    monkeypatch.setattr(_FakeModel, "fits", fits, raising=False)
    monkeypatch.setattr(lightgbm, "LGBMClassifier", _FakeModel)
    monkeypatch.setattr(ml, "platt_fit", recording_platt)
    get_strategy("ml", **SMALL_CAL).predict(data)
    return [(x, y, c) for (x, y), c in zip(fits, calibrations, strict=True)]


def _first_training_set(monkeypatch, data: AlignedCandles) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features fitted on, labels fitted on, labels calibrated on) of the first model."""
    return _all_training_sets(monkeypatch, data)[0]


def test_ml_training_set_uses_labels_known_before_prediction_bar_only(monkeypatch, three_symbols):
    data = _truncate(three_symbols, 1800)
    start, horizon = SMALL_CAL["train_bars"], SMALL_CAL["horizon"]
    last_row = start - horizon - 1  # 1496: the last row whose label is known at bar start-1; a training row (% 4)
    x0, y0, c0 = _first_training_set(monkeypatch, data)

    def poisoned(bar: int) -> AlignedCandles:
        """BTC and ETH from ``bar`` on set to a price that flips the label of ``last_row``."""
        flip = np.where(data.close[bar, :2] > data.close[last_row, :2], 0.5, 2.0)
        columns = {}
        for name in ("open", "high", "low", "close"):
            column = getattr(data, name).copy()
            column[bar:, :2] = data.close[last_row, :2] * flip
            columns[name] = column
        return dataclasses.replace(data, **columns)

    # everything from the prediction bar on changed: the training and calibration sets are untouched
    x1, y1, c1 = _first_training_set(monkeypatch, poisoned(start))
    np.testing.assert_array_equal(x1, x0)
    np.testing.assert_array_equal(y1, y0)
    np.testing.assert_array_equal(c1, c0)
    # one bar earlier changes the label of row start-h-1, the newest row: calibration does contain it
    x2, y2, c2 = _first_training_set(monkeypatch, poisoned(start - 1))
    np.testing.assert_array_equal(x2, x0)
    np.testing.assert_array_equal(y2, y0)  # the fitted part ends before the calibration part's labels
    assert np.count_nonzero(c2 != c0) == 2  # that row, for BTC and ETH


def test_ml_model_learns_from_every_bar_not_only_the_primarys_proposals(monkeypatch, three_symbols):
    models = _all_training_sets(monkeypatch, three_symbols)
    assert models, "no model fitted: too few training rows"  # proposals alone are too few to fit on here
    beyond_channel = models[0][0][:, FEATURE_NAMES.index("breakout_atr")]  # > 0 exactly on a proposal
    assert np.any(beyond_channel > 0)
    assert np.mean(beyond_channel <= 0) > 0.5  # most training bars are not proposals


def test_ml_truncating_right_after_a_models_first_bar_leaves_what_it_learned_unchanged(monkeypatch, three_symbols):
    full = _all_training_sets(monkeypatch, three_symbols)
    assert len(full) >= 4
    for block in range(3):
        start = SMALL_CAL["train_bars"] + block * SMALL_CAL["retrain_every"]
        cut = _all_training_sets(monkeypatch, _truncate(three_symbols, start + 1))  # the bar it predicts is the last
        assert len(cut) == block + 1
        for got, want in zip(cut[-1], full[block], strict=True):
            np.testing.assert_array_equal(got, want, err_msg=f"model {block}: a label known after bar {start - 1}")


def test_ml_probe_changing_future_candles_leaves_past_predictions_unchanged(three_symbols):
    strategy = get_strategy("ml", **SMALL_CAL)
    p0, e0 = strategy.predict(three_symbols)
    assert np.isfinite(p0).sum() > 200  # asked only on the primary's proposals: a few % of the bars
    for cut in (1510, 2010, 2515):  # a few bars into a model's block: a leak of a few bars shows
        rng = np.random.default_rng(cut)
        factor = np.exp(rng.normal(0, 0.05, three_symbols.close[cut:].shape))  # a different future
        changed = dataclasses.replace(
            three_symbols,
            **{n: np.concatenate((getattr(three_symbols, n)[:cut], getattr(three_symbols, n)[cut:] * factor))
               for n in ("open", "high", "low", "close")},
        )  # fmt: skip
        p1, e1 = strategy.predict(changed)
        np.testing.assert_array_equal(p1[:cut], p0[:cut], err_msg=f"probability before {cut}")
        np.testing.assert_array_equal(e1[:cut], e0[:cut], err_msg=f"edge before {cut}")
        assert not np.array_equal(p1[cut:], p0[cut:], equal_nan=True)  # the probe did change something


def test_ml_cost_comes_from_the_backtest_and_lowers_the_edge(three_symbols):
    from autotrader.backtest.runner import BacktestConfig
    from autotrader.backtest.session import build_strategy

    config = BacktestConfig(strategy="ml", params=SMALL_CAL, fee=0.002, slippage_bps=5)
    assert build_strategy(config).params["cost"] == pytest.approx(2 * (0.002 + 0.0005))
    cheap = get_strategy("ml", **SMALL_CAL, cost=0.0).predict(three_symbols)
    dear = get_strategy("ml", **SMALL_CAL, cost=0.01).predict(three_symbols)
    both = np.isfinite(cheap[1]) & np.isfinite(dear[1])
    assert both.sum() > 200
    assert np.mean(dear[1][both]) < np.mean(cheap[1][both]) - 0.005
    assert np.mean(dear[0][both]) < np.mean(cheap[0][both])  # a dearer move is less likely


class _DictCache:
    def __init__(self) -> None:
        self.store: dict[str, np.ndarray] = {}

    def get(self, key: str) -> np.ndarray | None:
        return self.store.get(key)

    def put(self, key: str, value: np.ndarray) -> None:
        self.store[key] = value.copy()


def test_ml_cache_hit_identical_probabilities_and_faster(three_symbols, tmp_path):
    cache = NpzPredictionCache(tmp_path / "cache")
    strategy = get_strategy("ml", **SMALL_ML)
    strategy.cache = cache
    started = time.perf_counter()
    cold = strategy.generate(three_symbols)
    cold_s = time.perf_counter() - started
    started = time.perf_counter()
    warm = strategy.generate(three_symbols)
    warm_s = time.perf_counter() - started
    assert (cold.meta["cache"], warm.meta["cache"]) == ("miss", "hit")
    np.testing.assert_array_equal(warm.meta["p_up"], cold.meta["p_up"])
    np.testing.assert_array_equal(warm.direction, cold.direction)
    assert warm_s < cold_s / 5
    assert np.isfinite(cold.meta["p_up"]).sum() > 200
    assert cold.horizon_bars == SMALL_ML["horizon"]
    assert list((tmp_path / "cache").iterdir()) == [tmp_path / "cache" / f"{strategy.cache_key(three_symbols)}.npz"]

    # another threshold reuses the cached probabilities; another model parameter does not
    other = get_strategy("ml", **SMALL_ML, threshold=0.6)
    other.cache = cache
    assert other.generate(three_symbols).meta["cache"] == "hit"
    assert other.cache_key(three_symbols) == strategy.cache_key(three_symbols)
    assert get_strategy("ml", **SMALL_ML, seed=1).cache_key(three_symbols) != strategy.cache_key(three_symbols)
    changed = dataclasses.replace(three_symbols, volume=three_symbols.volume * 2)
    assert strategy.cache_key(changed) != strategy.cache_key(three_symbols)


def test_ml_signals_enter_above_threshold_and_edge_confidence_is_p(three_symbols):
    strategy = get_strategy("ml", **SMALL_CAL, threshold=0.52, min_edge=0.001)
    strategy.cache = _DictCache()
    signals = strategy.generate(three_symbols)
    p, edge = signals.meta["p_up"], signals.meta["edge"]
    d = signals.direction
    assert np.count_nonzero(d == 1) > 4  # gated by the primary: few entries on 4,000 bars
    assert np.all(p[d == 1] >= 0.52)
    assert np.all(edge[d == 1] >= 0.001)
    assert not np.any(d == -1)  # long only
    np.testing.assert_allclose(signals.confidence[d == 1], p[d == 1])
    assert np.isnan(signals.confidence[d != 1]).all()
    assert np.isnan(p[: SMALL_CAL["train_bars"]]).all()


def test_npz_cache_roundtrip_corrupt_entry_is_a_miss(tmp_path):
    cache = NpzPredictionCache(tmp_path)
    value = np.array([[0.1, np.nan], [0.7, 0.4]])
    assert cache.get("k1") is None
    cache.put("k1", value)
    np.testing.assert_array_equal(cache.get("k1"), value)
    assert [p.name for p in tmp_path.iterdir()] == ["k1.npz"]  # no temporary file left behind
    (tmp_path / "k2.npz").write_bytes(b"garbage")
    assert cache.get("k2") is None
    with pytest.raises(ValueError, match="invalid cache key"):
        cache.get("../etc/passwd")
