"""Linear (perpetual) margin scenarios: offline robots, gaps past bankruptcy, liquidation.

Each table is small enough to check by hand. ``pnl`` of a trade includes both fees, so an
isolated-margin position can lose at most ``margin + entry fee`` (the entry fee left the wallet
when the position opened; the margin covers the price loss and the exit fee).
"""

from __future__ import annotations

from typing import Any

import pytest

from autotrader.backtest.runner import BacktestResult
from tests.scenarios.harness import HOUR_MS, T0, run_scenario

FLAT = (100.0, 101.0, 99.0, 100.0)
ENTRY = (100.0, 100.0, 100.0, 100.0)
LINEAR_FEE = 0.00055
OFFLINE_BAR_3 = ((T0 + 3 * HOUR_MS, T0 + 4 * HOUR_MS - 1),)


def _linear(rows: list[tuple[float, float, float, float]], side: float, **config: Any) -> BacktestResult:
    risk = {"position_size": 1.0, "max_leverage": 5.0, **config.pop("risk", {})}
    return run_scenario(
        {"AAA": rows},
        {(1, 0): side},
        market="linear",
        risk_level="aggressive",
        risk_overrides=risk,
        fee=config.pop("fee", LINEAR_FEE),
        **config,
    )


# --------------------------------------------------------------------------- robot offline


def test_offline_linear_short_without_resting_stops_is_held_through_the_bar():
    rows = [FLAT, FLAT, ENTRY, (100.0, 103.0, 99.0, 101.0), (101.0, 101.5, 100.5, 101.0), ENTRY]
    down = _linear(
        rows, -1.0, leverage=1.0, risk={"stop_loss": 0.02}, offline_windows=OFFLINE_BAR_3, stops_on_exchange=False
    )
    resting = _linear(
        rows, -1.0, leverage=1.0, risk={"stop_loss": 0.02}, offline_windows=OFFLINE_BAR_3, stops_on_exchange=True
    )
    [stopped] = resting.trades
    assert stopped["exit_reason"] == "stop_loss"
    assert stopped["exit_price"] == pytest.approx(102.0)
    [held] = down.trades
    assert held["exit_reason"] == "end_of_data"
    assert held["exit_price"] == pytest.approx(100.0)
    assert down.equity[-1] > resting.equity[-1]


def test_offline_linear_leveraged_long_without_resting_stops_is_held_through_the_bar():
    rows = [FLAT, FLAT, ENTRY, (100.0, 101.0, 97.0, 99.0), (99.0, 100.0, 98.5, 100.0), ENTRY]
    down = _linear(
        rows, 1.0, leverage=3.0, risk={"stop_loss": 0.02}, offline_windows=OFFLINE_BAR_3, stops_on_exchange=False
    )
    resting = _linear(
        rows, 1.0, leverage=3.0, risk={"stop_loss": 0.02}, offline_windows=OFFLINE_BAR_3, stops_on_exchange=True
    )
    assert resting.trades[0]["exit_reason"] == "stop_loss"
    assert resting.trades[0]["exit_price"] == pytest.approx(98.0)
    [held] = down.trades
    assert held["exit_reason"] == "end_of_data"


def test_offline_linear_target_does_not_fire_without_resting_orders():
    rows = [FLAT, FLAT, ENTRY, (100.0, 100.5, 89.0, 99.0), (99.0, 100.0, 98.5, 99.0), ENTRY]
    down = _linear(
        rows, -1.0, leverage=2.0, risk={"take_profit": 0.1}, offline_windows=OFFLINE_BAR_3, stops_on_exchange=False
    )
    assert down.trades[0]["exit_reason"] == "end_of_data"


@pytest.mark.parametrize("side", [1.0, -1.0])
def test_offline_linear_position_is_still_liquidated_past_its_stop_intrabar(side: float):
    # the exchange liquidates whether or not the robot is up; the stop (robot-held) does not fire
    crash = (100.0, 100.0, 60.0, 65.0) if side > 0 else (100.0, 140.0, 100.0, 135.0)
    rows = [FLAT, FLAT, ENTRY, crash, FLAT]
    down = _linear(
        rows, side, leverage=3.0, risk={"stop_loss": 0.02}, offline_windows=OFFLINE_BAR_3, stops_on_exchange=False
    )
    [trade] = down.trades
    assert trade["exit_reason"] == "liquidation"
    assert trade["exit_bar"] == 3


@pytest.mark.parametrize("side", [1.0, -1.0])
def test_offline_linear_position_is_liquidated_when_the_open_gaps_past_liquidation(side: float):
    crash = (60.0, 62.0, 58.0, 60.0) if side > 0 else (140.0, 142.0, 138.0, 140.0)
    rows = [FLAT, FLAT, ENTRY, crash, FLAT]
    down = _linear(
        rows, side, leverage=3.0, risk={"stop_loss": 0.02}, offline_windows=OFFLINE_BAR_3, stops_on_exchange=False
    )
    [trade] = down.trades
    assert trade["exit_reason"] == "liquidation"
    assert trade["exit_bar"] == 3
    assert min(down.equity) >= -1e-6


# --------------------------------------------------------------------------- gaps past bankruptcy


@pytest.mark.parametrize(
    ("side", "gap_open", "stop_loss", "reason"),
    [
        (-1.0, 150.0, None, "liquidation"),
        (1.0, 60.0, None, "liquidation"),
        (-1.0, 150.0, 0.02, "stop_loss"),
        (1.0, 60.0, 0.02, "stop_loss"),
    ],
)
def test_linear_gap_past_bankruptcy_loses_exactly_the_margin_and_the_entry_fee(
    side: float, gap_open: float, stop_loss: float | None, reason: str
):
    gap = (gap_open, gap_open + 1.0, gap_open - 1.0, gap_open)
    rows = [FLAT, FLAT, ENTRY, gap, gap]
    result = _linear(rows, side, leverage=3.0, risk={"stop_loss": stop_loss})
    [trade] = result.trades
    assert trade["exit_reason"] == reason
    margin = trade["qty"] * 100.0 / 3.0
    assert trade["pnl"] == pytest.approx(-(margin + trade["entry_fee"]))
    # all-in: margin plus entry fee was the whole wallet, so nothing is left but nothing is owed
    assert min(result.equity) >= -1e-6
    assert result.equity[-1] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    ("gap_open", "fee_charged"),
    [
        (50.5, 100.0 * 50.5 * LINEAR_FEE),  # 50 USDT of margin left: the exit fee fits in full
        (50.01, 1.0),  # 1 USDT of margin left: the exit fee takes only that
    ],
)
def test_linear_exit_fee_is_paid_only_from_what_the_margin_still_covers(gap_open: float, fee_charged: float):
    # 2x long of 100 units at 100 (margin 5,000), maintenance 0 so liquidation sits at 50
    rows = [FLAT, FLAT, ENTRY, (gap_open, 50.5, gap_open, 50.3), FLAT]
    result = _linear(rows, 1.0, leverage=2.0, maintenance_margin=0.0, risk={"stop_loss": 0.02, "position_size": 0.5})
    [trade] = result.trades
    assert trade["exit_reason"] == "stop_loss"
    assert trade["qty"] == pytest.approx(100.0)
    assert trade["exit_fee"] == pytest.approx(fee_charged)
    assert trade["pnl"] == pytest.approx(100.0 * (gap_open - 100.0) - fee_charged - trade["entry_fee"])


def test_spot_long_gap_to_almost_zero_never_leaves_negative_equity():
    rows = [FLAT, FLAT, ENTRY, (1.0, 1.0, 1.0, 1.0), FLAT]
    result = run_scenario({"AAA": rows}, {(1, 0): 1.0}, fee=0.001, risk_overrides={"stop_loss": 0.02})
    [trade] = result.trades
    assert trade["exit_reason"] == "stop_loss"
    assert trade["exit_price"] == pytest.approx(1.0)
    assert min(result.equity) >= 0.0


# --------------------------------------------------------------------------- liquidation


@pytest.mark.parametrize(
    ("side", "crash"),
    [(1.0, (100.0, 100.0, 70.0, 75.0)), (-1.0, (100.0, 130.0, 100.0, 125.0))],
)
def test_linear_liquidation_takes_the_whole_margin_with_fees_and_slippage(
    side: float, crash: tuple[float, float, float, float]
):
    rows = [FLAT, FLAT, ENTRY, crash, FLAT]
    result = _linear(rows, side, leverage=4.0, slippage_bps=10.0, risk={"position_size": 0.5})  # mm 0.5 % default
    [trade] = result.trades
    assert trade["exit_reason"] == "liquidation"
    entry = 100.0 * (1.0 + side * 0.001)
    assert trade["entry_price"] == pytest.approx(entry)
    margin = trade["qty"] * entry / 4.0
    # the exchange takes the position over at its bankruptcy price: the whole margin is gone
    assert trade["exit_price"] == pytest.approx(entry * (1.0 - side / 4.0))
    assert trade["pnl"] == pytest.approx(-(margin + trade["entry_fee"]))
    assert result.equity[-1] == pytest.approx(10_000.0 - margin - trade["entry_fee"])
