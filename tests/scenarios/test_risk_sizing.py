"""Issue 13 risk parts: correlation sized (not a wall), volatility target, halts you cannot miss."""

from __future__ import annotations

import html
import math
from decimal import Decimal

import numpy as np
import pytest
from rich.console import Console

from autotrader.analytics.report_data import build_report
from autotrader.analytics.reports import halt_text, render_console, write_html
from autotrader.backtest.runner import BacktestConfig, daily_volatility_of, run_backtest
from autotrader.domain.aligned import align
from autotrader.domain.errors import ConfigError
from autotrader.domain.instrument import Instrument
from autotrader.live.clock import FunctionClock
from autotrader.live.portfolio import Book
from autotrader.live.records import Ledger, PositionState
from autotrader.live.robot import Robot, RobotConfig
from autotrader.marketdata.bundled import bundled_files, read_parquet_candles
from autotrader.risk import rules
from autotrader.signals.prediction import Prediction
from autotrader.strategy.base import Signals
from tests.scenarios.harness import HOUR_MS, T0, ScriptedStrategy, candles_from_rows, loose_rules, run_scenario

FLAT = (100.0, 101.0, 99.0, 100.0)


def _correlated_tables(n: int = 60) -> dict[str, list[tuple[float, float, float, float]]]:
    rng = np.random.default_rng(7)
    r = rng.normal(0, 0.01, n)
    a = 100 * np.exp(np.cumsum(r))
    b = 50 * np.exp(np.cumsum(r + rng.normal(0, 0.001, n)))
    return {
        "AAA": [(x, x * 1.001, x * 0.999, x) for x in a],
        "BBB": [(x, x * 1.001, x * 0.999, x) for x in b],
    }


# --------------------------------------------------------------------------- correlation as risk


def _second_entry_share(tables: dict, result) -> tuple[float, float]:
    """(share of a full-size position the second entry took, the share the limit allows by hand)."""
    aaa, bbb = result.trades[result.trades["symbol"] == "AAA"][0], result.trades[result.trades["symbol"] == "BBB"][0]
    close = np.array([[row[3] for row in tables[s]] for s in ("AAA", "BBB")]).T
    t = 45  # the bar BBB's entry was decided on
    equity = float(result.equity[t])
    full = 0.3 * equity
    f_aaa = aaa["qty"] * close[t, 0] / full
    c = rules.pair_correlation_nb(close, t, 0, 1, 168)
    taken = bbb["qty"] * bbb["entry_price"] / full
    return taken, 0.7 / (f_aaa * c)


def test_correlation_limit_sizes_the_second_correlated_entry_down_to_the_limit():
    tables = _correlated_tables()
    result = run_scenario(
        tables, {(40, 0): 1.0, (45, 1): 1.0}, risk_overrides={"correlation": 0.7, "position_size": 0.3}
    )
    assert sorted(t["symbol"] for t in result.trades) == ["AAA", "BBB"]  # no longer a wall
    assert "correlation" not in list(result.events["event"])
    taken, allowed = _second_entry_share(tables, result)
    assert allowed < 0.75  # correlation ~0.99: a full second position would break the limit
    assert taken == pytest.approx(allowed, rel=1e-3)  # sized exactly to the limit (fill = close here)


def test_correlation_sizing_refuses_only_below_the_minimum_order():
    tables = _correlated_tables()
    strict = {"correlation": 0.05, "position_size": 0.3}
    # the limit allows ~5 % of a full 3,000 USD slot (~150 USD): a 500 USD minimum order refuses it
    rules_min = {s: loose_rules(s, min_notional=500.0) for s in tables}
    refused = run_scenario(tables, {(40, 0): 1.0, (45, 1): 1.0}, rules=rules_min, risk_overrides=strict)
    assert [t["symbol"] for t in refused.trades] == ["AAA"]
    assert list(refused.events["event"]) == ["below_min_notional"]
    allowed = run_scenario(tables, {(40, 0): 1.0, (45, 1): 1.0}, risk_overrides=strict)
    bbb = allowed.trades[allowed.trades["symbol"] == "BBB"][0]
    assert 0 < bbb["qty"] * bbb["entry_price"] < 200.0


def test_correlation_size_cap_matches_the_measure_by_hand():
    rng = np.random.default_rng(3)
    common = rng.normal(0, 0.01, (200, 1))
    close = 100 * np.exp(np.cumsum(common + rng.normal(0, 0.004, (200, 3)), axis=0))
    t, window, full, limit = 199, 168, 1000.0, 0.4
    exposure = np.array([1000.0, 500.0, 0.0])  # one full slot, one half slot, the candidate empty
    c = [[rules.pair_correlation_nb(close, t, i, j, window) for j in range(3)] for i in range(3)]
    share = rules.correlation_size_cap_nb(close, t, exposure, 2, 1.0, full, limit, window)
    # measure: sum_{i<j} f_i f_j c_ij / #pairs with f = (1, 0.5, share), 3 pairs, equal to the limit
    measure = (1 * 0.5 * c[0][1] + 1 * share * c[0][2] + 0.5 * share * c[1][2]) / 3
    assert 0 < share < 1
    assert measure == pytest.approx(limit, rel=1e-12)
    # a short candidate hedges the longs: any size keeps the limit
    assert rules.correlation_size_cap_nb(close, t, exposure, 2, -1.0, full, limit, window) == math.inf
    # nothing else held: the measure has no pair
    assert rules.correlation_size_cap_nb(close, t, np.zeros(3), 2, 1.0, full, limit, window) == math.inf


def _robot_for(tables: dict, t: int, aaa_qty: float, cash: float, config: BacktestConfig) -> Robot:
    """A robot in the state the kernel was in at bar ``t``'s close: AAA held, BBB flat."""
    robot_cfg = RobotConfig(
        symbols=tuple(tables), timeframe="1h", capital=10_000.0, risk_level=config.risk_level,
        risk_overrides=config.risk_overrides, fee=0.0, slippage_bps=0.0, lookback_bars=100,
    )  # fmt: skip
    robot = Robot(robot_cfg, None, None, FunctionClock(lambda: T0 + t * HOUR_MS))  # type: ignore[arg-type]
    data = align({s: candles_from_rows(rows[: t + 1]) for s, rows in tables.items()})
    robot.history = data
    instruments = {
        s: Instrument(s, "spot", s[:3], "USDT", "Trading", Decimal(0), Decimal(0), Decimal(0), Decimal(0))
        for s in tables
    }
    robot.instruments = instruments
    aaa = PositionState("AAA", qty=Decimal(str(float(aaa_qty))), avg_price=Decimal("100"))
    robot.book = Book("spot", Ledger(Decimal(10_000), Decimal(str(float(cash)))), {"AAA": aaa}, instruments)

    class _Orders:
        def pending_exit(self, symbol: str) -> bool:
            return False

        def client_id(self, symbol: str, signal_id: str, kind: str) -> str:
            return f"{symbol}-{kind}"

        def fit(self, command, price):  # type: ignore[no-untyped-def]
            return command

        def new_order(self, intent, command):  # type: ignore[no-untyped-def]
            return command

    robot.om = _Orders()  # type: ignore[assignment]
    for s, rows in tables.items():
        robot.market_view.set_price(s, rows[t][3])
    return robot


def test_correlation_sizing_backtest_and_robot_give_the_same_size_for_the_same_state():
    tables = _correlated_tables()
    overrides = {"correlation": 0.7, "position_size": 0.3, "stop_loss": None, "daily_loss": 1.0, "max_drawdown": 1.0}
    result = run_scenario(tables, {(40, 0): 1.0, (45, 1): 1.0}, risk_overrides=overrides)
    aaa = result.trades[result.trades["symbol"] == "AAA"][0]
    bbb = result.trades[result.trades["symbol"] == "BBB"][0]
    t = 45
    cash = 10_000.0 - aaa["qty"] * aaa["entry_price"]
    robot = _robot_for(tables, t, float(aaa["qty"]), cash, result.config)

    p = Prediction(
        id="s1", symbol="BBB", ts=T0 + t * HOUR_MS, direction="long", confidence=1.0, horizon="1h", model="x"
    )
    # decided on bar t's closes, filled at bar t+1's open (the kernel's convention; no slippage here)
    out = robot.intake.entry(p, 1, tables["BBB"][t + 1][0], T0 + t * HOUR_MS, bar_prices=True)
    assert not isinstance(out, str), out
    intent, command = out
    assert float(command.qty) == pytest.approx(bbb["qty"], rel=1e-9)  # the same quantity
    kernel_fraction = bbb["qty"] * bbb["entry_price"] / float(result.equity[t])
    assert intent.fraction < 0.3  # sized down
    assert intent.fraction == pytest.approx(kernel_fraction, rel=1e-9)


# --------------------------------------------------------------------------- volatility target


def test_volatility_target_sizes_each_position_to_the_risk_per_trade():
    rng = np.random.default_rng(5)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.004, 800)))  # ~2 % a day on hourly bars
    rows = [(c, c * 1.001, c * 0.999, c) for c in closes]
    result = run_scenario(
        {"AAA": rows}, {(700, 0): 1.0}, sizing="volatility",
        risk_overrides={"position_size": 1.0, "risk_per_trade": 0.005},
    )  # fmt: skip
    data = align({"AAA": candles_from_rows(rows)})
    r = np.diff(np.log(closes[:701]))[-336:]  # the 14 days of hourly returns ending at the decision bar
    daily_vol = r.std(ddof=1) * math.sqrt(24)
    assert daily_volatility_of(data, "1h")[700, 0] == pytest.approx(daily_vol, rel=1e-9)
    fraction = result.trades[0]["qty"] * result.trades[0]["entry_price"] / float(result.equity[700])
    assert fraction == pytest.approx(0.005 / daily_vol, rel=1e-9)  # 0.5 % of equity on a one-sigma day


@pytest.mark.parametrize("level", ["conservative", "medium", "aggressive"])
def test_volatility_sizing_differs_from_fixed_on_bundled_hourly_data(level: str):
    # issue 13: on hourly bars the old ATR-stop sizing was always capped, so it equalled fixed sizing
    key = next(k for k in bundled_files() if k.symbol == "BTCUSDT" and k.timeframe == "1h")
    data = align({"BTCUSDT": read_parquet_candles(bundled_files()[key])})  # 2020-2024, 43,816 bars
    direction = np.full(data.close.shape, np.nan)
    bars = np.arange(400, data.n_bars - 30, 48)  # a one-day trade every other day
    direction[bars, 0] = 1.0
    direction[bars + 24, 0] = 0.0
    signals = Signals(direction=direction, confidence=np.where(np.isnan(direction), np.nan, 1.0))
    runs = {}
    for sizing in ("fixed", "volatility"):
        cfg = BacktestConfig(symbols=("BTCUSDT",), strategy=ScriptedStrategy.name, risk_level=level, sizing=sizing)
        res = run_backtest(cfg, data, ScriptedStrategy({}), signals=signals)
        tr = res.trades
        runs[sizing] = tr["qty"] * tr["entry_price"] / res.equity[tr["entry_bar"] - 1]  # share of equity at decision
    fixed, vol = runs["fixed"], runs["volatility"]
    assert len(fixed) == len(vol) > 800
    ratio = vol / fixed
    assert np.mean(np.abs(ratio - 1.0) > 0.01) > 0.5  # most trades are sized differently
    assert ratio.max() <= 1.001  # never above the position limit (lot rounding aside)
    assert ratio.std() > 0.05  # and the size moves with volatility


# --------------------------------------------------------------------------- halts


def _crash_then_drift() -> list[tuple[float, float, float, float]]:
    crash = (100.0, 100.0, 70.0, 70.0)
    rows = [FLAT, (100.0, 100.0, 100.0, 100.0), crash] + [(70.0, 71.0, 69.0, 70.0)] * 60
    # after the cooling-off period, a further 8 % slide: below the OLD peak's 10 % line, not the re-based one
    rows += [(64.4, 64.5, 64.3, 64.4)] * 20
    return rows


def test_on_halt_stop_is_for_good_and_the_report_shows_date_equity_and_idle_time(tmp_path):
    rows = _crash_then_drift()
    script = {(0, 0): 1.0, (10, 0): 1.0, (70, 0): 1.0}
    result = run_scenario({"AAA": rows}, script, risk_overrides={"max_drawdown": 0.1, "position_size": 1.0})
    assert len(result.trades) == 1
    doc = build_report(result)
    [halt] = doc["risk"]["halts"]
    assert halt["time"].startswith("2024-01-01T02:00")
    assert halt["equity_usd"] == pytest.approx(7_000.0)
    assert halt["drawdown"] == pytest.approx(-0.3)
    assert halt["resumed"] is None
    assert halt["idle_days"] == pytest.approx((len(rows) - 1 - 2) / 24)
    text = halt_text(halt)
    assert "2024-01-01 02:00 UTC" in text and "7,000.00" in text and "-30.00%" in text and "3.3 days" in text
    console = Console(record=True, width=400)
    render_console(doc, console)
    assert f"HALT: {text}" in console.export_text()
    page = write_html(doc, tmp_path / "report.html").read_text(encoding="utf-8")
    assert html.escape(text) in page


def test_on_halt_resume_after_rebases_the_peak_and_trades_again():
    rows = _crash_then_drift()
    script = {(0, 0): 1.0, (10, 0): 1.0, (70, 0): 1.0, (75, 0): 0.0}
    result = run_scenario(
        {"AAA": rows}, script, on_halt="resume-after=1d", risk_overrides={"max_drawdown": 0.1, "position_size": 1.0}
    )
    events = list(result.events["event"])
    assert events.count("drawdown_halt") == 1  # the slide below the old peak's line does not halt again
    assert "halt_resumed" in events
    resumed_ts = int(result.events["ts"][events.index("halt_resumed")])
    assert resumed_ts == T0 + (2 + 24) * HOUR_MS  # one day after the halt bar
    assert [int(t["entry_bar"]) for t in result.trades] == [1, 71]  # trading resumed after the cooling-off
    # without re-basing, 64.4 is 35.6 % below the old 100 peak: the same run would halt again
    assert result.trades[1]["exit_reason"] == "signal"
    [halt] = build_report(result)["risk"]["halts"]
    assert halt["resumed"].startswith("2024-01-02T02:00")
    assert halt["idle_days"] == pytest.approx(1.0)
    assert "peak re-based" in halt_text(halt)


@pytest.mark.parametrize("bad", ["resume", "resume-after=", "resume-after=soon", "pause"])
def test_on_halt_bad_value_is_one_clear_config_line(bad: str):
    with pytest.raises((ConfigError, ValueError), match="resume-after=DURATION"):
        BacktestConfig(on_halt=bad)
