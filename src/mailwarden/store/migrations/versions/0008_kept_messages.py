"""Retro-hunt: messages kept for rescanning (`kept_messages`), hunts and what they found (`hunts`,
`hunt_results`).

Revision ID: 0008
Revises: 0007 (the clawback revision 0007 goes between them once both are merged)
Create Date: 2027-01-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

ID = sa.String(26).with_variant(sa.String(26, collation="C"), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "kept_messages",
        sa.Column("message_id", ID, sa.ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("organisation", sa.String(100), nullable=True),
        sa.Column("kept_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.Column("spool_id", ID, nullable=False),
        sa.Column("listener", sa.String(100), nullable=False),
        sa.Column("envelope", JSON, nullable=False),
        sa.Column("raw_size", sa.BigInteger(), nullable=False),
        sa.Column("stored_size", sa.BigInteger(), nullable=False),
        sa.Column("blob_key", sa.String(200), nullable=False),
        sa.Column("blob_offset", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_kept_messages_organisation_kept_at", "kept_messages", ["organisation", "kept_at"])
    op.create_index("ix_kept_messages_kept_at", "kept_messages", ["kept_at"])
    op.create_index("ix_kept_messages_expires_at", "kept_messages", ["expires_at"])
    op.create_table(
        "hunts",
        sa.Column("id", ID, primary_key=True),
        sa.Column("organisation", sa.String(100), nullable=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("query", JSON, nullable=False),
        sa.Column("since", TIMESTAMP, nullable=True),
        sa.Column("until", TIMESTAMP, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("matched", sa.Integer(), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=True),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_index("ix_hunts_state", "hunts", ["state"])
    op.create_table(
        "hunt_results",
        sa.Column("hunt_id", ID, sa.ForeignKey("hunts.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("message_id", ID, sa.ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("before_category", sa.String(32), nullable=False),
        sa.Column("before_action", sa.String(32), nullable=False),
        sa.Column("after_category", sa.String(32), nullable=True),
        sa.Column("after_action", sa.String(32), nullable=True),
        sa.Column("matched", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("hunt_results")
    op.drop_table("hunts")
    op.drop_index("ix_kept_messages_expires_at", table_name="kept_messages")
    op.drop_index("ix_kept_messages_kept_at", table_name="kept_messages")
    op.drop_index("ix_kept_messages_organisation_kept_at", table_name="kept_messages")
    op.drop_table("kept_messages")
