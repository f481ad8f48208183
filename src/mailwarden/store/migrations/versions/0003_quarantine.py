"""Quarantine: one entry per quarantined (or, in monitor mode, would-be quarantined) recipient; digest state.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ID = sa.String(26).with_variant(sa.String(26, collation="C"), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "quarantine",
        sa.Column("id", ID, primary_key=True),
        sa.Column("message_id", ID, sa.ForeignKey("messages.id", ondelete="CASCADE"), nullable=False),
        sa.Column("organisation", sa.String(100), nullable=True),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("sender", sa.String(320), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("received_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("would_have", sa.Boolean(), nullable=False),
        sa.Column("blob_key", sa.String(200), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("released_at", TIMESTAMP, nullable=True),
        sa.Column("released_by", sa.String(200), nullable=True),
        sa.Column("release_job", sa.String(26), nullable=True),
        sa.Column("requested_at", TIMESTAMP, nullable=True),
        sa.Column("requested_by", sa.String(200), nullable=True),
        sa.Column("decided_at", TIMESTAMP, nullable=True),
        sa.Column("decided_by", sa.String(200), nullable=True),
        sa.Column("notified_at", TIMESTAMP, nullable=True),
    )
    op.create_index(
        "ix_quarantine_organisation_status_received",
        "quarantine",
        ["organisation", "status", "received_at", "id"],
    )
    op.create_index("ix_quarantine_recipient_received", "quarantine", ["recipient", "received_at", "id"])
    op.create_index("ix_quarantine_message_id", "quarantine", ["message_id"])
    op.create_index("ix_quarantine_blob_key", "quarantine", ["blob_key"])
    op.create_index("ix_quarantine_expires_at", "quarantine", ["expires_at"])

    op.create_table(
        "quarantine_digests",
        sa.Column("recipient", sa.String(320), primary_key=True),
        sa.Column("last_sent_at", TIMESTAMP, nullable=False),
    )
    op.create_table(
        "quarantine_tokens",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("used_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
    )
    op.create_index("ix_quarantine_tokens_expires_at", "quarantine_tokens", ["expires_at"])


def downgrade() -> None:
    for table in ("quarantine_tokens", "quarantine_digests", "quarantine"):
        op.drop_table(table)
