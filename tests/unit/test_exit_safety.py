"""Money safety of the robot's exits: a position never stands without its stop while no exit went out.

Against the in-memory venue (``fake_venue.TwoWayVenue``), made to fail the way a network does on
the cancels a market exit needs first.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from fake_venue import T0, TwoWayVenue, exit_order, filled_long, manager, reconciler, run

from autotrader.domain.errors import TemporaryExchangeError
from autotrader.domain.orders import OrderStatus
from autotrader.live.order_manager import OrderManager


def protected_long(store) -> tuple[TwoWayVenue, OrderManager]:
    """A filled BTCUSDT long at 40000 with its stop (-2 %) and take-profit (+5 %) resting at the venue."""
    return filled_long(store, stop_loss=0.02, take_profit=0.05)


def resting(venue: TwoWayVenue, kind: str) -> list[str]:
    """Client ids of the venue's resting orders whose id names ``kind`` (``sl`` / ``tp``)."""
    return [cid for cid, o in venue.orders.items() if o.status is OrderStatus.UNTRIGGERED and f"-{kind}-" in cid]


def fail_cancel(venue: TwoWayVenue, kind: str, mode: str) -> None:
    """The venue fails every cancel of an order whose id names ``kind``: ``error`` (a passing problem)
    or ``unconfirmed`` (it reports the order still open after the cancel)."""
    request_cancel, lookup = venue.request_cancel, venue.order_by_client_id

    async def failing_request_cancel(market, symbol, client_order_id):
        if f"-{kind}-" in client_order_id:
            if mode == "error":
                raise TemporaryExchangeError("connection reset")
            return False
        return await request_cancel(market, symbol, client_order_id)

    async def looked_up(market, symbol, client_order_id):
        return await lookup(market, symbol, client_order_id)

    venue.request_cancel = failing_request_cancel
    venue.order_by_client_id = looked_up


@pytest.mark.parametrize("failing", ["tp", "sl"])
@pytest.mark.parametrize("mode", ["error", "unconfirmed"])
def test_a_failed_cancel_before_a_market_exit_never_leaves_the_position_without_its_stop(
    store, failing: str, mode: str
) -> None:
    venue, om = protected_long(store)
    assert resting(venue, "sl") and resting(venue, "tp")
    fail_cancel(venue, failing, mode)
    stored = exit_order(om, store)
    done = run(om.run_exit(stored, 40000.0))
    sent = stored.client_order_id in venue.creates
    assert not sent and done.order.status is OrderStatus.INITIALIZED  # the exit waits for the next try
    assert store.load_positions()["BTCUSDT"].qty > 0
    assert resting(venue, "sl"), "the open position lost its stop and no exit was sent"
    assert om.faults  # the failed cancel is on record


def test_the_take_profit_is_cancelled_before_the_stop(store) -> None:
    venue, om = protected_long(store)
    order: list[str] = []
    request_cancel = venue.request_cancel

    async def recording(market, symbol, client_order_id):
        order.append(client_order_id.split("-")[-2])
        return await request_cancel(market, symbol, client_order_id)

    venue.request_cancel = recording
    done = run(om.run_exit(exit_order(om, store), 40000.0))
    assert done.order.status is OrderStatus.FILLED
    assert order == ["tp", "sl"]


def test_a_position_whose_stop_is_gone_gets_it_back_when_the_exit_cannot_go_out(store) -> None:
    venue, om = protected_long(store)
    [stop_cid] = resting(venue, "sl")
    run(om.cancel(om.stop_order("BTCUSDT"), "lost"))  # the stop is gone (cancelled at the venue)
    assert not resting(venue, "sl")
    fail_cancel(venue, "tp", "error")
    stored = exit_order(om, store)
    run(om.run_exit(stored, 40000.0))
    assert stored.client_order_id not in venue.creates
    [again] = resting(venue, "sl")
    assert again != stop_cid and venue.orders[again].trigger_price == Decimal("39200.00")


@pytest.mark.parametrize("filled", ["sl", "tp"])
def test_an_exit_that_closed_the_position_has_its_sibling_cancelled_at_once(store, filled: str) -> None:
    venue, om = protected_long(store)
    [sibling] = resting(venue, "tp" if filled == "sl" else "sl")
    venue.price = Decimal(39000) if filled == "sl" else Decimal(42100)
    venue.trigger()  # the exit fills at the venue; the robot learns it at its next look
    run(om.sync_open_orders())
    assert store.load_positions()["BTCUSDT"].qty == 0
    assert venue.orders[sibling].status is OrderStatus.CANCELED  # it cannot sell coins the robot no longer has
    assert store.load_order(sibling).order.status is OrderStatus.CANCELED


def test_a_failed_sibling_cancel_is_recorded_and_left_to_the_reconciliation(store) -> None:
    venue, om = protected_long(store)
    [target] = resting(venue, "tp")
    fail_cancel(venue, "tp", "error")
    venue.price = Decimal(39000)
    venue.trigger()
    run(om.sync_open_orders())
    assert store.load_positions()["BTCUSDT"].qty == 0
    assert any("TemporaryExchangeError" in f and target in f for f in om.faults)
    assert venue.orders[target].status is OrderStatus.UNTRIGGERED
    del venue.request_cancel, venue.order_by_client_id  # the venue answers again
    run(reconciler(om, venue).run())
    assert venue.orders[target].status is OrderStatus.CANCELED


CORRUPT = {
    "trailing_stops": {"entry": "KEY", "ref": "nan", "bar": 5},
    "take_profit_orders": {"entry": "KEY", "cid": "x", "attempt": "many"},
    "robot_side_stops": {"entry": "KEY", "price": "-39200", "since_ms": T0, "refusals": 3, "last": "refused"},
}


@pytest.mark.parametrize("meta", sorted(CORRUPT))
def test_corrupt_stored_exit_state_is_dropped_with_a_fault_and_the_position_keeps_a_resting_stop(
    store, meta: str
) -> None:
    venue, om = protected_long(store)
    om.trailing_stop = 0.03
    key = om._position_key("BTCUSDT")
    [target_cid] = resting(venue, "tp")
    if meta == "robot_side_stops":  # the robot watched the stop itself: none rests at the venue
        run(om.cancel(om.stop_order("BTCUSDT"), "refused"))
    store.set_meta(meta, {"BTCUSDT": {k: key if v == "KEY" else v for k, v in CORRUPT[meta].items()}})
    restarted = manager(store, venue, stop_loss=0.02, take_profit=0.05, trailing_stop=0.03)
    run(reconciler(restarted, venue).run())
    run(restarted.protect("BTCUSDT", 40000.0))
    faults = [e.detail for e in store.events(kinds=["fault"])]
    assert any(f.startswith(f"CorruptExitState: {meta} of BTCUSDT") for f in faults), faults
    if meta == "take_profit_orders":  # rebuilt from the stored orders: the resting target is the same one
        assert store.get_meta(meta)["BTCUSDT"] == {"entry": key, "cid": target_cid, "attempt": 0}
        assert resting(venue, "tp") == [target_cid]
    else:
        assert "BTCUSDT" not in (store.get_meta(meta) or {})
    assert resting(venue, "sl"), "the position has no resting stop"
    assert restarted.stop_price("BTCUSDT") == Decimal("39200.00")


def test_a_corrupt_take_profit_attempt_is_recovered_from_its_order_id(store) -> None:
    venue, _ = protected_long(store)
    [target] = resting(venue, "tp")
    record = store.get_meta("take_profit_orders")["BTCUSDT"]
    store.set_meta("take_profit_orders", {"BTCUSDT": {**record, "attempt": "1e999"}})
    restarted = manager(store, venue, stop_loss=0.02, take_profit=0.05)
    assert restarted.targets["BTCUSDT"]["attempt"] == 0
    run(restarted.protect("BTCUSDT", 40000.0))
    assert resting(venue, "tp") == [target]  # the same target rests on, no second one


def test_a_lost_take_profit_record_never_makes_the_next_target_reuse_an_order_id(store) -> None:
    venue, om = protected_long(store)
    [first] = resting(venue, "tp")
    om.targets.clear()  # the record is gone (lost, or written by an older version) while its order exists
    store.set_meta("take_profit_orders", {})
    run(om.ensure_target("BTCUSDT", 40000.0))
    [second] = resting(venue, "tp")
    assert second != first and venue.orders[first].status is OrderStatus.CANCELED
    assert om.targets["BTCUSDT"]["attempt"] == 1
