"""``--mode=status`` and the dashboard show where each open position exits: its stop (resting on the exchange
or held by the robot, initial or trailing) and its take-profit, each with the price's distance to it."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from autotrader.cli.status import render_exits
from autotrader.domain.orders import Order, OrderSide, OrderSubmitted, OrderType, SubmitOrder
from autotrader.live.records import IntentKind, PositionState, StoredOrder
from autotrader.live.status import ExitRecords, exit_levels
from autotrader.risk.limits import risk_limits

T0 = 1_704_067_200_000
ENTRY = "atr-entr-btc1"
MEDIUM = risk_limits("medium")  # stop-loss 2 %, no take-profit, no trailing stop by default
TRAILING = risk_limits("medium", stop_loss=0.03, trailing_stop=0.04, take_profit=0.05)  # trailing looser at entry


def long_btc(stop: str | None = "38800", entry_cid: str = ENTRY) -> PositionState:
    """0.05 BTC bought at 40,000 (stop-loss 3 % → 38,800 rests on the exchange unless ``stop`` is None)."""
    return PositionState(
        "BTCUSDT", qty=Decimal("0.05"), avg_price=Decimal(40040), entry_ms=T0, entry_qty=Decimal("0.05"),
        entry_value=Decimal(2000), entry_client_order_id=entry_cid, stop_price=None if stop is None else Decimal(stop),
    )  # fmt: skip


def short_eth() -> PositionState:
    return PositionState(
        "ETHUSDT", qty=Decimal(-1), avg_price=Decimal(2000), entry_ms=T0, entry_qty=Decimal(1),
        entry_value=Decimal(2000), entry_client_order_id="atr-entr-eth1", stop_price=Decimal(2060),
    )  # fmt: skip


def resting_target(cid: str, symbol: str, side: OrderSide, trigger: str) -> StoredOrder:
    command = SubmitOrder(
        cid, symbol, "linear", side, OrderType.STOP_MARKET, Decimal("0.05"), trigger_price=Decimal(trigger)
    )
    order = Order.from_command(command, T0).apply(OrderSubmitted(cid, T0 + 1))
    return StoredOrder(order, cid, IntentKind.TARGET)


class Orders:
    """The one thing the exit levels read from the store besides the records: a resting target order."""

    def __init__(self, *orders: StoredOrder) -> None:
        self.orders = {o.client_order_id: o for o in orders}

    def load_order(self, client_order_id: str) -> StoredOrder | None:
        return self.orders.get(client_order_id)


def records(**kw: Any) -> ExitRecords:
    return ExitRecords(**{"robot_stops": {}, "robot_targets": {}, "trails": {}, "targets": {}, **kw})


def test_a_stop_resting_on_the_exchange_is_the_initial_stop_loss_with_its_distance() -> None:
    got = exit_levels(Orders(), long_btc(), 40_500.0, TRAILING, records())  # type: ignore[arg-type]
    assert (got.stop, got.stop_where, got.stop_kind) == (38_800.0, "exchange", "initial")
    assert got.stop_distance == pytest.approx((40_500 - 38_800) / 40_500)
    assert (got.take_profit, got.take_profit_where, got.take_profit_distance) == (None, None, None)


def test_once_the_price_ran_the_stop_is_the_trailing_stop() -> None:
    trail = {"BTCUSDT": {"entry": ENTRY, "ref": "42000.0", "bar": T0}}  # best since entry: 42,000 → trail 40,320
    got = exit_levels(Orders(), long_btc("40320"), 41_500.0, TRAILING, records(trails=trail))  # type: ignore[arg-type]
    assert (got.stop, got.stop_kind) == (40_320.0, "trailing")
    assert got.stop_distance == pytest.approx((41_500 - 40_320) / 41_500)


def test_a_robot_side_stop_and_target_are_shown_where_the_robot_holds_them() -> None:
    held = {"entry": ENTRY, "since_ms": T0, "refusals": 3, "last": "bad"}
    got = exit_levels(
        Orders(), long_btc(stop=None), 40_000.0, TRAILING,  # type: ignore[arg-type]
        records(robot_stops={"BTCUSDT": {**held, "price": "38800"}},
                robot_targets={"BTCUSDT": {**held, "price": "42000"}}),
    )  # fmt: skip
    assert (got.stop, got.stop_where, got.stop_kind) == (38_800.0, "robot-side", "initial")
    assert (got.take_profit, got.take_profit_where) == (42_000.0, "robot-side")
    assert got.take_profit_distance == pytest.approx(0.05)


def test_a_resting_take_profit_order_is_shown_at_its_trigger_and_a_short_counts_distances_downwards() -> None:
    cid = "atr-tp-eth1"
    store = Orders(resting_target(cid, "ETHUSDT", OrderSide.BUY, "1900"))
    targets = {"ETHUSDT": {"entry": "atr-entr-eth1", "cid": cid, "attempt": 0}}
    got = exit_levels(store, short_eth(), 1_950.0, TRAILING, records(targets=targets))  # type: ignore[arg-type]
    assert (got.take_profit, got.take_profit_where) == (1_900.0, "exchange")
    assert got.take_profit_distance == pytest.approx(50 / 1_950)  # the price must fall 2.56 %
    assert got.stop_distance == pytest.approx(110 / 1_950)  # or rise 5.64 % to the stop at 2,060


def test_records_of_an_earlier_position_in_the_symbol_are_not_this_positions_exits() -> None:
    old = {"entry": "atr-entr-btc0", "price": "30000"}
    stale = records(robot_stops={"BTCUSDT": old}, robot_targets={"BTCUSDT": old})
    got = exit_levels(Orders(), long_btc(stop=None), 40_000.0, MEDIUM, stale)  # type: ignore[arg-type]
    assert (got.stop, got.stop_where, got.stop_kind, got.take_profit) == (None, None, None, None)


def test_the_status_line_says_level_kind_place_and_distance() -> None:
    trail = {"BTCUSDT": {"entry": ENTRY, "ref": "42000.0", "bar": T0}}
    got = exit_levels(Orders(), long_btc("40320"), 41_500.0, TRAILING, records(trails=trail))  # type: ignore[arg-type]
    assert render_exits(got) == "trailing stop 40,320.0000 on the exchange, 2.84% away; no take-profit"
    bare = exit_levels(Orders(), long_btc(stop=None), 40_000.0, MEDIUM, records())  # type: ignore[arg-type]
    assert render_exits(bare) == "NO STOP; no take-profit"
    passed = replace(got, take_profit=41_000.0, take_profit_where="robot-side", take_profit_distance=-0.012)
    assert render_exits(passed).endswith(
        "take-profit 41,000.0000 robot-side (the exchange refused it), passed by 1.20%"
    )


def test_a_stop_order_the_exchange_refused_protects_nothing() -> None:
    from autotrader.domain.orders import OrderRejected

    cid = "atr-stop-btc1"
    sent = resting_target(cid, "BTCUSDT", OrderSide.SELL, "38800")
    refused = StoredOrder(sent.order.apply(OrderRejected(cid, T0 + 2, "Bybit 10001")), cid, IntentKind.STOP)
    position = replace(long_btc(), stop_client_order_id=cid)
    got = exit_levels(Orders(refused), position, 40_000.0, MEDIUM, records())  # type: ignore[arg-type]
    assert (got.stop, got.stop_where) == (None, None)
    assert render_exits(got).startswith("NO STOP")
    still_resting = exit_levels(Orders(sent), position, 40_000.0, MEDIUM, records())  # type: ignore[arg-type]
    assert (still_resting.stop, still_resting.stop_where) == (38_800.0, "exchange")
