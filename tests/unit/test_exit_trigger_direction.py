"""A resting exit fires in the direction of what it is for, never the direction the price happens to lie in.

A long's stop-loss fires on a FALL to its level and its take-profit on a RISE (a short's the other
way round). Were the direction read from the price at placement, a stop placed after the price had
already fallen through its level would be sent as "trigger on rise": no downside protection. A
level the price is already through at placement is not rested at all: the robot holds it and
exits at market. An amend counts as done only when Bybit says so for our order.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from fake_venue import TwoWayVenue, entry, manager, run

from autotrader.adapters.exchange.bybit import BybitConfig, BybitExchange
from autotrader.adapters.exchange.errors import error_for
from autotrader.domain.errors import ExchangeError, OrderRejected
from autotrader.domain.instrument import Instrument
from autotrader.domain.orders import OrderSide, OrderType, SubmitOrder, TriggerDirection
from autotrader.live.order_manager import exit_trigger_direction
from autotrader.live.records import IntentKind


@pytest.mark.parametrize(
    ("kind", "exit_side", "direction"),
    [
        (IntentKind.STOP, OrderSide.SELL, TriggerDirection.FALLING),  # a long's stop-loss
        (IntentKind.TARGET, OrderSide.SELL, TriggerDirection.RISING),  # a long's take-profit
        (IntentKind.STOP, OrderSide.BUY, TriggerDirection.RISING),  # a short's stop-loss
        (IntentKind.TARGET, OrderSide.BUY, TriggerDirection.FALLING),  # a short's take-profit
    ],
    ids=["long-stop", "long-target", "short-stop", "short-target"],
)
def test_an_exit_direction_follows_what_the_exit_is_for(kind, exit_side, direction) -> None:
    assert exit_trigger_direction(kind, exit_side) is direction


def test_orders_that_are_not_resting_exits_leave_the_direction_to_the_venue() -> None:
    assert exit_trigger_direction(IntentKind.ENTRY, OrderSide.BUY) is None
    assert exit_trigger_direction(IntentKind.EXIT, OrderSide.SELL) is None


def _adapter() -> BybitExchange:
    return BybitExchange(BybitConfig.custom("http://127.0.0.1:9", "key", "secret"))


def _long_exit(client_order_id: str, level: int, direction: TriggerDirection | None) -> SubmitOrder:
    """A resting exit of a 0.01 BTC long on linear: a reduce-only conditional sell triggering at ``level``."""
    return SubmitOrder(
        client_order_id,
        "BTCUSDT",
        "linear",
        OrderSide.SELL,
        OrderType.STOP_MARKET,
        Decimal("0.01"),
        trigger_price=Decimal(level),
        reduce_only=True,
        trigger_direction=direction,
    )


def _stop(direction: TriggerDirection | None) -> SubmitOrder:
    return _long_exit("t1-stop", 39200, direction)


def test_a_longs_stop_is_sent_falling_even_when_the_price_is_already_below_it() -> None:
    params = _adapter()._order_params(_stop(TriggerDirection.FALLING), reference=Decimal(39000))
    assert params["triggerPrice"] == "39200"
    assert params["triggerDirection"] == 2


def test_a_longs_target_is_sent_rising_even_when_the_price_is_already_above_it() -> None:
    target = _long_exit("t1-target", 41000, TriggerDirection.RISING)
    assert _adapter()._order_params(target, reference=Decimal(41500))["triggerDirection"] == 1


def test_without_a_direction_the_adapter_infers_it_from_the_price() -> None:
    adapter = _adapter()
    assert adapter._order_params(_stop(None), reference=Decimal(39000))["triggerDirection"] == 1
    assert adapter._order_params(_stop(None), reference=Decimal(40000))["triggerDirection"] == 2


class RecordingVenue(TwoWayVenue):
    """The two-way venue, keeping every order command it is sent."""

    def __init__(self, state_store=None) -> None:
        super().__init__(state_store)
        self.commands: dict[str, SubmitOrder] = {}

    async def create_order(self, order):
        self.commands[order.client_order_id] = order
        return await super().create_order(order)


def test_the_order_manager_sends_a_longs_stop_falling_and_its_target_rising(store) -> None:
    venue = RecordingVenue(store)
    om = manager(store, venue, stop_loss=0.02, take_profit=0.03)
    run(om.run_entry(entry(om, store), 40000.0))
    directions = {
        ("sl" if "-sl-" in cid else "tp"): c.trigger_direction
        for cid, c in venue.commands.items()
        if c.trigger_price is not None
    }
    assert directions == {"sl": TriggerDirection.FALLING, "tp": TriggerDirection.RISING}


def test_a_stop_already_crossed_when_placed_is_held_by_the_robot_not_rested(store) -> None:
    """The stop (re)placed after the price fell through its level: no resting order, a robot-side stop."""
    venue = RecordingVenue(store)
    om = manager(store, venue, stop_loss=0.02)
    run(om.run_entry(entry(om, store), 40000.0))
    [stop] = [cid for cid in venue.commands if "-sl-" in cid]
    run(om.cancel_stop("BTCUSDT", "test: the stop vanished"))
    venue.price = Decimal(39000)  # below the 39,200 stop-loss
    assert run(om.ensure_stop("BTCUSDT", 39000.0)) is None
    assert [cid for cid in venue.commands if "-sl-" in cid] == [stop]  # nothing new sent
    assert om.robot_stop("BTCUSDT") == Decimal("39200.00")
    assert om.crossed("BTCUSDT", 39000.0) == "stop_loss"


def test_a_target_already_crossed_when_placed_is_held_by_the_robot_not_rested(store) -> None:
    venue = RecordingVenue(store)
    om = manager(store, venue, stop_loss=None, take_profit=0.03)
    om.take_profit, tp = None, om.take_profit  # the entry fills without its target ...
    run(om.run_entry(entry(om, store), 40000.0))
    om.take_profit = tp
    venue.price = Decimal(41500)  # ... which the price passes before it is placed (41,200)
    assert run(om.ensure_target("BTCUSDT", 41500.0)) is None
    assert not [cid for cid in venue.commands if "-tp-" in cid]
    assert om.robot_target("BTCUSDT") == Decimal("41200.00")


class _Answering:
    """An adapter whose ``/v5/order/amend`` answers with ``reply`` (or raises it)."""

    @staticmethod
    def make(reply):
        adapter = _adapter()

        async def instrument(market, symbol):
            return Instrument.trading("BTCUSDT", "linear", "0.1", "0.001", "0.001", "5")

        async def call(method, path, params, **kw):
            if isinstance(reply, Exception):
                raise reply
            return reply

        adapter.instrument = instrument  # type: ignore[method-assign]
        adapter._call = call  # type: ignore[method-assign]
        return adapter


def test_an_amend_answered_position_mode_not_modified_is_not_a_success() -> None:
    adapter = _Answering.make(error_for(110025, "Position mode is not modified"))
    with pytest.raises(OrderRejected, match="110025"):
        run(adapter.amend_trigger("linear", "BTCUSDT", "t1-stop", Decimal(39500)))


def test_an_amend_answered_leverage_not_modified_is_not_a_success() -> None:
    adapter = _Answering.make(error_for(110043, "Set leverage not modified"))
    with pytest.raises(OrderRejected, match="110043"):
        run(adapter.amend_trigger("linear", "BTCUSDT", "t1-stop", Decimal(39500)))


def test_an_amend_answered_order_not_modified_is_a_success() -> None:
    adapter = _Answering.make(error_for(34040, "Not modified"))
    assert run(adapter.amend_trigger("linear", "BTCUSDT", "t1-stop", Decimal(39500))) is True


def test_an_amend_answered_for_another_order_is_an_error() -> None:
    adapter = _Answering.make({"retCode": 0, "result": {"orderId": "v9", "orderLinkId": "someone-else"}})
    with pytest.raises(ExchangeError, match="someone-else"):
        run(adapter.amend_trigger("linear", "BTCUSDT", "t1-stop", Decimal(39500)))
    ours = _Answering.make({"retCode": 0, "result": {"orderId": "v1", "orderLinkId": "t1-stop"}})
    assert run(ours.amend_trigger("linear", "BTCUSDT", "t1-stop", Decimal(39500))) is True
