"""The order manager and reconciliation against an in-memory ``ExchangePort`` (``fake_venue.FakeVenue``).

The fake venue fills market orders at once at its price, rests conditional orders, refuses a
reused client order id like Bybit (without returning the order), and can fail the way a network
does: after processing (answer lost) or before. It also checks, on every create, that the order
is already in the store in state SUBMITTED — "persist before the call".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from decimal import Decimal

import pytest
from fake_venue import BTC, T0, FakeVenue, entry, exit_order, manager, reconciler, run

from autotrader.domain.orders import Fill, OrderSide, OrderStatus, OrderType, SubmitOrder
from autotrader.execution.ports import is_fitted
from autotrader.live.order_manager import command_of
from autotrader.live.reconcile import ReconcileError
from autotrader.live.records import IntentStatus, Outcome

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


def test_order_manager_sends_each_order_as_stored_and_marked_fitted_so_it_is_not_rounded_again(store) -> None:
    venue = FakeVenue(store)
    sent: list[SubmitOrder] = []
    place = venue.create_order

    async def recording(order: SubmitOrder):
        sent.append(order)
        return await place(order)

    venue.create_order = recording  # type: ignore[method-assign]
    om = manager(store, venue)
    stored = entry(om, store)
    run(om.run_entry(stored, 40000.0))
    stop_id = store.load_positions()["BTCUSDT"].stop_client_order_id
    assert [c.client_order_id for c in sent] == [stored.client_order_id, stop_id]
    for command in sent:
        as_stored = store.load_order(command.client_order_id).order
        assert command == command_of(as_stored, command.trigger_direction)
        assert is_fitted(command, BTC)  # a venue adapter sends it unchanged, with no price lookup


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
    stored = exit_order(om, store)
    done = run(om.run_exit(stored, 39000.0))
    assert done.order.status is OrderStatus.DENIED
    assert "flat" in done.order.reason
    assert stored.client_order_id not in venue.creates
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
    stored = exit_order(om, store)
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
