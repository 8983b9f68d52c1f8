"""Orders from decisions (``live.intents``): pure, so the robot's orders can be checked without a venue."""

from __future__ import annotations

from decimal import Decimal

import pytest

from autotrader.domain.errors import OrderRejected
from autotrader.domain.instrument import Instrument
from autotrader.domain.orders import OrderSide, OrderType
from autotrader.live.decider import EntryPlan
from autotrader.live.intents import entry_order, exit_intent, market_order
from autotrader.live.records import IntentKind
from autotrader.signals.prediction import Prediction

T0 = 1_700_000_000_000
HOUR_MS = 3_600_000
BTC_SPOT = Instrument.trading("BTCUSDT", "spot", tick_size=0.01, lot_step=0.001, min_qty=0.001, min_notional=5)
BTC_LINEAR = Instrument.trading("BTCUSDT", "linear", tick_size=0.1, lot_step=0.001, min_qty=0.001, min_notional=5)


def signal(direction: str = "long") -> Prediction:
    return Prediction(id="sig-1", symbol="BTCUSDT", ts=T0, direction=direction, confidence=0.8, horizon="1h", model="m")


def test_an_entry_plan_becomes_an_intent_and_a_market_order_with_the_quantity_fitted_to_the_lot_step():
    plan = EntryPlan(side=1, fraction=0.25, qty=0.123456, decision_equity=20_000.0, fill_price=40_000.0)
    intent, command = entry_order(plan, signal(), 39_990.0, T0 + 5, "cid-1", "spot", BTC_SPOT)

    assert command.qty == Decimal("0.123")  # rounded down to the lot step, never up
    assert (command.client_order_id, command.symbol, command.market) == ("cid-1", "BTCUSDT", "spot")
    assert (command.side, command.type, command.reduce_only) == (OrderSide.BUY, OrderType.MARKET, False)
    assert (intent.intent_id, intent.kind, intent.side, intent.created_ms) == (
        "cid-1", IntentKind.ENTRY, OrderSide.BUY, T0 + 5,
    )  # fmt: skip
    assert (intent.fraction, intent.decision_equity, intent.reference_price) == (0.25, 20_000.0, 39_990.0)
    assert (intent.signal_id, intent.confidence, intent.expires_ms) == ("sig-1", 0.8, T0 + HOUR_MS)


def test_a_short_entry_plan_sells():
    plan = EntryPlan(side=-1, fraction=0.1, qty=0.05, decision_equity=20_000.0, fill_price=40_000.0)
    intent, command = entry_order(plan, signal("short"), 40_000.0, T0, "cid-2", "linear", BTC_LINEAR)
    assert intent.side is command.side is OrderSide.SELL
    assert command.qty == Decimal("0.050")


def test_an_entry_below_the_venues_minimum_notional_is_refused_at_the_plans_fill_price():
    plan = EntryPlan(side=1, fraction=0.001, qty=0.0001, decision_equity=1_000.0, fill_price=40_000.0)
    with pytest.raises(OrderRejected):
        entry_order(plan, signal(), 40_000.0, T0, "cid-3", "spot", BTC_SPOT)  # 0.0001 is below the 0.001 lot


@pytest.mark.parametrize(("market", "reduce_only"), [("spot", False), ("linear", True)])
def test_an_exit_closes_the_held_side_and_is_reduce_only_on_linear(market: str, reduce_only: bool):
    long_exit = exit_intent("x-1", "BTCUSDT", 1, T0, "stop_loss", 39_000.0)
    short_exit = exit_intent("x-2", "BTCUSDT", -1, T0, "signal", 41_000.0, signal("long"))

    assert (long_exit.kind, long_exit.side, long_exit.reason, long_exit.signal_id) == (
        IntentKind.EXIT, OrderSide.SELL, "stop_loss", None,
    )  # fmt: skip
    assert (short_exit.side, short_exit.signal_id, short_exit.expires_ms) == (OrderSide.BUY, "sig-1", T0 + HOUR_MS)
    command = market_order(long_exit, Decimal("0.5"), market)
    assert (command.client_order_id, command.side, command.qty) == ("x-1", OrderSide.SELL, Decimal("0.5"))
    assert command.reduce_only is reduce_only
