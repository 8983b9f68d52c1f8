"""The order manager: persist, then call the exchange, then persist what it said.

Every order is in the store (with its client order id, derived from the decision that made it)
before its first send, and in state SUBMITTED before each send; the venue's answer is applied
through the order state machine (``Order.apply``) and written back; every fill is written with the
position, cash and closed trade it led to in one transaction. A crash at any point therefore leaves
either an order the venue never saw (sent again under the SAME id — the venue's duplicate check
makes that safe) or one the venue has (found by its id and adopted). See ``reconcile``.

The stop-loss of every position rests on the exchange as a conditional order with its own
client id (``<tag>-<symbol>-sl-…``); it is cancelled before an exit is sent and placed again
(next attempt id) whenever it is found missing. A refusal by the venue (``OrderRejected``, e.g.
Bybit 10001 on a conditional order) is permanent: the same stop is not worth sending again. After
``STOP_REFUSALS_BEFORE_FALLBACK`` refusals for one position the stop is no longer sent; it becomes a
*robot-side* stop (persisted under the ``robot_side_stops`` meta key, shown by ``status`` and the
dashboard, recorded as a ``StopRefused`` fault) that the robot checks on every price update and
exits at market (``Robot.check_robot_exits``).

Take-profit and trailing stop (``live.exits``, the kernel's levels): the take-profit rests at the
exchange as a second conditional reduce-only order (``<tag>-<symbol>-tp-…``, intent kind TARGET)
that triggers when the price reaches the target; the same refusal rule hands it to the robot
(``robot_side_targets``). The trailing stop is the resting stop itself: at every bar close the
best price since the entry is ratcheted with the bar's extreme (persisted under ``trailing_stops``)
and, when that tightens the level, the resting stop is moved there (or the robot-side level moves).
Whichever exit fills, the other is cancelled once the position is flat.

Moving a stop never leaves the position without one resting (``move_stop``): the stop is amended in
place (Bybit ``/v5/order/amend``); if the venue refuses or cannot amend, the new stop is placed
FIRST and the old one cancelled once the new one rests; if the new one is refused as well, the old
one keeps resting and the robot watches the tighter level itself. The trailing reference is
persisted before the venue is asked, so a crash mid-move is finished by the reconciliation
(``align_stop``), and a superseded stop left resting next to its replacement is cancelled then.

A resting exit's trigger direction comes from what it is for (``exit_trigger_direction``: a long's
stop fires on a fall, its target on a rise), never from where the price lies. A stop or target whose
level the price is already through when it is to be placed is not sent (the venue would refuse it:
Bybit 110092/110093): it becomes robot-side at once and ``check_robot_exits`` exits at market.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Sequence
from decimal import Decimal

from autotrader.domain.errors import ExchangeError, OrderRejected, StorageError, TemporaryExchangeError
from autotrader.domain.instrument import Instrument, Market
from autotrader.domain.orders import (
    Fill,
    Order,
    OrderAccepted,
    OrderCanceled,
    OrderDenied,
    OrderEvent,
    OrderFilled,
    OrderSide,
    OrderStatus,
    OrderSubmitted,
    OrderTriggered,
    OrderType,
    SubmitOrder,
    TriggerDirection,
    derive_client_order_id,
    order_terms,
    sync_events,
)
from autotrader.domain.orders import OrderRejected as OrderRejectedEvent
from autotrader.execution.ports import ExchangePort, fit_to_instrument, mark_fitted
from autotrader.live import exits
from autotrader.live.metrics import RobotMetrics
from autotrader.live.portfolio import Book
from autotrader.live.ports import Clock, StateStore
from autotrader.live.records import (
    ClosedTrade,
    Intent,
    IntentKind,
    IntentStatus,
    Outcome,
    PositionState,
    RobotEvent,
    StoredOrder,
)

log = logging.getLogger(__name__)

_VENUE_LAG_MS = 60_000
STOP_REFUSALS_BEFORE_FALLBACK = 3
ROBOT_STOPS_META = "robot_side_stops"
ROBOT_TARGETS_META = "robot_side_targets"
# symbol -> {"entry": position key, "ref": best price since the entry, "bar": last bar ratcheted with}
TRAILING_META = "trailing_stops"
TARGETS_META = "take_profit_orders"  # symbol -> {"entry": position key, "cid": resting target's id, "attempt": n}
_EVENT_NAMES = {
    OrderSubmitted: "submitted",
    OrderAccepted: "accepted",
    OrderRejectedEvent: "rejected",
    OrderTriggered: "triggered",
    OrderCanceled: "canceled",
    OrderDenied: "denied",
    OrderFilled: "filled",
}


def exit_trigger_direction(kind: IntentKind, exit_side: OrderSide) -> TriggerDirection | None:
    """When a resting exit fires, from what it is for: a stop falls to a long's level, a target rises to it.

    ``None`` for orders that are not resting exits (entries, market exits).
    """
    if kind is IntentKind.STOP:
        return TriggerDirection.of_exit(exit_side, protective=True)
    if kind is IntentKind.TARGET:
        return TriggerDirection.of_exit(exit_side, protective=False)
    return None


def command_of(order: Order, trigger_direction: TriggerDirection | None = None) -> SubmitOrder:
    """The ``SubmitOrder`` that (re)creates ``order`` at the venue, under the same client id."""
    direction = trigger_direction if order.trigger_price is not None else None
    return SubmitOrder(**order_terms(order), trigger_direction=direction)


class OrderManager:
    """Owns the robot's orders: creation, sending, cancelling, syncing, fills and stop-losses."""

    def __init__(
        self,
        exchange: ExchangePort,
        store: StateStore,
        book: Book,
        clock: Clock,
        *,
        market: Market,
        tag: str,
        instruments: dict[str, Instrument],
        stop_loss: float | None,
        take_profit: float | None = None,
        trailing_stop: float | None = None,
        metrics: RobotMetrics | None = None,
        on_trade: Callable[[ClosedTrade], None] | None = None,
    ) -> None:
        self.exchange = exchange
        self.store = store
        self.book = book
        self.clock = clock
        self.market = market
        self.tag = tag
        self.instruments = instruments
        self.stop_loss = stop_loss
        self.take_profit = take_profit
        self.trailing_stop = trailing_stop
        self.metrics = metrics or RobotMetrics()
        self.on_trade = on_trade
        self.orders: dict[str, StoredOrder] = {}
        self.intents: dict[str, Intent] = {}
        self.faults: list[str] = []
        # symbol -> {"price", "entry" (the position's entry id), "since_ms", "refusals", "last"}
        self.robot_stops: dict[str, dict[str, object]] = {}
        self.robot_targets: dict[str, dict[str, object]] = {}  # the same for refused take-profits
        self.trails: dict[str, dict[str, object]] = {}  # TRAILING_META
        self.targets: dict[str, dict[str, object]] = {}  # TARGETS_META
        # (symbol, "sl"|"tp") -> (position's entry id, refusals)
        self._stop_refusals: dict[tuple[str, str], tuple[str, int]] = {}
        self._closed_by_exit: set[str] = set()  # symbols a stop/target fill left flat: their sibling exit goes

    # ------------------------------------------------------------------------------------- state

    @property
    def prefix(self) -> str:
        """What every client order id of this robot starts with (orphans are recognised by it)."""
        return f"{derive_client_order_id(self.tag, 'X', 0, 'x').split('-')[0]}-"

    def load(self) -> None:
        """Open orders and intents from the store (after a start or a crash)."""
        self.intents = {i.intent_id: i for i in self.store.load_intents(open_only=True)}
        self.orders = {o.client_order_id: o for o in self.store.load_orders(open_only=True)}
        self.robot_stops = self._load_exit_meta(ROBOT_STOPS_META, _robot_side_problem)
        self.robot_targets = self._load_exit_meta(ROBOT_TARGETS_META, _robot_side_problem)
        self.trails = self._load_exit_meta(TRAILING_META, _trail_problem)
        self.targets = self._load_exit_meta(TARGETS_META, self._target_problem)

    def _load_exit_meta(
        self, name: str, problem: Callable[[str, dict[str, object]], str | None]
    ) -> dict[str, dict[str, object]]:
        """The stored exit records ``name`` (symbol -> record), each checked by ``problem``.

        A record ``problem`` finds wrong (a corrupt or hand-edited store) is dropped with a recorded
        fault instead of stopping the robot later: the position keeps its protection, as the next
        ``protect`` places whatever exit is missing (a dropped trailing reference is rebuilt from
        the bars since the entry at the next bar close).
        """
        raw = self.store.get_meta(name)
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self._fault("CorruptExitState", f"{name}: not a mapping, dropped")
            self.store.set_meta(name, {})
            return {}
        kept: dict[str, dict[str, object]] = {}
        for symbol, record in raw.items():
            why = problem(str(symbol), record) if isinstance(record, dict) else "not a mapping"
            if why is None:
                kept[str(symbol)] = record
            else:
                self._fault("CorruptExitState", f"{name} of {symbol}: {why}, dropped", str(symbol))
                rebuilt = self._rebuilt_target(str(symbol)) if name == TARGETS_META else None
                if rebuilt is not None:
                    kept[str(symbol)] = rebuilt
        if kept != raw:
            self.store.set_meta(name, kept)
        return kept

    def _target_problem(self, symbol: str, record: dict[str, object]) -> str | None:
        """What is wrong with a stored take-profit record (``None``: nothing); a bad attempt number is
        recovered from the order id when it matches one of the first attempts."""
        entry, cid = record.get("entry"), record.get("cid")
        if not isinstance(entry, str) or not entry or not isinstance(cid, str) or not cid:
            return f"entry {entry!r} / order id {cid!r}"
        attempt = record.get("attempt")
        if isinstance(attempt, int) and not isinstance(attempt, bool) and 0 <= attempt <= _MAX_ATTEMPT:
            return None
        for n in range(_MAX_ATTEMPT + 1):
            if self.client_id(symbol, entry, "tp", n) == cid:
                record["attempt"] = n
                self._fault("CorruptExitState", f"{TARGETS_META} of {symbol}: attempt {attempt!r} read as {n}", symbol)
                return None
        return f"attempt {attempt!r}"

    def _rebuilt_target(self, symbol: str) -> dict[str, object] | None:
        """The current position's take-profit record rebuilt from the stored orders (its last attempt),
        so a new target never reuses an order id (``None``: no target was ever placed for it)."""
        if symbol not in self.instruments or self.book.position(symbol).qty == 0:
            return None
        key = self._position_key(symbol)
        last: dict[str, object] | None = None
        for n in range(_MAX_ATTEMPT + 1):
            cid = self.client_id(symbol, key, "tp", n)
            if self.store.load_order(cid) is None:
                break
            last = {"entry": key, "cid": cid, "attempt": n}
        return last

    def client_id(self, symbol: str, decision_id: str | int, intent: str, attempt: int = 0) -> str:
        return derive_client_order_id(self.tag, symbol, decision_id, intent, attempt)

    def open_orders(self, symbol: str | None = None, kinds: Sequence[IntentKind] | None = None) -> list[StoredOrder]:
        return [
            o
            for o in self.orders.values()
            if not o.order.is_terminal
            and (symbol is None or o.order.symbol == symbol)
            and (kinds is None or o.kind in kinds)
        ]

    def pending(self, symbol: str) -> list[StoredOrder]:
        """Unfinished entry/exit/adopted orders of ``symbol`` (stops excluded)."""
        return self.open_orders(symbol, (IntentKind.ENTRY, IntentKind.EXIT, IntentKind.ADOPTED))

    def pending_exit(self, symbol: str) -> bool:
        return bool(self.open_orders(symbol, (IntentKind.EXIT,)))

    def _bind(self, order: Order, signal_id: str | None) -> dict[str, str | None]:
        return {"symbol": order.symbol, "client_order_id": order.client_order_id, "signal_id": signal_id or ""}

    def _fault(self, kind: str, detail: str, symbol: str | None = None) -> None:
        self.metrics.exchange_errors.inc(kind=kind)
        self.faults.append(f"{kind}: {detail}")
        self.store.record_event(RobotEvent(self.clock.now_ms(), "fault", f"{kind}: {detail}", symbol))

    # ------------------------------------------------------------------------------ construction

    def fit(self, command: SubmitOrder, reference_price: float) -> SubmitOrder:
        """Round to the venue's steps with the backtest's functions; ``OrderRejected`` below its minimums.

        The one rounding an order gets: what is stored is what ``command_to_send`` sends.
        """
        inst = self.instruments[command.symbol]
        return fit_to_instrument(command, inst, Decimal(repr(float(reference_price))))

    def command_to_send(self, stored: StoredOrder) -> SubmitOrder:
        """The command that sends ``stored``'s order exactly as stored, under its client id.

        Every order the manager creates is fitted before it is stored (``fit``, ``intents.entry_order``),
        so the command is marked as fitted: the adapter neither rounds it again nor looks a price up for
        it (one off the instrument's current lot and tick grid is still fitted there, and the change logged).
        """
        order = stored.order
        command = command_of(order, exit_trigger_direction(stored.kind, order.side))
        instrument = self.instruments.get(order.symbol)
        return command if instrument is None else mark_fitted(command, instrument)

    def new_order(self, intent: Intent, command: SubmitOrder) -> StoredOrder:
        order = Order.from_command(command, self.clock.now_ms())
        return StoredOrder(order, intent.intent_id, intent.kind, intent.signal_id)

    def _conditional_exit(
        self, intent: Intent, qty: Decimal, trigger: Decimal, price: float, fault: str
    ) -> StoredOrder | None:
        """The resting stop-market exit of ``intent`` at ``trigger``, fitted to the venue's steps; ``None``
        (and a ``fault`` recorded) when the venue's minimums make it impossible."""
        command = SubmitOrder(
            intent.intent_id,
            intent.symbol,
            self.market,
            intent.side,
            OrderType.STOP_MARKET,
            qty,
            trigger_price=trigger,
            reduce_only=self.market == "linear",
            trigger_direction=exit_trigger_direction(intent.kind, intent.side),
        )
        try:
            command = self.fit(command, price)
        except OrderRejected as e:
            self._fault(fault, f"{intent.symbol}: {e}", intent.symbol)
            return None
        return self.new_order(intent, command)

    def track(self, intent: Intent, stored: StoredOrder | None) -> None:
        """Remember an intent and its order once they are persisted."""
        self.intents[intent.intent_id] = intent
        if stored is not None:
            self.orders[stored.client_order_id] = stored

    def _save(self, stored: StoredOrder, order: Order, event: str, detail: str = "") -> StoredOrder:
        self.store.save_order(order, event, detail)
        updated = dataclasses.replace(stored, order=order)
        self._remember(updated)
        if order.is_terminal:
            self._finish_intent(updated)
        return updated

    def _remember(self, stored: StoredOrder) -> None:
        """Keep unfinished orders in memory; finished ones live in the store only."""
        if stored.order.is_terminal:
            self.orders.pop(stored.client_order_id, None)
        else:
            self.orders[stored.client_order_id] = stored

    def _finish_intent(self, stored: StoredOrder) -> None:
        intent = self.intents.get(stored.intent_id)
        if intent is None or intent.status is not IntentStatus.OPEN:
            return
        order = stored.order
        filled = order.filled_qty > 0
        done = filled or (order.status is OrderStatus.CANCELED and stored.kind in (IntentKind.STOP, IntentKind.TARGET))
        status = IntentStatus.DONE if done else IntentStatus.ABANDONED
        reason = order.reason or str(order.status)
        self.store.close_intent(intent.intent_id, status, reason)
        self.intents.pop(intent.intent_id, None)
        if status is IntentStatus.ABANDONED and intent.signal_id and stored.kind in (IntentKind.ENTRY, IntentKind.EXIT):
            self.store.update_decision(
                intent.signal_id,
                Outcome.SKIPPED,
                f"order_{order.status}",
                reason[:500],
                client_order_id=order.client_order_id,
            )

    def deny(self, stored: StoredOrder, reason: str) -> StoredOrder:
        """Give up an order that was never sent (status INITIALIZED)."""
        order = stored.order.apply(OrderDenied(stored.client_order_id, self.clock.now_ms(), reason))
        log.info("order %s denied: %s", order.client_order_id, reason, extra=self._bind(order, stored.signal_id))
        return self._save(stored, order, "denied", reason)

    # ------------------------------------------------------------------------------------ sending

    async def execute(self, stored: StoredOrder, received_perf: float | None = None) -> StoredOrder:
        """Send a persisted order (INITIALIZED or SUBMITTED) and apply the venue's answer.

        ``received_perf`` (``time.perf_counter()`` when the signal arrived) feeds the latency
        histogram. Never raises for a venue problem: a refusal becomes REJECTED, an unknown outcome
        leaves the order SUBMITTED for the next reconciliation.
        """
        order = stored.order
        bind = self._bind(order, stored.signal_id)
        if order.status is OrderStatus.INITIALIZED:
            order = order.apply(OrderSubmitted(order.client_order_id, self.clock.now_ms()))
            stored = self._save(stored, order, "submitted")
        elif order.status is not OrderStatus.SUBMITTED:
            return stored
        log.info(
            "sending %s %s %s qty %s%s",
            stored.kind,
            order.side,
            order.type,
            order.qty,
            f" trigger {order.trigger_price}" if order.trigger_price else "",
            extra=bind,
        )
        try:
            acked = await self.exchange.create_order(self.command_to_send(stored))
        except OrderRejected as e:
            code = getattr(e, "ret_code", None)
            order = order.apply(OrderRejectedEvent(order.client_order_id, self.clock.now_ms(), str(e)[:500], code))
            self.metrics.orders.inc(kind=str(stored.kind), result="rejected")
            self.metrics.rejections.inc(reason=type(e).__name__ if code is None else str(code))
            log.warning("order %s rejected: %s", order.client_order_id, e, extra=bind)
            return self._save(stored, order, "rejected", str(e)[:500])
        except TemporaryExchangeError as e:
            self.metrics.orders.inc(kind=str(stored.kind), result="unknown")
            log.warning(
                "order %s: outcome unknown (%s); it will be looked up by its id", order.client_order_id, e, extra=bind
            )
            self._fault(type(e).__name__, f"create {order.client_order_id}: {e}", order.symbol)
            return stored
        except ExchangeError as e:  # auth and other definitive failures: stop trading, keep the order
            self._fault(type(e).__name__, f"create {order.client_order_id}: {e}", order.symbol)
            raise
        if received_perf is not None:
            self.metrics.observe_latency(time.perf_counter() - received_perf, str(stored.kind))
        self.metrics.orders.inc(kind=str(stored.kind), result="acknowledged")
        stored = self.apply_events(stored, sync_events(order, acked))
        log.info(
            "order %s acknowledged (%s, venue id %s)",
            order.client_order_id,
            stored.order.status,
            stored.order.venue_order_id,
            extra=bind,
        )
        if not order.type.is_conditional:
            stored = await self.refresh(stored)
        return stored

    async def refresh(self, stored: StoredOrder) -> StoredOrder:
        """Bring one order up to the venue's view: its fills first, then (if not done) its status.

        A stop or take-profit found filled that closed the position has its sibling exit cancelled
        at once (``cancel_siblings``).
        """
        stored = await self._refresh(stored)
        await self.cancel_siblings()
        return stored

    async def cancel_siblings(self) -> None:
        """Cancel the exits still resting for positions a stop or take-profit fill closed.

        On spot neither exit is reduce-only: the other one would sell coins the robot no longer
        holds. Best effort: a failed cancel is recorded and the reconciliation cancels it later.
        """
        while self._closed_by_exit:
            symbol = self._closed_by_exit.pop()
            if self.book.open_side(symbol) != 0:
                continue  # a new position already: its exits are its own
            for sibling in self.open_orders(symbol, (IntentKind.STOP, IntentKind.TARGET)):
                await self.cancel(sibling, "position closed by its other exit")

    async def _refresh(self, stored: StoredOrder) -> StoredOrder:
        order = stored.order
        if order.is_terminal:
            return stored
        try:
            fills = await self.exchange.fills(order.market, order.symbol, client_order_id=order.client_order_id)
            mine = [f for f in fills if f.client_order_id == order.client_order_id]
            if (
                mine
                and sum((f.qty for f in mine), Decimal(0)) >= order.qty
                and order.status is not OrderStatus.SUBMITTED
            ):
                events: list[OrderEvent] = [OrderFilled(order.client_order_id, f.ts_ms, f) for f in mine]
                return self.apply_events(stored, events)
            venue = await self.exchange.order_by_client_id(order.market, order.symbol, order.client_order_id)
        except TemporaryExchangeError as e:
            self._fault(type(e).__name__, f"refresh {order.client_order_id}: {e}", order.symbol)
            return stored
        return self.apply_venue(stored, venue, mine)

    def apply_venue(self, stored: StoredOrder, venue: Order | None, fills: Sequence[Fill]) -> StoredOrder:
        """Apply the venue's snapshot (``None``: the venue does not know the order) and its fills."""
        order = stored.order
        if venue is None:
            if order.status is OrderStatus.SUBMITTED or order.status is OrderStatus.INITIALIZED:
                return stored  # not (yet) at the venue: the caller decides (resend with the same id, or give up)
            if not fills and order.updated_ms > self.clock.now_ms() - _VENUE_LAG_MS:
                return stored  # just acknowledged: the venue's order list may lag behind its answer
            reason = "no longer known to the venue"
            events: list[OrderEvent] = [OrderFilled(order.client_order_id, f.ts_ms, f) for f in fills]
            events.append(OrderCanceled(order.client_order_id, self.clock.now_ms(), reason))
            return self.apply_events(stored, events)
        return self.apply_events(stored, sync_events(order, venue, fills))

    def apply_events(self, stored: StoredOrder, events: Sequence[OrderEvent]) -> StoredOrder:
        for event in events:
            order = stored.order
            if isinstance(event, OrderFilled):
                if event.fill.fill_id in order.fill_ids:
                    continue
                if order.is_terminal:  # a late fill of a finished order: count it, never lose it
                    log.warning(
                        "fill %s arrived for finished order %s",
                        event.fill.fill_id,
                        order.client_order_id,
                        extra=self._bind(order, stored.signal_id),
                    )
                    order = dataclasses.replace(order, status=OrderStatus.PARTIALLY_FILLED)
                stored = self._record_fill(stored, order.apply(event), event.fill)
                continue
            if order.is_terminal:
                continue
            new = order.apply(event)
            detail = getattr(event, "reason", "") or getattr(event, "venue_order_id", "")
            stored = self._save(stored, new, _EVENT_NAMES.get(type(event), type(event).__name__), str(detail))
        return stored

    def _record_fill(self, stored: StoredOrder, order: Order, fill: Fill) -> StoredOrder:
        intent = self.intents.get(stored.intent_id)
        opening = stored.kind is IntentKind.ENTRY or (stored.kind is IntentKind.ADOPTED and self._increases(fill))
        if stored.kind is IntentKind.STOP:  # from the trigger price: an amended stop keeps its first intent
            reason = (
                self._stop_fill_reason(order)
                if order.trigger_price is not None or intent is None or not intent.reason
                else intent.reason
            )
        elif stored.kind is IntentKind.TARGET:
            reason = exits.TAKE_PROFIT
        elif stored.kind is IntentKind.ADOPTED:
            reason = "adopted"
        else:
            reason = intent.reason if intent is not None and intent.reason else "signal"
        if self.store.has_fill(fill.fill_id):  # stored by an earlier pass (e.g. before a crash)
            self.store.save_order(order, "filled", f"{fill.fill_id} (already recorded)")
            updated = dataclasses.replace(stored, order=order)
            self._remember(updated)
            if order.is_terminal:
                self._finish_intent(updated)
            return updated
        position, ledger, trade = self.book.apply_fill(
            fill,
            opening=opening,
            now_ms=self.clock.now_ms(),
            signal_id=stored.signal_id if opening else None,
            confidence=intent.confidence if intent is not None else 0.0,
            exit_reason=reason,
            exit_signal_id=stored.signal_id if stored.kind is IntentKind.EXIT else None,
        )
        if not self.store.record_fill(fill, order, position, ledger, trade):
            raise StorageError(f"fill {fill.fill_id} was stored concurrently: is another robot using this store?")
        self.metrics.fills.inc()
        log.info(
            "fill %s: %s %s @ %s (fee %s %s); position %s",
            fill.fill_id,
            fill.side,
            fill.qty,
            fill.price,
            fill.fee,
            fill.fee_currency,
            position.qty,
            extra=self._bind(order, stored.signal_id),
        )
        updated = dataclasses.replace(stored, order=order)
        self._remember(updated)
        if order.is_terminal:
            self._finish_intent(updated)
        if stored.kind in (IntentKind.STOP, IntentKind.TARGET) and self.book.open_side(fill.symbol, fill.price) == 0:
            self._closed_by_exit.add(fill.symbol)
        if trade is not None and self.on_trade is not None:
            self.on_trade(trade)
        return updated

    def _increases(self, fill: Fill) -> bool:
        pos = self.book.position(fill.symbol)
        return pos.qty == 0 or (pos.qty > 0) == (fill.side is OrderSide.BUY)

    async def sync_open_orders(self) -> int:
        """Look up every order the robot thinks rests at the venue but the venue no longer lists open.

        One ``open_orders`` request when nothing changed; returns how many orders were refreshed.
        """
        resting = [
            o for o in self.open_orders() if o.order.status not in (OrderStatus.INITIALIZED, OrderStatus.SUBMITTED)
        ]
        if not resting:
            return 0
        try:
            at_venue = {o.client_order_id for o in await self.exchange.open_orders(self.market)}
        except TemporaryExchangeError as e:
            self._fault(type(e).__name__, f"open orders: {e}")
            return 0
        changed = 0
        for stored in resting:
            if stored.client_order_id not in at_venue:
                await self.refresh(stored)
                changed += 1
        return changed

    # ----------------------------------------------------------------------------------- cancelling

    async def cancel(self, stored: StoredOrder, reason: str = "") -> StoredOrder:
        """Cancel at the venue by client id and apply what the venue reports (fills first).

        An untriggered conditional order (a resting stop) that the venue agrees to cancel had not
        triggered, so it never filled: that costs one round trip. Any other order, or a stop the
        venue refuses to cancel (it triggered meanwhile), is looked up to learn its fills. A fill
        that still surfaced later would be adopted by the periodic reconciliation.
        """
        order = stored.order
        if order.is_terminal:
            return stored
        if order.status is OrderStatus.INITIALIZED:
            return self.deny(stored, reason or "cancelled before it was sent")
        self.store.save_order(order, "cancel_requested", reason)
        market, symbol, cid = order.market, order.symbol, order.client_order_id
        try:
            if order.status is OrderStatus.UNTRIGGERED and order.filled_qty == 0:
                if await self.exchange.request_cancel(market, symbol, cid):
                    event = OrderCanceled(cid, self.clock.now_ms(), "cancelled before it triggered")
                    return self.apply_events(stored, [event])
                venue = await self.exchange.order_by_client_id(market, symbol, cid)
            else:
                venue = await self.exchange.cancel_order(market, symbol, cid)
            fills: list[Fill] = []
            if venue is not None and (venue.filled_qty > 0 or venue.status is OrderStatus.FILLED):
                fills = await self.exchange.fills(market, symbol, client_order_id=cid)
        except TemporaryExchangeError as e:
            self._fault(type(e).__name__, f"cancel {cid}: {e}", symbol)
            return stored
        if venue is None:
            return self.apply_events(stored, [OrderCanceled(cid, self.clock.now_ms(), "not at the venue")])
        if venue.status.is_open:  # the venue still lists it open right after a cancel: try again later
            self._fault("CancelNotConfirmed", f"cancel {cid}: venue reports {venue.status}")
        return self.apply_events(stored, sync_events(order, venue, fills))

    # --------------------------------------------------------------------------------------- stops

    def stop_order(self, symbol: str) -> StoredOrder | None:
        pos = self.book.position(symbol)
        if pos.stop_client_order_id is None:
            return None
        return self.orders.get(pos.stop_client_order_id) or self.store.load_order(pos.stop_client_order_id)

    def _tick(self, symbol: str) -> float:
        return float(self.instruments[symbol].tick_size)

    def initial_stop(self, symbol: str) -> float:
        """The kernel's stop-loss level: entry fill price × (1 ∓ stop_loss), rounded to the tick (0.0: none)."""
        side = self.book.position(symbol).side
        return exits.initial_stop(float(self.book.entry_price(symbol)), side, self.stop_loss, self._tick(symbol))

    def trail_ref(self, symbol: str) -> float:
        """The best price seen since the position's entry (the entry price until a bar closed beyond it)."""
        record = self.trails.get(symbol)
        if record is not None and record.get("entry") == self._position_key(symbol):
            return float(str(record["ref"]))
        return float(self.book.entry_price(symbol))

    def stop_price(self, symbol: str) -> Decimal | None:
        """The protective stop's level now: the stop-loss tightened by the trailing stop (``None``: neither)."""
        if not self.stop_loss and not self.trailing_stop:
            return None
        side = self.book.position(symbol).side
        tick = self._tick(symbol)
        level = exits.stop_level(self.initial_stop(symbol), self.trail_ref(symbol), side, self.trailing_stop, tick)
        return _on_tick(level, self.instruments[symbol].tick_size) if level > 0 else None

    def stop_reason(self, symbol: str, level: Decimal | float) -> str:
        """``trailing_stop`` when ``level`` is no longer the initial stop-loss, else ``stop_loss``."""
        return exits.stop_reason(float(level), self.initial_stop(symbol))

    def _stop_fill_reason(self, order: Order) -> str:
        if order.trigger_price is None:
            return exits.STOP_LOSS
        return self.stop_reason(order.symbol, order.trigger_price)

    def target_price(self, symbol: str) -> Decimal | None:
        """The kernel's take-profit level: entry fill price × (1 ± take_profit), rounded to the tick."""
        if not self.take_profit:
            return None
        side = self.book.position(symbol).side
        level = exits.target_level(float(self.book.entry_price(symbol)), side, self.take_profit, self._tick(symbol))
        return _on_tick(level, self.instruments[symbol].tick_size) if level > 0 else None

    async def protect(self, symbol: str, price: float) -> None:
        """Rest every exit the settings ask for (stop and target) unless it rests already or the robot holds it."""
        await self.ensure_stop(symbol, price)
        await self.ensure_target(symbol, price)

    def trail_bar(self, symbol: str) -> int | None:
        """The open time of the last bar the current position's trailing stop ratcheted with (``None``: none yet)."""
        record = self.trails.get(symbol)
        if record is None or record.get("entry") != self._position_key(symbol) or record.get("bar") is None:
            return None
        return int(str(record["bar"]))

    async def ratchet(
        self, symbol: str, high: float, low: float, price: float, bar_ts: int | None = None
    ) -> Decimal | None:
        """Bars closed with extremes ``high``/``low`` (up to the bar opened at ``bar_ts``): move the trailing stop.

        Returns the new level if it moved.

        The kernel checks a bar against the level from before it and ratchets afterwards; the robot
        does the same at the bar's close: the resting stop (or the robot-side level) is moved to the
        tighter level. No trailing stop, a flat position or a pending exit: nothing happens.
        """
        if not self.trailing_stop or self.pending_exit(symbol):
            return None
        side = self.book.open_side(symbol, price)
        if side == 0:
            return None
        ref = exits.ratchet(self.trail_ref(symbol), side, high, low)
        key = self._position_key(symbol)
        record = self.trails.get(symbol)
        if record is None or record.get("entry") != key or float(str(record["ref"])) != ref or bar_ts is not None:
            self.trails[symbol] = {"entry": key, "ref": repr(ref), "bar": bar_ts}
            self.store.set_meta(TRAILING_META, self.trails)
        level = self.stop_price(symbol)
        robot_side = self.robot_stops.get(symbol)
        if robot_side is not None and robot_side.get("entry") == key:
            if level is not None and str(level) != robot_side.get("price"):
                robot_side["price"] = str(level)
                self.store.set_meta(ROBOT_STOPS_META, self.robot_stops)
                return level
            return None
        current = self.stop_order(symbol)
        if level is None or current is None or current.order.is_terminal or current.order.trigger_price == level:
            return None
        if self.crossed(symbol, price) is not None:
            return level  # the price is already through the new level: the caller exits at market
        tighter = level > current.order.trigger_price if side > 0 else level < current.order.trigger_price
        if not tighter:
            return None
        await self.move_stop(current, level, price)
        return level

    async def align_stop(self, symbol: str, price: float) -> Decimal | None:
        """Move the resting stop to the persisted level if it lags behind it (after a crash mid-move).

        The trailing reference is persisted before a stop is moved, so a process that died between
        that write and the venue's answer finds the stop short of ``stop_price`` on restart; this
        moves it (an amend the venue had already applied answers "not modified"). Returns the level
        when it moved.
        """
        if not self.trailing_stop or self.pending_exit(symbol) or self.book.open_side(symbol, price) == 0:
            return None
        if self.robot_stop(symbol) is not None:
            return None
        current = self.stop_order(symbol)
        level = self.stop_price(symbol)
        if level is None or current is None or current.order.status is not OrderStatus.UNTRIGGERED:
            return None
        if current.order.trigger_price == level or self.crossed(symbol, price) is not None:
            return None
        side = self.book.position(symbol).side
        if not (level > current.order.trigger_price if side > 0 else level < current.order.trigger_price):
            return None
        await self.move_stop(current, level, price)
        return level

    async def move_stop(self, current: StoredOrder, level: Decimal, price: float) -> StoredOrder | None:
        """Move the resting stop ``current`` to ``level`` without a moment when the position is unprotected.

        First by amending its trigger price in place (the order never leaves the venue). If the
        venue no longer holds it open (triggered, filled, cancelled), it is looked up: a fill closes
        the position; a stop that vanished is placed again at ``level``. If the amend is refused or
        unsupported, the new stop is PLACED FIRST and the old one cancelled only once the new one is
        acknowledged; if the new one is refused too, the old one keeps resting and the robot watches
        ``level`` itself (robot-side stop). An unknown outcome changes nothing: the next bar close
        (or the reconciliation after a restart, ``align_stop``) tries again. Returns the stop that
        protects the position afterwards (``None``: none is known to rest).
        """
        order = current.order
        symbol, cid = order.symbol, order.client_order_id
        bind = {"symbol": symbol, "client_order_id": cid, "signal_id": current.signal_id}
        log.info("trailing stop of %s moves from %s to %s", symbol, order.trigger_price, level, extra=bind)
        self.store.save_order(order, "amend_requested", f"trigger {order.trigger_price} -> {level}")
        try:
            amended = await self.exchange.amend_trigger(order.market, symbol, cid, level)
        except NotImplementedError:
            amended = None
            log.info("the venue cannot amend %s: placing the new stop before cancelling it", cid, extra=bind)
        except OrderRejected as e:
            amended = None
            log.warning("amend of %s refused (%s): placing the new stop before cancelling it", cid, e, extra=bind)
            self._fault("AmendRefused", f"{cid} to {level}: {str(e)[:300]}", symbol)
        except TemporaryExchangeError as e:
            self._fault(type(e).__name__, f"amend {cid}: {e}", symbol)
            return current  # unknown: the old or the new level rests, and both protect
        if amended:
            now = self.clock.now_ms()
            moved = dataclasses.replace(order, trigger_price=level, updated_ms=now)
            stored = self._save(current, moved, "amended", f"trigger -> {level}")
            pos = self.book.position(symbol)
            if pos.stop_client_order_id == cid:
                self.update_position(dataclasses.replace(pos, stop_price=level, updated_ms=now))
            self.metrics.orders.inc(kind=str(current.kind), result="amended")
            return stored
        if amended is False:  # the venue holds no open order by that id: learn what became of it
            stored = await self.refresh(current)
            if not stored.order.is_terminal:
                return stored  # the venue still reports it (it is triggering): the next sync settles it
            return await self.ensure_stop(symbol, price, moved=True)
        return await self._replace_stop(current, level, price)

    async def _replace_stop(self, current: StoredOrder, level: Decimal, price: float) -> StoredOrder | None:
        """Place a stop at ``level`` next to ``current``, then cancel ``current`` (never the other way round)."""
        symbol = current.order.symbol
        replacement = await self._place_stop(symbol, price, level, attempt_after=current)
        if replacement is None:
            return current
        if replacement.order.status is OrderStatus.REJECTED:
            pos = self.book.position(symbol)  # the old stop stays the position's stop ...
            self.update_position(
                dataclasses.replace(
                    pos,
                    stop_client_order_id=current.client_order_id,
                    stop_price=current.order.trigger_price,
                    updated_ms=self.clock.now_ms(),
                )
            )
            # ... and the robot watches the tighter level itself
            self._robot_side(symbol, "sl", level, 1, replacement.order.reason or "refused")
            return current
        if replacement.order.status is OrderStatus.UNTRIGGERED:
            await self.cancel(current, "replaced by a tighter stop")
        return replacement

    async def _drop_superseded_stops(self, symbol: str, keep: StoredOrder) -> None:
        """Cancel stops of ``symbol`` other than the resting ``keep`` (left by a replacement a crash interrupted)."""
        for stale in self.open_orders(symbol, (IntentKind.STOP,)):
            if stale.client_order_id != keep.client_order_id and stale.order.status is OrderStatus.UNTRIGGERED:
                await self.cancel(stale, f"superseded by {keep.client_order_id}")

    def crossed(self, symbol: str, price: float) -> str | None:
        """The exit reason when ``price`` is already through the stop or the target (``None``: it is not)."""
        side = self.book.open_side(symbol, price)
        stop, target = self.stop_price(symbol), self.target_price(symbol)
        hit = exits.exit_hit(side, price, float(stop or 0), float(target or 0))
        if hit == "stop" and stop is not None:
            return self.stop_reason(symbol, stop)
        return hit

    async def ensure_stop(
        self, symbol: str, price: float, *, moved: bool = False, exit_pending: bool = False
    ) -> StoredOrder | None:
        """Place the position's stop at the venue unless one is resting (or an exit is pending).

        The stop's level is the stop-loss tightened by the trailing stop (``stop_price``). A flat
        position's leftover stop (its target filled) is cancelled, and so is a superseded stop still
        resting next to the position's own (a replacement interrupted by a crash). Returns the new
        stop order, or ``None`` when nothing was placed. ``exit_pending``: place it even though an
        exit is pending (the exit could not be sent and its stop must come back).
        """
        if not self.stop_loss and not self.trailing_stop:
            return None
        if self.pending_exit(symbol) and not exit_pending:
            return None
        side = self.book.open_side(symbol, price)
        if side == 0:
            self.clear_robot_stop(symbol)
            for stale in self.open_orders(symbol, (IntentKind.STOP,)):  # its target filled: the stop goes
                await self.cancel(stale, "position flat")
            return None
        current = self.stop_order(symbol)
        if current is not None and current.order.status is OrderStatus.UNTRIGGERED:
            await self._drop_superseded_stops(symbol, current)
        if self.robot_stop(symbol) is not None:
            return None  # the venue refused it: the robot watches this stop itself
        if current is not None and not current.order.is_terminal:
            return None
        trigger = self.stop_price(symbol)
        if trigger is None:
            return None
        stored = await self._place_stop(symbol, price, trigger, attempt_after=current, replaced=not moved)
        if stored is not None:
            self._count_refusal(symbol, stored, "sl")
        return stored

    async def _place_stop(
        self,
        symbol: str,
        price: float,
        trigger: Decimal,
        *,
        attempt_after: StoredOrder | None,
        replaced: bool = False,
    ) -> StoredOrder | None:
        """Persist a stop at ``trigger`` as the position's stop (next attempt id after ``attempt_after``); send it."""
        side = self.book.open_side(symbol, price)
        pos = self.book.position(symbol)
        attempt = pos.stop_attempt + 1 if attempt_after is not None else pos.stop_attempt
        qty = self.book.tradable_qty(symbol, price)
        exit_side = OrderSide.SELL if side > 0 else OrderSide.BUY
        if self._crossed_at_placement(symbol, "sl", exit_side, trigger, price):
            return None
        basis = pos.entry_client_order_id or f"pos{pos.entry_ms}"
        cid = self.client_id(symbol, basis, "sl", attempt)
        now = self.clock.now_ms()
        reason = self.stop_reason(symbol, trigger)
        intent = Intent(cid, IntentKind.STOP, symbol, exit_side, now, reason=reason, signal_id=pos.signal_id)
        stored = self._conditional_exit(intent, qty, trigger, price, "StopNotPlaceable")
        if stored is None:
            return None
        position = dataclasses.replace(
            pos, stop_client_order_id=cid, stop_price=trigger, stop_attempt=attempt, updated_ms=now
        )
        self.store.save_intent(intent, stored.order, position)
        self.book.with_position(position)
        self.track(intent, stored)
        if attempt_after is not None and replaced:
            log.warning(
                "stop-loss of %s disappeared (%s); placing it again as %s",
                symbol,
                attempt_after.order.status,
                cid,
                extra={"symbol": symbol, "client_order_id": cid, "signal_id": pos.signal_id},
            )
            self.store.record_event(
                RobotEvent(now, "stop_replaced", f"{attempt_after.client_order_id} -> {cid}", symbol)
            )
        return await self.execute(stored)

    # ------------------------------------------------------------------------------------- targets

    def target_order(self, symbol: str) -> StoredOrder | None:
        """The take-profit order of ``symbol``'s current position (resting or finished), if any."""
        record = self.targets.get(symbol)
        if record is None or record.get("entry") != self._position_key(symbol):
            return None
        cid = str(record["cid"])
        return self.orders.get(cid) or self.store.load_order(cid)

    def _resting_targets(self, symbol: str) -> list[StoredOrder]:
        return self.open_orders(symbol, (IntentKind.TARGET,))

    async def ensure_target(self, symbol: str, price: float) -> StoredOrder | None:
        """Rest the position's take-profit at the venue unless it rests already (or an exit is pending).

        A conditional reduce-only market order at the kernel's target level, triggered when the
        price reaches it. A flat position's leftover target (its stop filled) is cancelled. Returns
        the new target order, or ``None`` when nothing was placed.
        """
        if not self.take_profit:
            return None
        side = self.book.open_side(symbol, price)
        if side == 0:
            self.clear_robot_target(symbol)
            for stale in self._resting_targets(symbol):
                await self.cancel(stale, "position flat")
            return None
        if self.pending_exit(symbol) or self.robot_target(symbol) is not None:
            return None
        key = self._position_key(symbol)
        for stale in self._resting_targets(symbol):  # an earlier position's target
            record = self.targets.get(symbol)
            if record is None or record.get("entry") != key or record.get("cid") != stale.client_order_id:
                await self.cancel(stale, "earlier position")
        current = self.target_order(symbol)
        if current is not None and not current.order.is_terminal:
            return None
        level = self.target_price(symbol)
        if level is None:
            return None
        record = self.targets.get(symbol)
        if record is None or record.get("entry") != key:  # no record of this position: ask the stored orders
            record = self._rebuilt_target(symbol)
        attempt = int(str(record["attempt"])) + 1 if record is not None else 0
        pos = self.book.position(symbol)
        qty = self.book.tradable_qty(symbol, price)
        exit_side = OrderSide.SELL if side > 0 else OrderSide.BUY
        if self._crossed_at_placement(symbol, "tp", exit_side, level, price):
            return None
        cid = self.client_id(symbol, key, "tp", attempt)
        now = self.clock.now_ms()
        intent = Intent(
            cid, IntentKind.TARGET, symbol, exit_side, now, reason=exits.TAKE_PROFIT, signal_id=pos.signal_id
        )
        stored = self._conditional_exit(intent, qty, level, price, "TargetNotPlaceable")
        if stored is None:
            return None
        self.targets[symbol] = {"entry": key, "cid": cid, "attempt": attempt}
        self.store.save_intent(intent, stored.order)
        self.store.set_meta(TARGETS_META, self.targets)
        self.track(intent, stored)
        stored = await self.execute(stored)
        self._count_refusal(symbol, stored, "tp")
        return stored

    # ------------------------------------------------------------------------------- robot-side exits

    def _position_key(self, symbol: str) -> str:
        pos = self.book.position(symbol)
        return pos.entry_client_order_id or f"pos{pos.entry_ms}"

    def _count_refusal(self, symbol: str, stored: StoredOrder, kind: str) -> None:
        """After a stop's (``sl``) or target's (``tp``) send: count a refusal; at the limit, the robot takes it over."""
        order = stored.order
        key = self._position_key(symbol)
        if order.status is not OrderStatus.REJECTED:
            if order.status is not OrderStatus.SUBMITTED:  # accepted (an unknown outcome counts as nothing)
                self._stop_refusals.pop((symbol, kind), None)
            return
        seen_key, n = self._stop_refusals.get((symbol, kind), (key, 0))
        n = n + 1 if seen_key == key else 1
        self._stop_refusals[(symbol, kind)] = (key, n)
        if n < STOP_REFUSALS_BEFORE_FALLBACK:
            return
        assert order.trigger_price is not None
        self._robot_side(symbol, kind, order.trigger_price, n, order.reason or "refused")

    def _crossed_at_placement(self, symbol: str, kind: str, exit_side: OrderSide, level: Decimal, price: float) -> bool:
        """Whether the price is already through the stop (``sl``) or target (``tp``) ``level`` to be placed.

        Such an order could only be refused (Bybit 110092/110093) or, sent with the wrong direction,
        leave the position unprotected; instead the robot holds the exit (robot-side), and the same
        loop iteration's ``check_robot_exits`` exits at market with the exit's reason.
        """
        direction = TriggerDirection.of_exit(exit_side, protective=kind == "sl")
        if not direction.passed(level, Decimal(repr(float(price)))):
            return False
        what = "stop-loss" if kind == "sl" else "take-profit"
        log.warning(
            "the price %s of %s is already through its %s at %s: no resting order, exit at market",
            price,
            symbol,
            what,
            level,
            extra={"symbol": symbol, "signal_id": self.book.position(symbol).signal_id},
        )
        self._hold_robot_side(symbol, kind, level, 0, f"price {price} already through the level when placing it")
        return True

    def _hold_robot_side(self, symbol: str, kind: str, level: Decimal, refusals: int, why: str) -> None:
        """Persist that the robot itself watches ``symbol``'s stop (``sl``) or target (``tp``) at ``level``."""
        record: dict[str, object] = {
            "price": str(level),
            "entry": self._position_key(symbol),
            "since_ms": self.clock.now_ms(),
            "refusals": refusals,
            "last": why[:300],
        }
        if kind == "sl":
            self.robot_stops[symbol] = record
            self.store.set_meta(ROBOT_STOPS_META, self.robot_stops)
        else:
            self.robot_targets[symbol] = record
            self.store.set_meta(ROBOT_TARGETS_META, self.robot_targets)

    def _robot_side(self, symbol: str, kind: str, level: Decimal, refusals: int, why: str) -> None:
        """The robot watches ``symbol``'s stop (``sl``) or target (``tp``) at ``level`` itself from now on."""
        last = why[:300]
        what = "stop-loss" if kind == "sl" else "take-profit"
        self._hold_robot_side(symbol, kind, level, refusals, last)
        log.error(
            "the exchange refused the %s of %s %d times (%s): robot-side %s at %s from now on, "
            "exit at market when the price reaches it",
            what,
            symbol,
            refusals,
            last,
            what,
            level,
            extra={"symbol": symbol, "signal_id": self.book.position(symbol).signal_id},
        )
        detail = f"{symbol}: {what} refused {refusals} times ({last}); robot-side {what} at {level}"
        self._fault("StopRefused" if kind == "sl" else "TargetRefused", detail, symbol)

    def robot_stop(self, symbol: str) -> Decimal | None:
        """The robot-side stop level of ``symbol``'s current position (``None``: none, or on the venue)."""
        record = self.robot_stops.get(symbol)
        if record is None:
            return None
        if record.get("entry") != self._position_key(symbol):  # a later position: the venue gets its stop again
            self.clear_robot_stop(symbol)
            return None
        return Decimal(str(record["price"]))

    def robot_target(self, symbol: str) -> Decimal | None:
        """The robot-side take-profit level of ``symbol``'s current position (``None``: none, or on the venue)."""
        record = self.robot_targets.get(symbol)
        if record is None:
            return None
        if record.get("entry") != self._position_key(symbol):
            self.clear_robot_target(symbol)
            return None
        return Decimal(str(record["price"]))

    def robot_exit_symbols(self) -> list[str]:
        """Symbols with a robot-side stop or target."""
        return list(dict.fromkeys([*self.robot_stops, *self.robot_targets]))

    def clear_robot_stop(self, symbol: str) -> None:
        self._stop_refusals.pop((symbol, "sl"), None)
        if self.robot_stops.pop(symbol, None) is not None:
            self.store.set_meta(ROBOT_STOPS_META, self.robot_stops)

    def clear_robot_target(self, symbol: str) -> None:
        self._stop_refusals.pop((symbol, "tp"), None)
        if self.robot_targets.pop(symbol, None) is not None:
            self.store.set_meta(ROBOT_TARGETS_META, self.robot_targets)

    async def cancel_stop(self, symbol: str, reason: str) -> None:
        stop = self.stop_order(symbol)
        if stop is not None and not stop.order.is_terminal:
            await self.cancel(stop, reason)

    async def cancel_exits(self, symbol: str, reason: str, price: float | None = None) -> bool:
        """Cancel the resting target, then the stop, of ``symbol``; ``True`` when none is left resting.

        The stop goes last, and only once no target rests: a cancel that fails (a passing venue
        problem, a cancel the venue does not confirm) leaves the position with its stop. Should
        the stop be gone all the same while something still rests, it is placed again at
        ``price`` before ``False`` is returned (the exit is not sent then).
        """
        for target in self._resting_targets(symbol):
            await self.cancel(target, reason)
        if not self._resting_targets(symbol):
            await self.cancel_stop(symbol, reason)
        stop = self.stop_order(symbol)
        stop_gone = stop is None or stop.order.is_terminal
        if stop_gone and not self._resting_targets(symbol):
            return True
        if stop_gone and price is not None:  # never leave an open position without its stop
            await self.ensure_stop(symbol, price, exit_pending=True)
        return False

    # ------------------------------------------------------------------------------ entries/exits

    async def run_entry(self, stored: StoredOrder, price: float, received_perf: float | None = None) -> StoredOrder:
        """Send an entry and, once it filled, rest its stop-loss and take-profit at the exchange."""
        stored = await self.execute(stored, received_perf)
        if stored.order.filled_qty > 0:
            await self.protect(stored.order.symbol, float(stored.order.avg_fill_price or price))
        return stored

    async def run_exit(self, stored: StoredOrder, price: float, received_perf: float | None = None) -> StoredOrder:
        """Cancel the position's stop and target, then send the exit for what is still held.

        An unsent exit is resized to the position first (a stop may have filled meanwhile); if the
        position is already flat, the exit is denied. If the exit does not close the position, the
        stop and target are placed again.
        """
        symbol = stored.order.symbol
        if not await self.cancel_exits(symbol, "exit", price):  # cancel not confirmed: try the exit later
            return stored
        order = stored.order
        if order.status is OrderStatus.INITIALIZED:
            qty = self.book.tradable_qty(symbol, price)
            if qty == 0:
                return self.deny(stored, "position already flat")
            if qty != order.qty:
                order = dataclasses.replace(order, qty=qty)
                stored = self._save(stored, order, "resized", f"to the position's {qty}")
        stored = await self.execute(stored, received_perf)
        if stored.order.is_terminal and self.book.open_side(symbol, price) != 0:
            await self.protect(symbol, price)
        return stored

    def update_position(self, position: PositionState) -> None:
        self.store.save_position(position)
        self.book.with_position(position)


_MAX_ATTEMPT = 1000  # a stored exit's attempt number beyond this is corrupt


def _finite_positive(value: object) -> bool:
    """``value`` (a stored number or its text) is a finite number above zero."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return False
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        return False
    return number.is_finite() and number > 0 and math.isfinite(float(number))


def _robot_side_problem(symbol: str, record: dict[str, object]) -> str | None:
    """What is wrong with a stored robot-side stop or target (``None``: nothing)."""
    if not isinstance(record.get("entry"), str) or not record.get("entry"):
        return f"entry {record.get('entry')!r}"
    if not _finite_positive(record.get("price")):
        return f"price {record.get('price')!r}"
    return None


def _trail_problem(symbol: str, record: dict[str, object]) -> str | None:
    """What is wrong with a stored trailing-stop reference (``None``: nothing)."""
    if not isinstance(record.get("entry"), str) or not record.get("entry"):
        return f"entry {record.get('entry')!r}"
    if not _finite_positive(record.get("ref")):
        return f"reference price {record.get('ref')!r}"
    bar = record.get("bar")
    if bar is not None and (isinstance(bar, bool) or not isinstance(bar, int) or bar < 0):
        return f"bar {bar!r}"
    return None


def _on_tick(value: float, tick: Decimal) -> Decimal:
    if tick <= 0:
        return Decimal(repr(value))
    return tick * round(Decimal(repr(value)) / tick)
