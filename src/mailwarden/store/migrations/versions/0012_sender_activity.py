"""Sender activity for the compromised-account signals: recipients, first-time external recipients and
delivery reports per sender per UTC hour, and the external addresses each sender has written to.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sender_hours",
        sa.Column("organisation", sa.String(100), primary_key=True),
        sa.Column("sender", sa.String(320), primary_key=True),
        sa.Column("hour", sa.Integer, primary_key=True),
        sa.Column("recipients", sa.Integer, nullable=False),
        sa.Column("new_external", sa.Integer, nullable=False),
        sa.Column("ndrs", sa.Integer, nullable=False),
    )
    op.create_index("ix_sender_hours_hour", "sender_hours", ["hour"])
    op.create_table(
        "sender_contacts",
        sa.Column("organisation", sa.String(100), primary_key=True),
        sa.Column("sender", sa.String(320), primary_key=True),
        sa.Column("recipient", sa.String(320), primary_key=True),
        sa.Column("last_hour", sa.Integer, nullable=False),
    )
    op.create_index("ix_sender_contacts_last_hour", "sender_contacts", ["last_hour"])


def downgrade() -> None:
    op.drop_table("sender_contacts")
    op.drop_table("sender_hours")
