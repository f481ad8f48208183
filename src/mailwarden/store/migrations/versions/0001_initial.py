"""Initial schema: organisations, domains, policies, audit log, message history.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.String(26).with_variant(sa.String(26, collation="C"), "postgresql")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    _organisations()
    _domains()
    _policies()
    _audit_log()
    _messages()
    _recipients()
    _events()
    if op.get_bind().dialect.name == "postgresql":
        _subject_search()


def _organisations() -> None:
    """Organisations by unique name."""
    op.create_table(
        "organisations",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("monitor_only", sa.Boolean(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
    )


def _domains() -> None:
    """An organisation's accepted domains, each name unique across all organisations."""
    op.create_table(
        "domains",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "organisation_id", sa.Integer(), sa.ForeignKey("organisations.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.String(253), nullable=False, unique=True),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("next_hop", sa.String(300), nullable=True),
        sa.Column("require_tls", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_domains_organisation_id", "domains", ["organisation_id"])


def _policies() -> None:
    """One policy document per organisation, versioned."""
    op.create_table(
        "policies",
        sa.Column(
            "organisation_id",
            sa.Integer(),
            sa.ForeignKey("organisations.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("document", JSON, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
    )


def _audit_log() -> None:
    """Who changed what, with the object before and after."""
    op.create_table(
        "audit_log",
        sa.Column("id", SERIAL, primary_key=True, autoincrement=True),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("object", sa.String(300), nullable=False),
        sa.Column("before", JSON, nullable=True),
        sa.Column("after", JSON, nullable=True),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])


def _messages() -> None:
    """Message history: one row per message, with its search indexes."""
    op.create_table(
        "messages",
        sa.Column("id", ID, primary_key=True),
        sa.Column("organisation", sa.String(100), nullable=True),
        sa.Column("received_at", TIMESTAMP, nullable=False),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("sender", sa.String(320), nullable=False),
        sa.Column("sender_domain", sa.String(253), nullable=True),
        sa.Column("from_address", sa.String(320), nullable=True),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("internet_message_id", sa.String(998), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("client_ip", sa.String(45), nullable=True),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("scl", sa.Integer(), nullable=False),
        sa.Column("bcl", sa.Integer(), nullable=False),
        sa.Column("phish", sa.String(16), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("applied", sa.Boolean(), nullable=False),
        sa.Column("verdict", JSON, nullable=False),
    )
    op.create_index("ix_messages_sender_id", "messages", ["sender", "id"])
    op.create_index("ix_messages_sender_domain_id", "messages", ["sender_domain", "id"])
    op.create_index("ix_messages_internet_message_id", "messages", ["internet_message_id"])
    op.create_index("ix_messages_category_id", "messages", ["category", "id"])
    op.create_index("ix_messages_direction_category_id", "messages", ["direction", "category", "id"])
    op.create_index("ix_messages_action_id", "messages", ["action", "id"])
    op.create_index("ix_messages_organisation_id", "messages", ["organisation", "id"])


def _recipients() -> None:
    """A message's recipients, searchable by address and domain."""
    op.create_table(
        "recipients",
        sa.Column("message_id", ID, sa.ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("address", sa.String(320), primary_key=True),
        sa.Column("domain", sa.String(253), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("field", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("expanded_from", sa.String(320), nullable=True),
        sa.Column("forwarded_from", sa.String(320), nullable=True),
    )
    op.create_index("ix_recipients_address_message", "recipients", ["address", "message_id"])
    op.create_index("ix_recipients_domain_message", "recipients", ["domain", "message_id"])


def _events() -> None:
    """A message's trace events."""
    op.create_table(
        "events",
        sa.Column("id", SERIAL, primary_key=True, autoincrement=True),
        sa.Column("message_id", ID, sa.ForeignKey("messages.id", ondelete="CASCADE"), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("smtp_reply", sa.Text(), nullable=True),
    )
    op.create_index("ix_events_message_id", "events", ["message_id", "id"])


def _subject_search() -> None:
    """PostgreSQL only: the trigram index for subject search and its planner statistics."""
    # Subject search is substring matching (`ILIKE '%word%'`, as SQLite's LIKE); trigrams index it.
    # pg_trgm ships with PostgreSQL and is a trusted extension: the database owner may create it.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute("CREATE INDEX ix_messages_subject_trgm ON messages USING gin (subject gin_trgm_ops)")
    # With the default 100-entry histogram the planner cannot tell a word in 40 % of subjects from
    # one in 0.01 %, and picks the trigram index (then sorts every hit) for both. 1000 entries let
    # it walk the primary key backwards for common words and use the index for rare ones.
    op.execute("ALTER TABLE messages ALTER COLUMN subject SET STATISTICS 1000")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_messages_subject_trgm")
    for table in ("events", "recipients", "messages", "audit_log", "policies", "domains", "organisations"):
        op.drop_table(table)
