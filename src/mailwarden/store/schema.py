"""Tables of the store (SQLAlchemy typed declarative). Migrations in `migrations/` create them.

Message ids are ULIDs (time-sortable), so the primary key also serves time ranges and keyset paging.
Addresses are stored lower-cased, each with its domain, so exact and whole-domain searches use btrees.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from mailwarden.store.schema_types import (
    MAX_TOKEN_BYTES,
    POSTGRESQL_ONLY_INDEXES,
    Base,
    CountType,
    IdType,
    JsonType,
    SerialType,
    UTCDateTime,
    include_object_for,
    utcnow,
)


class OrganisationRow(Base):
    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    monitor_only: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DomainRow(Base):
    __tablename__ = "domains"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(253), unique=True)
    mode: Mapped[str] = mapped_column(String(16))
    next_hop: Mapped[str | None] = mapped_column(String(300))
    require_tls: Mapped[bool] = mapped_column(Boolean, default=False)
    # the domain's RecipientVerification as JSON; NULL means mode "none"
    recipient_verification: Mapped[dict[str, Any] | None] = mapped_column(JsonType)


class PolicyRow(Base):
    __tablename__ = "policies"

    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True)
    document: Mapped[dict[str, Any]] = mapped_column(JsonType)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[str] = mapped_column(String(200))


class AuditRow(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(SerialType, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    object: Mapped[str] = mapped_column(String(300))
    before: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    after: Mapped[dict[str, Any] | None] = mapped_column(JsonType)


class MessageRow(Base):
    __tablename__ = "messages"

    id: Mapped[str] = mapped_column(IdType, primary_key=True)
    organisation: Mapped[str | None] = mapped_column(String(100))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    direction: Mapped[str] = mapped_column(String(16))
    mode: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    sender: Mapped[str] = mapped_column(String(320))
    sender_domain: Mapped[str | None] = mapped_column(String(253))
    from_address: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(Text)
    internet_message_id: Mapped[str | None] = mapped_column(String(998))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    client_ip: Mapped[str | None] = mapped_column(String(45))
    category: Mapped[str] = mapped_column(String(32))
    scl: Mapped[int] = mapped_column(Integer)
    bcl: Mapped[int] = mapped_column(Integer)
    phish: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))
    applied: Mapped[bool] = mapped_column(Boolean)
    verdict: Mapped[dict[str, Any]] = mapped_column(JsonType)
    # the mail provider's verdict of a journal copy (migration 0013; null when it gave none)
    provider: Mapped[str | None] = mapped_column(String(16))
    provider_category: Mapped[str | None] = mapped_column(String(16))
    provider_scl: Mapped[int | None] = mapped_column(Integer)
    provider_bcl: Mapped[int | None] = mapped_column(Integer)
    provider_fields: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    provider_agreement: Mapped[str | None] = mapped_column(String(16))

    __table_args__ = (
        # Every search index ends in id: an equality filter plus `ORDER BY id DESC LIMIT n` is one
        # backward index range scan, and the id range of a time window narrows it further.
        Index("ix_messages_sender_id", "sender", "id"),
        Index("ix_messages_sender_domain_id", "sender_domain", "id"),
        Index("ix_messages_internet_message_id", "internet_message_id"),
        Index("ix_messages_category_id", "category", "id"),
        Index("ix_messages_direction_category_id", "direction", "category", "id"),
        Index("ix_messages_action_id", "action", "id"),
        Index("ix_messages_organisation_id", "organisation", "id"),
        Index("ix_messages_provider_category_id", "provider_category", "id"),
        Index("ix_messages_provider_agreement_id", "provider_agreement", "id"),
        # Subject words are substring matches (ILIKE '%word%'); on PostgreSQL trigrams index them.
        Index(
            "ix_messages_subject_trgm",
            "subject",
            postgresql_using="gin",
            postgresql_ops={"subject": "gin_trgm_ops"},
        ).ddl_if(dialect="postgresql"),
    )


class RecipientRow(Base):
    __tablename__ = "recipients"

    message_id: Mapped[str] = mapped_column(IdType, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True)
    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    domain: Mapped[str | None] = mapped_column(String(253))
    position: Mapped[int] = mapped_column(Integer)
    field: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    expanded_from: Mapped[str | None] = mapped_column(String(320))
    forwarded_from: Mapped[str | None] = mapped_column(String(320))

    __table_args__ = (
        Index("ix_recipients_address_message", "address", "message_id"),
        Index("ix_recipients_domain_message", "domain", "message_id"),
    )


class EventRow(Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(SerialType, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(IdType, ForeignKey("messages.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    type: Mapped[str] = mapped_column(String(32))
    recipient: Mapped[str | None] = mapped_column(String(320))
    detail: Mapped[str] = mapped_column(Text)
    smtp_reply: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_events_message_id", "message_id", "id"),)


class ConnectionStatRow(Base):
    """Connections refused per organisation, UTC day, client IP and reason.

    Blocked mail is never written to message history; these counters are all that is kept of it.
    The key starts with organisation and day, so a tenant's report for a date range is one range scan.
    """

    __tablename__ = "connection_stats"

    organisation: Mapped[str] = mapped_column(String(100), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    ip: Mapped[str] = mapped_column(String(45), primary_key=True)
    reason: Mapped[str] = mapped_column(String(32), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime)


class QuarantineRow(Base):
    """One quarantined recipient of one message (or, with `would_have`, one monitor-mode recipient).

    Several entries share the blob of their message; the blob goes when the last entry needing it does.
    """

    __tablename__ = "quarantine"

    id: Mapped[str] = mapped_column(IdType, primary_key=True)
    message_id: Mapped[str] = mapped_column(IdType, ForeignKey("messages.id", ondelete="CASCADE"))
    organisation: Mapped[str | None] = mapped_column(String(100))
    recipient: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(String(32))
    sender: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(24))
    would_have: Mapped[bool] = mapped_column(Boolean)
    blob_key: Mapped[str | None] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    released_by: Mapped[str | None] = mapped_column(String(200))
    # the delivery job of a release; NULL on a released entry: released where no queue was at hand (the
    # CLI), and the server's release job queues it
    release_job: Mapped[str | None] = mapped_column(String(26))
    requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    requested_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(200))
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_quarantine_organisation_status_received", "organisation", "status", "received_at", "id"),
        Index("ix_quarantine_recipient_received", "recipient", "received_at", "id"),
        Index("ix_quarantine_message_id", "message_id"),
        Index("ix_quarantine_blob_key", "blob_key"),
        Index("ix_quarantine_expires_at", "expires_at"),
    )


class QuarantineDigestRow(Base):
    """When a recipient's last quarantine digest was sent (the digest frequency counts from it)."""

    __tablename__ = "quarantine_digests"

    recipient: Mapped[str] = mapped_column(String(320), primary_key=True)
    last_sent_at: Mapped[datetime] = mapped_column(UTCDateTime)


class QuarantineTokenRow(Base):
    """A digest link's token id, once redeemed; kept until the link would have expired anyway."""

    __tablename__ = "quarantine_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    used_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class UserRow(Base):
    """A person who signs in to the console or owns API tokens (docs/api.md)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    email: Mapped[str | None] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(16))
    organisation: Mapped[str | None] = mapped_column(String(100))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ApiTokenRow(Base):
    """An API token: only its SHA-256 is kept; the prefix is shown so an administrator can tell tokens apart."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JsonType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SessionRow(Base):
    """A console session; the cookie holds the id, the table only its SHA-256."""

    __tablename__ = "sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class TokenStatRow(Base):
    """The classifier's token statistics: per token, how many spam and ham messages carried it.

    The message totals and bookkeeping marks are rows too, under keys starting with a space (no token
    does); `store/tokens.py` reads and writes them.
    """

    __tablename__ = "token_stats"

    token: Mapped[str] = mapped_column(String(MAX_TOKEN_BYTES), primary_key=True)
    spam: Mapped[int] = mapped_column(CountType)
    ham: Mapped[int] = mapped_column(CountType)


class KeptMessageRow(Base):
    """A message kept for retro-hunt: its spool entry (the bytes as received), one zstd frame at
    `blob_offset` (`stored_size` bytes) in the blob of the history writer's batch.

    The messages of one batch share one blob and one expiry time, so expiry removes the blob and then
    all of their rows; the records of a gateway message split between organisations share one frame.
    """

    __tablename__ = "kept_messages"

    message_id: Mapped[str] = mapped_column(IdType, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True)
    organisation: Mapped[str | None] = mapped_column(String(100))
    kept_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    spool_id: Mapped[str] = mapped_column(IdType)
    listener: Mapped[str] = mapped_column(String(100))
    envelope: Mapped[dict[str, Any]] = mapped_column(JsonType)
    raw_size: Mapped[int] = mapped_column(BigInteger)
    stored_size: Mapped[int] = mapped_column(BigInteger)
    blob_key: Mapped[str] = mapped_column(String(200))
    blob_offset: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        Index("ix_kept_messages_organisation_kept_at", "organisation", "kept_at"),
        Index("ix_kept_messages_kept_at", "kept_at"),
        Index("ix_kept_messages_expires_at", "expires_at"),
    )


class HuntRow(Base):
    """A retro-hunt: a rescan or an indicator search over the kept messages of a window."""

    __tablename__ = "hunts"

    id: Mapped[str] = mapped_column(IdType, primary_key=True)
    organisation: Mapped[str | None] = mapped_column(String(100))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(16))
    query: Mapped[dict[str, Any]] = mapped_column(JsonType)
    since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    state: Mapped[str] = mapped_column(String(16))
    total: Mapped[int] = mapped_column(Integer)
    done: Mapped[int] = mapped_column(Integer)
    matched: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_hunts_state", "state"),)


class HuntResultRow(Base):
    """A message a hunt found: its verdict then and now (a rescan) or what matched (a search)."""

    __tablename__ = "hunt_results"

    hunt_id: Mapped[str] = mapped_column(IdType, ForeignKey("hunts.id", ondelete="CASCADE"), primary_key=True)
    message_id: Mapped[str] = mapped_column(IdType, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True)
    before_category: Mapped[str] = mapped_column(String(32))
    before_action: Mapped[str] = mapped_column(String(32))
    after_category: Mapped[str | None] = mapped_column(String(32))
    after_action: Mapped[str | None] = mapped_column(String(32))
    matched: Mapped[str] = mapped_column(Text)


class OutboundCountRow(Base):
    """Recipients one sender of one organisation addressed in one UTC minute (`minute`: minutes since the
    epoch), external and internal apart, and in one UTC day (a negative `minute`: -(days since the epoch
    + 1)): the buckets the embedded sending-limit counter sums for the last hour and reads for the day
    (`store/outbound.py`). Rows older than two days are pruned."""

    __tablename__ = "outbound_counts"

    organisation: Mapped[str] = mapped_column(String(100), primary_key=True)
    sender: Mapped[str] = mapped_column(String(320), primary_key=True)
    minute: Mapped[int] = mapped_column(CountType, primary_key=True)
    external: Mapped[int] = mapped_column(Integer)
    internal: Mapped[int] = mapped_column(Integer)

    __table_args__ = (Index("ix_outbound_counts_minute", "minute"),)


# The response tables (clawback, the event feed, restricted senders, sender activity) live in
# schema_response.py; imported here so `Base.metadata` (migrations, the schema check) and
# `from mailwarden.store.schema import ...` see them.
from mailwarden.store.schema_response import (  # noqa: E402
    ClawbackItemRow,
    ClawbackJobRow,
    ExportCursorRow,
    MailboxConnectorRow,
    OutboxRow,
    RestrictedSenderRow,
    SenderContactRow,
    SenderHourRow,
)

__all__ = [
    "MAX_TOKEN_BYTES",
    "POSTGRESQL_ONLY_INDEXES",
    "Base",
    "ClawbackItemRow",
    "ClawbackJobRow",
    "CountType",
    "ExportCursorRow",
    "IdType",
    "JsonType",
    "MailboxConnectorRow",
    "OutboxRow",
    "RestrictedSenderRow",
    "SenderContactRow",
    "SenderHourRow",
    "SerialType",
    "UTCDateTime",
    "include_object_for",
    "utcnow",
]
