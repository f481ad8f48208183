"""Tables of the response half (clawback, the event feed's outbox and cursors, restricted senders); part of
`schema.py`'s metadata, kept apart so neither module grows past reading length."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mailwarden.store.schema_types import Base, CountType, IdType, JsonType, SerialType, UTCDateTime


class MailboxConnectorRow(Base):
    """How to reach an organisation's mailboxes (Microsoft Graph, Gmail API or IMAP) for clawback, and for
    which of its domains. `secret` is the encrypted secret part (clawback/secrets.py); never decrypted here."""

    __tablename__ = "mailbox_connectors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    domains: Mapped[list[str]] = mapped_column(JsonType)  # [] = every domain of the organisation
    settings: Mapped[dict[str, Any]] = mapped_column(JsonType)
    secret: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_by: Mapped[str] = mapped_column(String(200))

    __table_args__ = (Index("ux_mailbox_connectors_organisation_name", "organisation_id", "name", unique=True),)


class ClawbackJobRow(Base):
    """One clawback (or restore) request: a message, a campaign, quarantine entries, the policy or a hunt."""

    __tablename__ = "clawback_jobs"

    id: Mapped[str] = mapped_column(IdType, primary_key=True)
    organisation: Mapped[str | None] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    query: Mapped[dict[str, Any]] = mapped_column(JsonType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ClawbackItemRow(Base):
    """One recipient's copy of one message in a job: its status, the provider's reason, the retry clock.

    `lease_until` is set while a worker holds the item: a worker that died leaves it to be taken again
    once the lease runs out, so a restart loses no recipient; a final status is never taken again."""

    __tablename__ = "clawback_items"

    id: Mapped[int] = mapped_column(SerialType, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(IdType, ForeignKey("clawback_jobs.id", ondelete="CASCADE"))
    message_id: Mapped[str] = mapped_column(IdType, ForeignKey("messages.id", ondelete="CASCADE"))
    internet_message_id: Mapped[str] = mapped_column(String(998))
    recipient: Mapped[str] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ux_clawback_items_job_message_recipient", "job_id", "message_id", "recipient", unique=True),
        Index("ix_clawback_items_status_next", "status", "next_attempt_at"),
        Index("ix_clawback_items_message_id", "message_id"),
    )


class OutboxRow(Base):
    """The event feed's transactional outbox: one row per recorded message, later timeline event or admin
    change, written in the same transaction as what it reports (docs/events.md). Sinks read it in `id`
    order from their own cursor; rows every sink has passed, or past the retention, are pruned."""

    __tablename__ = "event_outbox"

    id: Mapped[int] = mapped_column(SerialType, primary_key=True, autoincrement=True)
    uid: Mapped[str] = mapped_column(IdType, unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JsonType)


class ExportCursorRow(Base):
    """How far a sink of the feed has got: the last outbox id it acknowledged, and its recent failures."""

    __tablename__ = "export_cursors"

    sink: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_id: Mapped[int] = mapped_column(CountType)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class RestrictedSenderRow(Base):
    """A sender of an organisation restricted from sending outbound mail: over a sending limit, or sending
    spam. `until` None: until an administrator releases it. `would_have`: monitor mode, recorded only."""

    __tablename__ = "restricted_senders"

    organisation: Mapped[str] = mapped_column(String(100), primary_key=True)
    sender: Mapped[str] = mapped_column(String(320), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    since: Mapped[datetime] = mapped_column(UTCDateTime)
    until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    would_have: Mapped[bool] = mapped_column(Boolean, default=False)


class SenderHourRow(Base):
    """What one sender of one organisation did in one UTC hour (`hour`: hours since the epoch): recipients
    addressed, external recipients addressed for the first time, and delivery reports (null-sender mail)
    that came back to it. The compromised-account signals compare the last hours with the sender's own
    busiest hours (`store/sender_activity.py`); rows older than the baseline's days are pruned."""

    __tablename__ = "sender_hours"

    organisation: Mapped[str] = mapped_column(String(100), primary_key=True)
    sender: Mapped[str] = mapped_column(String(320), primary_key=True)
    hour: Mapped[int] = mapped_column(Integer, primary_key=True)
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    new_external: Mapped[int] = mapped_column(Integer, default=0)
    ndrs: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (Index("ix_sender_hours_hour", "hour"),)


class SenderContactRow(Base):
    """An external address a sender has written to, and the UTC hour it last did: "new recipients" are
    those not here. Pruned after the contact window (90 days) without mail."""

    __tablename__ = "sender_contacts"

    organisation: Mapped[str] = mapped_column(String(100), primary_key=True)
    sender: Mapped[str] = mapped_column(String(320), primary_key=True)
    recipient: Mapped[str] = mapped_column(String(320), primary_key=True)
    last_hour: Mapped[int] = mapped_column(Integer)

    __table_args__ = (Index("ix_sender_contacts_last_hour", "last_hour"),)
