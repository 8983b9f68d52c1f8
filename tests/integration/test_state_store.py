"""The robot's state store on SQLite (WAL) and PostgreSQL: migrations, round trips, uniqueness."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import numpy as np
import pytest
import sqlalchemy as sa

from autotrader.adapters.state import open_state_store, state_url
from autotrader.adapters.state.schema import metadata
from autotrader.adapters.state.store import HEAD, current_revision
from autotrader.domain.errors import StorageError
from autotrader.domain.orders import (
    Fill,
    Order,
    OrderAccepted,
    OrderFilled,
    OrderSide,
    OrderStatus,
    OrderSubmitted,
    OrderType,
    SubmitOrder,
)
from autotrader.live.records import (
    ClosedTrade,
    DeadLetter,
    Decision,
    EquitySnapshot,
    Heartbeat,
    Intent,
    IntentKind,
    IntentStatus,
    Ledger,
    Outcome,
    PositionState,
    RiskSnapshot,
    RobotEvent,
)

T0 = 1_704_067_200_000


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = open_state_store(f"sqlite:///{tmp_path / 'state.db'}")
    else:
        dsn, schema = request.getfixturevalue("postgres_schema")
        s = open_state_store(dsn, schema=schema)
    yield s
    s.close()


def decision(signal_id: str = "s-1", outcome: Outcome = Outcome.ENTRY, cid: str | None = "c-1") -> Decision:
    return Decision(
        signal_id,
        "BTCUSDT",
        1,
        0.62,
        T0,
        "4h",
        "lgbm",
        "topic[0]@7",
        T0 + 5,
        T0 + 9,
        outcome,
        "signal",
        client_order_id=cid,
        price=42000.5,
        expires_ms=T0 + 4 * 3_600_000,
    )


def order(cid: str = "c-1") -> Order:
    cmd = SubmitOrder(cid, "BTCUSDT", "spot", OrderSide.BUY, OrderType.MARKET, Decimal("0.012345"))
    return Order.from_command(cmd, T0)


def test_state_store_migrates_to_head_and_matches_the_tables(store) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    assert current_revision(store.engine) == HEAD
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata) == []


def test_state_store_reopen_is_idempotent(store) -> None:
    store.set_meta("k", {"a": 1})
    again = (
        open_state_store(store.engine.url.render_as_string(hide_password=False)) if store.dialect == "sqlite" else None
    )
    if again is not None:
        assert again.get_meta("k") == {"a": 1}
        again.close()


def test_state_store_decision_is_unique_by_signal_id(store) -> None:
    cid = "c-1"
    intent = Intent(
        cid, IntentKind.ENTRY, "BTCUSDT", OrderSide.BUY, T0, "signal", "s-1", 0.05, 1000.0, 42000.0, 0.62, T0 + 10
    )
    assert not store.seen("s-1")
    assert store.record_decision(decision(), [(intent, order(cid))])
    assert store.seen("s-1")
    assert not store.record_decision(decision(), [(intent, order(cid))])  # a redelivery changes nothing
    [d] = store.decisions()
    assert d == decision()
    [i] = store.load_intents()
    assert i == intent
    [o] = store.load_orders()
    assert o.order == order(cid)
    assert o.kind is IntentKind.ENTRY
    assert o.signal_id == "s-1"


def test_state_store_order_state_machine_history_and_fill_once(store) -> None:
    cid = "c-1"
    intent = Intent(cid, IntentKind.ENTRY, "BTCUSDT", OrderSide.BUY, T0, signal_id="s-1")
    store.record_decision(decision(), [(intent, order(cid))])
    o = order(cid).apply(OrderSubmitted(cid, T0 + 1))
    store.save_order(o, "submitted")
    o = o.apply(OrderAccepted(cid, T0 + 2, "venue-1"))
    store.save_order(o, "accepted", "venue-1")
    fill = Fill(
        "x-1",
        cid,
        "venue-1",
        "BTCUSDT",
        "spot",
        OrderSide.BUY,
        Decimal("0.012345"),
        Decimal("42000.5"),
        Decimal("0.000012345"),
        "BTC",
        False,
        T0 + 3,
    )
    o = o.apply(OrderFilled(cid, T0 + 3, fill))
    pos = PositionState(
        "BTCUSDT",
        Decimal("0.012332655"),
        Decimal("42042.54"),
        T0 + 3,
        Decimal("0.5"),
        Decimal("0.012345"),
        Decimal("518.496"),
        entry_client_order_id=cid,
        signal_id="s-1",
    )
    ledger = Ledger(Decimal(1000), Decimal("481.5038275"), Decimal("0.5"), Decimal(0), T0 + 3)
    assert store.record_fill(fill, o, pos, ledger)
    assert not store.record_fill(fill, o, pos, ledger)  # the same execution twice: stored once
    assert store.has_fill("x-1")
    assert [f.fill for f in store.load_fills()] == [fill]
    assert store.load_positions()["BTCUSDT"] == pos
    assert store.load_ledger() == ledger
    assert store.load_order(cid).order == o
    assert store.load_orders(open_only=True) == []  # FILLED is terminal
    assert [e[1] for e in store.order_events(cid)] == ["created", "submitted", "accepted", "filled"]
    store.close_intent(cid, IntentStatus.DONE, "filled")
    assert store.load_intents() == []


def test_state_store_update_decision_only_for_its_order(store) -> None:
    store.record_decision(decision(cid="c-1"))
    store.update_decision("s-1", Outcome.SKIPPED, "order_rejected", "x", client_order_id="c-other")
    assert store.decisions()[0].outcome is Outcome.ENTRY
    store.update_decision("s-1", Outcome.SKIPPED, "order_rejected", "x", client_order_id="c-1")
    assert store.decisions()[0].outcome is Outcome.SKIPPED


def test_state_store_scores_signals_after_their_horizon(store) -> None:
    store.record_decision(decision())
    assert store.signals_to_score(T0) == []
    [due] = store.signals_to_score(T0 + 4 * 3_600_000)
    store.score_signal(due.signal_id, 42100.0)
    assert store.signals_to_score(T0 + 5 * 3_600_000) == []
    assert store.decisions()[0].correct is True


def test_state_store_trades_equity_risk_heartbeat_events(store) -> None:
    trade = ClosedTrade(
        "BTCUSDT",
        1,
        Decimal("0.01"),
        T0,
        T0 + 9,
        Decimal(40000),
        Decimal(41000),
        Decimal("0.8"),
        Decimal("9.2"),
        "signal",
        "c-1",
        "c-2",
        "s-1",
        "s-2",
        0.6,
    )
    pos = PositionState("BTCUSDT")
    store.record_decision(
        decision(cid="c-2"), [(Intent("c-2", IntentKind.EXIT, "BTCUSDT", OrderSide.SELL, T0), order("c-2"))]
    )
    fill = Fill(
        "x-9",
        "c-2",
        "v",
        "BTCUSDT",
        "spot",
        OrderSide.SELL,
        Decimal("0.01"),
        Decimal(41000),
        Decimal("0.41"),
        "USDT",
        False,
        T0 + 9,
    )
    o = order("c-2").apply(OrderSubmitted("c-2", T0)).apply(OrderFilled("c-2", T0 + 9, fill))
    o = Order(
        **{**{f: getattr(o, f) for f in o.__dataclass_fields__}, "qty": Decimal("0.01"), "status": OrderStatus.FILLED}
    )
    assert store.record_fill(fill, o, pos, Ledger(Decimal(1000), Decimal("1009.2")), trade)
    assert store.load_trades() == [trade]
    assert store.load_trades(T0 + 10) == []
    store.snapshot_equity(EquitySnapshot(T0, 1000.0, 1000.0, 0.0, 1000.0, 1000.0, 0))
    store.snapshot_equity(EquitySnapshot(T0 + 5, 1009.2, 1009.2, 0.0, 1009.2, 1000.0, 0))
    assert [e.equity for e in store.equity_series()] == [1000.0, 1009.2]
    snap = RiskSnapshot(1, 1100.0, 1050.0, T0, 990.0, T0 + 5, "", True)
    store.save_risk(snap)
    store.save_risk(snap)
    assert store.load_risk() == snap
    beat = Heartbeat("atrobot", T0, T0 + 1, 4242, "demo", "running")
    store.heartbeat(beat)
    store.heartbeat(beat)
    assert store.last_heartbeat() == beat
    store.record_event(RobotEvent(T0, "fault", "http 502", "BTCUSDT"))
    assert store.events(kinds=["fault"]) == [RobotEvent(T0, "fault", "http 502", "BTCUSDT")]
    assert store.record_dead_letter(DeadLetter("t[0]@1", T0, "invalid_json", "not JSON", "{oops"))
    assert not store.record_dead_letter(DeadLetter("t[0]@1", T0 + 9, "invalid_json", "not JSON", "{oops"))
    [letter] = store.dead_letters()
    assert (letter.reason, letter.received_ms) == ("invalid_json", T0)


def test_state_store_sqlite_uses_wal_and_a_second_process_can_read(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    writer = open_state_store(url)
    reader = open_state_store(url)
    try:
        with writer.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        writer.record_decision(decision())
        assert reader.seen("s-1")
    finally:
        writer.close()
        reader.close()


def test_state_url_prefers_flag_then_postgres_dsn_then_sqlite(tmp_path) -> None:
    assert state_url(tmp_path, None, {}) == f"sqlite:///{tmp_path / 'state.db'}"
    assert state_url(tmp_path, None, {"POSTGRES_DSN": "postgresql://u@h/db"}) == "postgresql+psycopg://u@h/db"
    assert state_url(tmp_path, "/x/y.db", {"POSTGRES_DSN": "postgresql://u@h/db"}) == "sqlite:////x/y.db"


def test_state_store_unreachable_postgres_is_one_line_without_password() -> None:
    with pytest.raises(StorageError) as info:
        open_state_store("postgresql://robot:s3cret@127.0.0.1:1/nowhere")
    assert "s3cret" not in str(info.value)
    assert "\n" not in str(info.value)


def test_state_store_tables_exist_in_the_postgres_schema(postgres_schema) -> None:
    dsn, schema = postgres_schema
    s = open_state_store(dsn, schema=schema)
    try:
        names = set(sa.inspect(s.engine).get_table_names(schema=schema))
        assert {"signals", "orders", "fills", "positions", "alembic_version"} <= names
    finally:
        s.close()


def test_state_store_windowed_reads_return_the_newest_rows_in_order(store) -> None:
    for i in range(30):
        store.record_event(RobotEvent(T0 + i, "mark", f"event {i}"))
        store.record_decision(dataclasses.replace(decision(f"s-{i}", cid=None), decided_ms=T0 + i))
    assert [e.detail for e in store.events(latest=3)] == ["event 27", "event 28", "event 29"]
    assert [d.signal_id for d in store.decisions(latest=2)] == ["s-28", "s-29"]
    assert [e.detail for e in store.events(latest=100)] == [e.detail for e in store.events()]


def test_state_store_thins_a_long_equity_series_keeping_extremes(store) -> None:
    rng = np.random.default_rng(7)
    equity = 10_000 + np.cumsum(rng.normal(0, 5, 1_000))
    equity[417] = 5_000.0  # a crash inside a bucket must survive the thinning
    equity[733] = 20_000.0
    for i, value in enumerate(equity):
        store.snapshot_equity(EquitySnapshot(T0 + i * 60_000, float(value), 0.0, 0.0, 0.0, 0.0, 0))
    kept, total = store.equity_thinned(100)
    assert total == 1_000
    assert len(kept) <= 102
    ts = [e.ts_ms for e in kept]
    assert ts == sorted(ts)
    assert (ts[0], ts[-1]) == (T0, T0 + 999 * 60_000)
    values = {e.equity for e in kept}
    assert {5_000.0, 20_000.0} <= values
    short, n = store.equity_thinned(5_000)
    assert n == 1_000
    assert [e.equity for e in short] == pytest.approx(list(equity))
