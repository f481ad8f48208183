"""Quarantine entries, digest state and used digest-link tokens: their tables and every query on them.

The rules (who may do what, what a release dispatches, what a digest holds) are the quarantine service's
(`mailwarden.quarantine`); this module reads and writes what they decide. Each change of an entry is one
transaction with its audit entry, and with the trace events it causes (written through history's
`add_events`), so the entry, the audit log and the trace never disagree.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailwarden.errors import NotFoundError
from mailwarden.ids import new_id
from mailwarden.model.envelope import normalise_address
from mailwarden.model.quarantine import KEEPS_BLOB, Entry, NewEntry, QuarantineError, Reason, Status
from mailwarden.model.trace import EventRecord, RecipientStatus
from mailwarden.store.audit import write_entry
from mailwarden.store.db import Database, insert_rows, select_in
from mailwarden.store.history import add_events, update_recipient_status
from mailwarden.store.history_search import escape_like
from mailwarden.store.schema import QuarantineDigestRow, QuarantineRow, QuarantineTokenRow

MAX_LIMIT = 1000
_ID_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
_QUARANTINE = cast(Table, QuarantineRow.__table__)


@dataclass
class QuarantineQuery:
    """A quarantine listing; every given filter must hold; newest first, paged by `cursor`.

    `sender`: an address, or `@domain` for a whole domain. `subject`: every word must occur
    (case-insensitive). `start` / `end`: the time the message was received.
    """

    organisation: str | None = None
    recipient: str | None = None
    reason: Reason | None = None
    status: Status | None = None
    sender: str | None = None
    subject: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    would_have: bool | None = None
    message_id: str | None = None
    limit: int = 50
    cursor: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise QuarantineError(f"limit must be between 1 and {MAX_LIMIT}, not {self.limit}")
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise QuarantineError(f"{name} must carry a time zone")
        if self.cursor is not None:
            self.cursor = self.cursor.strip().upper()
            if not _ID_RE.match(self.cursor):
                raise QuarantineError("cursor is not an entry id")
        if self.reason is not None:
            self.reason = Reason(self.reason)
        if self.status is not None:
            self.status = Status(self.status)


@dataclass
class EntryPage:
    items: list[Entry]
    next_cursor: str | None  # None on the last page


class QuarantineStore:
    """Reads and writes quarantine entries, digest state and used link tokens."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- entries the history writer adds -------------------------------------------------------

    def record(self, entries: Sequence[NewEntry], *, session: Session | None = None) -> int:
        """Add entries, skipping (message, recipient) pairs already present: a replayed spool entry
        writes the same entries again. Given a `session`, the rows join its transaction. Returns how
        many were added."""
        if not entries:
            return 0
        if session is not None:
            return _insert_entries(session, entries)
        with self.db.session() as own:
            return _insert_entries(own, entries)

    # -- reading -------------------------------------------------------------------------------

    def page(self, q: QuarantineQuery, *, recipient: str | None = None) -> EntryPage:
        """Entries matching `q` (and addressed to `recipient`, when given), newest first."""
        filters = _filters(q)
        if recipient is not None:
            filters.append(QuarantineRow.recipient == normalise_address(recipient))
        stmt = select(QuarantineRow).where(*filters).order_by(QuarantineRow.id.desc()).limit(q.limit + 1)
        with self.db.session() as session:
            rows = list(session.scalars(stmt))
        more = len(rows) > q.limit
        rows = rows[: q.limit]
        return EntryPage([_entry_of_row(row) for row in rows], rows[-1].id if more and rows else None)

    def get(self, entry_id: str) -> Entry:
        """The entry; NotFoundError when there is none by that id."""
        with self.db.session() as session:
            return _entry_of_row(_row(session, entry_id))

    def of_message(self, message_id: str) -> list[Entry]:
        """Every entry of one message (one per recipient), oldest first."""
        stmt = select(QuarantineRow).where(QuarantineRow.message_id == message_id).order_by(QuarantineRow.id)
        return self._entries(stmt)

    def expiring(self, now: datetime) -> list[Entry]:
        """Entries whose retention ended at or before `now`."""
        return self._entries(select(QuarantineRow).where(QuarantineRow.expires_at <= now))

    def undispatched_releases(self) -> list[Entry]:
        """Released entries that no delivery job carries yet."""
        return self._entries(
            select(QuarantineRow).where(
                QuarantineRow.status == Status.RELEASED.value,
                QuarantineRow.release_job.is_(None),
                QuarantineRow.would_have.is_(False),
            )
        )

    def held_unnotified(self) -> list[Entry]:
        """Entries holding a message that no digest has listed yet, oldest first."""
        return self._entries(
            select(QuarantineRow)
            .where(
                QuarantineRow.status == Status.HELD.value,
                QuarantineRow.would_have.is_(False),
                QuarantineRow.notified_at.is_(None),
            )
            .order_by(QuarantineRow.id)
        )

    def requested_since(self, after: datetime) -> list[Entry]:
        """Entries whose release was requested after `after` and is still waiting, in request order."""
        return self._entries(
            select(QuarantineRow)
            .where(QuarantineRow.status == Status.RELEASE_REQUESTED.value, QuarantineRow.requested_at > after)
            .order_by(QuarantineRow.requested_at)
        )

    def blobs_needed(self, keys: set[str], *, leaving: set[str] | None = None) -> set[str]:
        """Which blobs among `keys` an entry still holding its message needs (entries in `leaving` aside)."""
        keep = [s.value for s in KEEPS_BLOB]
        stmt = select(QuarantineRow.blob_key).where(QuarantineRow.blob_key.in_(keys), QuarantineRow.status.in_(keep))
        if leaving:
            stmt = stmt.where(QuarantineRow.id.not_in(leaving))
        with self.db.session() as session:
            return {key for key in session.scalars(stmt) if key is not None}

    # -- changing ------------------------------------------------------------------------------

    def release(self, entries: Sequence[Entry], *, by: str, at: datetime) -> None:
        """Mark the entries released by `by` (a decision too, for one that was not simply held)."""
        with self.db.session() as session:
            for entry in entries:
                values: dict[str, Any] = {"status": Status.RELEASED.value, "released_at": at, "released_by": by}
                if entry.status is not Status.HELD:
                    values |= {"decided_at": at, "decided_by": by}
                _update(session, entry, values)
                after = {"status": Status.RELEASED.value, "released_by": by}
                _audit(session, entry, "quarantine.release", after, by=by, at=at)

    def request_release(self, entry: Entry, *, by: str, at: datetime) -> None:
        """Mark the entry's release requested by `by`."""
        with self.db.session() as session:
            status = Status.RELEASE_REQUESTED.value
            _update(session, entry, {"status": status, "requested_at": at, "requested_by": by})
            _audit(session, entry, "quarantine.request_release", {"status": status}, by=by, at=at)

    def decide(self, entry: Entry, status: Status, *, action: str, by: str, at: datetime) -> None:
        """Give the entry its final `status` (denied, deleted), decided by `by`; audited as `action`."""
        with self.db.session() as session:
            _update(session, entry, {"status": status.value, "decided_at": at, "decided_by": by})
            _audit(session, entry, action, {"status": status.value}, by=by, at=at)

    def dispatched(self, entries: Sequence[Entry], job: str, events: Sequence[EventRecord]) -> None:
        """The entries of one message were queued as delivery `job` (their recipients wait for delivery
        again), with `events` on the message's trace."""
        if not entries:
            return
        message_id = entries[0].message_id
        with self.db.session() as session:
            session.execute(
                update(QuarantineRow).where(QuarantineRow.id.in_([e.id for e in entries])).values(release_job=job)
            )
            add_events(session, [(message_id, event) for event in events])
            for entry in entries:
                update_recipient_status(session, message_id, entry.recipient, RecipientStatus.PENDING)

    def remove(self, entries: Sequence[Entry], events: Sequence[tuple[Entry, EventRecord]]) -> None:
        """Delete the entries, writing `events` (each on its entry's message) for those still present: an
        entry whose message left history went with it."""
        ids = [e.id for e in entries]
        with self.db.session() as session:
            present = set(session.scalars(select(QuarantineRow.message_id).where(QuarantineRow.id.in_(ids))))
            add_events(session, [(e.message_id, event) for e, event in events if e.message_id in present])
            session.execute(delete(QuarantineRow).where(QuarantineRow.id.in_(ids)))

    # -- digests and their links ---------------------------------------------------------------

    def last_digests(self, recipients: set[str]) -> dict[str, datetime]:
        """When each of these recipients' last digest was sent (never: left out)."""
        stmt = select(QuarantineDigestRow).where(QuarantineDigestRow.recipient.in_(recipients))
        with self.db.session() as session:
            return {r.recipient: r.last_sent_at for r in session.scalars(stmt)}

    def digest_sent(self, recipient: str, entries: Sequence[Entry], at: datetime) -> None:
        """A digest listing `entries` went to `recipient` at `at`."""
        with self.db.session() as session:
            for entry in entries:
                row = session.get(QuarantineRow, entry.id)
                if row is not None:
                    row.notified_at = at
            state = session.get(QuarantineDigestRow, recipient)
            if state is None:
                session.add(QuarantineDigestRow(recipient=recipient, last_sent_at=at))
            else:
                state.last_sent_at = at

    def use_token(self, token_id: str, *, at: datetime, expires_at: datetime) -> bool:
        """Record a digest link's token as used; False when it was used already."""
        try:
            with self.db.session() as session:
                session.add(QuarantineTokenRow(id=token_id, used_at=at, expires_at=expires_at))
        except IntegrityError:
            return False
        return True

    def forget_tokens(self, expired_before: datetime) -> None:
        """Drop used token ids whose links have expired anyway."""
        with self.db.session() as session:
            stmt = select(QuarantineTokenRow).where(QuarantineTokenRow.expires_at < expired_before)
            for row in session.scalars(stmt):
                session.delete(row)

    def _entries(self, stmt: Any) -> list[Entry]:
        with self.db.session() as session:
            return [_entry_of_row(row) for row in session.scalars(stmt)]


def _insert_entries(session: Session, entries: Sequence[NewEntry]) -> int:
    ids = {e.message_id for e in entries}
    table = _QUARANTINE.c
    present = set(select_in(session, [table.message_id, table.recipient], table.message_id, ids))
    rows: list[dict[str, Any]] = []
    for e in entries:
        if (e.message_id, e.recipient) in present:
            continue
        present.add((e.message_id, e.recipient))
        rows.append(
            {
                "id": new_id(e.received_at),
                "message_id": e.message_id,
                "organisation": e.organisation,
                "recipient": e.recipient,
                "reason": e.reason.value,
                "sender": e.sender,
                "subject": e.subject,
                "received_at": e.received_at,
                "expires_at": e.expires_at,
                "status": Status.HELD.value,
                "would_have": e.would_have,
                "blob_key": e.blob_key,
                "sha256": e.sha256,
                "size": e.size,
            }
        )
    insert_rows(session, _QUARANTINE, rows)  # one executemany on the driver (the writer's hot path)
    return len(rows)


def _row(session: Session, entry_id: str) -> QuarantineRow:
    row = session.get(QuarantineRow, entry_id.strip().upper())
    if row is None:
        raise NotFoundError(f"quarantine entry {entry_id} does not exist")
    return row


def _update(session: Session, entry: Entry, values: dict[str, Any]) -> None:
    session.execute(update(QuarantineRow).where(QuarantineRow.id == entry.id).values(**values))


def _audit(session: Session, entry: Entry, action: str, after: dict[str, Any], *, by: str, at: datetime) -> None:
    before = {"status": entry.status.value, "recipient": entry.recipient, "reason": entry.reason.value}
    write_entry(session, at=at, actor=by, action=action, obj=f"quarantine/{entry.id}", before=before, after=after)


def _filters(q: QuarantineQuery) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    if q.organisation is not None:
        out.append(QuarantineRow.organisation == q.organisation)
    if q.recipient:
        out.append(QuarantineRow.recipient == normalise_address(q.recipient))
    if q.reason is not None:
        out.append(QuarantineRow.reason == q.reason.value)
    if q.status is not None:
        out.append(QuarantineRow.status == q.status.value)
    if q.would_have is not None:
        out.append(QuarantineRow.would_have.is_(q.would_have))
    if q.message_id:
        out.append(QuarantineRow.message_id == q.message_id.strip().upper())
    if q.sender:
        text = q.sender.strip().lower()
        if text.startswith("@"):
            out.append(QuarantineRow.sender.like(f"%{escape_like(text)}", escape="\\"))
        else:
            out.append(QuarantineRow.sender == normalise_address(text))
    for word in (q.subject or "").split():
        out.append(func.lower(QuarantineRow.subject).like(f"%{escape_like(word.lower())}%", escape="\\"))
    if q.start is not None:
        out.append(QuarantineRow.received_at >= q.start)
    if q.end is not None:
        out.append(QuarantineRow.received_at <= q.end)
    if q.cursor is not None:
        out.append(QuarantineRow.id < q.cursor)
    return out


def _entry_of_row(row: QuarantineRow) -> Entry:
    return Entry(
        id=row.id,
        message_id=row.message_id,
        organisation=row.organisation,
        recipient=row.recipient,
        reason=Reason(row.reason),
        sender=row.sender,
        subject=row.subject,
        received_at=row.received_at,
        expires_at=row.expires_at,
        status=Status(row.status),
        would_have=row.would_have,
        blob_key=row.blob_key,
        sha256=row.sha256,
        size=row.size,
        released_at=row.released_at,
        released_by=row.released_by,
        requested_at=row.requested_at,
        requested_by=row.requested_by,
        decided_at=row.decided_at,
        decided_by=row.decided_by,
    )
