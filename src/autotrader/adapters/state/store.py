"""The robot's state store on SQLAlchemy Core: SQLite (WAL) by default, PostgreSQL by URL.

``open_state_store(url)`` opens (creating if needed) and migrates the store with Alembic before
returning it, so every process that opens it — the robot, ``--mode=status``, the dashboard —
sees the same schema. Each method is one transaction; a method returns once its transaction is
committed, which in SQLite's WAL mode with ``synchronous=NORMAL`` survives a process crash
(``kill -9``; a power cut may lose the last commits, use ``synchronous=FULL`` via
``sqlite_synchronous="FULL"`` where that matters).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from autotrader.adapters.state import schema as t
from autotrader.domain.errors import StorageError, StoreUnavailable
from autotrader.domain.orders import Fill, Order, OrderSide, OrderStatus, OrderType, TimeInForce
from autotrader.domain.redact import redact, remember_secret, scrub
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
    StoredFill,
    StoredOrder,
)

log = logging.getLogger(__name__)

_MIGRATIONS = Path(__file__).with_name("migrations")
HEAD = "0002_paper_wallet"
_ORDER_UPDATE = t.orders.update().where(t.orders.c.client_order_id == sa.bindparam("b_cid"))
_MIGRATION_LOCK = 0x6175_746F_7374_6174  # "autostat"


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _d(value: str | None) -> Decimal | None:
    return None if value in (None, "") else Decimal(value)


def _d0(value: str | None) -> Decimal:
    return Decimal(value) if value not in (None, "") else Decimal(0)


def state_url(home: Path, url: str | None = None, env: dict[str, str] | None = None) -> str:
    """The store's SQLAlchemy URL: ``url``, else ``POSTGRES_DSN``, else ``sqlite:///$HOME/state.db``."""
    env = dict(os.environ) if env is None else env
    if url:
        return _normalise(url)
    if dsn := env.get("POSTGRES_DSN"):
        return _normalise(dsn)
    return f"sqlite:///{home / 'state.db'}"


def _normalise(url: str) -> str:
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith(("sqlite:", "postgresql+psycopg:")):
        return url
    if "=" in url and "://" not in url:  # a libpq key=value DSN (quoted values included)
        return _from_conninfo(url)
    if "://" not in url:  # a path
        return f"sqlite:///{Path(url).expanduser()}"
    raise StorageError(f"state store URL {_redact(url)!r}: expected sqlite:///PATH, a path, or postgresql://...")


def _from_conninfo(dsn: str) -> str:
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = {k: str(v) for k, v in conninfo_to_dict(dsn).items()}
    except ProgrammingError as e:
        raise StorageError(_redact(f"state store DSN {dsn!r}: {_first_line(e)}")) from None
    for key in ("password", "sslpassword"):
        remember_secret(params.get(key))
    url = sa.engine.URL.create("postgresql+psycopg", query=params)
    return url.render_as_string(hide_password=False)


def _redact(url: str) -> str:
    return redact(url)


def _remember_password(url: str) -> None:
    """Mask the store's password (URL or ``?password=`` form) in every text from now on."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return
    remember_secret(parsed.password if isinstance(parsed.password, str) else None)
    for key in ("password", "sslpassword"):
        value = parsed.query.get(key)
        for item in (value,) if isinstance(value, str) else value or ():
            remember_secret(item)


def _private_file(path: Path) -> None:
    """Create ``path`` (the SQLite file) readable by its owner only; tighten an existing one we own.

    SQLite creates ``-wal`` and ``-shm`` with the database file's permissions, so they follow.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        st = path.stat()
        if st.st_mode & 0o077 and st.st_uid == os.getuid():
            os.chmod(path, 0o600)
            for suffix in ("-wal", "-shm"):
                side = path.with_name(path.name + suffix)
                if side.exists():
                    os.chmod(side, 0o600)
    else:
        os.close(fd)


def _first_line(error: BaseException | None) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


_WAL_BACKSTOP_PAGES = 20_000  # ~80 MB of WAL before a commit checkpoints by itself


def _create_engine(url: str, schema: str | None, sqlite_synchronous: str, timeouts: StoreTimeouts) -> Engine:
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise StorageError(f"state store URL {_redact(url)!r}: not a database URL") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
            _private_file(Path(parsed.database))
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={sqlite_synchronous}")
            # Checkpoints (which fsync) run from heartbeat(), off the order path; this is the backstop.
            cur.execute(f"PRAGMA wal_autocheckpoint={_WAL_BACKSTOP_PAGES}")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    if parsed.get_backend_name() != "postgresql":
        raise StorageError(f"state store: unsupported database {parsed.get_backend_name()!r} (SQLite or PostgreSQL)")
    # every wait is bounded: connecting, a statement, a lock; a connection the server dropped is replaced
    options = [str(parsed.query["options"])] if isinstance(parsed.query.get("options"), str) else []
    options += [f"-c statement_timeout={timeouts.statement_ms}", f"-c lock_timeout={timeouts.lock_ms}"]
    if schema:
        options.append(f"-c search_path={schema}")
    connect_args: dict[str, Any] = {
        "connect_timeout": timeouts.connect_s,
        "application_name": "autotrader-robot",
        "options": " ".join(options),
    }
    return sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True, pool_timeout=timeouts.connect_s)


def migrate(engine: Engine) -> None:
    """Bring the store's schema to the newest revision (Alembic, programmatically)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # two processes opening a new store: one migrates
            conn.exec_driver_sql("SET LOCAL statement_timeout = 0")  # however long the other's migration takes
            conn.exec_driver_sql("SET LOCAL lock_timeout = 0")
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # SQLite: take the write lock before looking
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@dataclass(frozen=True)
class StoreTimeouts:
    """How long a PostgreSQL store waits: to connect (s), for one statement and for one lock (ms).

    A wait cut short fails that transaction (``StoreUnavailable``); the robot's loop goes on.
    """

    connect_s: int = 5
    statement_ms: int = 10_000
    lock_ms: int = 5_000


def open_state_store(
    url: str,
    *,
    schema: str | None = None,
    sqlite_synchronous: str = "NORMAL",
    timeouts: StoreTimeouts | None = None,  # default: ``StoreTimeouts()``
) -> SqlStateStore:
    """Open the store at ``url`` and migrate it. ``StorageError`` (one line, no password) on failure."""
    _remember_password(url)
    engine = _create_engine(url, schema, sqlite_synchronous, timeouts or StoreTimeouts())
    try:
        if schema and engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema.replace(chr(34), chr(34) * 2)}"')
        migrate(engine)
    except sa.exc.DBAPIError as e:
        engine.dispose()
        raise StorageError(_redact(f"state store {url}: {_first_line(e.orig)}")) from None
    return SqlStateStore(engine, url)


class SqlStateStore:
    """``autotrader.live.ports.StateStore`` on SQLAlchemy Core."""

    def __init__(self, engine: Engine, url: str = "") -> None:
        self.engine = engine
        self._stmts: dict[tuple[str, str], Any] = {}
        self.url = _redact(url) if url else str(engine.url)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as e:  # lost, timed out, locked, full: nothing kept
            raise StoreUnavailable(_redact(f"{self.dialect} state store: {_first_line(e.orig)}")) from scrub(e)
        except sa.exc.TimeoutError as e:  # no pooled connection came free in time
            raise StoreUnavailable(f"{self.dialect} state store: {_first_line(e)}") from None

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------------------------ upserts

    def _insert_fn(self) -> Any:
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert

    def _upsert(self, conn: Connection, table: sa.Table, values: dict[str, Any], keys: Sequence[str]) -> None:
        """Insert or update the row with ``keys`` (``values`` holds every column); one cached statement per table."""
        stmt = self._stmts.get(("upsert", table.name))
        if stmt is None:
            ins = self._insert_fn()(table)
            update = {c.name: ins.excluded[c.name] for c in table.columns if c.name not in keys}
            stmt = self._stmts[("upsert", table.name)] = ins.on_conflict_do_update(
                index_elements=list(keys), set_=update
            )
        conn.execute(stmt, values)

    def _insert_ignore(self, conn: Connection, table: sa.Table, values: dict[str, Any], keys: Sequence[str]) -> bool:
        """Insert unless a row with the same ``keys`` exists; True when inserted."""
        stmt = self._stmts.get(("ignore", table.name))
        if stmt is None:
            ins = self._insert_fn()(table).on_conflict_do_nothing(index_elements=list(keys))
            stmt = self._stmts[("ignore", table.name)] = ins.returning(table.c[keys[0]])
        return conn.execute(stmt, values).first() is not None

    # ------------------------------------------------------------------------------------ signals

    def seen(self, signal_id: str) -> bool:
        with self._tx() as conn:
            row = conn.execute(sa.select(t.signals.c.id).where(t.signals.c.signal_id == signal_id)).first()
        return row is not None

    def record_decision(self, decision: Decision, actions: Sequence[tuple[Intent, Order | None]] = ()) -> bool:
        with self._tx() as conn:
            if not self._insert_ignore(conn, t.signals, _decision_row(decision), ["signal_id"]):
                return False  # already decided (a redelivery): keep the first decision
            for intent, order in actions:
                conn.execute(t.intents.insert(), _intent_row(intent))
                if order is not None:
                    event = "created" if order.status is OrderStatus.INITIALIZED else f"created, {order.status}"
                    self._write_order(conn, order, event, "", intent.intent_id)
        return True

    def update_decision(
        self, signal_id: str, outcome: Outcome, reason: str, detail: str = "", *, client_order_id: str | None = None
    ) -> None:
        q = t.signals.update().where(t.signals.c.signal_id == signal_id)
        if client_order_id is not None:
            q = q.where(t.signals.c.client_order_id == client_order_id)
        with self._tx() as conn:
            conn.execute(q.values(outcome=str(outcome), reason=reason, detail=redact(detail)))

    def signals_to_score(self, until_ms: int, limit: int = 1000) -> list[Decision]:
        q = (
            sa.select(t.signals)
            .where(
                t.signals.c.horizon_price.is_(None),
                t.signals.c.expires_ms <= until_ms,
                t.signals.c.expires_ms > 0,
                t.signals.c.outcome.in_([str(Outcome.ENTRY), str(Outcome.EXIT)]),
            )
            .order_by(t.signals.c.id)
            .limit(limit)
        )
        with self._tx() as conn:
            return [_decision_of(r) for r in conn.execute(q).mappings()]

    def score_signal(self, signal_id: str, horizon_price: float) -> None:
        with self._tx() as conn:
            conn.execute(
                t.signals.update().where(t.signals.c.signal_id == signal_id).values(horizon_price=horizon_price)
            )

    def record_dead_letter(self, letter: DeadLetter) -> bool:
        """Record an invalid message once per source position (a redelivery is ignored)."""
        row = {
            "source": letter.source,
            "received_ms": letter.received_ms,
            "reason": letter.reason,
            "detail": letter.detail,
            "raw": letter.raw,
        }
        with self._tx() as conn:
            return self._insert_ignore(conn, t.dead_letters, row, ["source"])

    def decisions(self, since_ms: int | None = None, latest: int | None = None) -> list[Decision]:
        """Decisions in the order they were made; ``latest``: only the newest that many (one indexed read)."""
        q = sa.select(t.signals).order_by(t.signals.c.id.desc() if latest is not None else t.signals.c.id)
        if since_ms is not None:
            q = q.where(t.signals.c.decided_ms >= since_ms)
        if latest is not None:
            q = q.limit(latest)
        with self._tx() as conn:
            rows = [_decision_of(r) for r in conn.execute(q).mappings()]
        return rows[::-1] if latest is not None else rows

    def dead_letters(self, since_ms: int | None = None) -> list[DeadLetter]:
        q = sa.select(t.dead_letters).order_by(t.dead_letters.c.id)
        if since_ms is not None:
            q = q.where(t.dead_letters.c.received_ms >= since_ms)
        with self._tx() as conn:
            return [
                DeadLetter(r["source"], r["received_ms"], r["reason"], r["detail"], r["raw"])
                for r in conn.execute(q).mappings()
            ]

    # ------------------------------------------------------------------------------ intents/orders

    def save_intent(self, intent: Intent, order: Order | None = None, position: PositionState | None = None) -> None:
        with self._tx() as conn:
            conn.execute(t.intents.insert(), _intent_row(intent))
            if order is not None:
                self._write_order(conn, order, "created", "", intent.intent_id)
            if position is not None:
                self._upsert(conn, t.positions, _position_row(position), ["symbol"])

    def close_intent(self, intent_id: str, status: IntentStatus, reason: str = "") -> None:
        with self._tx() as conn:
            conn.execute(
                t.intents.update()
                .where(t.intents.c.intent_id == intent_id)
                .values(status=str(status), status_reason=reason)
            )

    def load_intents(self, open_only: bool = True) -> list[Intent]:
        q = sa.select(t.intents).order_by(t.intents.c.created_ms)
        if open_only:
            q = q.where(t.intents.c.status == str(IntentStatus.OPEN))
        with self._tx() as conn:
            return [_intent_of(r) for r in conn.execute(q).mappings()]

    def _write_order(self, conn: Connection, order: Order, event: str, detail: str, intent_id: str | None) -> None:
        row = _order_row(order)
        if intent_id is not None:
            row["intent_id"] = intent_id
            self._upsert(conn, t.orders, row, ["client_order_id"])
        else:
            result = conn.execute(_ORDER_UPDATE, {**row, "b_cid": order.client_order_id})
            if not result.rowcount:
                raise StorageError(f"order {order.client_order_id} is not in the store (no intent given)")
        conn.execute(
            t.order_events.insert(),
            {
                "client_order_id": order.client_order_id,
                "ts_ms": order.updated_ms,
                "event": event,
                "status": str(order.status),
                "detail": redact(detail),
            },
        )

    def save_order(self, order: Order, event: str, detail: str = "", *, intent_id: str | None = None) -> None:
        with self._tx() as conn:
            self._write_order(conn, order, event, detail, intent_id)

    def _orders_query(self) -> sa.Select[Any]:
        return sa.select(t.orders, t.intents.c.kind, t.intents.c.signal_id).join(
            t.intents, t.intents.c.intent_id == t.orders.c.intent_id
        )

    def load_orders(self, open_only: bool = True) -> list[StoredOrder]:
        q = self._orders_query().order_by(t.orders.c.created_ms, t.orders.c.client_order_id)
        if open_only:
            q = q.where(t.orders.c.status.in_([s.value for s in OrderStatus if not s.is_terminal]))
        with self._tx() as conn:
            return [_stored_order_of(r) for r in conn.execute(q).mappings()]

    def load_order(self, client_order_id: str) -> StoredOrder | None:
        q = self._orders_query().where(t.orders.c.client_order_id == client_order_id)
        with self._tx() as conn:
            row = conn.execute(q).mappings().first()
        return _stored_order_of(row) if row is not None else None

    def order_events(self, client_order_id: str) -> list[tuple[int, str, str, str]]:
        q = (
            sa.select(t.order_events.c.ts_ms, t.order_events.c.event, t.order_events.c.status, t.order_events.c.detail)
            .where(t.order_events.c.client_order_id == client_order_id)
            .order_by(t.order_events.c.id)
        )
        with self._tx() as conn:
            return [tuple(r) for r in conn.execute(q)]  # type: ignore[misc]

    # -------------------------------------------------------------------------- fills / positions

    def record_fill(
        self,
        fill: Fill,
        order: Order,
        position: PositionState,
        ledger: Ledger,
        trade: ClosedTrade | None = None,
    ) -> bool:
        with self._tx() as conn:
            fresh = self._insert_ignore(conn, t.fills, _fill_row(fill, ledger.updated_ms), ["fill_id"])
            if not fresh:
                return False
            self._write_order(conn, order, "filled", f"{fill.fill_id} {fill.qty}@{fill.price}", None)
            self._upsert(conn, t.positions, _position_row(position), ["symbol"])
            self._upsert(conn, t.ledger, _ledger_row(ledger), ["id"])
            if trade is not None:
                conn.execute(t.trades.insert(), _trade_row(trade))
        return True

    def last_fill_ms(self) -> int | None:
        with self._tx() as conn:
            return conn.execute(sa.select(sa.func.max(t.fills.c.ts_ms))).scalar()

    def has_fill(self, fill_id: str) -> bool:
        with self._tx() as conn:
            return conn.execute(sa.select(t.fills.c.fill_id).where(t.fills.c.fill_id == fill_id)).first() is not None

    def load_fills(self, since_ms: int | None = None) -> list[StoredFill]:
        q = sa.select(t.fills).order_by(t.fills.c.ts_ms, t.fills.c.recorded_ms)
        if since_ms is not None:
            q = q.where(t.fills.c.ts_ms >= since_ms)
        with self._tx() as conn:
            return [StoredFill(_fill_of(r), r["recorded_ms"]) for r in conn.execute(q).mappings()]

    def save_position(self, position: PositionState) -> None:
        with self._tx() as conn:
            self._upsert(conn, t.positions, _position_row(position), ["symbol"])

    def load_positions(self) -> dict[str, PositionState]:
        with self._tx() as conn:
            return {r["symbol"]: _position_of(r) for r in conn.execute(sa.select(t.positions)).mappings()}

    def load_ledger(self) -> Ledger | None:
        with self._tx() as conn:
            r = conn.execute(sa.select(t.ledger).where(t.ledger.c.id == 1)).mappings().first()
        if r is None:
            return None
        return Ledger(_d0(r["capital"]), _d0(r["cash"]), _d0(r["fees"]), _d0(r["realised_pnl"]), r["updated_ms"])

    def save_ledger(self, ledger: Ledger) -> None:
        with self._tx() as conn:
            self._upsert(conn, t.ledger, _ledger_row(ledger), ["id"])

    def load_trades(self, since_ms: int | None = None) -> list[ClosedTrade]:
        q = sa.select(t.trades).order_by(t.trades.c.id)
        if since_ms is not None:
            q = q.where(t.trades.c.exit_ms >= since_ms)
        with self._tx() as conn:
            return [_trade_of(r) for r in conn.execute(q).mappings()]

    # ------------------------------------------------------------------- risk / equity / heartbeat

    def save_risk(self, snapshot: RiskSnapshot) -> None:
        values = {
            "id": 1,
            "state": snapshot.state,
            "peak_equity": snapshot.peak_equity,
            "day_start_equity": snapshot.day_start_equity,
            "day_start_ms": snapshot.day_start_ms,
            "last_equity": snapshot.last_equity,
            "updated_ms": snapshot.updated_ms,
            "halted_reason": snapshot.halted_reason,
            "kill_switch": snapshot.kill_switch,
        }
        with self._tx() as conn:
            self._upsert(conn, t.risk_state, values, ["id"])

    def load_risk(self) -> RiskSnapshot | None:
        with self._tx() as conn:
            r = conn.execute(sa.select(t.risk_state).where(t.risk_state.c.id == 1)).mappings().first()
        if r is None:
            return None
        return RiskSnapshot(
            state=r["state"],
            peak_equity=r["peak_equity"],
            day_start_equity=r["day_start_equity"],
            day_start_ms=r["day_start_ms"],
            last_equity=r["last_equity"],
            updated_ms=r["updated_ms"],
            halted_reason=r["halted_reason"],
            kill_switch=bool(r["kill_switch"]),
        )

    def snapshot_equity(self, snapshot: EquitySnapshot) -> None:
        with self._tx() as conn:
            conn.execute(
                t.equity.insert(),
                {
                    "ts_ms": snapshot.ts_ms,
                    "equity": snapshot.equity,
                    "cash": snapshot.cash,
                    "exposure": snapshot.exposure,
                    "peak_equity": snapshot.peak_equity,
                    "day_start_equity": snapshot.day_start_equity,
                    "state": snapshot.state,
                },
            )

    def equity_series(self, since_ms: int | None = None) -> list[EquitySnapshot]:
        q = sa.select(t.equity).order_by(t.equity.c.ts_ms, t.equity.c.id)
        if since_ms is not None:
            q = q.where(t.equity.c.ts_ms >= since_ms)
        with self._tx() as conn:
            return [
                EquitySnapshot(
                    r["ts_ms"],
                    r["equity"],
                    r["cash"],
                    r["exposure"],
                    r["peak_equity"],
                    r["day_start_equity"],
                    r["state"],
                )
                for r in conn.execute(q).mappings()
            ]

    def equity_thinned(self, max_points: int) -> tuple[list[EquitySnapshot], int]:
        """At most about ``max_points`` snapshots and the total count, thinned in the database.

        A short series comes back whole. A long one keeps its first and last snapshot and, of each of
        ``max_points // 2`` equal-count buckets in between, the lowest and the highest equity (in time
        order), so peaks and drawdowns survive; a year of minute snapshots is never read whole.
        """
        e = t.equity
        with self._tx() as conn:
            total = conn.execute(sa.select(sa.func.count()).select_from(e)).scalar_one()
            if total <= max_points:
                return self.equity_series(), total
            buckets = max(1, (max_points - 2) // 2)
            numbered = sa.select(
                e.c.id,
                e.c.equity,
                (sa.func.row_number().over(order_by=(e.c.ts_ms, e.c.id)) - 1).label("n"),
            ).subquery()
            bucket = (numbered.c.n * buckets // total).label("bucket")
            ranked = sa.select(
                numbered.c.id,
                sa.func.row_number().over(partition_by=bucket, order_by=(numbered.c.equity, numbered.c.n)).label("lo"),
                sa.func.row_number()
                .over(partition_by=bucket, order_by=(numbered.c.equity.desc(), numbered.c.n))
                .label("hi"),
                numbered.c.n,
            ).subquery()
            keep = sa.select(ranked.c.id).where(
                sa.or_(ranked.c.lo == 1, ranked.c.hi == 1, ranked.c.n == 0, ranked.c.n == total - 1)
            )
            q = sa.select(e).where(e.c.id.in_(keep)).order_by(e.c.ts_ms, e.c.id)
            rows = conn.execute(q).mappings().all()
        kept = [
            EquitySnapshot(
                r["ts_ms"], r["equity"], r["cash"], r["exposure"], r["peak_equity"], r["day_start_equity"], r["state"]
            )
            for r in rows
        ]
        return kept, total

    def heartbeat(self, beat: Heartbeat) -> None:
        values = {
            "robot": beat.robot,
            "ts_ms": beat.ts_ms,
            "wall_ms": beat.wall_ms,
            "pid": beat.pid,
            "mode": beat.mode,
            "status": beat.status,
            "detail": beat.detail,
        }
        with self._tx() as conn:
            self._upsert(conn, t.heartbeat, values, ["robot"])
        if self.dialect == "sqlite":  # move the WAL into the database now, not inside an order's commit
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def last_heartbeat(self) -> Heartbeat | None:
        with self._tx() as conn:
            r = conn.execute(sa.select(t.heartbeat).order_by(t.heartbeat.c.wall_ms.desc())).mappings().first()
        if r is None:
            return None
        return Heartbeat(r["robot"], r["ts_ms"], r["wall_ms"], r["pid"], r["mode"], r["status"], r["detail"])

    def record_event(self, event: RobotEvent) -> None:
        with self._tx() as conn:
            conn.execute(
                t.events.insert(),
                {"ts_ms": event.ts_ms, "kind": event.kind, "symbol": event.symbol, "detail": redact(event.detail)},
            )

    def events(
        self, since_ms: int | None = None, kinds: Sequence[str] | None = None, latest: int | None = None
    ) -> list[RobotEvent]:
        """Events in the order they happened; ``latest``: only the newest that many (one indexed read)."""
        q = sa.select(t.events).order_by(t.events.c.id.desc() if latest is not None else t.events.c.id)
        if since_ms is not None:
            q = q.where(t.events.c.ts_ms >= since_ms)
        if kinds:
            q = q.where(t.events.c.kind.in_(list(kinds)))
        if latest is not None:
            q = q.limit(latest)
        with self._tx() as conn:
            rows = [RobotEvent(r["ts_ms"], r["kind"], r["detail"], r["symbol"]) for r in conn.execute(q).mappings()]
        return rows[::-1] if latest is not None else rows

    def set_meta(self, key: str, value: Any) -> None:
        with self._tx() as conn:
            self._upsert(conn, t.meta, {"key": key, "value": json.dumps(value, default=str)}, ["key"])

    def get_meta(self, key: str) -> Any:
        with self._tx() as conn:
            r = conn.execute(sa.select(t.meta.c.value).where(t.meta.c.key == key)).first()
        return json.loads(r[0]) if r is not None else None

    def claim_meta(self, key: str, value: Any) -> Any:
        """Set ``key`` to ``value`` unless it is set already; returns the value that holds (first writer wins)."""
        with self._tx() as conn:
            self._insert_ignore(conn, t.meta, {"key": key, "value": json.dumps(value, default=str)}, ["key"])
            r = conn.execute(sa.select(t.meta.c.value).where(t.meta.c.key == key)).first()
        return json.loads(r[0]) if r is not None else value

    # ------------------------------------------------------------------------------ paper wallet

    def save_paper_wallet(self, name: str, state: dict[str, Any], market_ms: int) -> None:
        """Store the paper wallet ``name`` (balances, orders, fills, positions) as of market time ``market_ms``."""
        row = {
            "name": name,
            "market_ms": int(market_ms),
            "updated_ms": time.time_ns() // 1_000_000,
            "state": json.dumps(state, default=str, separators=(",", ":")),
        }
        with self._tx() as conn:
            self._upsert(conn, t.paper_wallets, row, ["name"])

    def load_paper_wallet(self, name: str) -> dict[str, Any] | None:
        with self._tx() as conn:
            r = conn.execute(sa.select(t.paper_wallets.c.state).where(t.paper_wallets.c.name == name)).first()
        return json.loads(r[0]) if r is not None else None

    def reset_trading_state(self) -> dict[str, int]:
        """Forget every paper wallet, signal, order, fill, position, trade, ledger, risk and equity row.

        What ``autotrade --reset-paper`` does before a demo starts over; the meta rows that are not
        trading state (the replay clock, signal-engine checkpoints) stay. Returns rows deleted per table.
        """
        tables = (
            t.order_events, t.fills, t.orders, t.intents, t.signals, t.dead_letters, t.positions, t.trades,
            t.ledger, t.risk_state, t.equity, t.heartbeat, t.events, t.paper_wallets,
        )  # fmt: skip
        deleted: dict[str, int] = {}
        with self._tx() as conn:
            for table in tables:
                deleted[table.name] = int(conn.execute(sa.delete(table)).rowcount or 0)
            conn.execute(
                sa.delete(t.meta).where(t.meta.c.key.in_(["config", "limits", "first_start_ms", "risk_usage"]))
            )
        return deleted

    def counts(self) -> dict[str, int]:
        """Rows per table (for tests and ``--mode=status``)."""
        out = {}
        with self._tx() as conn:
            for table in (t.signals, t.dead_letters, t.intents, t.orders, t.fills, t.trades, t.equity, t.events):
                out[table.name] = int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
        return out


# ------------------------------------------------------------------------------------- row mapping


def _decision_row(d: Decision) -> dict[str, Any]:
    return {
        "signal_id": d.signal_id,
        "symbol": d.symbol,
        "direction": d.direction,
        "confidence": d.confidence,
        "signal_ts": d.signal_ts,
        "horizon": d.horizon,
        "model": d.model,
        "source": d.source,
        "received_ms": d.received_ms,
        "decided_ms": d.decided_ms,
        "outcome": str(d.outcome),
        "reason": d.reason,
        "detail": d.detail,
        "client_order_id": d.client_order_id,
        "raw": d.raw,
        "price": d.price,
        "expires_ms": d.expires_ms,
        "horizon_price": d.horizon_price,
    }


def _decision_of(r: Any) -> Decision:
    return Decision(
        signal_id=r["signal_id"],
        symbol=r["symbol"],
        direction=r["direction"],
        confidence=r["confidence"],
        signal_ts=r["signal_ts"],
        horizon=r["horizon"],
        model=r["model"],
        source=r["source"],
        received_ms=r["received_ms"],
        decided_ms=r["decided_ms"],
        outcome=Outcome(r["outcome"]),
        reason=r["reason"],
        detail=r["detail"],
        client_order_id=r["client_order_id"],
        raw=r["raw"],
        price=r["price"],
        expires_ms=r["expires_ms"],
        horizon_price=r["horizon_price"],
    )


def _intent_row(i: Intent) -> dict[str, Any]:
    return {
        "intent_id": i.intent_id,
        "kind": str(i.kind),
        "symbol": i.symbol,
        "side": str(i.side),
        "created_ms": i.created_ms,
        "reason": i.reason,
        "signal_id": i.signal_id,
        "fraction": i.fraction,
        "decision_equity": i.decision_equity,
        "reference_price": i.reference_price,
        "confidence": i.confidence,
        "expires_ms": i.expires_ms,
        "status": str(i.status),
        "status_reason": i.status_reason,
    }


def _intent_of(r: Any) -> Intent:
    return Intent(
        intent_id=r["intent_id"],
        kind=IntentKind(r["kind"]),
        symbol=r["symbol"],
        side=OrderSide(r["side"]),
        created_ms=r["created_ms"],
        reason=r["reason"],
        signal_id=r["signal_id"],
        fraction=r["fraction"],
        decision_equity=r["decision_equity"],
        reference_price=r["reference_price"],
        confidence=r["confidence"],
        expires_ms=r["expires_ms"],
        status=IntentStatus(r["status"]),
        status_reason=r["status_reason"],
    )


def _order_row(o: Order) -> dict[str, Any]:
    return {
        "client_order_id": o.client_order_id,
        "symbol": o.symbol,
        "market": o.market,
        "side": str(o.side),
        "type": str(o.type),
        "qty": _dec(o.qty),
        "price": _dec(o.price),
        "trigger_price": _dec(o.trigger_price),
        "time_in_force": str(o.time_in_force),
        "reduce_only": o.reduce_only,
        "status": str(o.status),
        "venue_order_id": o.venue_order_id,
        "filled_qty": _dec(o.filled_qty),
        "avg_fill_price": _dec(o.avg_fill_price),
        "fees": _dec(o.fees),
        "reason": o.reason,
        "created_ms": o.created_ms,
        "updated_ms": o.updated_ms,
        "fill_ids": ",".join(o.fill_ids),
    }


def _stored_order_of(r: Any) -> StoredOrder:
    order = Order(
        client_order_id=r["client_order_id"],
        symbol=r["symbol"],
        market=r["market"],
        side=OrderSide(r["side"]),
        type=OrderType(r["type"]),
        qty=_d0(r["qty"]),
        status=OrderStatus(r["status"]),
        price=_d(r["price"]),
        trigger_price=_d(r["trigger_price"]),
        time_in_force=TimeInForce(r["time_in_force"]),
        reduce_only=bool(r["reduce_only"]),
        venue_order_id=r["venue_order_id"],
        filled_qty=_d0(r["filled_qty"]),
        avg_fill_price=_d(r["avg_fill_price"]),
        fees=_d0(r["fees"]),
        reason=r["reason"],
        created_ms=r["created_ms"],
        updated_ms=r["updated_ms"],
        fill_ids=tuple(x for x in r["fill_ids"].split(",") if x),
    )
    return StoredOrder(order, r["intent_id"], IntentKind(r["kind"]), r["signal_id"])


def _fill_row(f: Fill, recorded_ms: int) -> dict[str, Any]:
    return {
        "fill_id": f.fill_id,
        "client_order_id": f.client_order_id,
        "venue_order_id": f.venue_order_id,
        "symbol": f.symbol,
        "market": f.market,
        "side": str(f.side),
        "qty": _dec(f.qty),
        "price": _dec(f.price),
        "fee": _dec(f.fee),
        "fee_currency": f.fee_currency,
        "is_maker": f.is_maker,
        "ts_ms": f.ts_ms,
        "recorded_ms": recorded_ms,
    }


def _fill_of(r: Any) -> Fill:
    return Fill(
        fill_id=r["fill_id"],
        client_order_id=r["client_order_id"],
        venue_order_id=r["venue_order_id"],
        symbol=r["symbol"],
        market=r["market"],
        side=OrderSide(r["side"]),
        qty=_d0(r["qty"]),
        price=_d0(r["price"]),
        fee=_d0(r["fee"]),
        fee_currency=r["fee_currency"],
        is_maker=bool(r["is_maker"]),
        ts_ms=r["ts_ms"],
    )


def _position_row(p: PositionState) -> dict[str, Any]:
    return {
        "symbol": p.symbol,
        "qty": _dec(p.qty),
        "avg_price": _dec(p.avg_price),
        "entry_ms": p.entry_ms,
        "entry_fees": _dec(p.entry_fees),
        "entry_qty": _dec(p.entry_qty),
        "entry_value": _dec(p.entry_value),
        "exit_qty": _dec(p.exit_qty),
        "exit_value": _dec(p.exit_value),
        "exit_fees": _dec(p.exit_fees),
        "entry_client_order_id": p.entry_client_order_id,
        "signal_id": p.signal_id,
        "confidence": p.confidence,
        "stop_client_order_id": p.stop_client_order_id,
        "stop_price": _dec(p.stop_price),
        "stop_attempt": p.stop_attempt,
        "updated_ms": p.updated_ms,
    }


def _position_of(r: Any) -> PositionState:
    return PositionState(
        symbol=r["symbol"],
        qty=_d0(r["qty"]),
        avg_price=_d0(r["avg_price"]),
        entry_ms=r["entry_ms"],
        entry_fees=_d0(r["entry_fees"]),
        entry_qty=_d0(r["entry_qty"]),
        entry_value=_d0(r["entry_value"]),
        exit_qty=_d0(r["exit_qty"]),
        exit_value=_d0(r["exit_value"]),
        exit_fees=_d0(r["exit_fees"]),
        entry_client_order_id=r["entry_client_order_id"],
        signal_id=r["signal_id"],
        confidence=r["confidence"],
        stop_client_order_id=r["stop_client_order_id"],
        stop_price=_d(r["stop_price"]),
        stop_attempt=r["stop_attempt"],
        updated_ms=r["updated_ms"],
    )


def _ledger_row(ledger: Ledger) -> dict[str, Any]:
    return {
        "id": 1,
        "capital": _dec(ledger.capital),
        "cash": _dec(ledger.cash),
        "fees": _dec(ledger.fees),
        "realised_pnl": _dec(ledger.realised_pnl),
        "updated_ms": ledger.updated_ms,
    }


def _trade_row(tr: ClosedTrade) -> dict[str, Any]:
    return {
        "symbol": tr.symbol,
        "side": tr.side,
        "qty": _dec(tr.qty),
        "entry_ms": tr.entry_ms,
        "exit_ms": tr.exit_ms,
        "entry_price": _dec(tr.entry_price),
        "exit_price": _dec(tr.exit_price),
        "fees": _dec(tr.fees),
        "pnl": _dec(tr.pnl),
        "exit_reason": tr.exit_reason,
        "entry_client_order_id": tr.entry_client_order_id,
        "exit_client_order_id": tr.exit_client_order_id,
        "signal_id": tr.signal_id,
        "exit_signal_id": tr.exit_signal_id,
        "confidence": tr.confidence,
    }


def _trade_of(r: Any) -> ClosedTrade:
    return ClosedTrade(
        symbol=r["symbol"],
        side=r["side"],
        qty=_d0(r["qty"]),
        entry_ms=r["entry_ms"],
        exit_ms=r["exit_ms"],
        entry_price=_d0(r["entry_price"]),
        exit_price=_d0(r["exit_price"]),
        fees=_d0(r["fees"]),
        pnl=_d0(r["pnl"]),
        exit_reason=r["exit_reason"],
        entry_client_order_id=r["entry_client_order_id"],
        exit_client_order_id=r["exit_client_order_id"],
        signal_id=r["signal_id"],
        exit_signal_id=r["exit_signal_id"],
        confidence=r["confidence"],
    )
