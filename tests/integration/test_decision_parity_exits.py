"""Parity of exits: the robot on exchange-sim closes positions where and why the backtest does (linear).

The set-up of ``test_robot_parity`` (bundled Binance 1h candles replayed bar by bar through
exchange-sim, no spread, 2 bps slippage, ``sma_cross`` signals computed by the robot from the
candles the venue serves), on the linear market, where the strategy goes long and short, with
the exits the risk settings ask for:

* ``stop_loss`` + ``take_profit``: a stop-loss and a target rest at the venue;
* ``stop_loss`` + ``trailing_stop``: the resting stop follows the best price bar by bar (the
  trailing distance is wider than the stop-loss, so a position first exits as ``stop_loss`` and,
  once the price moved its way, as ``trailing_stop``).

Same trades expected: symbol, side, entry bar, exit bar and exit reason; prices within a few
ticks. A resting exit fills at the venue at the end of the step it traded in (the robot's clock
moves an hour a step): inside the bar before, or at the open when the bar gapped through it, so
its exit time is the backtest's exit bar or the one after.
"""

from __future__ import annotations

import pytest
from parity_harness import HOUR, assert_same_trade, bundled_stretch, closed_and_open, paired, sma_backtest, sma_robot

WARMUP = 300
BARS = 500
PARAMS = {"fast": 10, "slow": 40, "short": True}
RESTING = ("stop_loss", "take_profit", "trailing_stop")
EXITS = {
    "stop_and_target": ({"stop_loss": 0.015, "take_profit": 0.02}, {"stop_loss", "take_profit"}),
    "stop_and_trailing": ({"stop_loss": 0.01, "trailing_stop": 0.015}, {"stop_loss", "trailing_stop"}),
}
RISK = {"risk_level": "medium", "market": "linear"}


@pytest.mark.slow
@pytest.mark.parametrize("exits", sorted(EXITS))
def test_robot_exits_match_the_backtest_long_and_short_on_linear(tmp_path, exits) -> None:
    overrides, expected_reasons = EXITS[exits]
    candles = bundled_stretch(WARMUP, BARS)
    run = sma_robot(tmp_path, candles, PARAMS, WARMUP, BARS, risk_overrides=overrides, **RISK)
    open_positions = {s for s, p in run.positions.items() if p.qty != 0}

    bt, still_open = closed_and_open(sma_backtest(candles, PARAMS, WARMUP, risk_overrides=overrides, **RISK))
    # the stretch exercises every exit asked for, on both sides
    for reason in expected_reasons:
        assert {int(b["side"]) for b in bt if b["exit_reason"] == reason} == {1, -1}, reason

    assert len(run.trades) == len(bt)
    assert open_positions == still_open
    for b, t in paired(bt, run.trades):
        bt_exit = int(b["exit_ts"])
        live_exit = t.exit_ms - HOUR if t.exit_reason in RESTING and t.exit_ms - HOUR == bt_exit else t.exit_ms
        tick, lot = float(run.instruments[t.symbol].tick_size), float(run.instruments[t.symbol].lot_step)
        assert_same_trade(b, t, live_exit, tick)
        # equity differs by crumbs (ticks, fees), so a quantity at a lot boundary can differ by one lot
        assert abs(float(t.qty) - b["qty"]) <= lot + 1e-12
        # P&L scales with the quantity; beyond that, the price differences and rounding crumbs
        scaled = b["pnl"] * float(t.qty) / b["qty"]
        assert abs(float(t.pnl) - scaled) <= 5 * tick * float(t.qty) + 0.002 * abs(scaled)
