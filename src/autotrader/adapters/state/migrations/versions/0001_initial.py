"""The robot's state store: signals, intents, orders, fills, positions, trades, ledger, risk, equity.

Revision ID: 0001
Revises:
Create Date: 2026-07-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
DEC = sa.String(64)
MS = sa.BigInteger


def _id() -> sa.Column:
    return sa.Column("id", _ID, primary_key=True, autoincrement=True)


def upgrade() -> None:
    op.create_table(
        "signals",
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
        sa.Column("decided_ms", MS, nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(100), nullable=False, server_default=""),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
        sa.Column("client_order_id", sa.String(36)),
        sa.Column("raw", sa.Text, nullable=False, server_default=""),
        sa.Column("price", sa.Float, nullable=False, server_default="0"),
        sa.Column("expires_ms", MS, nullable=False, server_default="0"),
        sa.Column("horizon_price", sa.Float),
    )
    op.create_index("ix_signals_decided_ms", "signals", ["decided_ms"])
    op.create_table(
        "dead_letters",
        _id(),
        sa.Column("source", sa.String(300), nullable=False, unique=True),
        sa.Column("received_ms", MS, nullable=False),
        sa.Column("reason", sa.String(100), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("raw", sa.Text, nullable=False),
    )
    op.create_index("ix_dead_letters_received_ms", "dead_letters", ["received_ms"])
    op.create_table(
        "intents",
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
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("status_reason", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("ix_intents_status", "intents", ["status"])
    op.create_table(
        "orders",
        sa.Column("client_order_id", sa.String(36), primary_key=True),
        sa.Column("intent_id", sa.String(100), nullable=False),
        sa.Column("symbol", sa.String(40), nullable=False),
        sa.Column("market", sa.String(10), nullable=False),
        sa.Column("side", sa.String(10), nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("qty", DEC, nullable=False),
        sa.Column("price", DEC),
        sa.Column("trigger_price", DEC),
        sa.Column("time_in_force", sa.String(20), nullable=False),
        sa.Column("reduce_only", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("venue_order_id", sa.String(100)),
        sa.Column("filled_qty", DEC, nullable=False),
        sa.Column("avg_fill_price", DEC),
        sa.Column("fees", DEC, nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("created_ms", MS, nullable=False),
        sa.Column("updated_ms", MS, nullable=False),
        sa.Column("fill_ids", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("ix_orders_intent_id", "orders", ["intent_id"])
    op.create_index("ix_orders_status", "orders", ["status"])
    op.create_table(
        "order_events",
        _id(),
        sa.Column("client_order_id", sa.String(36), nullable=False),
        sa.Column("ts_ms", MS, nullable=False),
        sa.Column("event", sa.String(40), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("ix_order_events_client_order_id", "order_events", ["client_order_id"])
    op.create_table(
        "fills",
        sa.Column("fill_id", sa.String(100), primary_key=True),
        sa.Column("client_order_id", sa.String(36), nullable=False),
        sa.Column("venue_order_id", sa.String(100), nullable=False),
        sa.Column("symbol", sa.String(40), nullable=False),
        sa.Column("market", sa.String(10), nullable=False),
        sa.Column("side", sa.String(10), nullable=False),
        sa.Column("qty", DEC, nullable=False),
        sa.Column("price", DEC, nullable=False),
        sa.Column("fee", DEC, nullable=False),
        sa.Column("fee_currency", sa.String(20), nullable=False),
        sa.Column("is_maker", sa.Boolean, nullable=False),
        sa.Column("ts_ms", MS, nullable=False),
        sa.Column("recorded_ms", MS, nullable=False),
    )
    op.create_index("ix_fills_client_order_id", "fills", ["client_order_id"])
    op.create_index("ix_fills_ts_ms", "fills", ["ts_ms"])
    op.create_table(
        "positions",
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
    op.create_table(
        "trades",
        _id(),
        sa.Column("symbol", sa.String(40), nullable=False),
        sa.Column("side", sa.Integer, nullable=False),
        sa.Column("qty", DEC, nullable=False),
        sa.Column("entry_ms", MS, nullable=False),
        sa.Column("exit_ms", MS, nullable=False),
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
    op.create_index("ix_trades_exit_ms", "trades", ["exit_ms"])
    op.create_table(
        "ledger",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("capital", DEC, nullable=False),
        sa.Column("cash", DEC, nullable=False),
        sa.Column("fees", DEC, nullable=False),
        sa.Column("realised_pnl", DEC, nullable=False),
        sa.Column("updated_ms", MS, nullable=False),
    )
    op.create_table(
        "risk_state",
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
    op.create_table(
        "equity",
        _id(),
        sa.Column("ts_ms", MS, nullable=False),
        sa.Column("equity", sa.Float, nullable=False),
        sa.Column("cash", sa.Float, nullable=False),
        sa.Column("exposure", sa.Float, nullable=False),
        sa.Column("peak_equity", sa.Float, nullable=False),
        sa.Column("day_start_equity", sa.Float, nullable=False),
        sa.Column("state", sa.Integer, nullable=False),
    )
    op.create_index("ix_equity_ts_ms", "equity", ["ts_ms"])
    op.create_table(
        "heartbeat",
        sa.Column("robot", sa.String(100), primary_key=True),
        sa.Column("ts_ms", MS, nullable=False),
        sa.Column("wall_ms", MS, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("mode", sa.String(20), nullable=False),
        sa.Column("status", sa.String(40), nullable=False),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
    )
    op.create_table(
        "events",
        _id(),
        sa.Column("ts_ms", MS, nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("symbol", sa.String(40)),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_events_ts_ms", "events", ["ts_ms"])
    op.create_table(
        "meta",
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "meta",
        "events",
        "heartbeat",
        "equity",
        "risk_state",
        "ledger",
        "trades",
        "positions",
        "fills",
        "order_events",
        "orders",
        "intents",
        "dead_letters",
        "signals",
    ):
        op.drop_table(table)
