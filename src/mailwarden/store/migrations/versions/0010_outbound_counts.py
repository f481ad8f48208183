"""Sending-limit counters of outbound protection: recipients per sender per UTC minute.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

COUNT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "outbound_counts",
        sa.Column("organisation", sa.String(100), primary_key=True),
        sa.Column("sender", sa.String(320), primary_key=True),
        sa.Column("minute", COUNT, primary_key=True),
        sa.Column("external", sa.Integer, nullable=False),
        sa.Column("internal", sa.Integer, nullable=False),
    )
    op.create_index("ix_outbound_counts_minute", "outbound_counts", ["minute"])


def downgrade() -> None:
    op.drop_table("outbound_counts")
