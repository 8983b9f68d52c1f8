"""Stress scenarios: the candle transforms' properties, the survival rule and the scenario runs."""

from __future__ import annotations

import numpy as np
import pytest

from autotrader.backtest.runner import BacktestConfig
from autotrader.domain.aligned import AlignedCandles, align
from autotrader.domain.candles import Candles, SeriesKey, parse_date_ms
from autotrader.domain.errors import ConfigError
from autotrader.domain.instrument import Instrument
from autotrader.marketdata.bundled import bundled_files, read_parquet_candles
from autotrader.strategy.base import Signals, Strategy
from autotrader.validation.stress import (
    HISTORICAL_WINDOWS,
    SCENARIO_NAMES,
    correlation_shock,
    gap_down,
    judge,
    liquidity_crisis_config,
    offline_config,
    run_stress_tests,
    scale_volatility,
)

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
HOUR = 3_600_000


# --------------------------------------------------------------------------- helpers


def _random_bars(n: int = 500, seed: int = 7, symbols: tuple[str, ...] = ("AAAUSDT", "BBBUSDT")) -> AlignedCandles:
    """Random-walk OHLC bars; the second symbol lists late and has a hole."""
    rng = np.random.default_rng(seed)
    series = {}
    for k, sym in enumerate(symbols):
        close = (100.0 + 40 * k) * np.exp(np.cumsum(rng.normal(0.0002, 0.01, n)))
        open_ = np.concatenate(([close[0]], close[:-1])) * np.exp(rng.normal(0, 0.001, n))
        high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.004, n)))
        low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.004, n)))
        ts = T0 + HOUR * np.arange(n, dtype=np.int64)
        keep = np.ones(n, dtype=bool)
        if k == 1:
            keep[:30] = False  # listed later
            keep[200:205] = False  # a gap
        cols = {"ts": ts, "open": open_, "high": high, "low": low, "close": close, "volume": np.full(n, 1e6)}
        series[sym] = Candles.from_columns({c: v[keep] for c, v in cols.items()})
    return align(series)


def _assert_consistent(data: AlignedCandles) -> None:
    p = data.present
    o, h, lo, c = data.open, data.high, data.low, data.close
    assert np.all(np.isfinite(c[p]))
    assert np.all(c[p] > 0)
    assert np.all(h[p] >= np.maximum(o[p], c[p]))
    assert np.all(lo[p] <= np.minimum(o[p], c[p]))
    assert np.all(lo[p] > 0)
    for arr in (o, h, lo, c):
        assert np.all(np.isnan(arr[~p]))


def _log_returns(data: AlignedCandles, j: int) -> np.ndarray:
    return np.diff(np.log(data.close[data.present[:, j], j]))


def _loose(symbols: tuple[str, ...]) -> dict[str, Instrument]:
    return {
        s: Instrument.trading(s, "spot", tick_size=0.0, lot_step=0.0, min_qty=0.0, min_notional=0.0) for s in symbols
    }


class _AlwaysLong(Strategy):
    """Wants to be long on every bar (re-enters after a stop)."""

    name = "test_stress_always_long"

    def generate(self, data: AlignedCandles) -> Signals:
        return Signals.from_direction(np.ones(data.close.shape))


class _LongOnce(Strategy):
    """Goes long on bar 2 and never exits by signal."""

    name = "test_stress_long_once"

    def generate(self, data: AlignedCandles) -> Signals:
        direction = np.full(data.close.shape, np.nan)
        direction[2] = 1.0
        return Signals.from_direction(direction)


class _OnlyBefore(Strategy):
    """Signals long only on bars before a fixed time (all of them fall in a warm-up)."""

    name = "test_stress_only_before"
    cutoff_ms = parse_date_ms("2022-05-01")

    def generate(self, data: AlignedCandles) -> Signals:
        direction = np.full(data.close.shape, np.nan)
        direction[data.ts < self.cutoff_ms] = 1.0
        return Signals.from_direction(direction)


def _config(symbols: tuple[str, ...], strategy: str, **overrides: object) -> BacktestConfig:
    risk = {"position_size": 0.5, "correlation": 1.0, "daily_loss": 1.0}
    risk.update(overrides.pop("risk_overrides", {}))  # type: ignore[arg-type]
    return BacktestConfig(
        symbols=symbols, strategy=strategy, fee=0.0, slippage_bps=0.0, risk_overrides=risk, **overrides
    )


@pytest.fixture(scope="module")
def btc() -> AlignedCandles:
    path = bundled_files()[SeriesKey.of("binance", "BTCUSDT", "1h")]
    candles = read_parquet_candles(path).slice_range(parse_date_ms("2022-01-01"), parse_date_ms("2022-07-01") - 1)
    return align({"BTCUSDT": candles})


# --------------------------------------------------------------------------- transforms


def test_gap_down_scales_later_prices_by_0_7_and_keeps_bars_consistent() -> None:
    data = _random_bars()
    bar = 250
    out = gap_down(data, bar)
    for name in ("open", "high", "low", "close"):
        before, after = getattr(data, name), getattr(out, name)
        np.testing.assert_array_equal(after[:bar], before[:bar])
        np.testing.assert_allclose(after[bar:], 0.7 * before[bar:], rtol=1e-15)
    np.testing.assert_array_equal(out.volume, data.volume)
    gap = out.open[bar] / out.close[bar - 1] - 1.0
    np.testing.assert_allclose(gap, 0.7 * data.open[bar] / data.close[bar - 1] - 1.0)
    assert np.all(gap < -0.29)
    _assert_consistent(out)
    assert data.close[bar, 0] == pytest.approx(out.close[bar, 0] / 0.7)  # the input is untouched


def test_gap_down_rejects_a_bar_outside_the_data() -> None:
    data = _random_bars(n=50)
    with pytest.raises(ConfigError, match="gap bar"):
        gap_down(data, 0)
    with pytest.raises(ConfigError, match="gap bar"):
        gap_down(data, 50)


def test_scale_volatility_triples_return_std_keeps_trend_and_bars_consistent() -> None:
    data = _random_bars()
    out = scale_volatility(data, 3.0)
    for j in range(len(data.symbols)):
        r, r3 = _log_returns(data, j), _log_returns(out, j)
        assert np.std(r3, ddof=1) == pytest.approx(3.0 * np.std(r, ddof=1), rel=1e-9)
        assert np.mean(r3) == pytest.approx(np.mean(r), rel=1e-9, abs=1e-15)
        first = np.flatnonzero(data.present[:, j])[0]
        assert out.close[first, j] == pytest.approx(data.close[first, j])
    # the intrabar range grows too
    p = data.present
    assert np.mean(np.log(out.high[p] / out.low[p])) == pytest.approx(3 * np.mean(np.log(data.high[p] / data.low[p])))
    _assert_consistent(out)


def test_correlation_shock_gives_pairwise_correlation_one_and_keeps_own_volatility() -> None:
    data = _random_bars(n=800, symbols=("AAAUSDT", "BBBUSDT", "CCCUSDT"))
    before = np.corrcoef(_log_returns(data, 0)[-300:], _log_returns(data, 2)[-300:])[0, 1]
    assert abs(before) < 0.3  # independent walks to begin with
    out = correlation_shock(data)
    np.testing.assert_array_equal(out.close[:, 0], data.close[:, 0])  # the leader is unchanged
    both = data.present[:, 0] & data.present[:, 1] & data.present[:, 2]
    rows = np.flatnonzero(both)[1:]
    rows = rows[both[rows - 1]]  # bar-to-bar returns where all three have both bars
    r = np.log(out.close[rows] / out.close[rows - 1])
    corr = np.corrcoef(r.T)
    np.testing.assert_allclose(corr, np.ones((3, 3)), atol=1e-9)
    r2_before, r2_after = _log_returns(data, 2), _log_returns(out, 2)
    assert np.std(r2_after, ddof=1) == pytest.approx(np.std(r2_before, ddof=1), rel=1e-9)
    _assert_consistent(out)


def test_correlation_shock_leaves_a_single_symbol_unchanged() -> None:
    data = _random_bars(symbols=("AAAUSDT",))
    assert correlation_shock(data) is data


def test_liquidity_crisis_config_has_slippage_x10_fee_x2_and_a_volume_cap() -> None:
    config = BacktestConfig(fee=0.001, slippage_bps=2.0)
    crisis = liquidity_crisis_config(config)
    assert crisis.slippage_bps == pytest.approx(20.0)
    assert crisis.fee_rate == pytest.approx(0.002)
    assert crisis.max_volume_share == pytest.approx(0.01)
    assert config.max_volume_share is None
    assert config.slippage_bps == 2.0
    default_fee = liquidity_crisis_config(BacktestConfig(fee=None, market="linear"))
    assert default_fee.fee_rate == pytest.approx(2 * 0.00055)


def test_offline_config_adds_a_24_hour_window() -> None:
    config = BacktestConfig()
    off = offline_config(config, T0, stops_on_exchange=False)
    assert off.offline_windows == ((T0, T0 + 24 * HOUR - 1),)
    assert off.stops_on_exchange is False
    assert offline_config(config, T0, stops_on_exchange=True).stops_on_exchange is True


# --------------------------------------------------------------------------- survival rule


def test_judge_drawdown_at_the_limit_survives() -> None:
    status, reason = judge(np.array([100.0, 120.0, 102.0, 130.0]), 0.15)
    assert status == "survived"
    assert "15.00%" in reason


def test_judge_drawdown_beyond_the_limit_fails() -> None:
    status, reason = judge(np.array([100.0, 120.0, 101.0, 130.0]), 0.15)
    assert status == "failed"
    assert "exceeds" in reason


def test_judge_non_positive_equity_fails_even_with_a_loose_limit() -> None:
    status, reason = judge(np.array([100.0, 50.0, 0.0, 10.0]), 1.0)
    assert status == "failed"
    assert "wiped out" in reason


# --------------------------------------------------------------------------- scenario runs


def _crash_bars() -> AlignedCandles:
    """Flat at 100 for 40 bars, then -3 % a bar for 11 bars, then flat."""
    n = 90
    close = np.full(n, 100.0)
    close[40:51] = 100.0 * 0.97 ** np.arange(1, 12)
    close[51:] = close[50]
    open_ = np.concatenate(([100.0], close[:-1]))
    high = np.maximum(open_, close) * 1.002
    low = np.minimum(open_, close) * 0.998
    ts = T0 + HOUR * np.arange(n, dtype=np.int64)
    cols = {"ts": ts, "open": open_, "high": high, "low": low, "close": close, "volume": np.full(n, 1e6)}
    return align({"CRASHUSDT": Candles.from_columns(cols)})


def test_system_failure_with_stops_on_exchange_loses_less_than_without() -> None:
    data = _crash_bars()
    config = _config(("CRASHUSDT",), _LongOnce.name, risk_overrides={"position_size": 1.0, "stop_loss": 0.02})
    report = run_stress_tests(
        config,
        data,
        strategy_factory=lambda _: _LongOnce(),
        instruments=_loose(config.symbols),
        scenarios=["system_failure"],
    )
    row = report.scenario("system_failure")
    on, off = row.runs
    assert (on.label, off.label) == ("stops on exchange", "no exchange stops")
    assert on.total_return > off.total_return
    assert on.max_drawdown > off.max_drawdown
    assert on.status == "survived"
    assert off.status == "failed"
    assert row.status == "failed"  # the worse run decides
    assert row.max_drawdown == off.max_drawdown
    assert "2024-01-02 16:00" in row.detail  # offline from the crash's first bar (bar 40)
    assert report.baseline is not None
    assert report.baseline.total_return == pytest.approx(on.total_return)


class _ShortOnce(Strategy):
    """Goes short on bar 2 and never exits by signal."""

    name = "test_stress_short_once"

    def generate(self, data: AlignedCandles) -> Signals:
        direction = np.full(data.close.shape, np.nan)
        direction[2] = -1.0
        return Signals.from_direction(direction)


def _mirrored(data: AlignedCandles) -> AlignedCandles:
    """The crash turned into a spike: every price p becomes 200 - p."""
    ts = data.ts
    cols = {
        "ts": ts,
        "open": 200.0 - data.open[:, 0],
        "high": 200.0 - data.low[:, 0],
        "low": 200.0 - data.high[:, 0],
        "close": 200.0 - data.close[:, 0],
        "volume": data.volume[:, 0],
    }
    return align({"CRASHUSDT": Candles.from_columns(cols)})


@pytest.mark.parametrize(("strategy", "leverage"), [(_LongOnce, 2.0), (_ShortOnce, 1.0)], ids=["long_2x", "short_1x"])
def test_system_failure_linear_without_exchange_stops_loses_more(strategy: type[Strategy], leverage: float) -> None:
    data = _crash_bars() if strategy is _LongOnce else _mirrored(_crash_bars())
    config = _config(
        ("CRASHUSDT",),
        strategy.name,
        market="linear",
        leverage=leverage,
        risk_level="aggressive",
        risk_overrides={"position_size": 1.0, "stop_loss": 0.02},
    )
    report = run_stress_tests(
        config,
        data,
        strategy_factory=lambda _: strategy(),
        instruments=_loose(config.symbols),
        scenarios=["system_failure"],
    )
    on, off = report.scenario("system_failure").runs
    assert on.total_return == pytest.approx(-0.02 * leverage, abs=0.01)  # stopped near 2 % of notional
    assert off.total_return < on.total_return - 0.05  # held through the outage, unguarded


def test_historical_window_outside_the_data_is_not_applicable() -> None:
    data = _random_bars()  # January 2024 only
    config = _config(data.symbols, _AlwaysLong.name)
    report = run_stress_tests(
        config,
        data,
        strategy_factory=lambda _: _AlwaysLong(),
        instruments=_loose(data.symbols),
        scenarios=[w.name for w in HISTORICAL_WINDOWS],
    )
    assert report.total == 5
    assert report.survived == 0
    assert report.not_applicable == 5
    for row in report.scenarios:
        assert row.status == "n/a"
        assert row.total_return is None
        assert row.max_drawdown is None
        assert row.trades is None
        assert "no 1h data" in row.reason
        assert "2024-01-01" in row.reason
    assert report.summary_line == "Stress Test Survival: 0/5 (5 N/A)"


def test_historical_window_is_measured_inside_the_window_only(btc: AlignedCandles) -> None:
    config = _config(("BTCUSDT",), _AlwaysLong.name, risk_overrides={"stop_loss": None, "max_drawdown": 0.5})
    report = run_stress_tests(
        config,
        btc,
        strategy_factory=lambda _: _AlwaysLong(),
        instruments=_loose(("BTCUSDT",)),
        scenarios=["luna_2022"],
    )
    row = report.scenario("luna_2022")
    assert row.status == "survived"
    assert row.trades == 1  # entered at the window's start, held to its end
    # half the equity in BTC from the window's second bar to its last close
    may = (btc.ts >= parse_date_ms("2022-05-01")) & (btc.ts < parse_date_ms("2022-06-01"))
    closes = btc.close[may, 0]
    entry = btc.open[np.flatnonzero(may)[1], 0]
    assert row.total_return == pytest.approx(0.5 * (closes[-1] / entry - 1.0), rel=0.02)
    assert row.total_return < -0.05


def test_historical_window_drops_signals_from_the_warm_up(btc: AlignedCandles) -> None:
    config = _config(("BTCUSDT",), _OnlyBefore.name)
    report = run_stress_tests(
        config,
        btc,
        strategy_factory=lambda _: _OnlyBefore(),
        instruments=_loose(("BTCUSDT",)),
        scenarios=["luna_2022"],
    )
    row = report.scenario("luna_2022")
    assert row.trades == 0
    assert row.total_return == 0.0
    assert row.status == "survived"


def test_historical_window_from_a_store_outside_the_saved_period(tmp_path, btc: AlignedCandles) -> None:
    from autotrader.adapters.storage.parquet_store import ParquetCandleStore

    store = ParquetCandleStore(tmp_path / "store")
    key = SeriesKey.of("binance", "BTCUSDT", "1h")
    rows = np.flatnonzero(btc.present[:, 0])
    store.upsert(
        key,
        Candles(btc.ts[rows], *(getattr(btc, c)[rows, 0] for c in ("open", "high", "low", "close", "volume"))),
    )
    config = _config(("BTCUSDT",), _AlwaysLong.name, start="2022-06-01", end="2022-06-30")
    report = run_stress_tests(
        config,
        store,
        strategy_factory=lambda _: _AlwaysLong(),
        instruments=_loose(("BTCUSDT",)),
        scenarios=["luna_2022", "march_2020_crash", "gap_down_30pct"],
    )
    assert report.scenario("luna_2022").status in {"survived", "failed"}
    assert report.scenario("luna_2022").trades >= 1
    na = report.scenario("march_2020_crash")
    assert na.status == "n/a"
    assert "BTCUSDT 2022-01-01 .. 2022-06-30" in na.reason
    assert report.scenario("gap_down_30pct").window == "2022-06-01 .. 2022-06-30"


def test_all_ten_scenarios_run_and_count() -> None:
    data = _random_bars(n=400)
    config = _config(data.symbols, _AlwaysLong.name, risk_level="aggressive")
    report = run_stress_tests(config, data, strategy_factory=lambda _: _AlwaysLong(), instruments=_loose(data.symbols))
    assert tuple(s.name for s in report.scenarios) == SCENARIO_NAMES
    assert report.total == 10
    assert report.survived + report.failed + report.not_applicable == 10
    assert report.not_applicable == 5  # the historical windows: this data is from 2024
    assert report.drawdown_limit == 0.20
    for row in report.scenarios[5:]:
        assert row.status in {"survived", "failed"}
        assert row.trades is not None
        assert row.trades > 0
        survived = -row.max_drawdown <= 0.20 + 1e-12
        assert (row.status == "survived") == survived
    assert report.scenario("system_failure").runs[0].label == "stops on exchange"
    assert report.summary_line.startswith(f"Stress Test Survival: {report.survived}/10")
    doc = report.to_dict()
    assert doc["total"] == 10
    assert len(doc["scenarios"]) == 10
    assert "Stress Test Survival" in report.render_text()


def test_correlation_shock_on_one_symbol_is_not_applicable() -> None:
    data = _random_bars(symbols=("AAAUSDT",))
    config = _config(data.symbols, _AlwaysLong.name)
    report = run_stress_tests(
        config,
        data,
        strategy_factory=lambda _: _AlwaysLong(),
        instruments=_loose(data.symbols),
        scenarios=["correlation_shock"],
    )
    row = report.scenario("correlation_shock")
    assert row.status == "n/a"
    assert "single-symbol" in row.reason


def test_gap_scenario_loses_about_30_percent_of_a_full_position() -> None:
    data = _random_bars(symbols=("AAAUSDT",))
    config = _config(data.symbols, _AlwaysLong.name, risk_overrides={"position_size": 1.0, "stop_loss": None})
    report = run_stress_tests(
        config,
        data,
        strategy_factory=lambda _: _AlwaysLong(),
        instruments=_loose(data.symbols),
        scenarios=["gap_down_30pct"],
    )
    row = report.scenario("gap_down_30pct")
    assert row.status == "failed"
    assert row.max_drawdown < -0.29


def test_unknown_scenario_name_is_a_config_error() -> None:
    data = _random_bars(n=50)
    with pytest.raises(ConfigError, match="unknown stress scenario 'lunaa'"):
        run_stress_tests(
            _config(data.symbols, _AlwaysLong.name),
            data,
            strategy_factory=lambda _: _AlwaysLong(),
            scenarios=["lunaa"],
        )
