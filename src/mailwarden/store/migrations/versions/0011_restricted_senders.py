"""Outbound protection: senders restricted from sending.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "restricted_senders",
        sa.Column("organisation", sa.String(100), primary_key=True),
        sa.Column("sender", sa.String(320), primary_key=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True)),
        sa.Column("would_have", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("restricted_senders")
