"""An in-memory venue for the order manager's unit tests, and the pieces that wire an order manager to it.

``FakeVenue`` is a spot account speaking the ``ExchangePort`` protocol: it fills market orders at
once at its price, rests conditional orders, refuses a reused client order id like Bybit (without
returning the order), and can fail the way a network does: after processing (answer lost) or
before. It also checks, on every create, that the order is already in the store in state
SUBMITTED — "persist before the call". ``TwoWayVenue`` also triggers a conditional order in either
direction (stop-losses, take-profits and trailing stops of longs and shorts).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from decimal import Decimal

from autotrader.domain import orders
from autotrader.domain.errors import OrderRejected, TemporaryExchangeError
from autotrader.domain.instrument import Instrument
from autotrader.domain.orders import ZERO, Order, OrderSide, OrderStatus, OrderType, SubmitOrder, TriggerDirection
from autotrader.live.clock import FunctionClock
from autotrader.live.order_manager import OrderManager
from autotrader.live.portfolio import Book
from autotrader.live.reconcile import Reconciler
from autotrader.live.records import Decision, Intent, IntentKind, Ledger, Outcome

T0 = 1_704_067_200_000
FEE = Decimal("0.001")
BTC = Instrument(
    "BTCUSDT", "spot", "BTC", "USDT", "Trading", Decimal("0.01"), Decimal("0.000001"), Decimal("0.000048"), Decimal(5)
)


class ProcessDied(BaseException):
    """The robot's process ends abruptly (nothing after it runs)."""


class FakeVenue:
    """A spot account in memory, speaking the ``ExchangePort`` protocol."""

    venue = "fake"

    def __init__(self, store=None, usdt: str = "10000") -> None:
        self.price = Decimal(40000)
        self.now = T0
        self.wallet = {"USDT": Decimal(usdt)}
        self.orders: dict[str, Order] = {}
        self.fill_list: list[orders.Fill] = []
        self.creates: list[str] = []
        self.store = store
        self.fail_next: str | None = None  # "after" (processed, answer lost) / "before" / "reject"
        self.fail_amend: str | None = None  # "reject" / "unsupported" / "before" / "crash"
        self.amends: list[str] = []
        self._ids = itertools.count(1)

    # ---- market data
    async def server_time_ms(self) -> int:
        return self.now

    async def instruments(self, market, symbols=None):
        return {"BTCUSDT": BTC}

    async def ticker(self, market, symbol):
        return orders.Ticker(symbol, market, self.price, None, None, self.now)

    async def candles(self, *a, **k):
        raise NotImplementedError

    async def balance(self) -> orders.AccountBalance:
        coins = {c: orders.Balance(c, v, v) for c, v in self.wallet.items()}
        return orders.AccountBalance(self.wallet["USDT"], self.wallet["USDT"], coins)

    async def positions(self, symbol=None):
        return []

    async def close(self) -> None:
        return None

    # ---- orders
    async def create_order(self, order: SubmitOrder) -> Order:
        if self.store is not None:  # persist BEFORE the call
            stored = self.store.load_order(order.client_order_id)
            assert stored is not None and stored.order.status is OrderStatus.SUBMITTED
        self.creates.append(order.client_order_id)
        mode, self.fail_next = self.fail_next, None
        if mode == "before":
            raise TemporaryExchangeError("connection reset before the request arrived")
        if mode == "reject":
            raise OrderRejected("Bybit 170131: balance insufficient")
        if order.client_order_id in self.orders:
            raise OrderRejected("Bybit 170141: duplicate clientOrderId")
        self._place(order)
        if mode == "after":
            raise TemporaryExchangeError("no answer within 2 s")
        return self._ack(order.client_order_id)

    def _ack(self, cid: str) -> Order:
        o = self.orders[cid]
        return dataclasses.replace(
            o,
            status=OrderStatus.UNTRIGGERED if o.type.is_conditional else OrderStatus.ACCEPTED,
            filled_qty=ZERO,
            avg_fill_price=None,
            fill_ids=(),
        )

    def _place(self, cmd: SubmitOrder) -> None:
        status = OrderStatus.UNTRIGGERED if cmd.type.is_conditional else OrderStatus.ACCEPTED
        order = dataclasses.replace(
            Order.from_command(cmd, self.now), status=status, venue_order_id=f"v{next(self._ids)}"
        )
        self.orders[cmd.client_order_id] = order
        if not cmd.type.is_conditional:
            self._fill(cmd.client_order_id, self.price)

    def _fill(self, cid: str, price: Decimal) -> None:
        o = self.orders[cid]
        qty = o.qty
        if o.side is OrderSide.BUY:
            fee, coin = qty * FEE, "BTC"
            self.wallet["USDT"] -= qty * price
            self.wallet["BTC"] = self.wallet.get("BTC", ZERO) + qty - fee
        else:
            fee, coin = qty * price * FEE, "USDT"
            self.wallet["BTC"] = self.wallet.get("BTC", ZERO) - qty
            self.wallet["USDT"] += qty * price - fee
        fill = orders.Fill(
            f"x{next(self._ids)}",
            cid,
            o.venue_order_id or "",
            o.symbol,
            "spot",
            o.side,
            qty,
            price,
            fee,
            coin,
            False,
            self.now,
        )
        self.fill_list.append(fill)
        self.orders[cid] = dataclasses.replace(
            o, status=OrderStatus.FILLED, filled_qty=qty, avg_fill_price=price, fees=fee, fill_ids=(fill.fill_id,)
        )

    def trigger_stops(self) -> None:
        for cid, o in list(self.orders.items()):
            if o.status is OrderStatus.UNTRIGGERED and o.trigger_price is not None and self.price <= o.trigger_price:
                self._fill(cid, self.price)

    async def request_cancel(self, market, symbol, client_order_id):
        o = self.orders.get(client_order_id)
        if o is None or not o.status.is_open:
            return False
        self.orders[client_order_id] = dataclasses.replace(o, status=OrderStatus.CANCELED)
        return True

    async def amend_trigger(self, market, symbol, client_order_id, trigger_price):
        """Bybit's ``/v5/order/amend`` of a resting conditional order's trigger price."""
        self.amends.append(client_order_id)
        mode, self.fail_amend = self.fail_amend, None
        if mode == "reject":
            raise OrderRejected("Bybit 10001: params error")
        if mode == "unsupported":
            raise NotImplementedError("this venue cannot amend orders")
        if mode == "before":
            raise TemporaryExchangeError("connection reset before the request arrived")
        if mode == "crash":
            raise ProcessDied  # the process dies while the request is in flight
        o = self.orders.get(client_order_id)
        if o is None or o.status is not OrderStatus.UNTRIGGERED:
            return False  # 110001: no such open order (filled, triggered, cancelled)
        self.orders[client_order_id] = dataclasses.replace(o, trigger_price=trigger_price)
        return True

    async def cancel_order(self, market, symbol, client_order_id):
        await self.request_cancel(market, symbol, client_order_id)
        return self.orders.get(client_order_id)

    async def open_orders(self, market, symbol=None):
        return [o for o in self.orders.values() if o.status.is_open and (symbol is None or o.symbol == symbol)]

    async def order_by_client_id(self, market, symbol, client_order_id):
        return self.orders.get(client_order_id)

    async def fills(self, market, symbol=None, since_ms=None, client_order_id=None) -> list[orders.Fill]:
        return [
            f
            for f in self.fill_list
            if client_order_id in (None, f.client_order_id) and (since_ms is None or f.ts_ms >= since_ms)
        ]


class TwoWayVenue(FakeVenue):
    """The fake venue, triggering a conditional order when the price crosses it from where it was placed.

    Its direction (rising or falling, Bybit's ``triggerDirection``) is fixed at placement: an amend
    moves the level only.
    """

    def __init__(self, state_store=None) -> None:
        super().__init__(state_store)
        self.rising: dict[str, bool] = {}
        self.refuse_conditional = 0

    async def create_order(self, order):
        if order.trigger_price is not None and self.refuse_conditional:
            self.refuse_conditional -= 1
            raise OrderRejected("Bybit 10001: params error")
        return await super().create_order(order)

    def _place(self, cmd) -> None:
        if cmd.trigger_direction is not None:  # the order's own direction, as Bybit's ``triggerDirection``
            self.rising[cmd.client_order_id] = cmd.trigger_direction is TriggerDirection.RISING
        else:
            self.rising[cmd.client_order_id] = cmd.trigger_price is not None and cmd.trigger_price > self.price
        super()._place(cmd)

    def trigger(self) -> None:
        """Fills every resting conditional order the current price has crossed."""
        for cid, o in list(self.orders.items()):
            if o.status is not OrderStatus.UNTRIGGERED or o.trigger_price is None:
                continue
            rising = self.rising[cid]
            if (rising and self.price >= o.trigger_price) or (not rising and self.price <= o.trigger_price):
                self._fill(cid, self.price)


def manager(
    store,
    venue: FakeVenue,
    stop_loss: float | None = 0.02,
    take_profit: float | None = None,
    trailing_stop: float | None = None,
) -> OrderManager:
    """An order manager for BTCUSDT spot on ``venue``, loaded from ``store`` (a restart, when it holds state)."""
    ledger = store.load_ledger() or Ledger(Decimal(10000), Decimal(10000))
    store.save_ledger(ledger)
    book = Book("spot", ledger, store.load_positions(), {"BTCUSDT": BTC})
    om = OrderManager(
        venue,
        store,
        book,
        FunctionClock(lambda: venue.now),
        market="spot",
        tag="t1",
        instruments={"BTCUSDT": BTC},
        stop_loss=stop_loss,
        take_profit=take_profit,
        trailing_stop=trailing_stop,
    )
    om.load()
    return om


def entry(om: OrderManager, store, signal_id: str = "sig-1", qty: str = "0.01"):
    """A BTCUSDT market buy for a signal, decided and stored (state INITIALIZED), not yet sent."""
    cid = om.client_id("BTCUSDT", signal_id, "entry")
    intent = Intent(
        cid,
        IntentKind.ENTRY,
        "BTCUSDT",
        OrderSide.BUY,
        T0,
        reason="signal",
        signal_id=signal_id,
        reference_price=40000.0,
        expires_ms=T0 + 3_600_000,
    )
    stored = om.new_order(intent, SubmitOrder(cid, "BTCUSDT", "spot", OrderSide.BUY, OrderType.MARKET, Decimal(qty)))
    decision = Decision(
        signal_id, "BTCUSDT", 1, 0.7, T0, "1h", "m", "test", T0, T0, Outcome.ENTRY, "signal", client_order_id=cid
    )
    assert store.record_decision(decision, [(intent, stored.order)])
    om.track(intent, stored)
    return stored


def exit_order(om: OrderManager, store, qty: str = "0.00999"):
    """A BTCUSDT market sell closing the position for a flat signal, stored and tracked, not yet sent."""
    cid = om.client_id("BTCUSDT", "sig-2", "exit")
    intent = Intent(cid, IntentKind.EXIT, "BTCUSDT", OrderSide.SELL, T0, reason="signal", signal_id="sig-2")
    stored = om.new_order(intent, SubmitOrder(cid, "BTCUSDT", "spot", OrderSide.SELL, OrderType.MARKET, Decimal(qty)))
    store.save_intent(intent, stored.order)
    om.track(intent, stored)
    return stored


def filled_long(store, **exits: float | None) -> tuple[TwoWayVenue, OrderManager]:
    """A BTCUSDT long filled at 40000 on a new ``TwoWayVenue``, its exits resting there.

    ``exits``: the order manager's ``stop_loss``, ``take_profit`` and ``trailing_stop`` (see ``manager``).
    """
    venue = TwoWayVenue(store)
    om = manager(store, venue, **exits)
    run(om.run_entry(entry(om, store), 40000.0))
    return venue, om


def closed_at(venue: TwoWayVenue, om: OrderManager, price: int):
    """The one trade in the store once the price moves to ``price``, the venue fills the resting exit it
    crossed, and ``om`` learns of the fill."""
    venue.price = Decimal(price)
    venue.trigger()
    run(om.sync_open_orders())
    [trade] = venue.store.load_trades()
    return trade


def run(coro):
    """Runs one of the order manager's coroutines to the end."""
    return asyncio.run(coro)


def reconciler(om: OrderManager, venue: FakeVenue) -> Reconciler:
    """The start-up reconciliation of ``om`` against ``venue`` (BTCUSDT at the venue's price, entries allowed)."""
    return Reconciler(
        om, ["BTCUSDT"], prices=lambda: {"BTCUSDT": float(venue.price)}, entry_block=lambda: None, first_start_ms=T0
    )
