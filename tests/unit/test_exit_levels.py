"""The robot's exit bookkeeping: the kernel's stop-loss, take-profit and trailing-stop levels and reasons.

The pure functions in ``live.exits`` first, then the order manager resting them at an in-memory
venue (``fake_venue.TwoWayVenue``, which triggers a conditional order in either direction): a
take-profit rests as its own conditional order, a trailing stop moves the resting stop at each bar
close, and both survive a restart through the store. Last, the backtest tests bars against the very
level the robot rests.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import numpy as np
import pytest
from fake_venue import closed_at, filled_long, manager, reconciler, run

from autotrader.backtest.runner import BacktestConfig, run_backtest
from autotrader.domain.aligned import align
from autotrader.domain.candles import Candles
from autotrader.domain.errors import ConfigError
from autotrader.domain.instrument import Instrument
from autotrader.domain.orders import OrderStatus
from autotrader.live import exits
from autotrader.live.order_manager import STOP_REFUSALS_BEFORE_FALLBACK
from autotrader.live.records import IntentKind
from autotrader.live.robot_config import check_exit_settings
from autotrader.risk.limits import risk_limits
from autotrader.risk.rules import round_to_tick_nb
from autotrader.strategy.base import Signals
from autotrader.strategy.library.sma_cross import SmaCross

TICK = 0.01


# ------------------------------------------------------------------------------------ pure levels


def test_levels_derive_from_the_entry_and_are_rounded_to_the_tick_like_the_kernel() -> None:
    entry_price = 40_000.123
    assert exits.initial_stop(entry_price, 1, 0.02, TICK) == round_to_tick_nb(entry_price * 0.98, TICK)
    assert exits.initial_stop(entry_price, -1, 0.02, TICK) == round_to_tick_nb(entry_price * 1.02, TICK)
    assert exits.target_level(entry_price, 1, 0.05, TICK) == round_to_tick_nb(entry_price * 1.05, TICK)
    assert exits.target_level(entry_price, -1, 0.05, TICK) == round_to_tick_nb(entry_price * 0.95, TICK)
    assert exits.initial_stop(entry_price, 1, None, TICK) == 0.0
    assert exits.target_level(entry_price, 1, None, TICK) == 0.0
    assert exits.target_level(entry_price, -1, 1.0, TICK) == 0.0  # a short's target at zero: none


def test_trailing_stop_ratchets_with_the_best_price_and_never_loosens() -> None:
    ref = exits.ratchet(100.0, 1, high=110.0, low=95.0)
    assert ref == 110.0
    assert exits.ratchet(ref, 1, high=105.0, low=90.0) == 110.0  # a lower high does not lower it
    assert exits.stop_level(97.0, ref, 1, 0.05, TICK) == pytest.approx(104.5)  # 110 x 0.95 is above the stop-loss
    assert exits.stop_level(97.0, 100.0, 1, 0.05, TICK) == 97.0  # not yet above the stop-loss
    short_ref = exits.ratchet(100.0, -1, high=104.0, low=90.0)
    assert short_ref == 90.0
    assert exits.ratchet(short_ref, -1, high=99.0, low=95.0) == 90.0
    assert exits.stop_level(103.0, short_ref, -1, 0.05, TICK) == pytest.approx(94.5)
    assert exits.stop_level(0.0, short_ref, -1, 0.05, TICK) == pytest.approx(94.5)  # trailing without a stop-loss
    assert exits.stop_level(103.0, short_ref, -1, None, TICK) == 103.0


def test_a_stop_away_from_the_initial_stop_loss_exits_as_trailing_stop() -> None:
    assert exits.stop_reason(97.0, 97.0) == "stop_loss"
    assert exits.stop_reason(104.5, 97.0) == "trailing_stop"
    assert exits.stop_reason(94.5, 0.0) == "trailing_stop"


def test_robot_side_exit_hits_the_stop_before_the_target() -> None:
    assert exits.exit_hit(1, 96.0, 97.0, 110.0) == "stop"
    assert exits.exit_hit(1, 111.0, 97.0, 110.0) == "take_profit"
    assert exits.exit_hit(1, 100.0, 97.0, 110.0) is None
    assert exits.exit_hit(-1, 104.0, 103.0, 90.0) == "stop"
    assert exits.exit_hit(-1, 89.0, 103.0, 90.0) == "take_profit"
    assert exits.exit_hit(-1, 89.0, 0.0, 0.0) is None
    assert exits.exit_hit(0, 50.0, 97.0, 110.0) is None


def test_a_take_profit_no_venue_can_hold_is_refused_at_start_naming_the_setting() -> None:
    with pytest.raises(ConfigError, match="'take_profit'"):
        check_exit_settings("linear", risk_limits("medium", take_profit=1.0))
    check_exit_settings("spot", risk_limits("medium", take_profit=1.0))  # spot is long-only: the target is fine
    check_exit_settings("linear", risk_limits("medium", take_profit=0.05, trailing_stop=0.01))


# ------------------------------------------------------------------------------ at the (fake) venue


def test_take_profit_rests_at_the_venue_and_its_fill_closes_as_take_profit(store) -> None:
    venue, om = filled_long(store, stop_loss=0.03, take_profit=0.05)
    pos = store.load_positions()["BTCUSDT"]
    [target] = om.open_orders("BTCUSDT", (IntentKind.TARGET,))
    assert target.order.trigger_price == Decimal("42000.00")  # 40000 x (1 + 5 %)
    assert venue.orders[target.client_order_id].status is OrderStatus.UNTRIGGERED
    assert venue.orders[pos.stop_client_order_id].trigger_price == Decimal("38800.00")  # both rest
    assert closed_at(venue, om, 42100).exit_reason == "take_profit"
    run(om.protect("BTCUSDT", 42100.0))  # flat: the stop left behind is cancelled
    assert venue.orders[pos.stop_client_order_id].status is OrderStatus.CANCELED
    assert not om.open_orders("BTCUSDT")


def test_trailing_stop_moves_the_resting_stop_at_bar_closes_and_survives_a_restart(store) -> None:
    venue, om = filled_long(store, stop_loss=0.03, trailing_stop=0.01)
    first = store.load_positions()["BTCUSDT"].stop_client_order_id
    assert venue.orders[first].trigger_price == Decimal("39600.00")  # the trailing level is above the 3 % stop
    assert om.stop_reason("BTCUSDT", Decimal("39600")) == "trailing_stop"
    venue.price = Decimal(40900)
    moved = run(om.ratchet("BTCUSDT", high=41000.0, low=40000.0, price=40900.0))
    assert moved == Decimal("40590.00")  # 41000 x 0.99
    second = store.load_positions()["BTCUSDT"].stop_client_order_id
    assert second == first  # amended in place: the same order, never cancelled
    assert venue.orders[first].status is OrderStatus.UNTRIGGERED
    assert venue.orders[second].trigger_price == Decimal("40590.00")
    assert run(om.ratchet("BTCUSDT", high=40950.0, low=40100.0, price=40200.0)) is None  # never loosens
    restarted = manager(store, venue, stop_loss=0.03, trailing_stop=0.01)  # a new process, same store
    assert restarted.trail_ref("BTCUSDT") == 41000.0
    assert restarted.stop_price("BTCUSDT") == Decimal("40590.00")
    assert closed_at(venue, restarted, 40500).exit_reason == "trailing_stop"


def test_a_stop_loss_without_trailing_keeps_its_level_and_reason(store) -> None:
    venue, om = filled_long(store, stop_loss=0.02)
    assert run(om.ratchet("BTCUSDT", high=45000.0, low=40000.0, price=44000.0)) is None
    assert closed_at(venue, om, 39000).exit_reason == "stop_loss"


def test_refused_take_profit_becomes_robot_side_and_persists(store) -> None:
    venue, om = filled_long(store, stop_loss=0.03, take_profit=0.05)
    [target] = om.open_orders("BTCUSDT", (IntentKind.TARGET,))
    venue.orders[target.client_order_id] = dataclasses.replace(
        venue.orders[target.client_order_id], status=OrderStatus.CANCELED
    )
    run(om.sync_open_orders())  # it disappeared: the venue now refuses every new one
    venue.refuse_conditional = STOP_REFUSALS_BEFORE_FALLBACK
    for _ in range(STOP_REFUSALS_BEFORE_FALLBACK):
        run(om.ensure_target("BTCUSDT", 40000.0))
    assert om.robot_target("BTCUSDT") == Decimal("42000.00")
    restarted = manager(store, venue, stop_loss=0.03, take_profit=0.05)
    assert restarted.robot_target("BTCUSDT") == Decimal("42000.00")
    assert run(restarted.ensure_target("BTCUSDT", 40000.0)) is None  # the robot holds it: not sent again


def test_reconcile_restores_a_missing_take_profit_and_the_trailed_stop_after_a_restart(store) -> None:
    venue, om = filled_long(store, take_profit=0.05, stop_loss=0.03, trailing_stop=0.01)
    venue.price = Decimal(40900)
    run(om.ratchet("BTCUSDT", high=41000.0, low=40000.0, price=40900.0))
    [target] = om.open_orders("BTCUSDT", (IntentKind.TARGET,))
    stop_cid = store.load_positions()["BTCUSDT"].stop_client_order_id
    for cid in (target.client_order_id, stop_cid):  # both vanish at the venue while the robot is down
        venue.orders[cid] = dataclasses.replace(venue.orders[cid], status=OrderStatus.CANCELED)
    restarted = manager(store, venue, take_profit=0.05, stop_loss=0.03, trailing_stop=0.01)
    summary = run(reconciler(restarted, venue).run())
    assert summary.stops_replaced == 2
    [new_target] = restarted.open_orders("BTCUSDT", (IntentKind.TARGET,))
    assert new_target.client_order_id != target.client_order_id
    assert venue.orders[new_target.client_order_id].trigger_price == Decimal("42000.00")
    new_stop = store.load_positions()["BTCUSDT"].stop_client_order_id
    assert venue.orders[new_stop].status is OrderStatus.UNTRIGGERED
    assert venue.orders[new_stop].trigger_price == Decimal("40590.00")  # the trailed level, not the entry's


# ------------------------------------------------------------------------- the backtest's same level

QUIET_BAR = [100.0, 100.2, 99.8, 100.0]  # open, high, low, close


@pytest.mark.parametrize(("side", "high", "low"), [(1, 100.2, 98.9), (-1, 101.1, 99.8)])
def test_the_backtest_tests_a_bar_against_the_tick_rounded_trailing_stop_the_robot_rests(
    side: int, high: float, low: float
) -> None:
    """Entry at 100, a 1.23 % trailing stop on a 0.5 tick: the robot rests 99.0 (long) / 101.0 (short),
    not the unrounded 98.77 / 101.23; the entry bar reaches the rounded level only, so the kernel exits there."""
    tick, trailing, market = 0.5, 0.0123, "spot" if side > 0 else "linear"
    rested = exits.stop_level(0.0, 100.0, side, trailing, tick)
    assert rested == (99.0 if side > 0 else 101.0)
    unrounded = 100.0 * (1.0 - side * trailing)
    assert (unrounded < low <= rested) if side > 0 else (rested <= high < unrounded)  # the bar reaches one only
    bars = np.array([QUIET_BAR, [100.0, high, low, 100.0], QUIET_BAR, QUIET_BAR])  # the entry fills at bar 1's open
    ts = 1_704_067_200_000 + 3_600_000 * np.arange(4, dtype=np.int64)
    data = align({"AAAUSDT": Candles(ts, *bars.T, np.full(4, 10.0))})
    signals = Signals.from_direction(np.array([[float(side)], [np.nan], [np.nan], [np.nan]]))  # at bar 0's close
    config = BacktestConfig(
        symbols=("AAAUSDT",), market=market, fee=0.0, slippage_bps=0.0,
        risk_overrides={"stop_loss": None, "trailing_stop": trailing, "daily_loss": 1.0, "max_drawdown": 1.0},
    )  # fmt: skip
    filters = Instrument.trading("AAAUSDT", market, tick_size=tick, lot_step=0.0, min_qty=0.0, min_notional=0.0)  # type: ignore[arg-type]
    result = run_backtest(config, data, SmaCross(), signals=signals, instruments={"AAAUSDT": filters})
    [trade] = result.trades
    assert (trade["exit_bar"], str(trade["exit_reason"]), trade["exit_price"]) == (1, "trailing_stop", rested)
