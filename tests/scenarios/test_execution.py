"""Execution scenarios: when and at what price orders fill, and what they cost."""

from __future__ import annotations

import pytest

from tests.scenarios.harness import run_scenario

FLAT = (100.0, 101.0, 99.0, 100.0)


def test_fill_signal_on_close_fills_at_next_bar_open():
    rows = [FLAT, FLAT, (105.0, 106.0, 104.0, 105.0), (110.0, 111.0, 109.0, 110.0), FLAT]
    result = run_scenario({"AAA": rows}, {(1, 0): 1.0, (3, 0): 0.0})
    [trade] = result.trades
    assert trade["entry_bar"] == 2
    assert trade["entry_price"] == pytest.approx(105.0)
    assert trade["exit_bar"] == 4
    assert trade["exit_price"] == pytest.approx(100.0)
    assert trade["exit_reason"] == "signal"


def test_fill_never_inside_the_signal_bar():
    rows = [FLAT, (100.0, 150.0, 50.0, 120.0), (130.0, 131.0, 129.0, 130.0)]
    result = run_scenario({"AAA": rows}, {(1, 0): 1.0})
    [trade] = result.trades
    assert trade["entry_price"] == pytest.approx(130.0)


def test_fees_charged_on_both_sides_at_fill_notional():
    rows = [FLAT, FLAT, (100.0, 100.0, 100.0, 100.0), (120.0, 120.0, 120.0, 120.0), FLAT]
    result = run_scenario({"AAA": rows}, {(1, 0): 1.0, (2, 0): 0.0}, fee=0.001, risk_overrides={"position_size": 0.5})
    [trade] = result.trades
    qty = 5_000.0 / 100.0
    assert trade["qty"] == pytest.approx(qty)
    assert trade["entry_fee"] == pytest.approx(qty * 100.0 * 0.001)
    assert trade["exit_fee"] == pytest.approx(qty * 120.0 * 0.001)
    assert trade["pnl"] == pytest.approx(qty * 20.0 - qty * 100.0 * 0.001 - qty * 120.0 * 0.001)
    assert result.equity[-1] == pytest.approx(10_000.0 + trade["pnl"])


def test_slippage_worsens_entry_and_exit_prices():
    rows = [FLAT, FLAT, (100.0, 100.0, 100.0, 100.0), (120.0, 120.0, 120.0, 120.0), FLAT]
    result = run_scenario(
        {"AAA": rows}, {(1, 0): 1.0, (2, 0): 0.0}, slippage_bps=10.0, risk_overrides={"position_size": 0.5}
    )
    [trade] = result.trades
    assert trade["entry_price"] == pytest.approx(100.0 * 1.001)
    assert trade["exit_price"] == pytest.approx(120.0 * 0.999)


def test_stop_and_target_in_same_bar_assume_stop_first():
    rows = [FLAT, FLAT, (100.0, 100.0, 100.0, 100.0), (100.0, 115.0, 90.0, 100.0), FLAT]
    result = run_scenario({"AAA": rows}, {(1, 0): 1.0}, risk_overrides={"stop_loss": 0.05, "take_profit": 0.10})
    [trade] = result.trades
    assert trade["exit_reason"] == "stop_loss"
    assert trade["exit_price"] == pytest.approx(95.0)
    assert trade["exit_bar"] == 3


def test_target_alone_fills_at_target_price():
    rows = [FLAT, FLAT, (100.0, 100.0, 100.0, 100.0), (100.0, 115.0, 99.0, 110.0), FLAT]
    result = run_scenario({"AAA": rows}, {(1, 0): 1.0}, risk_overrides={"stop_loss": 0.05, "take_profit": 0.10})
    [trade] = result.trades
    assert trade["exit_reason"] == "take_profit"
    assert trade["exit_price"] == pytest.approx(110.0)


def test_gap_through_stop_fills_at_open_not_at_stop():
    rows = [FLAT, FLAT, (100.0, 100.0, 100.0, 100.0), (100.0, 100.0, 99.0, 99.5), (80.0, 82.0, 79.0, 81.0), FLAT]
    result = run_scenario({"AAA": rows}, {(1, 0): 1.0}, risk_overrides={"stop_loss": 0.05})
    [trade] = result.trades
    assert trade["exit_reason"] == "stop_loss"
    assert trade["exit_bar"] == 4
    assert trade["exit_price"] == pytest.approx(80.0)


def test_stop_checked_on_the_entry_bar_itself():
    rows = [FLAT, FLAT, (100.0, 101.0, 94.0, 96.0), FLAT]
    result = run_scenario({"AAA": rows}, {(1, 0): 1.0}, risk_overrides={"stop_loss": 0.05})
    [trade] = result.trades
    assert trade["entry_bar"] == trade["exit_bar"] == 2
    assert trade["exit_price"] == pytest.approx(95.0)


def test_trailing_stop_ratchets_only_after_the_bar():
    rows = [
        FLAT,
        FLAT,
        (100.0, 100.0, 100.0, 100.0),
        (100.0, 120.0, 100.0, 118.0),  # trail ref rises to 120 after this bar
        (118.0, 118.0, 107.0, 110.0),  # trailing level 120 * 0.9 = 108 hit
        FLAT,
    ]
    result = run_scenario({"AAA": rows}, {(1, 0): 1.0}, risk_overrides={"stop_loss": 0.2, "trailing_stop": 0.1})
    [trade] = result.trades
    assert trade["exit_reason"] == "trailing_stop"
    assert trade["exit_price"] == pytest.approx(108.0)


def test_min_notional_denies_small_order_and_records_it():
    from tests.scenarios.harness import loose_rules

    rows = [FLAT, FLAT, FLAT, FLAT]
    result = run_scenario(
        {"AAA": rows},
        {(1, 0): 1.0},
        rules={"AAA": loose_rules("AAA", min_notional=50.0)},
        initial_capital=100.0,
        risk_overrides={"position_size": 0.2},
    )
    assert len(result.trades) == 0
    assert list(result.events["event"]) == ["below_min_notional"]


def test_lot_step_rounds_quantity_down():
    from autotrader.domain.instrument import Instrument

    rows = [FLAT, FLAT, FLAT, FLAT]
    rules = {"AAA": Instrument.trading("AAA", "spot", 0.01, 0.1, 0.1, 5.0)}
    result = run_scenario({"AAA": rows}, {(1, 0): 1.0}, rules=rules, risk_overrides={"position_size": 0.0123})
    [trade] = result.trades
    assert trade["qty"] == pytest.approx(1.2)  # 123 USD / 100 = 1.23 -> 1.2


def test_spot_short_signal_only_exits():
    rows = [FLAT, FLAT, FLAT, FLAT, FLAT]
    result = run_scenario({"AAA": rows}, {(0, 0): 1.0, (2, 0): -1.0})
    [trade] = result.trades
    assert trade["side"] == 1
    assert trade["exit_bar"] == 3


def test_linear_short_profits_when_price_falls():
    rows = [FLAT, FLAT, (100.0, 100.0, 100.0, 100.0), (90.0, 90.0, 90.0, 90.0), FLAT]
    result = run_scenario(
        {"AAA": rows}, {(1, 0): -1.0, (2, 0): 0.0}, market="linear", risk_overrides={"position_size": 0.5}
    )
    [trade] = result.trades
    assert trade["side"] == -1
    assert trade["pnl"] == pytest.approx(50.0 * 10.0)


def test_linear_leveraged_long_is_liquidated_and_loses_its_margin():
    rows = [FLAT, FLAT, (100.0, 100.0, 100.0, 100.0), (100.0, 100.0, 70.0, 75.0), FLAT]
    result = run_scenario(
        {"AAA": rows},
        {(1, 0): 1.0},
        market="linear",
        leverage=4.0,
        maintenance_margin=0.0,
        risk_level="aggressive",
        risk_overrides={"position_size": 0.5, "max_leverage": 5.0},
    )
    [trade] = result.trades
    assert trade["exit_reason"] == "liquidation"
    margin = 5_000.0
    assert trade["pnl"] == pytest.approx(-margin)
    assert result.equity[-1] == pytest.approx(10_000.0 - margin)


def test_open_position_is_closed_at_end_of_data():
    rows = [FLAT, FLAT, FLAT, (100.0, 100.0, 100.0, 110.0)]
    result = run_scenario({"AAA": rows}, {(0, 0): 1.0})
    [trade] = result.trades
    assert trade["exit_reason"] == "end_of_data"
    assert trade["exit_price"] == pytest.approx(110.0)


def test_equity_is_cash_plus_marked_positions_every_bar():
    rows = [FLAT, FLAT, (100.0, 100.0, 100.0, 100.0), (100.0, 130.0, 100.0, 125.0), (125.0, 126.0, 124.0, 125.0)]
    result = run_scenario({"AAA": rows}, {(1, 0): 1.0}, risk_overrides={"position_size": 0.5})
    assert result.equity[2] == pytest.approx(10_000.0)
    assert result.equity[3] == pytest.approx(10_000.0 + 50.0 * 25.0)


def test_entry_capped_at_share_of_bar_volume():
    rows = [FLAT, FLAT, FLAT, FLAT]  # harness volume is 1000 per bar
    result = run_scenario({"AAA": rows}, {(1, 0): 1.0}, max_volume_share=0.01)
    [trade] = result.trades
    assert trade["qty"] == pytest.approx(10.0)


def test_offline_robot_without_resting_stops_misses_the_stop():
    from tests.scenarios.harness import HOUR_MS, T0

    rows = [FLAT, FLAT, (100.0, 100.0, 100.0, 100.0), (100.0, 100.0, 80.0, 82.0), (82.0, 83.0, 81.0, 82.0), FLAT]
    window = ((T0 + 3 * HOUR_MS, T0 + 4 * HOUR_MS),)
    down = run_scenario(
        {"AAA": rows},
        {(1, 0): 1.0},
        risk_overrides={"stop_loss": 0.05},
        offline_windows=window,
        stops_on_exchange=False,
    )
    resting = run_scenario(
        {"AAA": rows},
        {(1, 0): 1.0},
        risk_overrides={"stop_loss": 0.05},
        offline_windows=window,
        stops_on_exchange=True,
    )
    assert resting.trades[0]["exit_price"] == pytest.approx(95.0)
    # the crash bar passed unguarded; back online the price had recovered above the stop
    assert down.trades[0]["exit_reason"] == "end_of_data"
    assert down.trades[0]["exit_price"] == pytest.approx(100.0)
