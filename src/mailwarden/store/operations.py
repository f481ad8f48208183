"""What the operations views read from history and write to the audit log: the deliveries given up
recently, the organisation of queued messages, and one audit entry per retry or delete."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from mailwarden.ids import floor_id
from mailwarden.model.trace import EventType
from mailwarden.store.audit import write_entry
from mailwarden.store.db import Database
from mailwarden.store.schema import EventRow, MessageRow

EXPIRED_PREFIX = "expired after"  # how the delivery agent words a failure its queue lifetime ended


@dataclass(frozen=True, slots=True)
class GivenUp:
    """One recipient the delivery agent gave up on: refused for good by the next hop, or expired."""

    message_id: str
    organisation: str | None
    subject: str
    at: datetime
    recipient: str
    detail: str
    reply: str
    expired: bool


def given_up(
    db: Database, *, since: datetime, received_since: datetime, organisation: str | None = None, limit: int = 200
) -> list[GivenUp]:
    """Delivery failures traced at or after `since`, newest first, of messages received at or after
    `received_since` (a message cannot fail later than its queue lifetime after it came: this bounds
    the read to a range of the events' message-id index). `organisation` keeps only its messages."""
    stmt = (
        select(EventRow, MessageRow.organisation, MessageRow.subject)
        .join(MessageRow, MessageRow.id == EventRow.message_id)
        .where(EventRow.message_id >= floor_id(received_since))
        .where(EventRow.type == EventType.FAIL.value, EventRow.at >= since)
        .order_by(EventRow.at.desc(), EventRow.id.desc())
        .limit(limit)
    )
    if organisation is not None:
        stmt = stmt.where(MessageRow.organisation == organisation)
    with db.session() as session:
        rows = session.execute(stmt).all()
    return [
        GivenUp(
            message_id=event.message_id,
            organisation=org,
            subject=subject,
            at=event.at,
            recipient=event.recipient or "",
            detail=event.detail,
            reply=event.smtp_reply or "",
            expired=event.detail.removeprefix("DSN: ").startswith(EXPIRED_PREFIX),
        )
        for event, org, subject in rows
    ]


def organisations_of(db: Database, message_ids: Collection[str]) -> dict[str, str | None]:
    """The organisation of each message in history (ids not in history are left out)."""
    found: dict[str, str | None] = {}
    ids = sorted(set(message_ids))
    with db.session() as session:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for message_id, organisation in session.execute(
                select(MessageRow.id, MessageRow.organisation).where(MessageRow.id.in_(chunk))
            ):
                found[message_id] = organisation
    return found


def audit_operation(
    db: Database, *, at: datetime, actor: str, action: str, obj: str, before: Mapping[str, Any] | None
) -> None:
    """One audit entry for an administrator's change to the delivery queue (`queue.retry`, `queue.delete`)."""
    with db.session() as session:
        after = None if action == "queue.delete" else dict(before or {}) | {"retried_at": at.isoformat()}
        write_entry(session, at=at, actor=actor, action=action, obj=obj, before=before, after=after)
