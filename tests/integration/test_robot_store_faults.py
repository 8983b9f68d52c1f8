"""State store failures: a store transaction that fails for a passing reason is one fault, and the robot goes on.

The store raising while a signal is decided or a bar is marked (a store double, on SQLite), and the
real PostgreSQL dropping the robot's connections or holding a lock on a table it writes: each
costs one counted, logged fault; no order goes out without its persisted decision; the resting
stop at the venue is left alone; the signal is decided once the store is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
import robot_harness
import sqlalchemy as sa
from robot_harness import MINUTE, ListSource, build_robot, connect, new_account, signal, sim_server, venue_view

from autotrader.adapters.state import SqlStateStore, StoreTimeouts, open_state_store
from autotrader.domain.errors import StorageError, StoreUnavailable
from autotrader.live.records import IntentKind, Outcome
from autotrader.live.robot import Robot

FAST = StoreTimeouts(connect_s=2, statement_ms=1_500, lock_ms=500)


def fail_once(store: SqlStateStore, monkeypatch: pytest.MonkeyPatch, method: str, when: Any = None) -> list[int]:
    """``store.method`` raises ``StoreUnavailable`` the first time ``when(*args)`` holds; returns the calls seen."""
    real = getattr(store, method)
    calls: list[int] = []

    def failing(*args: Any, **kw: Any) -> Any:
        calls.append(1)
        if len(calls) == 1 and (when is None or when(*args)):
            raise StoreUnavailable("postgresql state store: server closed the connection unexpectedly")
        return real(*args, **kw)

    monkeypatch.setattr(store, method, failing)
    return calls


def store_fault_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("state store problem")]


@dataclass
class Running:
    """A started robot on exchange-sim with an in-memory signal source, and the account it trades."""

    robot: Robot
    source: ListSource
    sim: Any
    key: str

    def venue(self) -> dict[str, Any]:
        return venue_view(self.sim, self.key)

    def push(self, signal_id: str) -> None:
        self.source.push(signal(self.sim.state.clock.now_ms, signal_id))


def run_robot(
    store: SqlStateStore, body: Callable[[Running], Awaitable[None]], **config: Any
) -> tuple[Running, list[str]]:
    """Start a robot (``config``: settings other than the harness's) on ``store`` and a new exchange-sim
    account, run ``body``; returns it and the venue's order ids."""
    with sim_server() as sim:
        account = new_account(sim)
        exchange = connect(sim, account)
        source = ListSource(sim.state.clock.now_ms, store.seen)
        robot = build_robot(sim, exchange, store, robot_harness.robot_config(**config), signals=source)
        running = Running(robot, source, sim, account[0])

        async def go() -> None:
            try:
                await running.robot.start()
                await body(running)
            finally:
                await exchange.close()

        asyncio.run(go())
        return running, running.venue()["link_ids"]


def entry_ids(store: SqlStateStore) -> list[str]:
    return [o.client_order_id for o in store.load_orders(open_only=False) if o.kind is IntentKind.ENTRY]


# ------------------------------------------------------------------------- a store double that raises


def test_a_store_failure_while_deciding_a_signal_is_one_fault_and_the_signal_is_decided_after(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_state_store(f"sqlite:///{tmp_path / 's.db'}")

    async def body(run: Running) -> None:
        fail_once(store, monkeypatch, "record_decision", lambda d, *_: d.signal_id == "a")
        run.push("a")
        with caplog.at_level(logging.ERROR, "autotrader.live.robot"):
            await run.robot.step()  # must not raise
        assert run.venue()["link_ids"] == []  # nothing sent unpersisted
        assert store.decisions() == []
        assert run.source.committed == 0  # given back, not lost
        await run.robot.step()  # the store answers again: the same signal is decided and acted on

    run, link_ids = run_robot(store, body)
    [decision] = store.decisions()
    assert (decision.signal_id, decision.outcome) == ("a", Outcome.ENTRY)
    assert decision.client_order_id in link_ids
    assert run.source.committed == 1
    assert run.robot.metrics.store_errors.get(where="signal at mem[0]@0") == 1
    [line] = store_fault_lines(caplog)
    assert "server closed the connection" in line
    [fault] = [e for e in store.events() if e.kind == "fault"]
    assert "StoreUnavailable" in fault.detail
    store.close()


def test_a_store_failure_marking_a_bar_is_one_fault_the_stop_rests_and_the_bar_is_marked_again_shortly(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_state_store(f"sqlite:///{tmp_path / 's.db'}")

    async def body(run: Running) -> None:
        run.push("a")
        await run.robot.step()  # a long, its stop resting at the venue
        resting = dict(run.venue()["open"])
        assert resting
        marks = [m.ts_ms for m in store.equity_series()]
        fail_once(store, monkeypatch, "save_risk")
        run.sim.admin.advance(MINUTE)
        with caplog.at_level(logging.ERROR, "autotrader.live.robot"):
            await run.robot.step()  # the bar close's mark fails: must not raise
        assert [m.ts_ms for m in store.equity_series()] == marks  # that bar is not marked
        assert run.venue()["open"] == resting  # the stop is untouched
        await run.robot.step()
        assert [m.ts_ms for m in store.equity_series()] == marks  # not redone at once: no busy loop
        await asyncio.sleep(run.robot._store_retry_s)
        await run.robot.step()  # the same bar, done again once the store answers
        again = len(store.equity_series())
        assert again == len(marks) + 1
        run.sim.admin.advance(MINUTE)
        await run.robot.step()
        assert len(store.equity_series()) == again + 1  # and the next bar as usual

    run, _ = run_robot(store, body)
    assert run.robot.metrics.store_errors.get(where="bar close") == 1
    assert len(store_fault_lines(caplog)) == 1
    store.close()


def test_a_store_that_stays_down_past_its_outage_limit_stops_the_robot_with_one_clear_error(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_state_store(f"sqlite:///{tmp_path / 's.db'}")

    def down(*_args: Any, **_kw: Any) -> Any:
        raise StoreUnavailable("postgresql state store: could not connect to server")

    async def body(run: Running) -> None:
        monkeypatch.setattr(store, "save_risk", down)
        for _ in range(2):  # within the limit: faults, and the robot goes on
            run.sim.admin.advance(MINUTE)
            await run.robot.step()
            await asyncio.sleep(run.robot._store_retry_s)
        with pytest.raises(StorageError, match=r"state store has failed for \d+ s .*could not connect"):
            await run.robot.step()

    run, _ = run_robot(store, body, store_outage_limit_s=1.5)
    assert run.robot.metrics.store_errors.get(where="bar close") == 3
    store.close()


# ----------------------------------------------------------------------------- the real PostgreSQL


@pytest.fixture
def pg_store(postgres_schema: tuple[str, str]) -> Iterator[tuple[SqlStateStore, str, str]]:
    """A PostgreSQL store with small timeouts in a fresh schema; yields it with the admin DSN and schema."""
    dsn, schema = postgres_schema
    store = open_state_store(dsn, schema=schema, timeouts=FAST)
    yield store, dsn, schema
    store.close()


def backend_pids(store: SqlStateStore) -> set[int]:
    """Records the server process of every connection the store checks out from now on."""
    pids: set[int] = set()
    sa.event.listen(store.engine, "checkout", lambda dbapi, _rec, _proxy: pids.add(dbapi.info.backend_pid))
    return pids


def terminate(dsn: str, pids: set[int]) -> int:
    with psycopg.connect(dsn, autocommit=True) as admin:
        return sum(bool(admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]) for pid in pids)


@pytest.mark.postgres
def test_postgres_connections_dropped_between_signals_are_replaced_without_a_fault(pg_store: Any) -> None:
    store, dsn, _schema = pg_store
    pids = backend_pids(store)

    async def body(run: Running) -> None:
        assert terminate(dsn, pids) >= 1  # PostgreSQL restarted, say: every connection of the store is gone
        run.push("a")
        await run.robot.step()

    run, link_ids = run_robot(store, body)
    [decision] = store.decisions()
    assert decision.outcome is Outcome.ENTRY
    assert entry_ids(store) == [decision.client_order_id]
    assert decision.client_order_id in link_ids
    assert run.robot.metrics.store_errors.total() == 0  # the dead connection was replaced before it was used


@contextlib.contextmanager
def table_locked(dsn: str, schema: str, table: str, hold_s: float = 8.0) -> Iterator[None]:
    """Another session holds ``table`` in ACCESS EXCLUSIVE mode, in an open transaction, until the block ends
    (``hold_s`` at most: a robot that waits on it unbounded would still get through, late)."""
    holder = psycopg.connect(dsn)
    holder.execute(f'LOCK TABLE "{schema}"."{table}" IN ACCESS EXCLUSIVE MODE')
    release = threading.Timer(hold_s, holder.rollback)
    release.start()
    try:
        yield
    finally:
        release.cancel()
        holder.rollback()
        holder.close()


async def timed_step(robot: Robot) -> float:
    t0 = time.monotonic()
    await robot.step()  # must not raise
    return time.monotonic() - t0


def decided_after_the_store_is_back(store: SqlStateStore, robot: Robot, link_ids: list[str]) -> None:
    """The signal held back by the store's fault is decided once, and its entry sent once."""
    [decision] = store.decisions()
    assert (decision.signal_id, decision.outcome) == ("a", Outcome.ENTRY)
    assert entry_ids(store) == [decision.client_order_id]
    assert link_ids.count(decision.client_order_id) == 1
    assert robot.metrics.store_errors.get(where="signal at mem[0]@0") == 1


@pytest.mark.postgres
def test_postgres_table_locked_by_another_session_times_out_as_one_fault_nothing_sent(
    pg_store: Any, caplog: pytest.LogCaptureFixture
) -> None:
    store, dsn, schema = pg_store

    async def body(run: Running) -> None:
        run.push("a")
        with table_locked(dsn, schema, "intents"), caplog.at_level(logging.ERROR, "autotrader.live.robot"):
            assert await timed_step(run.robot) < 4.0  # the decision's write waited lock_ms, not for the lock
            assert run.venue()["link_ids"] == []  # no intent, no order
            assert store.decisions() == []  # the whole decision was rolled back
        await run.robot.step()

    run, link_ids = run_robot(store, body)
    decided_after_the_store_is_back(store, run.robot, link_ids)
    [line] = store_fault_lines(caplog)
    assert "lock timeout" in line
    assert dsn not in line
    assert schema not in line


@pytest.mark.postgres
def test_postgres_connection_killed_mid_decision_is_one_fault_and_the_signal_is_decided_after(
    postgres_schema: tuple[str, str],
) -> None:
    dsn, schema = postgres_schema
    store = open_state_store(dsn, schema=schema, timeouts=StoreTimeouts(connect_s=2, statement_ms=8_000, lock_ms=6_000))
    pids = backend_pids(store)

    async def body(run: Running) -> None:
        run.push("a")
        killer = threading.Timer(0.5, terminate, (dsn, pids))  # while the decision's write waits on the lock
        with table_locked(dsn, schema, "intents"):
            killer.start()
            assert await timed_step(run.robot) < 4.0
            killer.join()
            assert run.venue()["link_ids"] == []
        await run.robot.step()  # a new connection: the signal is decided

    run, link_ids = run_robot(store, body)
    decided_after_the_store_is_back(store, run.robot, link_ids)
    store.close()


def test_a_store_failure_placing_the_stop_after_an_entry_fills_is_mended_by_a_reconcile_within_seconds(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_state_store(f"sqlite:///{tmp_path / 's.db'}")

    async def body(run: Running) -> None:
        real, failed = store.save_intent, []

        def save_intent(intent: Any, *args: Any, **kw: Any) -> Any:
            if intent.kind is IntentKind.STOP and not failed:
                failed.append(intent)
                raise StoreUnavailable("postgresql state store: server closed the connection unexpectedly")
            return real(intent, *args, **kw)

        monkeypatch.setattr(store, "save_intent", save_intent)
        run.push("a")
        await run.robot.step()  # the entry fills; persisting its stop fails: a fault, a pause, then a reconcile
        assert failed and store.load_positions()["BTCUSDT"].qty > 0
        assert list(run.venue()["open"]) == [store.load_positions()["BTCUSDT"].stop_client_order_id]

    run_robot(store, body, reconcile_interval_s=3600.0)
    assert sum(1 for e in store.events() if e.kind == "fault") == 1
    store.close()
