"""The event feed: a transactional outbox and one cursor per sink.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

ID = sa.String(26).with_variant(sa.String(26, collation="C"), "postgresql")
JSON = sa.JSON().with_variant(JSONB(), "postgresql")
SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "event_outbox",
        sa.Column("id", SERIAL, primary_key=True, autoincrement=True),
        sa.Column("uid", ID, nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("payload", JSON, nullable=False),
    )
    op.create_index("ix_event_outbox_at", "event_outbox", ["at"])
    op.create_table(
        "export_cursors",
        sa.Column("sink", sa.String(100), primary_key=True),
        sa.Column("last_id", SERIAL, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
    )


def downgrade() -> None:
    op.drop_table("export_cursors")
    op.drop_table("event_outbox")
