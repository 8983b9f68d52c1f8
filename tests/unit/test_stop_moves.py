"""Moving a resting trailing stop never leaves the position without protection.

Against the in-memory venue of ``test_exit_levels``, watched after every order request it
answers: while the position is open, at least one stop rests there. The stop moves by amending
its trigger price in place; a refused (or unsupported) amend places the new stop FIRST and
cancels the old one only once the new one rests; a refused new stop leaves the old one resting
and the robot watches the tighter level itself; a process that dies between persisting the new
level and the venue's answer finds the stop at that level after the restart's reconciliation.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from test_exit_levels import TwoWayVenue, manager
from test_order_manager import ProcessDied, entry

from autotrader.adapters.state import open_state_store
from autotrader.domain.orders import OrderStatus
from autotrader.live.reconcile import Reconciler
from autotrader.live.records import IntentKind

FIRST = Decimal("39600.00")  # 40000 x (1 - 1 %): the trailing level above the 3 % stop-loss
MOVED = Decimal("40590.00")  # 41000 x 0.99 after a bar with a high of 41000


@pytest.fixture
def store(tmp_path):
    s = open_state_store(f"sqlite:///{tmp_path / 'state.db'}")
    yield s
    s.close()


class WatchedVenue(TwoWayVenue):
    """The venue, counting the stops resting after every order request it answers (or refuses)."""

    def __init__(self, state_store=None) -> None:
        super().__init__(state_store)
        self.resting_after: list[tuple[str, int]] = []
        self.watching = False

    def resting_stops(self) -> list[str]:
        return [cid for cid, o in self.orders.items() if o.status is OrderStatus.UNTRIGGERED and "-sl-" in cid]

    def _observe(self, what: str) -> None:
        if self.watching:
            self.resting_after.append((what, len(self.resting_stops())))

    async def create_order(self, order):
        try:
            return await super().create_order(order)
        finally:
            self._observe(f"create {order.client_order_id}")

    async def amend_trigger(self, market, symbol, client_order_id, trigger_price):
        try:
            return await super().amend_trigger(market, symbol, client_order_id, trigger_price)
        finally:
            self._observe(f"amend {client_order_id}")

    async def request_cancel(self, market, symbol, client_order_id):
        try:
            return await super().request_cancel(market, symbol, client_order_id)
        finally:
            self._observe(f"cancel {client_order_id}")

    def unprotected(self) -> list[str]:
        return [what for what, n in self.resting_after if n < 1]


def run(coro):
    return asyncio.run(coro)


def opened(store, venue: WatchedVenue):
    om = manager(store, venue, stop_loss=0.03, trailing_stop=0.01)
    run(om.run_entry(entry(om, store), 40000.0))
    [stop] = venue.resting_stops()
    assert venue.orders[stop].trigger_price == FIRST
    venue.watching = True
    venue.price = Decimal(40900)
    return om, stop


def test_the_trailing_stop_moves_by_amending_the_resting_order(store) -> None:
    venue = WatchedVenue(store)
    om, stop = opened(store, venue)
    assert run(om.ratchet("BTCUSDT", high=41000.0, low=40000.0, price=40900.0)) == MOVED
    assert venue.amends == [stop]
    assert venue.resting_stops() == [stop]  # the same order, now at the new level
    assert venue.orders[stop].trigger_price == MOVED
    assert venue.unprotected() == []
    assert [what.split()[0] for what, _ in venue.resting_after] == ["amend"]  # no cancel, no new order
    assert store.load_order(stop).order.trigger_price == MOVED  # the stored record follows
    assert store.load_positions()["BTCUSDT"].stop_price == MOVED
    venue.price = Decimal(40500)
    venue.trigger()
    run(om.sync_open_orders())
    [trade] = store.load_trades()
    assert trade.exit_reason == "trailing_stop"


@pytest.mark.parametrize("failure", ["reject", "unsupported"])
def test_a_refused_amend_places_the_new_stop_before_cancelling_the_old(store, failure: str) -> None:
    venue = WatchedVenue(store)
    om, old = opened(store, venue)
    venue.fail_amend = failure
    assert run(om.ratchet("BTCUSDT", high=41000.0, low=40000.0, price=40900.0)) == MOVED
    [new] = venue.resting_stops()
    assert new != old
    assert venue.orders[new].trigger_price == MOVED
    assert venue.orders[old].status is OrderStatus.CANCELED
    assert [what.split()[0] for what, _ in venue.resting_after] == ["amend", "create", "cancel"]
    assert venue.unprotected() == []
    assert store.load_positions()["BTCUSDT"].stop_client_order_id == new
    assert om.robot_stop("BTCUSDT") is None


def test_a_refused_new_stop_keeps_the_old_one_resting_and_the_robot_watches_the_new_level(store) -> None:
    venue = WatchedVenue(store)
    om, old = opened(store, venue)
    venue.fail_amend = "reject"
    venue.refuse_conditional = 1
    run(om.ratchet("BTCUSDT", high=41000.0, low=40000.0, price=40900.0))
    assert venue.resting_stops() == [old]  # never cancelled
    assert venue.orders[old].trigger_price == FIRST
    assert venue.unprotected() == []
    assert om.robot_stop("BTCUSDT") == MOVED
    assert store.load_positions()["BTCUSDT"].stop_client_order_id == old  # an exit cancels the right one
    restarted = manager(store, venue, stop_loss=0.03, trailing_stop=0.01)
    assert restarted.robot_stop("BTCUSDT") == MOVED
    assert run(restarted.ensure_stop("BTCUSDT", 40900.0)) is None
    assert venue.resting_stops() == [old]


def test_a_stop_that_triggered_before_the_amend_is_reconciled_as_the_exit(store) -> None:
    venue = WatchedVenue(store)
    om, stop = opened(store, venue)
    venue.price = Decimal(39500)
    venue.trigger()  # the stop fills at the venue before the robot hears of it
    venue.price = Decimal(40900)
    run(om.ratchet("BTCUSDT", high=41000.0, low=39500.0, price=40900.0))
    assert venue.amends == [stop]  # refused: no open order by that id (Bybit 110001)
    [trade] = store.load_trades()
    assert trade.exit_reason == "trailing_stop"
    assert om.book.open_side("BTCUSDT", 40900.0) == 0
    assert venue.resting_stops() == []  # nothing placed for a closed position


def test_a_crash_between_persisting_the_level_and_the_amend_is_repaired_by_reconciliation(store) -> None:
    venue = WatchedVenue(store)
    om, stop = opened(store, venue)
    venue.fail_amend = "crash"
    with pytest.raises(ProcessDied):
        run(om.ratchet("BTCUSDT", high=41000.0, low=40000.0, price=40900.0))
    assert venue.orders[stop].trigger_price == FIRST  # the request never reached the venue
    restarted = manager(store, venue, stop_loss=0.03, trailing_stop=0.01)
    summary = run(
        Reconciler(
            restarted,
            ["BTCUSDT"],
            prices=lambda: {"BTCUSDT": float(venue.price)},
            entry_block=lambda: None,
            first_start_ms=venue.now,
        ).run()
    )
    assert summary.stops_replaced == 1
    assert venue.resting_stops() == [stop]
    assert venue.orders[stop].trigger_price == MOVED
    assert store.load_order(stop).order.trigger_price == MOVED
    assert venue.unprotected() == []


def test_a_crash_after_the_new_stop_rests_cancels_the_old_one_on_restart(store) -> None:
    venue = WatchedVenue(store)
    om, old = opened(store, venue)
    venue.fail_amend = "reject"
    original_cancel = venue.request_cancel

    async def die(*a, **k):
        raise ProcessDied

    venue.request_cancel = die  # the process dies right after the new stop was acknowledged
    with pytest.raises(ProcessDied):
        run(om.ratchet("BTCUSDT", high=41000.0, low=40000.0, price=40900.0))
    assert len(venue.resting_stops()) == 2  # over-protected for a moment, never under
    venue.request_cancel = original_cancel
    restarted = manager(store, venue, stop_loss=0.03, trailing_stop=0.01)
    run(
        Reconciler(
            restarted,
            ["BTCUSDT"],
            prices=lambda: {"BTCUSDT": float(venue.price)},
            entry_block=lambda: None,
            first_start_ms=venue.now,
        ).run()
    )
    [new] = venue.resting_stops()
    assert new != old
    assert venue.orders[new].trigger_price == MOVED
    assert not restarted.open_orders("BTCUSDT", (IntentKind.STOP,))[1:]  # one stop tracked
