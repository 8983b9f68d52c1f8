"""The demo's paper wallet: its balances, orders, fills and positions, so a restart continues.

Revision ID: 0002_paper_wallet
Revises: 0001
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_paper_wallet"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "paper_wallets",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("market_ms", sa.BigInteger, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("paper_wallets")
