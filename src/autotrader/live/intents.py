"""Orders from decisions, with no I/O: an entry plan or an exit becomes an ``Intent`` and its ``SubmitOrder``.

    # the plan's quantity fitted to the instrument (``OrderRejected`` below its minimums)
    intent, command = entry_order(plan, prediction, price, now_ms, client_id, "spot", instrument)
    intent = exit_intent(client_id, symbol, 1, now_ms, "signal", price, prediction)
    command = market_order(intent, qty, market)  # reduce-only on linear

The order manager persists, sends and tracks them; the decider (``live.decider``) says what to do.
"""

from __future__ import annotations

from decimal import Decimal

from autotrader.domain.instrument import Instrument
from autotrader.domain.orders import OrderSide, OrderType, SubmitOrder
from autotrader.execution.ports import fit_to_instrument
from autotrader.live.decider import EntryPlan
from autotrader.live.records import Intent, IntentKind
from autotrader.signals.prediction import Prediction


def order_side(side: int) -> OrderSide:
    """The order side that opens a position on ``side`` (+1 long, -1 short)."""
    return OrderSide.BUY if side > 0 else OrderSide.SELL


def entry_intent(plan: EntryPlan, p: Prediction, price: float, now_ms: int, client_id: str) -> Intent:
    """The entry intent of ``plan`` (on its side) for signal ``p``, decided at ``price`` at ``now_ms``."""
    return Intent(
        client_id,
        IntentKind.ENTRY,
        p.symbol,
        order_side(plan.side),
        now_ms,
        reason="signal",
        signal_id=p.id,
        fraction=plan.fraction,
        decision_equity=plan.decision_equity,
        reference_price=price,
        confidence=p.confidence,
        expires_ms=p.ts + p.horizon_ms,
    )


def entry_order(
    plan: EntryPlan,
    p: Prediction,
    price: float,
    now_ms: int,
    client_id: str,
    market: str,
    instrument: Instrument,
) -> tuple[Intent, SubmitOrder]:
    """The entry intent and its market order, the plan's quantity fitted to ``instrument`` at the plan's fill price.

    Raises ``OrderRejected`` (from ``fit_to_instrument``) when the fitted order is below the venue's minimums.
    """
    intent = entry_intent(plan, p, price, now_ms, client_id)
    command = SubmitOrder(client_id, p.symbol, market, intent.side, OrderType.MARKET, Decimal(repr(plan.qty)))
    return intent, fit_to_instrument(command, instrument, Decimal(repr(float(plan.fill_price))))


def exit_intent(
    client_id: str,
    symbol: str,
    held: int,
    now_ms: int,
    reason: str,
    price: float,
    p: Prediction | None = None,
) -> Intent:
    """The intent to close a position held on side ``held``, for ``reason`` (a signal ``p``'s exit carries its id)."""
    if p is None:
        side = order_side(-held)
        return Intent(client_id, IntentKind.EXIT, symbol, side, now_ms, reason=reason, reference_price=price)
    return Intent(
        client_id,
        IntentKind.EXIT,
        symbol,
        order_side(-held),
        now_ms,
        reason=reason,
        signal_id=p.id,
        confidence=p.confidence,
        expires_ms=p.ts + p.horizon_ms,
        reference_price=price,
    )


def market_order(intent: Intent, qty: Decimal, market: str) -> SubmitOrder:
    """``intent``'s market order for ``qty`` (not yet fitted); an exit on linear is reduce-only."""
    return SubmitOrder(
        intent.intent_id,
        intent.symbol,
        market,
        intent.side,
        OrderType.MARKET,
        qty,
        reduce_only=intent.kind is IntentKind.EXIT and market == "linear",
    )
