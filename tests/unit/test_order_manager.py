"""The order manager and reconciliation against an in-memory ``ExchangePort``.

The fake venue fills market orders at once at its price, rests conditional orders, refuses a
reused client order id like Bybit (without returning the order), and can fail the way a network
does: after processing (answer lost) or before. It also checks, on every create, that the order
is already in the store in state SUBMITTED — "persist before the call".
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import Sequence
from decimal import Decimal

import pytest

from autotrader.adapters.state import open_state_store
from autotrader.domain.errors import OrderRejected, TemporaryExchangeError
from autotrader.domain.instrument import Instrument
from autotrader.domain.orders import (
    ZERO,
    AccountBalance,
    Balance,
    Fill,
    Order,
    OrderSide,
    OrderStatus,
    OrderType,
    SubmitOrder,
    Ticker,
)
from autotrader.live.clock import FunctionClock
from autotrader.live.order_manager import OrderManager
from autotrader.live.portfolio import Book
from autotrader.live.reconcile import ReconcileError, Reconciler
from autotrader.live.records import Decision, Intent, IntentKind, IntentStatus, Ledger, Outcome

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
        self.fill_list: list[Fill] = []
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
        return Ticker(symbol, market, self.price, None, None, self.now)

    async def candles(self, *a, **k):
        raise NotImplementedError

    async def balance(self) -> AccountBalance:
        coins = {c: Balance(c, v, v) for c, v in self.wallet.items()}
        return AccountBalance(self.wallet["USDT"], self.wallet["USDT"], coins)

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
        fill = Fill(
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

    async def fills(self, market, symbol=None, since_ms=None, client_order_id=None) -> list[Fill]:
        return [
            f
            for f in self.fill_list
            if client_order_id in (None, f.client_order_id) and (since_ms is None or f.ts_ms >= since_ms)
        ]


@pytest.fixture
def store(tmp_path):
    s = open_state_store(f"sqlite:///{tmp_path / 'state.db'}")
    yield s
    s.close()


def manager(store, venue: FakeVenue, stop_loss: float | None = 0.02) -> OrderManager:
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
    )
    om.load()
    return om


def entry(om: OrderManager, store, signal_id: str = "sig-1", qty: str = "0.01"):
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


def run(coro):
    return asyncio.run(coro)


def reconciler(om: OrderManager, venue: FakeVenue) -> Reconciler:
    return Reconciler(
        om, ["BTCUSDT"], prices=lambda: {"BTCUSDT": float(venue.price)}, entry_block=lambda: None, first_start_ms=T0
    )


# ------------------------------------------------------------------------------------------- tests


def test_order_manager_entry_persisted_before_send_then_filled_and_stop_rests(store) -> None:
    venue = FakeVenue(store)
    om = manager(store, venue)
    stored = entry(om, store)
    assert store.load_order(stored.client_order_id).order.status is OrderStatus.INITIALIZED
    done = run(om.run_entry(stored, 40000.0))
    assert done.order.status is OrderStatus.FILLED
    pos = store.load_positions()["BTCUSDT"]
    assert pos.qty == Decimal("0.01") - Decimal("0.00001")  # the fee is taken in BTC
    assert pos.qty == venue.wallet["BTC"]
    assert store.load_ledger().cash == venue.wallet["USDT"]
    stop = venue.orders[pos.stop_client_order_id]
    assert stop.status is OrderStatus.UNTRIGGERED
    assert stop.trigger_price == Decimal("39200.00")  # entry 40000 x (1 - 2 %)
    assert stop.qty == Decimal("0.009990")
    events = [e[1] for e in store.order_events(stored.client_order_id)]
    assert events[:3] == ["created", "submitted", "accepted"]
    assert "filled" in events


def test_order_manager_answer_lost_after_accept_adopts_without_second_order(store) -> None:
    venue = FakeVenue(store)
    om = manager(store, venue)
    stored = entry(om, store)
    venue.fail_next = "after"
    after = run(om.execute(stored))
    assert after.order.status is OrderStatus.SUBMITTED  # outcome unknown: nothing guessed
    assert "TemporaryExchangeError" in om.faults[0]
    resolved = run(om.refresh(after))
    assert resolved.order.status is OrderStatus.FILLED
    assert venue.creates == [stored.client_order_id]  # never sent twice
    assert len(store.load_fills()) == 1


def test_order_manager_failure_before_send_resends_same_id_on_reconcile(store) -> None:
    venue = FakeVenue(store)
    om = manager(store, venue)
    stored = entry(om, store)
    venue.fail_next = "before"
    run(om.execute(stored))
    assert venue.orders == {}
    summary = run(reconciler(om, venue).run())
    assert summary.resumed == 1
    entries = [c for c in venue.creates if "-entr-" in c]
    assert entries == [stored.client_order_id, stored.client_order_id]  # same id, never a new one
    assert store.load_order(stored.client_order_id).order.status is OrderStatus.FILLED


def test_order_manager_rejection_abandons_intent_and_marks_signal_skipped(store) -> None:
    venue = FakeVenue(store)
    om = manager(store, venue)
    stored = entry(om, store)
    venue.fail_next = "reject"
    done = run(om.execute(stored))
    assert done.order.status is OrderStatus.REJECTED
    assert om.metrics.rejections.total() == 1
    [intent] = [i for i in store.load_intents(open_only=False) if i.intent_id == stored.intent_id]
    assert intent.status is IntentStatus.ABANDONED
    [decision] = store.decisions()
    assert decision.outcome is Outcome.SKIPPED
    assert decision.reason == "order_rejected"


def test_order_manager_exit_cancels_stop_first_and_denies_when_stop_already_filled(store) -> None:
    venue = FakeVenue(store)
    om = manager(store, venue)
    run(om.run_entry(entry(om, store), 40000.0))
    venue.price = Decimal(39000)
    venue.trigger_stops()  # the stop fills at the venue; the robot has not seen it
    cid = om.client_id("BTCUSDT", "sig-2", "exit")
    intent = Intent(cid, IntentKind.EXIT, "BTCUSDT", OrderSide.SELL, T0, reason="signal", signal_id="sig-2")
    stored = om.new_order(
        intent, SubmitOrder(cid, "BTCUSDT", "spot", OrderSide.SELL, OrderType.MARKET, Decimal("0.00999"))
    )
    store.save_intent(intent, stored.order)
    om.track(intent, stored)
    done = run(om.run_exit(stored, 39000.0))
    assert done.order.status is OrderStatus.DENIED
    assert "flat" in done.order.reason
    assert cid not in venue.creates
    [trade] = store.load_trades()
    assert trade.exit_reason == "stop_loss"
    assert store.load_positions()["BTCUSDT"].qty == venue.wallet["BTC"]


def test_order_manager_exit_cancels_a_resting_stop_in_one_round_trip(store) -> None:
    venue = FakeVenue(store)
    om = manager(store, venue)
    run(om.run_entry(entry(om, store), 40000.0))
    stop_cid = store.load_positions()["BTCUSDT"].stop_client_order_id
    looked_up: list[str] = []
    lookup = venue.order_by_client_id

    async def recording_lookup(market, symbol, client_order_id):
        looked_up.append(client_order_id)
        return await lookup(market, symbol, client_order_id)

    venue.order_by_client_id = recording_lookup
    cid = om.client_id("BTCUSDT", "sig-2", "exit")
    intent = Intent(cid, IntentKind.EXIT, "BTCUSDT", OrderSide.SELL, T0, reason="signal", signal_id="sig-2")
    stored = om.new_order(
        intent, SubmitOrder(cid, "BTCUSDT", "spot", OrderSide.SELL, OrderType.MARKET, Decimal("0.00999"))
    )
    store.save_intent(intent, stored.order)
    om.track(intent, stored)
    done = run(om.run_exit(stored, 40000.0))
    assert done.order.status is OrderStatus.FILLED
    assert stop_cid not in looked_up  # the venue accepted the cancel of an untriggered stop: no lookup
    assert store.load_order(stop_cid).order.status is OrderStatus.CANCELED
    assert venue.orders[stop_cid].status is OrderStatus.CANCELED
    assert store.load_positions()["BTCUSDT"].qty == venue.wallet["BTC"]


def test_reconcile_replaces_missing_stop_with_next_attempt_id(store) -> None:
    venue = FakeVenue(store)
    om = manager(store, venue)
    run(om.run_entry(entry(om, store), 40000.0))
    first = store.load_positions()["BTCUSDT"].stop_client_order_id
    venue.orders[first] = dataclasses.replace(venue.orders[first], status=OrderStatus.CANCELED)  # it disappears
    summary = run(reconciler(om, venue).run())
    assert summary.stops_replaced == 1
    second = store.load_positions()["BTCUSDT"].stop_client_order_id
    assert second != first
    assert venue.orders[second].status is OrderStatus.UNTRIGGERED
    assert any(e.kind == "stop_replaced" for e in store.events())


def test_reconcile_after_restart_adopts_fills_and_cancels_only_our_orphans(store) -> None:
    venue = FakeVenue(store)
    om = manager(store, venue)
    stored = entry(om, store)
    venue.fail_next = "after"
    run(om.execute(stored))  # the robot "dies" with the order SUBMITTED; the venue filled it
    orphan = SubmitOrder(
        "t1-BTCUSDT-sl-orphan00001",
        "BTCUSDT",
        "spot",
        OrderSide.SELL,
        OrderType.STOP_MARKET,
        Decimal("0.001"),
        trigger_price=Decimal(30000),
    )
    foreign = dataclasses.replace(orphan, client_order_id="manual-order-1")
    venue.store = None
    venue._place(orphan)
    venue._place(foreign)
    om2 = manager(store, venue)  # a new process: everything from the store
    summary = run(reconciler(om2, venue).run())
    assert summary.ok
    assert summary.adopted_fills == 1
    assert summary.orphans_cancelled == 1
    assert venue.orders["t1-BTCUSDT-sl-orphan00001"].status is OrderStatus.CANCELED
    assert venue.orders["manual-order-1"].status is OrderStatus.UNTRIGGERED  # not ours: left alone
    assert any("not ours" in n for n in summary.notes)
    assert store.load_positions()["BTCUSDT"].qty == Decimal("0.00999")
    assert summary.stops_replaced == 1  # the position had no stop yet


def test_reconcile_abandons_expired_unsent_entry(store) -> None:
    venue = FakeVenue(store)
    om = manager(store, venue)
    stored = entry(om, store)
    venue.now = T0 + 2 * 3_600_000  # the signal's horizon (1 h) is over
    summary = run(reconciler(om, venue).run())
    assert summary.abandoned == 1
    assert venue.creates == []
    assert store.load_order(stored.client_order_id).order.status is OrderStatus.DENIED
    [decision] = store.decisions()
    assert decision.outcome is Outcome.SKIPPED
    assert "expired" in decision.detail


def test_reconcile_refuses_when_account_holds_less_than_store(store) -> None:
    venue = FakeVenue(store)
    om = manager(store, venue)
    run(om.run_entry(entry(om, store), 40000.0))
    venue.wallet["BTC"] = Decimal("0.001")  # someone sold the robot's coins
    with pytest.raises(ReconcileError, match=r"BTCUSDT: the store holds 0\.00999 BTC but the account has only"):
        run(reconciler(om, venue).run())


def test_order_manager_same_fill_twice_is_counted_once(store) -> None:
    venue = FakeVenue(store)
    om = manager(store, venue)
    done = run(om.run_entry(entry(om, store), 40000.0))
    fill = venue.fill_list[0]
    again = om.apply_events(done, [*_filled(fill)])
    assert again.order.filled_qty == Decimal("0.01")
    assert len(store.load_fills()) == 1


def _filled(fill: Fill) -> Sequence:
    from autotrader.domain.orders import OrderFilled

    return [OrderFilled(fill.client_order_id, fill.ts_ms, fill)]
