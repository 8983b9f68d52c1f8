"""Poison signals: no single message can stop the robot, and hostile traffic never starves valid signals.

Each message that cannot be decided or stored is dead-lettered with a bounded reason and its offset
committed; the valid signal behind it is decided. Runs against exchange-sim, on SQLite and on
PostgreSQL, with an in-memory source and with a real Kafka-protocol broker (Tansu).
"""

from __future__ import annotations

pytest_plugins = ["conftest_kafka"]

import asyncio  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from robot_harness import ListSource, build_robot, connect, new_account, sim_server  # noqa: E402

from autotrader.adapters.broker.kafka import KafkaSignalPublisher, KafkaSignalSource, parse_kafka_url  # noqa: E402
from autotrader.adapters.state import open_state_store  # noqa: E402
from autotrader.adapters.state.store import SqlStateStore  # noqa: E402
from autotrader.live.records import Outcome  # noqa: E402


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[SqlStateStore]:
    if request.param == "sqlite":
        s = open_state_store(f"sqlite:///{tmp_path / 'state.db'}")
    else:
        dsn, schema = request.getfixturevalue("postgres_schema")
        s = open_state_store(dsn, schema=schema)
    yield s
    s.close()


def signal(clock_ms: Callable[[], int], signal_id: str, **changes: Any) -> bytes:
    values: dict[str, Any] = {
        "id": signal_id,
        "symbol": "BTCUSDT",
        "ts": clock_ms(),
        "direction": "long",
        "confidence": 0.9,
        "horizon": "1h",
        "model": "m",
    }
    values.update(changes)
    return json.dumps(values).encode()


def run_with_list_source(store: SqlStateStore, messages: Callable[[Callable[[], int]], list[bytes]]) -> ListSource:
    """Start a robot on exchange-sim, push ``messages(clock)`` and take one step; returns the source."""
    with sim_server() as sim:
        exchange = connect(sim, new_account(sim))
        clock = sim.state.clock.now_ms
        source = ListSource(clock, store.seen)
        robot = build_robot(sim, exchange, store, signals=source)

        async def go() -> None:
            await robot.start()
            for raw in messages(clock):
                source.push(raw)
            await robot.step()
            await exchange.close()

        asyncio.run(go())
    return source


# ------------------------------------------------------------------------------- reproductions


def test_robot_huge_horizon_signal_dead_lettered_next_signal_decided(tmp_path: Any) -> None:
    store = open_state_store(f"sqlite:///{tmp_path / 's.db'}")
    source = run_with_list_source(
        store, lambda clock: [signal(clock, "huge", horizon="99999999999999999999w"), signal(clock, "ok")]
    )
    decisions = {d.signal_id: d for d in store.decisions()}
    assert set(decisions) == {"ok"}
    assert decisions["ok"].outcome is Outcome.ENTRY
    [dead] = store.dead_letters()
    assert dead.reason == "invalid_schema"
    assert "horizon" in dead.detail
    assert source.committed == 2
    store.close()


@pytest.mark.postgres
def test_robot_41_char_symbol_on_postgres_dead_lettered_next_signal_decided(postgres_schema: Any) -> None:
    dsn, schema = postgres_schema
    store = open_state_store(dsn, schema=schema)
    source = run_with_list_source(
        store,
        lambda clock: [
            signal(clock, "long-symbol", symbol="X" * 41),
            b'{"id": "nul\x00", "symbol": "BTCUSDT"}',  # a NUL byte: PostgreSQL text cannot hold it
            signal(clock, "ok"),
        ],
    )
    decisions = {d.signal_id: d for d in store.decisions()}
    assert set(decisions) == {"ok"}
    assert decisions["ok"].outcome is Outcome.ENTRY
    dead = store.dead_letters()
    assert [d.reason for d in dead] == ["invalid_schema", "invalid_json"]
    assert "symbol" in dead[0].detail
    assert "\x00" not in dead[1].raw
    assert source.committed == 3
    store.close()


def test_robot_decision_that_raises_dead_lettered_bounded_next_signal_decided(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_state_store(f"sqlite:///{tmp_path / 's.db'}")
    real = store.record_decision

    def record_decision(decision: Any, actions: Any = ()) -> bool:
        if decision.signal_id == "poison":
            raise OverflowError("Python int too large to convert to SQLite INTEGER " + "9" * 600_000)
        return real(decision, actions)

    monkeypatch.setattr(store, "record_decision", record_decision)
    source = run_with_list_source(store, lambda clock: [signal(clock, "poison"), signal(clock, "ok", symbol="ETHUSDT")])
    decisions = {d.signal_id: d for d in store.decisions()}
    assert set(decisions) == {"ok"}
    assert decisions["ok"].outcome is Outcome.ENTRY
    [dead] = store.dead_letters()
    assert dead.reason == "poison"
    assert dead.detail.startswith("OverflowError: Python int too large")
    assert len(dead.detail) < 500
    assert json.loads(dead.raw)["id"] == "poison"
    faults = [e for e in store.events() if e.kind == "fault"]
    assert len(faults) == 1
    assert "mem[0]@0" in faults[0].detail
    assert len(faults[0].detail) <= 1000
    assert source.committed == 2
    store.close()


def test_robot_poison_whose_dead_letter_cannot_be_stored_still_skipped(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_state_store(f"sqlite:///{tmp_path / 's.db'}")
    real = store.record_decision

    def record_decision(decision: Any, actions: Any = ()) -> bool:
        if decision.signal_id == "poison":
            raise ValueError("A string literal cannot contain NUL (0x00) characters.")
        return real(decision, actions)

    def record_dead_letter(_letter: Any) -> bool:
        raise RuntimeError("dead letters refused too")

    monkeypatch.setattr(store, "record_decision", record_decision)
    monkeypatch.setattr(store, "record_dead_letter", record_dead_letter)
    source = run_with_list_source(store, lambda clock: [signal(clock, "poison"), signal(clock, "ok")])
    assert [d.signal_id for d in store.decisions()] == ["ok"]
    [fault] = [e for e in store.events() if e.kind == "fault"]
    assert "ValueError: A string literal cannot contain NUL" in fault.detail
    assert source.committed == 2
    store.close()


# ------------------------------------------------------------------------- hostile traffic


def hostile(clock_ms: Callable[[], int], i: int) -> bytes | None:
    """Message ``i`` of the hostile mix: oversized, poison (valid JSON the store cannot hold) or malformed."""
    kind = i % 20
    ts = clock_ms()
    if kind == 0:
        return b'{"id": "' + b"x" * (20_000 + 37 * i) + b'"}'  # oversized
    if kind == 1:  # every 200th a 600 KB one
        return signal(clock_ms, f"h{i}", horizon="4h" * (300_000 if i % 200 == 1 else 10_000))
    poison: list[dict[str, Any]] = [
        {"horizon": "99999999999999999999w"},
        {"horizon": "9999999w"},
        {"symbol": "X" * 41},
        {"id": "i" * 201},
        {"model": "m" * 201},
        {"id": f" h{i}"},
        {"id": f"h{i}\u0000"},
        {"symbol": "BTC\u0000USDT"},
        {"ts": 10**30},
    ]
    if kind < 11:
        return signal(clock_ms, f"h{i}", **poison[kind - 2])
    malformed = [
        signal(clock_ms, f"h{i}", confidence=10**400),
        b"{not json",
        b"\xff\xfe\x00garbage",
        b"[" * 5000,
        b'{"id": "dup", "id": "dup2", "symbol": "BTCUSDT", "ts": %d, "direction": "long", '
        b'"confidence": 0.9, "horizon": "1h", "model": "m"}' % ts,
        b"[]",
        None,
        b'{"id": "nan", "confidence": NaN}',
        signal(clock_ms, f"h{i}")[:-7],
    ]
    return malformed[kind - 11]


@pytest.mark.slow
def test_robot_kafka_1000_hostile_messages_interleaved_valid_signals_all_decided(
    kafka_url: str, store: SqlStateStore
) -> None:
    n_valid, n_hostile = 20, 1000
    with sim_server() as sim:
        exchange = connect(sim, new_account(sim))
        clock = sim.state.clock.now_ms
        valid_ids = [f"v-{k:02d}" for k in range(n_valid)]
        with KafkaSignalPublisher(kafka_url) as publisher:
            h = 0
            for k, signal_id in enumerate(valid_ids):
                for _ in range(n_hostile // n_valid):
                    publisher.send_raw(hostile(clock, h), key=b"BTCUSDT")
                    h += 1
                symbol = "BTCUSDT" if k % 2 == 0 else "ETHUSDT"
                direction = "long" if k % 4 < 2 else "flat"
                publisher.send_raw(signal(clock, signal_id, symbol=symbol, direction=direction), key=symbol.encode())
            publisher.flush()
        group = f"robot-{uuid.uuid4().hex[:8]}"
        source = KafkaSignalSource(
            kafka_url,
            group_id=group,
            seen=store.seen,
            clock_ms=clock,
            session_timeout_ms=3000,
        )
        robot = build_robot(sim, exchange, store, signals=source)

        async def go() -> dict[str, int]:
            await robot.start()
            deadline = time.monotonic() + 45.0
            while time.monotonic() < deadline:
                await robot.step()
                if len(store.decisions()) >= n_valid and len(store.dead_letters()) >= n_hostile:
                    break
            stats = source.stats
            await robot.stop()
            await exchange.close()
            return stats

        stats = asyncio.run(go())

    decisions = store.decisions()
    assert sorted(d.signal_id for d in decisions) == valid_ids  # every valid signal decided, nothing else
    assert Counter(d.outcome for d in decisions)[Outcome.ENTRY] >= 2
    dead = store.dead_letters()
    assert len(dead) == n_hostile
    assert {d.reason for d in dead} <= {"too_large", "invalid_json", "invalid_schema"}
    assert max(len(d.raw) for d in dead) <= 4096
    assert max(len(d.detail) for d in dead) < 500
    assert stats["dead_lettered"] == n_hostile
    assert stats.get("dlq_skipped", 0) == 0
    address = parse_kafka_url(kafka_url)
    reader = Consumer({"bootstrap.servers": address.bootstrap, "group.id": group})
    try:
        [committed] = reader.committed([TopicPartition(address.topic, 0)], timeout=10.0)
    finally:
        reader.close()
    assert committed.offset == n_valid + n_hostile  # the group resumes after the last message
    assert all(e.kind != "fault" or "signal" not in e.detail for e in store.events())
