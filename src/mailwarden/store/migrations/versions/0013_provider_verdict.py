"""The mail provider's verdict of a journal copy beside mailwarden's: provider, category, SCL, BCL, the
fields it was read from, and how it compares with mailwarden's verdict (indexed for the trace's filters).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

COLUMNS = ("provider", "provider_category", "provider_scl", "provider_bcl", "provider_fields", "provider_agreement")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.add_column("messages", sa.Column("provider", sa.String(16), nullable=True))
    op.add_column("messages", sa.Column("provider_category", sa.String(16), nullable=True))
    op.add_column("messages", sa.Column("provider_scl", sa.Integer, nullable=True))
    op.add_column("messages", sa.Column("provider_bcl", sa.Integer, nullable=True))
    op.add_column("messages", sa.Column("provider_fields", JSON, nullable=True))
    op.add_column("messages", sa.Column("provider_agreement", sa.String(16), nullable=True))
    op.create_index("ix_messages_provider_category_id", "messages", ["provider_category", "id"])
    op.create_index("ix_messages_provider_agreement_id", "messages", ["provider_agreement", "id"])


def downgrade() -> None:
    op.drop_index("ix_messages_provider_agreement_id", table_name="messages")
    op.drop_index("ix_messages_provider_category_id", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
