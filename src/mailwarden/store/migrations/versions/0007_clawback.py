"""Clawback: mailbox connectors per organisation, clawback jobs and their per-recipient items.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ID = sa.String(26).with_variant(sa.String(26, collation="C"), "postgresql")
JSON = sa.JSON().with_variant(JSONB(), "postgresql")
SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "mailbox_connectors",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("organisation_id", sa.Integer, sa.ForeignKey("organisations.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("domains", JSON, nullable=False),
        sa.Column("settings", JSON, nullable=False),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
    )
    op.create_index("ix_mailbox_connectors_organisation_id", "mailbox_connectors", ["organisation_id"])
    op.create_index(
        "ux_mailbox_connectors_organisation_name", "mailbox_connectors", ["organisation_id", "name"], unique=True
    )
    op.create_table(
        "clawback_jobs",
        sa.Column("id", ID, primary_key=True),
        sa.Column("organisation", sa.String(100)),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("query", JSON, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("finished_at", WHEN),
    )
    op.create_index("ix_clawback_jobs_created_at", "clawback_jobs", ["created_at"])
    op.create_table(
        "clawback_items",
        sa.Column("id", SERIAL, primary_key=True, autoincrement=True),
        sa.Column("job_id", ID, sa.ForeignKey("clawback_jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("message_id", ID, sa.ForeignKey("messages.id", ondelete="CASCADE"), nullable=False),
        sa.Column("internet_message_id", sa.String(998), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", WHEN, nullable=False),
        sa.Column("lease_until", WHEN),
        sa.Column("updated_at", WHEN, nullable=False),
    )
    op.create_index(
        "ux_clawback_items_job_message_recipient", "clawback_items", ["job_id", "message_id", "recipient"], unique=True
    )
    op.create_index("ix_clawback_items_status_next", "clawback_items", ["status", "next_attempt_at"])
    op.create_index("ix_clawback_items_message_id", "clawback_items", ["message_id"])


def downgrade() -> None:
    op.drop_table("clawback_items")
    op.drop_table("clawback_jobs")
    op.drop_table("mailbox_connectors")
