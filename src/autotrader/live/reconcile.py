"""Crash-only recovery: start-up and recovery are ONE path, ``Reconciler.run``.

A pass, in order:

1. **Our unfinished orders** (from the store): each is looked up at the venue by its client order
   id, with its fills. Known there → its events are applied (fills adopted: what filled while the
   robot was down). Unknown there and never acknowledged → still wanted (not expired, the position
   still calls for it, entries still allowed) → sent again under the SAME id; otherwise given up
   with the reason.
2. **Fills we have not recorded** for the robot's symbols since its last fill: applied to their
   order; a fill of an order with our prefix that the store does not know is adopted as an order.
3. **Orphans**: open orders at the venue with our client-id prefix that the robot does not track
   are cancelled (orders without our prefix are left alone and reported).
4. **Positions and balance** compared with the account: a linear position must equal the venue's;
   a spot position must not exceed the account's coin balance, nor the robot's cash its USDT. A
   mismatch fails the pass (``ReconcileError`` says what differs): the robot refuses to trade.
5. **Stops and targets**: every open position gets its stop (stop-loss / trailing stop, at the level
   persisted before the crash) and its take-profit back if they are missing at the venue; a
   resting stop short of the persisted trailing level (a move interrupted by the crash) is moved
   to it (``OrderManager.align_stop``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from decimal import Decimal

from autotrader.domain.errors import AutoTraderError, TemporaryExchangeError
from autotrader.domain.orders import (
    Fill,
    Order,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderStatus,
    OrderSubmitted,
    OrderType,
)
from autotrader.live.order_manager import OrderManager
from autotrader.live.records import Intent, IntentKind, ReconcileSummary, RobotEvent, StoredOrder

log = logging.getLogger(__name__)

_TOLERANCE = Decimal("1e-9")
_FILL_LOOKBACK_MS = 3_600_000  # fills are re-read from an hour before the last recorded one


class ReconcileError(AutoTraderError):
    """Reconciliation found the account and the store disagree: refuse to trade (the message says why)."""

    exit_code = 8


class Reconciler:
    """Reconcile the robot's store with the exchange (``run`` is the whole pass)."""

    def __init__(
        self,
        om: OrderManager,
        symbols: Sequence[str],
        *,
        prices: Callable[[], dict[str, float]],
        entry_block: Callable[[], str | None],
        first_start_ms: int,
    ) -> None:
        self.om = om
        self.symbols = list(symbols)
        self.prices = prices
        self.entry_block = entry_block
        self.first_start_ms = first_start_ms
        self._notes: list[str] = []
        self._counts: dict[str, int] = {}

    def _count(self, name: str, n: int = 1) -> None:
        self._counts[name] = self._counts.get(name, 0) + n

    async def run(self, *, strict: bool = True) -> ReconcileSummary:
        """One full pass. ``strict``: raise ``ReconcileError`` on a mismatch (else report it)."""
        self._notes = []
        self._counts = {}
        om = self.om
        try:
            await self._sync_orders()
            await self._adopt_fills()
            await self._cancel_orphans()
            problems = await self._compare_account()
            if not problems:
                await self._ensure_stops()
        except TemporaryExchangeError as e:
            problems = [f"the exchange did not answer ({e})"]
        summary = ReconcileSummary(
            ok=not problems,
            adopted_fills=self._counts.get("adopted_fills", 0),
            synced_orders=self._counts.get("synced", 0),
            orphans_cancelled=self._counts.get("orphans", 0),
            stops_replaced=self._counts.get("stops", 0),
            resumed=self._counts.get("resumed", 0),
            abandoned=self._counts.get("abandoned", 0),
            problems=tuple(problems),
            notes=tuple(self._notes),
        )
        now = om.clock.now_ms()
        om.metrics.reconciliations.inc(result="ok" if summary.ok else "failed")
        detail = (
            f"ok={summary.ok} adopted_fills={summary.adopted_fills} synced={summary.synced_orders} "
            f"orphans_cancelled={summary.orphans_cancelled} stops_replaced={summary.stops_replaced} "
            f"resumed={summary.resumed} abandoned={summary.abandoned}"
        )
        if problems:
            detail += " problems: " + "; ".join(problems)
        busy = any(self._counts.values()) or problems
        if busy:
            om.store.record_event(RobotEvent(now, "reconcile", detail))
            log.info("reconciliation: %s", detail)
        if problems and strict:
            raise ReconcileError("reconciliation failed, not trading: " + "; ".join(problems))
        return summary

    # ------------------------------------------------------------------------------------- orders

    async def _sync_orders(self) -> None:
        om = self.om
        for stored in list(om.open_orders()):
            order = stored.order
            if order.status is OrderStatus.INITIALIZED:
                await self._resume(stored)
                continue
            venue = await om.exchange.order_by_client_id(order.market, order.symbol, order.client_order_id)
            fills: list[Fill] = []
            if venue is not None and (venue.filled_qty > 0 or venue.status is OrderStatus.FILLED):
                fills = await om.exchange.fills(order.market, order.symbol, client_order_id=order.client_order_id)
            if venue is None and order.status is OrderStatus.SUBMITTED:
                await self._resume(stored)
                continue
            before = len(stored.order.fill_ids)
            updated = om.apply_venue(stored, venue, fills)
            self._count("adopted_fills", len(updated.order.fill_ids) - before)
            if updated.order != stored.order:
                self._count("synced")

    def _unwanted(self, stored: StoredOrder) -> str | None:
        """Why an order that never reached the venue should not be sent now (``None``: send it)."""
        om = self.om
        intent = om.intents.get(stored.intent_id)
        symbol = stored.order.symbol
        now = om.clock.now_ms()
        price = self.prices().get(symbol)
        if intent is not None and intent.expires_ms is not None and now > intent.expires_ms:
            return "expired while the robot was down (the signal's horizon is over)"
        side = om.book.open_side(symbol, price)
        if stored.kind is IntentKind.ENTRY:
            if side != 0:
                return "already in a position"
            return self.entry_block()
        if stored.kind is IntentKind.EXIT:
            return "position already flat" if side == 0 else None
        if stored.kind in (IntentKind.STOP, IntentKind.TARGET):
            return self._unwanted_exit(stored, side)
        return "adopted orders are never re-sent"

    def _unwanted_exit(self, stored: StoredOrder, side: int) -> str | None:
        """Why a resting stop or take-profit that never reached the venue should not be sent now."""
        om = self.om
        symbol = stored.order.symbol
        if side == 0:
            return "position already flat"
        if stored.kind is IntentKind.STOP:
            if om.book.position(symbol).stop_client_order_id != stored.client_order_id:
                return "superseded by a newer stop"
        else:
            record = om.targets.get(symbol)
            if record is None or record.get("cid") != stored.client_order_id:
                return "superseded by a newer take-profit"
        if om.pending_exit(symbol):
            return "an exit is pending"
        return None

    async def _resume(self, stored: StoredOrder) -> None:
        om = self.om
        reason = self._unwanted(stored)
        if reason is not None:
            self._count("abandoned")
            if stored.order.status is OrderStatus.INITIALIZED:
                om.deny(stored, f"abandoned after restart: {reason}")
            else:  # SUBMITTED but unknown at the venue: it never arrived
                om.apply_events(
                    stored,
                    [
                        OrderCanceled(
                            stored.client_order_id, om.clock.now_ms(), f"never reached the venue; abandoned: {reason}"
                        )
                    ],
                )
            log.info(
                "order %s abandoned: %s",
                stored.client_order_id,
                reason,
                extra={
                    "symbol": stored.order.symbol,
                    "client_order_id": stored.client_order_id,
                    "signal_id": stored.signal_id,
                },
            )
            return
        self._count("resumed")
        log.info(
            "resuming order %s (%s) after restart",
            stored.client_order_id,
            stored.order.status,
            extra={
                "symbol": stored.order.symbol,
                "client_order_id": stored.client_order_id,
                "signal_id": stored.signal_id,
            },
        )
        price = self.prices().get(stored.order.symbol, 0.0)
        if stored.kind is IntentKind.EXIT:
            await om.run_exit(stored, price)
        elif stored.kind is IntentKind.ENTRY:
            await om.run_entry(stored, price)
        else:
            await om.execute(stored)

    # -------------------------------------------------------------------------------------- fills

    async def _adopt_fills(self) -> None:
        om = self.om
        last = om.store.last_fill_ms()
        since = max(self.first_start_ms, (last or 0) - _FILL_LOOKBACK_MS)
        for symbol in self.symbols:
            venue_fills = await om.exchange.fills(om.market, symbol, since_ms=since)
            for fill in venue_fills:
                if not fill.client_order_id.startswith(om.prefix) or om.store.has_fill(fill.fill_id):
                    continue
                await self._adopt_fill(fill)

    async def _adopt_fill(self, fill: Fill) -> None:
        om = self.om
        stored = om.orders.get(fill.client_order_id) or om.store.load_order(fill.client_order_id)
        if stored is None:
            venue = await om.exchange.order_by_client_id(fill.market, fill.symbol, fill.client_order_id)
            stored = self._adopted_order(fill, venue)
            self._notes.append(f"adopted unknown order {fill.client_order_id} from its fill {fill.fill_id}")
        before = len(stored.order.fill_ids)
        updated = om.apply_events(stored, [OrderFilled(fill.client_order_id, fill.ts_ms, fill)])
        self._count("adopted_fills", len(updated.order.fill_ids) - before)

    def _adopted_order(self, fill: Fill, venue: Order | None) -> StoredOrder:
        om = self.om
        now = om.clock.now_ms()
        intent = Intent(fill.client_order_id, IntentKind.ADOPTED, fill.symbol, fill.side, now, reason="adopted")
        order = Order(
            client_order_id=fill.client_order_id,
            symbol=fill.symbol,
            market=fill.market,
            side=fill.side,
            type=venue.type if venue is not None else OrderType.MARKET,
            qty=venue.qty if venue is not None else fill.qty,
            status=OrderStatus.INITIALIZED,
            trigger_price=venue.trigger_price if venue is not None else None,
            price=venue.price if venue is not None else None,
            created_ms=now,
            updated_ms=now,
        )
        stored = StoredOrder(order, intent.intent_id, IntentKind.ADOPTED)
        om.store.save_intent(intent, order)
        om.track(intent, stored)
        events = [
            OrderSubmitted(order.client_order_id, now),
            OrderAccepted(order.client_order_id, now, fill.venue_order_id),
        ]
        return om.apply_events(stored, events)

    # ------------------------------------------------------------------------------------ orphans

    async def _cancel_orphans(self) -> None:
        om = self.om
        for venue in await om.exchange.open_orders(om.market):
            if venue.symbol not in self.symbols:
                continue
            cid = venue.client_order_id
            if not cid.startswith(om.prefix):
                if cid or venue.venue_order_id:
                    self._notes.append(f"order {cid or venue.venue_order_id} on {venue.symbol} is not ours: left alone")
                continue
            known = om.orders.get(cid)
            if known is not None and not known.order.is_terminal:
                continue
            log.warning(
                "cancelling orphan order %s at the venue (%s)",
                cid,
                venue.status,
                extra={"symbol": venue.symbol, "client_order_id": cid, "signal_id": None},
            )
            try:
                await om.exchange.cancel_order(om.market, venue.symbol, cid)
            except TemporaryExchangeError as e:
                self._notes.append(f"could not cancel orphan {cid}: {e}")
                continue
            om.store.record_event(RobotEvent(om.clock.now_ms(), "orphan_cancelled", cid, venue.symbol))
            self._count("orphans")

    # ---------------------------------------------------------------------------------- positions

    async def _compare_account(self) -> list[str]:
        om = self.om
        problems: list[str] = []
        if om.market == "linear":
            venue_positions = {p.symbol: p for p in await om.exchange.positions()}
            for symbol in self.symbols:
                mine = om.book.position(symbol).qty
                theirs = venue_positions[symbol].signed_size if symbol in venue_positions else Decimal(0)
                if abs(mine - theirs) > _TOLERANCE:
                    problems.append(f"{symbol}: the store holds {mine} but the exchange position is {theirs}")
            balance = await om.exchange.balance()
            usdt = balance.coin("USDT").wallet
            if om.book.cash > usdt + Decimal("0.01"):
                problems.append(f"the robot's cash {om.book.cash:.4f} USDT exceeds the account's wallet {usdt:.4f}")
            return problems
        balance = await om.exchange.balance()
        for symbol in self.symbols:
            inst = om.instruments[symbol]
            mine = om.book.position(symbol).qty
            theirs = balance.coin(inst.base_coin).wallet
            if mine > theirs + _TOLERANCE:
                problems.append(
                    f"{symbol}: the store holds {mine} {inst.base_coin} but the account has only {theirs} "
                    "(sold outside the robot, or fills missing)"
                )
            elif theirs > mine + _TOLERANCE:
                self._notes.append(f"the account holds {theirs - mine} {inst.base_coin} more than the robot")
        usdt = balance.coin("USDT").wallet
        if om.book.cash > usdt + _TOLERANCE:
            problems.append(f"the robot's cash {om.book.cash} USDT exceeds the account's {usdt} USDT")
        return problems

    async def _ensure_stops(self) -> None:
        om = self.om
        prices = self.prices()
        for symbol in self.symbols:
            price = prices.get(symbol)
            if price is None:
                continue
            placed = await om.ensure_stop(symbol, price) is not None
            if placed or await om.align_stop(symbol, price) is not None:  # or a move a crash interrupted
                self._count("stops")
            if await om.ensure_target(symbol, price) is not None:
                self._count("stops")
