"""The robot's state store tables (SQLAlchemy Core). Alembic migrations create them.

Exact numbers (quantities, prices, cash) are stored as decimal strings so SQLite and PostgreSQL
both give back exactly what was written; statistics are floats; times are UTC epoch ms.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER PRIMARY KEY only
DEC = sa.String(64)
MS = sa.BigInteger


def _id() -> sa.Column:
    return sa.Column("id", _ID, primary_key=True, autoincrement=True)


signals = sa.Table(
    "signals",
    metadata,
    _id(),
    sa.Column("signal_id", sa.String(200), nullable=False, unique=True),
    sa.Column("symbol", sa.String(40), nullable=False),
    sa.Column("direction", sa.Integer, nullable=False),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("signal_ts", MS, nullable=False),
    sa.Column("horizon", sa.String(20), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("source", sa.String(300), nullable=False),
    sa.Column("received_ms", MS, nullable=False),
    sa.Column("decided_ms", MS, nullable=False, index=True),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("reason", sa.String(100), nullable=False, server_default=""),
    sa.Column("detail", sa.Text, nullable=False, server_default=""),
    sa.Column("client_order_id", sa.String(36)),
    sa.Column("raw", sa.Text, nullable=False, server_default=""),
    sa.Column("price", sa.Float, nullable=False, server_default="0"),
    sa.Column("expires_ms", MS, nullable=False, server_default="0"),
    sa.Column("horizon_price", sa.Float),
)

dead_letters = sa.Table(
    "dead_letters",
    metadata,
    _id(),
    sa.Column("source", sa.String(300), nullable=False, unique=True),
    sa.Column("received_ms", MS, nullable=False, index=True),
    sa.Column("reason", sa.String(100), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("raw", sa.Text, nullable=False),
)

intents = sa.Table(
    "intents",
    metadata,
    sa.Column("intent_id", sa.String(100), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("symbol", sa.String(40), nullable=False),
    sa.Column("side", sa.String(10), nullable=False),
    sa.Column("created_ms", MS, nullable=False),
    sa.Column("reason", sa.String(100), nullable=False, server_default=""),
    sa.Column("signal_id", sa.String(200)),
    sa.Column("fraction", sa.Float, nullable=False, server_default="0"),
    sa.Column("decision_equity", sa.Float, nullable=False, server_default="0"),
    sa.Column("reference_price", sa.Float, nullable=False, server_default="0"),
    sa.Column("confidence", sa.Float, nullable=False, server_default="0"),
    sa.Column("expires_ms", MS),
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("status_reason", sa.Text, nullable=False, server_default=""),
)

orders = sa.Table(
    "orders",
    metadata,
    sa.Column("client_order_id", sa.String(36), primary_key=True),
    sa.Column("intent_id", sa.String(100), nullable=False, index=True),
    sa.Column("symbol", sa.String(40), nullable=False),
    sa.Column("market", sa.String(10), nullable=False),
    sa.Column("side", sa.String(10), nullable=False),
    sa.Column("type", sa.String(20), nullable=False),
    sa.Column("qty", DEC, nullable=False),
    sa.Column("price", DEC),
    sa.Column("trigger_price", DEC),
    sa.Column("time_in_force", sa.String(20), nullable=False),
    sa.Column("reduce_only", sa.Boolean, nullable=False),
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("venue_order_id", sa.String(100)),
    sa.Column("filled_qty", DEC, nullable=False),
    sa.Column("avg_fill_price", DEC),
    sa.Column("fees", DEC, nullable=False),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("created_ms", MS, nullable=False),
    sa.Column("updated_ms", MS, nullable=False),
    sa.Column("fill_ids", sa.Text, nullable=False, server_default=""),
)

order_events = sa.Table(
    "order_events",
    metadata,
    _id(),
    sa.Column("client_order_id", sa.String(36), nullable=False, index=True),
    sa.Column("ts_ms", MS, nullable=False),
    sa.Column("event", sa.String(40), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("detail", sa.Text, nullable=False, server_default=""),
)

fills = sa.Table(
    "fills",
    metadata,
    sa.Column("fill_id", sa.String(100), primary_key=True),
    sa.Column("client_order_id", sa.String(36), nullable=False, index=True),
    sa.Column("venue_order_id", sa.String(100), nullable=False),
    sa.Column("symbol", sa.String(40), nullable=False),
    sa.Column("market", sa.String(10), nullable=False),
    sa.Column("side", sa.String(10), nullable=False),
    sa.Column("qty", DEC, nullable=False),
    sa.Column("price", DEC, nullable=False),
    sa.Column("fee", DEC, nullable=False),
    sa.Column("fee_currency", sa.String(20), nullable=False),
    sa.Column("is_maker", sa.Boolean, nullable=False),
    sa.Column("ts_ms", MS, nullable=False, index=True),
    sa.Column("recorded_ms", MS, nullable=False),
)

positions = sa.Table(
    "positions",
    metadata,
    sa.Column("symbol", sa.String(40), primary_key=True),
    sa.Column("qty", DEC, nullable=False),
    sa.Column("avg_price", DEC, nullable=False),
    sa.Column("entry_ms", MS, nullable=False),
    sa.Column("entry_fees", DEC, nullable=False),
    sa.Column("entry_qty", DEC, nullable=False),
    sa.Column("entry_value", DEC, nullable=False),
    sa.Column("exit_qty", DEC, nullable=False),
    sa.Column("exit_value", DEC, nullable=False),
    sa.Column("exit_fees", DEC, nullable=False),
    sa.Column("entry_client_order_id", sa.String(36)),
    sa.Column("signal_id", sa.String(200)),
    sa.Column("confidence", sa.Float, nullable=False, server_default="0"),
    sa.Column("stop_client_order_id", sa.String(36)),
    sa.Column("stop_price", DEC),
    sa.Column("stop_attempt", sa.Integer, nullable=False, server_default="0"),
    sa.Column("updated_ms", MS, nullable=False),
)

trades = sa.Table(
    "trades",
    metadata,
    _id(),
    sa.Column("symbol", sa.String(40), nullable=False),
    sa.Column("side", sa.Integer, nullable=False),
    sa.Column("qty", DEC, nullable=False),
    sa.Column("entry_ms", MS, nullable=False),
    sa.Column("exit_ms", MS, nullable=False, index=True),
    sa.Column("entry_price", DEC, nullable=False),
    sa.Column("exit_price", DEC, nullable=False),
    sa.Column("fees", DEC, nullable=False),
    sa.Column("pnl", DEC, nullable=False),
    sa.Column("exit_reason", sa.String(40), nullable=False),
    sa.Column("entry_client_order_id", sa.String(36)),
    sa.Column("exit_client_order_id", sa.String(36)),
    sa.Column("signal_id", sa.String(200)),
    sa.Column("exit_signal_id", sa.String(200)),
    sa.Column("confidence", sa.Float, nullable=False, server_default="0"),
)

ledger = sa.Table(
    "ledger",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("capital", DEC, nullable=False),
    sa.Column("cash", DEC, nullable=False),
    sa.Column("fees", DEC, nullable=False),
    sa.Column("realised_pnl", DEC, nullable=False),
    sa.Column("updated_ms", MS, nullable=False),
)

risk_state = sa.Table(
    "risk_state",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("state", sa.Integer, nullable=False),
    sa.Column("peak_equity", sa.Float, nullable=False),
    sa.Column("day_start_equity", sa.Float, nullable=False),
    sa.Column("day_start_ms", MS, nullable=False),
    sa.Column("last_equity", sa.Float, nullable=False),
    sa.Column("updated_ms", MS, nullable=False),
    sa.Column("halted_reason", sa.Text, nullable=False, server_default=""),
    sa.Column("kill_switch", sa.Boolean, nullable=False, server_default=sa.false()),
)

equity = sa.Table(
    "equity",
    metadata,
    _id(),
    sa.Column("ts_ms", MS, nullable=False, index=True),
    sa.Column("equity", sa.Float, nullable=False),
    sa.Column("cash", sa.Float, nullable=False),
    sa.Column("exposure", sa.Float, nullable=False),
    sa.Column("peak_equity", sa.Float, nullable=False),
    sa.Column("day_start_equity", sa.Float, nullable=False),
    sa.Column("state", sa.Integer, nullable=False),
)

heartbeat = sa.Table(
    "heartbeat",
    metadata,
    sa.Column("robot", sa.String(100), primary_key=True),
    sa.Column("ts_ms", MS, nullable=False),
    sa.Column("wall_ms", MS, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("mode", sa.String(20), nullable=False),
    sa.Column("status", sa.String(40), nullable=False),
    sa.Column("detail", sa.Text, nullable=False, server_default=""),
)

events = sa.Table(
    "events",
    metadata,
    _id(),
    sa.Column("ts_ms", MS, nullable=False, index=True),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("symbol", sa.String(40)),
    sa.Column("detail", sa.Text, nullable=False),
)

meta = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

paper_wallets = sa.Table(
    "paper_wallets",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("market_ms", MS, nullable=False),
    sa.Column("updated_ms", MS, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
)
