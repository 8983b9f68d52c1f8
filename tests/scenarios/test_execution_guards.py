"""Scenarios that pin down one rule each, chosen so that a one-line change to the rule fails them.

Every table uses bars whose open, high, low and close differ where the rule reads one of them,
and quantities or fractions that a nearby wrong formula would not also produce.
"""

from __future__ import annotations

import pytest

from autotrader.backtest.runner import BacktestConfig
from autotrader.domain.errors import ConfigError
from autotrader.domain.instrument import Instrument
from autotrader.live.robot_config import RobotConfig
from tests.scenarios.harness import run_scenario

FLAT = (100.0, 101.0, 99.0, 100.0)
ENTRY = (100.0, 100.0, 100.0, 100.0)


# --------------------------------------------------------------------------- short stops


def test_short_stop_gapped_through_at_the_open_fills_at_the_open():
    rows = [FLAT, FLAT, ENTRY, (100.0, 101.0, 99.0, 100.5), (112.0, 113.0, 111.0, 112.5), FLAT]
    result = run_scenario({"AAA": rows}, {(1, 0): -1.0}, market="linear", risk_overrides={"stop_loss": 0.05})
    [trade] = result.trades
    assert (trade["side"], trade["exit_reason"], trade["exit_bar"]) == (-1, "stop_loss", 4)
    assert trade["exit_price"] == pytest.approx(112.0)  # not the 105 stop


def test_short_stop_gapped_at_the_open_frees_its_margin_before_that_open_s_entries():
    rising = [FLAT, FLAT, ENTRY, (100.0, 101.0, 99.0, 100.5), (112.0, 113.0, 111.0, 112.5), FLAT]
    tables = {"AAA": rising, "BBB": [FLAT] * 6}
    result = run_scenario(
        tables,
        {(1, 0): -1.0, (3, 1): 1.0},
        market="linear",
        risk_overrides={"stop_loss": 0.05, "position_size": 0.9},
    )
    short, long_ = sorted(result.trades, key=lambda t: t["symbol"])
    assert (short["exit_reason"], short["exit_bar"], short["exit_price"]) == ("stop_loss", 4, 112.0)
    # the short's exit at bar 4's open came first, so BBB's entry at that open had the cash back
    assert long_["entry_bar"] == 4
    assert long_["qty"] * 100.0 == pytest.approx(10_000.0 + short["pnl"], rel=1e-9)  # all the free cash


def test_short_stop_inside_the_bar_fills_at_the_stop_with_slippage():
    rows = [FLAT, FLAT, ENTRY, (101.0, 107.0, 100.5, 101.5), FLAT]
    result = run_scenario(
        {"AAA": rows}, {(1, 0): -1.0}, market="linear", slippage_bps=10.0, risk_overrides={"stop_loss": 0.05}
    )
    [trade] = result.trades
    assert (trade["side"], trade["exit_reason"], trade["exit_bar"]) == (-1, "stop_loss", 3)
    stop = round(100.0 * 0.999 * 1.05, 10)  # entry sold 10 bps under the open
    assert trade["exit_price"] == pytest.approx(stop * 1.001)  # bought back 10 bps above the stop


def test_short_stop_not_touched_keeps_the_position():
    rows = [FLAT, FLAT, ENTRY, (101.0, 104.9, 95.0, 101.5), FLAT]
    result = run_scenario({"AAA": rows}, {(1, 0): -1.0}, market="linear", risk_overrides={"stop_loss": 0.05})
    assert result.trades[0]["exit_reason"] == "end_of_data"


# --------------------------------------------------------------------------- slippage on stop fills


def test_long_stop_inside_the_bar_fills_below_the_stop_by_the_slippage():
    rows = [FLAT, FLAT, ENTRY, (99.0, 100.0, 90.0, 96.0), FLAT]
    result = run_scenario({"AAA": rows}, {(1, 0): 1.0}, slippage_bps=10.0, risk_overrides={"stop_loss": 0.05})
    [trade] = result.trades
    stop = 100.0 * 1.001 * 0.95
    assert trade["exit_reason"] == "stop_loss"
    assert trade["exit_price"] == pytest.approx(stop * 0.999)


def test_long_stop_gapped_through_fills_at_the_open_less_slippage():
    rows = [FLAT, FLAT, ENTRY, (99.0, 100.0, 98.0, 99.0), (80.0, 81.0, 79.0, 80.5), FLAT]
    result = run_scenario({"AAA": rows}, {(1, 0): 1.0}, slippage_bps=10.0, risk_overrides={"stop_loss": 0.05})
    [trade] = result.trades
    assert trade["exit_price"] == pytest.approx(80.0 * 0.999)


# --------------------------------------------------------------------------- next open, open != close


def test_fill_entry_and_exit_at_the_next_open_not_a_close():
    rows = [
        FLAT,
        (100.0, 102.0, 99.0, 101.0),  # signal long on this close (101)
        (103.0, 108.0, 102.0, 107.0),  # fills at this open (103), not at 101 or 107
        (107.0, 111.0, 106.0, 110.0),  # signal flat on this close (110)
        (108.0, 109.0, 104.0, 105.0),  # exits at this open (108), not at 110 or 105
        FLAT,
    ]
    result = run_scenario({"AAA": rows}, {(1, 0): 1.0, (3, 0): 0.0}, risk_overrides={"position_size": 0.5})
    [trade] = result.trades
    assert (trade["entry_bar"], trade["exit_bar"]) == (2, 4)
    assert trade["entry_price"] == pytest.approx(103.0)
    assert trade["exit_price"] == pytest.approx(108.0)
    assert trade["qty"] == pytest.approx(5_000.0 / 103.0)  # sized at the fill price


# --------------------------------------------------------------------------- venue rules


def test_lot_step_rounds_down_where_nearest_would_round_up():
    rules = {"AAA": Instrument.trading("AAA", "spot", 0.01, 0.1, 0.1, 5.0)}
    result = run_scenario({"AAA": [FLAT] * 4}, {(1, 0): 1.0}, rules=rules, risk_overrides={"position_size": 0.0127})
    [trade] = result.trades
    assert trade["qty"] == pytest.approx(1.2)  # 127 USD / 100 = 1.27: down to 1.2, nearest would be 1.3


def test_min_quantity_denies_an_order_above_min_notional_but_below_min_qty():
    rules = {"AAA": Instrument.trading("AAA", "spot", 0.01, 0.1, 2.0, 5.0)}
    result = run_scenario({"AAA": [FLAT] * 4}, {(1, 0): 1.0}, rules=rules, risk_overrides={"position_size": 0.015})
    # 150 USD / 100 = 1.5 units: 150 USD clears the 5 USD minimum notional, 1.5 < 2.0 minimum quantity
    assert len(result.trades) == 0
    assert list(result.events["event"]) == ["below_min_notional"]


def test_min_quantity_allows_an_order_at_exactly_min_qty():
    rules = {"AAA": Instrument.trading("AAA", "spot", 0.01, 0.1, 2.0, 5.0)}
    result = run_scenario({"AAA": [FLAT] * 4}, {(1, 0): 1.0}, rules=rules, risk_overrides={"position_size": 0.02})
    assert result.trades[0]["qty"] == pytest.approx(2.0)


# --------------------------------------------------------------------------- Kelly


def _trades(moves: list[float]) -> tuple[list, dict]:
    """One trade per move: enter at 100, leave at 100 * (1 + move), then one more entry."""
    rows, script = [FLAT], {}
    for move in moves:
        script[(len(rows) - 1, 0)] = 1.0
        rows.append(ENTRY)
        script[(len(rows) - 1, 0)] = 0.0
        rows.append((100.0 * (1 + move),) * 4)
        rows.append(FLAT)
    script[(len(rows) - 1, 0)] = 1.0
    rows += [ENTRY, FLAT]
    return rows, script


@pytest.mark.parametrize(
    ("kelly_fraction", "expected"),
    [
        # p = 0.6, b = avg win / avg loss = 0.04 / 0.02 = 2: Kelly f* = p - q / b = 0.6 - 0.2 = 0.4
        (0.5, 0.2),  # half Kelly (the default)
        (1.0, 0.4),  # full Kelly when asked for
    ],
)
def test_kelly_sizing_below_the_cap_is_the_kelly_share_of_p_minus_q_over_b(kelly_fraction: float, expected: float):
    rows, script = _trades([0.04, -0.02, 0.04, -0.02, 0.04, 0.04, -0.02, 0.04, -0.02, 0.04])
    overrides = {"position_size": 0.9, "kelly_min_trades": 10, "kelly_fraction": kelly_fraction}
    result = run_scenario({"AAA": rows}, script, sizing="kelly", risk_overrides=overrides)
    assert len(result.trades) == 11
    last = result.trades[-1]
    decision_equity = result.equity[last["entry_bar"] - 1]
    # p·b − q without dividing by b would give 0.8 (half: 0.4); full Kelly instead of half 0.4
    assert last["qty"] * last["entry_price"] / decision_equity == pytest.approx(expected, rel=1e-9)


def test_kelly_default_share_is_half():
    from autotrader.risk.limits import risk_limits

    for level in ("conservative", "medium", "aggressive"):
        assert risk_limits(level).kelly_fraction == 0.5


# --------------------------------------------------------------------------- leverage cap


def test_backtest_leverage_above_the_risk_level_cap_is_refused():
    config = BacktestConfig(symbols=("BTCUSDT",), strategy="sma_cross", market="linear", leverage=4.0)
    with pytest.raises(ConfigError, match=r"leverage 4 exceeds the medium risk level's cap of 3"):
        config.limits()
    assert BacktestConfig(symbols=("BTCUSDT",), strategy="sma_cross", market="linear", leverage=3.0).limits()


def test_robot_leverage_above_the_risk_level_cap_is_refused():
    config = RobotConfig(symbols=("BTCUSDT",), capital=1000.0, market="linear", leverage=3.5)
    with pytest.raises(ConfigError, match=r"leverage 3.5 exceeds the medium risk level's cap of 3"):
        config.limits()
    assert RobotConfig(symbols=("BTCUSDT",), capital=1000.0, market="linear", leverage=3.0).limits()


def test_backtest_cli_refuses_leverage_above_the_cap_in_one_line(tmp_path, monkeypatch, capsys):
    from autotrader.cli import main

    monkeypatch.setenv("AUTOTRADER_HOME", str(tmp_path))
    argv = ["autotrader", "backtest", "--symbols", "BTCUSDT", "--market", "linear", "--leverage", "10"]
    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(SystemExit) as exited:
        main()
    err = capsys.readouterr().err
    assert exited.value.code != 0
    assert "leverage 10 exceeds the medium risk level's cap of 3" in err
    assert "Traceback" not in err
