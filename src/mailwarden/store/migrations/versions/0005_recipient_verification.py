"""Recipient verification settings per domain (checked at RCPT time, docs/recipients.md).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    # NULL: mode "none", every address of the domain is accepted (as before this revision)
    with op.batch_alter_table("domains") as batch:
        batch.add_column(sa.Column("recipient_verification", JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("domains") as batch:
        batch.drop_column("recipient_verification")
