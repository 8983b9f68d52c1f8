"""Decision parity under risk limits: the backtest and the robot decide the same signals the same way.

Two highly correlated symbols (ETH is BTC / 16 with a little noise) are replayed bar by bar through
exchange-sim; a scripted strategy emits the same signals to the backtest and to the robot in demo
mode. Both go through ``risk.policy`` (signal rule, risk-state marking) and ``risk.rules`` (gate,
sizing), so every signal must end the same way on both sides, with the same denial NAME:

* BTC long, then ETH long: the ETH entry is sized down by a tight correlation limit (0.5);
* a 15 % crash of both while held: today's loss passes the 3 % limit (``daily_loss_hit``);
* flat signals exit (exits are never blocked), then longs that day are denied ``daily_loss``;
* on the next UTC day, entries resume.

A second run sets the correlation limit to 0 (no correlated exposure at all): with one long held,
there is no room left for a correlated long, so the entry is refused outright (``correlation``)
rather than sized down; an exit pending frees the room, and an entry decided on the same bar
(the backtest's pending order, the robot's order sent) takes it.
"""

from __future__ import annotations

import numpy as np
import pytest
from parity_harness import HOUR, START, assert_same_trade, backtest_hourly, closed_and_open, paired, run_robot_hourly
from robot_harness import robot_config

from autotrader.domain.aligned import AlignedCandles
from autotrader.domain.candles import Candles
from autotrader.live.records import Outcome
from autotrader.risk.policy import Transition
from autotrader.risk.rules import Denial
from autotrader.strategy.base import Signals, Strategy

WARMUP = 100
BARS = 32  # the robot's bars: into the next UTC day (bar 24 opens at 2024-03-02 00:00)
CRASH = 10  # the bar whose close is 15 % below its open, on both symbols
RISK = {
    "position_size": 0.3,
    "stop_loss": None,
    "daily_loss": 0.03,
    "max_drawdown": 0.5,
    "correlation": 0.5,
    "correlation_window_bars": 48,
}
# (robot bar, symbol) -> signal direction, and how both sides must end it
SCRIPT = {
    (2, "BTCUSDT"): 1.0,
    (4, "ETHUSDT"): 1.0,
    (12, "BTCUSDT"): 0.0,
    (12, "ETHUSDT"): 0.0,
    (14, "BTCUSDT"): 1.0,
    (16, "ETHUSDT"): 1.0,
    (26, "BTCUSDT"): 1.0,
    (28, "ETHUSDT"): 1.0,
}
EXPECTED = {
    (2, "BTCUSDT"): "entry",
    (4, "ETHUSDT"): "entry",  # sized down (checked below)
    (12, "BTCUSDT"): "exit",
    (12, "ETHUSDT"): "exit",
    (14, "BTCUSDT"): Denial.DAILY_LOSS.label,
    (16, "ETHUSDT"): Denial.DAILY_LOSS.label,
    (26, "BTCUSDT"): "entry",  # a new UTC day: the block is lifted
    (28, "ETHUSDT"): "entry",
}

REFUSAL_BARS = 16  # no crash in this run: the daily-loss limit stays out of the way
REFUSAL_RISK = {**RISK, "correlation": 0.0}  # no room at all for correlated exposure
# (robot bar, symbol, signal direction, how both sides must end it)
REFUSAL_STEPS = (
    (2, "BTCUSDT", 1.0, "entry"),
    (4, "ETHUSDT", 1.0, Denial.CORRELATION.label),  # BTC held: refused outright, not sized down
    (6, "BTCUSDT", 0.0, "exit"),
    (6, "ETHUSDT", 1.0, "entry"),  # BTC's exit on the same bar frees the room
    (8, "BTCUSDT", 1.0, Denial.CORRELATION.label),  # now ETH is held
    (10, "ETHUSDT", 0.0, "exit"),
    (12, "BTCUSDT", 1.0, "entry"),
    (12, "ETHUSDT", 1.0, Denial.CORRELATION.label),  # BTC's entry decided on the same bar takes the room
    (14, "BTCUSDT", 0.0, "exit"),
)
REFUSAL_SCRIPT = {(bar, symbol): direction for bar, symbol, direction, _ in REFUSAL_STEPS}
REFUSAL_EXPECTED = {(bar, symbol): outcome for bar, symbol, _, outcome in REFUSAL_STEPS}


class ScriptedSignals(Strategy):
    """Emits ``{(bar open ms, symbol): direction}`` at exactly those bars, confidence 1."""

    name = "parity_risk_script"

    def __init__(self, script: dict[tuple[int, str], float] | None = None) -> None:
        super().__init__()
        self.script = script or {}

    def generate(self, data: AlignedCandles) -> Signals:
        d = np.full(data.close.shape, np.nan)
        row = {int(ts): i for i, ts in enumerate(data.ts)}
        for (ts, symbol), v in self.script.items():
            if ts in row and symbol in data.symbols:
                d[row[ts], data.symbols.index(symbol)] = v
        return Signals(direction=d, confidence=np.where(np.isnan(d), np.nan, 1.0))


def _candles(bars: int = BARS, crash: int | None = CRASH) -> dict[str, Candles]:
    """Hourly BTC and ETH from WARMUP bars before START to one bar past the robot's last, ETH ~ BTC / 16.

    The ``crash`` bar (if any) closes 15 % below its open on both symbols.
    """
    n = WARMUP + bars + 1
    rng = np.random.default_rng(7)
    ts = START - WARMUP * HOUR + HOUR * np.arange(n, dtype=np.int64)
    step = rng.normal(0.0, 0.004, n)
    if crash is not None:
        step[WARMUP + crash] = np.log(0.85)
    btc = 40_000.0 * np.exp(np.cumsum(step))
    eth = btc / 16.0 * np.exp(rng.normal(0.0, 0.0005, n))
    out = {}
    for symbol, close in (("BTCUSDT", btc), ("ETHUSDT", eth)):
        c = np.round(close, 2)
        o = np.concatenate(([c[0]], c[:-1]))
        h = np.round(np.maximum(o, c) * 1.001, 2)
        lo = np.round(np.minimum(o, c) * 0.999, 2)
        out[symbol] = Candles(ts, o, h, lo, c, np.full(n, 1_000.0))
    return out


def _script(script: dict[tuple[int, str], float] = SCRIPT) -> dict[tuple[int, str], float]:
    """``script`` keyed by the bar's open time instead of the robot's bar number."""
    return {(START + bar * HOUR, symbol): v for (bar, symbol), v in script.items()}


def _backtest(candles: dict[str, Candles], script: dict[tuple[int, str], float] = SCRIPT, risk: dict = RISK):
    strategy = ScriptedSignals(_script(script))
    return backtest_hourly(
        candles, strategy, WARMUP, strategy=strategy.name, risk_level="aggressive", risk_overrides=risk, market="spot"
    )


def _robot(tmp_path, candles: dict[str, Candles], bars: int, script: dict[tuple[int, str], float], risk: dict):
    """The robot in demo mode on exchange-sim, fed ``script`` over ``bars`` hourly bars."""
    config = robot_config(
        timeframe="1h", risk_level="aggressive", risk_overrides=risk, lookback_bars=WARMUP, strategy=None
    )
    return run_robot_hourly(tmp_path, candles, config, ScriptedSignals(_script(script)), WARMUP, bars)


def _backtest_decisions(result, script: dict[tuple[int, str], float] = SCRIPT) -> dict[tuple[int, str], str]:
    """How the backtest ended each scripted signal: entry, exit, or the denial's name."""
    names = {d.label for d in Denial}
    out: dict[tuple[int, str], str] = {}
    for bar, symbol in script:
        ts = START + bar * HOUR
        denied = [str(e["event"]) for e in result.events if int(e["ts"]) == ts and str(e["symbol"]) == symbol]
        denied = [e for e in denied if e in names]
        entered = any(int(t["signal_ts"]) == ts and str(t["symbol"]) == symbol for t in result.trades)
        exited = any(
            int(t["exit_ts"]) == ts + HOUR and str(t["symbol"]) == symbol and str(t["exit_reason"]) == "signal"
            for t in result.trades
        )
        out[(bar, symbol)] = denied[0] if denied else "entry" if entered else "exit" if exited else "nothing"
    return out


def _robot_decisions(decisions) -> dict[tuple[int, str], str]:
    out = {}
    for d in decisions:
        bar = (d.signal_ts - HOUR - START) // HOUR  # a strategy signal is stamped at its bar's close
        out[(int(bar), d.symbol)] = (
            "entry" if d.outcome is Outcome.ENTRY else "exit" if d.outcome is Outcome.EXIT else d.reason
        )
    return out


@pytest.mark.slow
def test_backtest_and_robot_decide_correlation_and_daily_loss_the_same_way(tmp_path) -> None:
    candles = _candles()
    run = _robot(tmp_path, candles, BARS, SCRIPT, RISK)
    live = _robot_decisions(run.decisions)
    live_events = [(e.kind, e.ts_ms) for e in run.events]
    live_trades = run.trades
    open_positions = run.positions
    result = _backtest(candles)
    backtest = _backtest_decisions(result)

    assert live == backtest  # the same decision, and the same denial name, for every signal
    assert backtest == EXPECTED

    # the daily-loss block starts at the crash bar's close on both sides
    crash_close = START + (CRASH + 1) * HOUR
    hit = Transition.DAILY_LOSS_HIT.label
    assert [int(e["ts"]) + HOUR for e in result.events if str(e["event"]) == hit] == [crash_close]
    assert [ts for kind, ts in live_events if kind == hit] == [crash_close]

    # the correlated ETH entry is sized down alike: about half a full position on both sides
    bt_eth = next(t for t in result.trades if str(t["symbol"]) == "ETHUSDT")
    live_eth = next(t for t in live_trades if t.symbol == "ETHUSDT")
    bt_btc = next(t for t in result.trades if str(t["symbol"]) == "BTCUSDT")
    ratio = bt_eth["qty"] * bt_eth["entry_price"] / (bt_btc["qty"] * bt_btc["entry_price"])
    assert 0.4 < ratio < 0.7  # a full position would be 1.0
    assert float(live_eth.qty) == pytest.approx(bt_eth["qty"], rel=3e-3)  # the spot fee is paid in the coin
    assert {s for s, p in open_positions.items() if p.qty > 0} == {"BTCUSDT", "ETHUSDT"}


@pytest.mark.slow
def test_backtest_and_robot_refuse_a_correlated_entry_alike_when_no_room_is_left(tmp_path) -> None:
    candles = _candles(REFUSAL_BARS, crash=None)
    run = _robot(tmp_path, candles, REFUSAL_BARS, REFUSAL_SCRIPT, REFUSAL_RISK)
    result = _backtest(candles, REFUSAL_SCRIPT, REFUSAL_RISK)

    assert _robot_decisions(run.decisions) == _backtest_decisions(result, REFUSAL_SCRIPT)
    assert _backtest_decisions(result, REFUSAL_SCRIPT) == REFUSAL_EXPECTED

    # the same trades: symbol, side, entry and exit bars, exit reasons; each entered at full size
    bt, still_open = closed_and_open(result)
    assert still_open == set()
    assert [(str(b["symbol"]), int(b["entry_ts"])) for b in bt] == [
        ("BTCUSDT", START + 3 * HOUR),
        ("ETHUSDT", START + 7 * HOUR),
        ("BTCUSDT", START + 13 * HOUR),
    ]
    for b, t in paired(bt, run.trades):
        assert_same_trade(b, t, t.exit_ms, float(run.instruments[t.symbol].tick_size))
        assert b["qty"] * b["entry_price"] == pytest.approx(0.3 * 10_000.0, rel=0.02)  # never sized down
