"""Restricted senders: who may not send outbound mail, why and since when; every change audited (and so in
the event feed, through the audit writer's outbox row)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from mailwarden.errors import NotFoundError
from mailwarden.model.envelope import normalise_address
from mailwarden.model.outbound import RestrictedSender
from mailwarden.store.audit import write_entry
from mailwarden.store.db import Database
from mailwarden.store.schema import RestrictedSenderRow


def _of(row: RestrictedSenderRow) -> RestrictedSender:
    return RestrictedSender(row.organisation, row.sender, row.reason, row.since, row.until, row.would_have)


class RestrictedSenders:
    def __init__(self, db: Database) -> None:
        self.db = db

    def restrict(self, entry: RestrictedSender, *, actor: str) -> RestrictedSender:
        """Restrict (or record that monitor mode would have); a sender restricted already keeps the earlier
        `since` and gets the later `until`."""
        sender = normalise_address(entry.sender)
        with self.db.session() as session:
            row = session.get(RestrictedSenderRow, (entry.organisation, sender))
            before = None if row is None else _audit(row)
            if row is None:
                row = RestrictedSenderRow(organisation=entry.organisation, sender=sender, since=entry.since)
                session.add(row)
            if before is None:
                row.until = entry.until
            elif entry.until is None or row.until is None:
                row.until = None  # until an administrator releases it, whichever said so
            else:
                row.until = max(row.until, entry.until)
            row.reason, row.would_have = entry.reason, entry.would_have
            write_entry(
                session, at=datetime.now(UTC), actor=actor, action="sender.restrict",
                obj=f"organisation:{entry.organisation}/sender:{sender}", before=before, after=_audit(row),
            )  # fmt: skip
            session.flush()
            return _of(row)

    def release(self, organisation: str, sender: str, *, actor: str) -> None:
        sender = normalise_address(sender)
        with self.db.session() as session:
            row = session.get(RestrictedSenderRow, (organisation, sender))
            if row is None:
                raise NotFoundError(f"{sender} is not restricted in organisation {organisation}")
            write_entry(
                session, at=datetime.now(UTC), actor=actor, action="sender.release",
                obj=f"organisation:{organisation}/sender:{sender}", before=_audit(row), after=None,
            )  # fmt: skip
            session.delete(row)

    def get(self, organisation: str, sender: str) -> RestrictedSender | None:
        with self.db.session() as session:
            row = session.get(RestrictedSenderRow, (organisation, normalise_address(sender)))
            return None if row is None else _of(row)

    def list(self, organisation: str | None = None) -> list[RestrictedSender]:
        with self.db.session() as session:
            query = select(RestrictedSenderRow).order_by(RestrictedSenderRow.since.desc())
            if organisation is not None:
                query = query.where(RestrictedSenderRow.organisation == organisation)
            return [_of(r) for r in session.scalars(query)]


def _audit(row: RestrictedSenderRow) -> dict[str, object]:
    return {
        "reason": row.reason,
        "since": row.since.isoformat() if row.since else None,
        "until": row.until.isoformat() if row.until else None,
        "would_have": row.would_have,
    }
