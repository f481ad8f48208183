"""Message history (message trace): one row per message, its recipients and its events.

Searches page by message id (a ULID, so newest first is `ORDER BY id DESC`) with a keyset cursor,
never OFFSET; a time range becomes an id range so the primary key serves it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer

from mailwarden.errors import MailwardenError, NotFoundError
from mailwarden.ids import ceiling_id, floor_id
from mailwarden.model import Action, Category, Direction, Mode
from mailwarden.model.envelope import domain_of, normalise_address
from mailwarden.model.trace import EventRecord, EventType, MessageRecord, RecipientRecord, RecipientStatus
from mailwarden.store.db import Database
from mailwarden.store.schema import EventRow, MessageRow, RecipientRow

MAX_LIMIT = 1000
TRIGRAM = 3
_MERGE_ATTEMPTS = 3
_ID_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
_LIKE_ESCAPE = "\\"


class HistoryQueryError(MailwardenError, ValueError):
    """A history search was asked with a bad parameter (limit, cursor, time range)."""

    exit_code = 64  # EX_USAGE


@dataclass
class HistoryQuery:
    """A history search. Every given filter must hold; results come newest first.

    `sender` / `recipient`: an exact address, or `@domain` / `domain` for a whole domain, or `<>`
    for the null sender. `subject`: every word must occur (case-insensitive, substring).
    `cursor`: the `next_cursor` of the previous page.
    """

    start: datetime | None = None
    end: datetime | None = None
    sender: str | None = None
    recipient: str | None = None
    subject: str | None = None
    internet_message_id: str | None = None
    direction: Direction | None = None
    category: Category | None = None
    action: Action | None = None
    organisation: str | None = None
    limit: int = 50
    cursor: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise HistoryQueryError(f"limit must be between 1 and {MAX_LIMIT}, not {self.limit}")
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise HistoryQueryError(f"{name} must carry a time zone")
        if self.start and self.end and self.start > self.end:
            raise HistoryQueryError("start is after end")
        if self.cursor is not None:
            self.cursor = self.cursor.strip().upper()
            if not _ID_RE.match(self.cursor):
                raise HistoryQueryError("cursor is not a message id")


@dataclass
class MessageSummary:
    id: str
    received_at: datetime
    direction: Direction
    mode: Mode
    source: str
    sender: str
    from_address: str | None
    subject: str
    internet_message_id: str | None
    size: int
    category: Category
    scl: int
    bcl: int
    action: Action
    applied: bool
    recipients: list[str]
    organisation: str | None


@dataclass
class Page:
    items: list[MessageSummary]
    next_cursor: str | None  # None on the last page


@dataclass
class MessageDetail:
    summary: MessageSummary
    verdict: dict[str, Any]
    recipients: list[RecipientRecord]
    events: list[EventRecord]
    client_ip: str | None
    sha256: str


def canonical_message_id(value: str | None) -> str | None:
    """A Message-ID in its `<local@domain>` form, whether given with or without angle brackets."""
    if value is None:
        return None
    bare = value.strip().strip("<>").strip()
    return f"<{bare}>" if bare else None


class History:
    """Writes and searches message history."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- writing -------------------------------------------------------------------------------

    def record(self, rec: MessageRecord, events: Sequence[EventRecord] = ()) -> None:
        """Write a message, its recipients and events in one transaction.

        Recording an id that is already in history does nothing, so replaying the spool after a
        crash cannot duplicate a message.
        """
        message = _message_row(rec)
        recipients: dict[str, RecipientRow] = {}
        for recipient in rec.recipients:
            row = _recipient_row(rec.id, recipient, len(recipients))
            recipients.setdefault(row.address, row)
        event_rows = [_event_row(rec.id, event) for event in events]
        if self.exists(rec.id):
            return
        try:
            with self.db.session() as session:
                session.add(message)
                session.flush()  # the message row first: recipients and events reference it
                session.add_all(recipients.values())
                session.add_all(event_rows)
        except IntegrityError:
            if self.exists(rec.id):  # recorded concurrently by another node or worker
                return
            raise

    def record_many(
        self, items: Sequence[tuple[MessageRecord, Sequence[EventRecord]]], *, session: Session | None = None
    ) -> int:
        """Write many messages in one transaction: the server's group commit, one fsync for a batch.

        Ids already in history are skipped, as with `record`. Returns how many were written. Given a
        `session`, the rows join its transaction (the caller commits; a clash raises IntegrityError);
        without one, a clash with another writer falls back to one transaction per message.
        """
        if not items:
            return 0
        if session is not None:
            return _insert_many(session, items)
        try:
            with self.db.session() as own:
                return _insert_many(own, items)
        except IntegrityError:
            written = 0
            for rec, events in items:
                if not self.exists(rec.id):
                    self.record(rec, events)
                    written += 1
            return written

    def existing_ids(self, message_ids: Sequence[str]) -> set[str]:
        """Which of these ids are in history already (one query)."""
        if not message_ids:
            return set()
        with self.db.session() as session:
            return set(session.scalars(select(MessageRow.id).where(MessageRow.id.in_(list(message_ids)))))

    def find_by_internet_message_ids(
        self, keys: Sequence[tuple[str | None, str]], *, since: datetime
    ) -> dict[tuple[str | None, str], str]:
        """For (organisation, Message-ID) pairs: the newest history id received since `since`, if any.

        One query on the Message-ID index; organisation and time are filtered afterwards, because
        letting the planner combine them made it scan an organisation's whole day instead.
        """
        wanted = {(org, canonical_message_id(imid)): (org, imid) for org, imid in keys}
        if not wanted:
            return {}
        floor = floor_id(since)
        stmt = select(MessageRow.id, MessageRow.organisation, MessageRow.internet_message_id).where(
            MessageRow.internet_message_id.in_({imid for _, imid in wanted})
        )
        found: dict[tuple[str | None, str], str] = {}
        with self.db.session() as session:
            for row_id, org, imid in session.execute(stmt):
                key = wanted.get((org, imid))
                if key is not None and row_id >= floor and row_id > found.get(key, ""):
                    found[key] = row_id
        return found

    def exists(self, message_id: str) -> bool:
        with self.db.session() as session:
            return session.get(MessageRow, message_id) is not None

    def add_event(self, message_id: str, event: EventRecord) -> None:
        with self.db.session() as session:
            _require_message(session, message_id)
            session.add(_event_row(message_id, event))

    def set_recipient_status(self, message_id: str, address: str, status: RecipientStatus) -> None:
        address = normalise_address(address)
        with self.db.session() as session:
            result = session.execute(
                update(RecipientRow)
                .where(RecipientRow.message_id == message_id, RecipientRow.address == address)
                .values(status=status.value)
            )
            if result.rowcount == 0:  # type: ignore[attr-defined]
                _require_message(session, message_id)
                raise NotFoundError(f"message {message_id} has no recipient {address}")

    def add_recipients(
        self,
        message_id: str,
        recipients: Sequence[RecipientRecord],
        *,
        event: Callable[[int], EventRecord] | None = None,
        also: Callable[[Session], object] | None = None,
    ) -> int:
        """Add the recipients not yet on the message (journal de-duplication merges copies).

        `event(added)` makes the trace event written in the same transaction, so a reader never sees the
        new recipients without it; `also(session)` adds more rows to that transaction (the quarantine
        entries of the new recipients). Returns how many were added.
        """
        for attempt in range(_MERGE_ATTEMPTS):
            try:
                return self._add_recipients(message_id, recipients, event, also)
            except IntegrityError:
                if attempt == _MERGE_ATTEMPTS - 1:
                    raise
                # Another copy's merge added one of these addresses meanwhile: read again, add the rest.
        raise AssertionError("unreachable")

    def _add_recipients(
        self,
        message_id: str,
        recipients: Sequence[RecipientRecord],
        event: Callable[[int], EventRecord] | None,
        also: Callable[[Session], object] | None,
    ) -> int:
        with self.db.session() as session:
            _require_message(session, message_id)
            rows = session.execute(
                select(RecipientRow.address, RecipientRow.position).where(RecipientRow.message_id == message_id)
            ).all()
            present = {address for address, _ in rows}
            position = max((pos for _, pos in rows), default=-1) + 1
            new: dict[str, RecipientRow] = {}
            for recipient in recipients:
                row = _recipient_row(message_id, recipient, position + len(new))
                if row.address not in present and row.address not in new:
                    new[row.address] = row
            # Inserted in address order, so concurrent merges take their locks in one order: a
            # clash makes one of them wait and retry, never deadlock.
            session.add_all([new[address] for address in sorted(new)])
            if event is not None:
                session.add(_event_row(message_id, event(len(new))))
            if also is not None:
                session.flush()
                also(session)
            return len(new)

    # -- reading -------------------------------------------------------------------------------

    def find_by_internet_message_id(
        self, internet_message_id: str, *, organisation: str | None, since: datetime
    ) -> list[str]:
        """Ids of messages with this Message-ID received since `since`, newest first."""
        imid = canonical_message_id(internet_message_id)
        floor = floor_id(since)
        stmt = select(MessageRow.id, MessageRow.organisation).where(MessageRow.internet_message_id == imid)
        with self.db.session() as session:
            rows = session.execute(stmt).all()
        return sorted((i for i, org in rows if org == organisation and i >= floor), reverse=True)

    def search(self, q: HistoryQuery) -> Page:
        """One page of messages matching every filter of `q`, newest first."""
        stmt = (
            select(MessageRow)
            .options(defer(MessageRow.verdict))  # a summary never shows it; it is most of the row
            .where(*self._filters(q))
            .order_by(MessageRow.id.desc())
            .limit(q.limit + 1)
        )
        with self.db.session() as session:
            rows = list(session.scalars(stmt))
            more = len(rows) > q.limit
            rows = rows[: q.limit]
            recipients = _recipients_of(session, [r.id for r in rows])
        items = [_summary(row, [r.address for r in recipients.get(row.id, [])]) for row in rows]
        return Page(items, rows[-1].id if more else None)

    def get(self, message_id: str) -> MessageDetail:
        """Everything history holds about one message; NotFoundError when it holds nothing."""
        with self.db.session() as session:
            row = session.get(MessageRow, message_id)
            if row is None:
                raise NotFoundError(f"message {message_id} is not in history")
            recipients = _recipients_of(session, [message_id]).get(message_id, [])
            events = session.scalars(
                select(EventRow).where(EventRow.message_id == message_id).order_by(EventRow.at, EventRow.id)
            ).all()
        return MessageDetail(
            summary=_summary(row, [r.address for r in recipients]),
            verdict=row.verdict,
            recipients=[
                RecipientRecord(
                    address=r.address,
                    field=r.field,
                    status=RecipientStatus(r.status),
                    expanded_from=r.expanded_from,
                    forwarded_from=r.forwarded_from,
                )
                for r in recipients
            ],
            events=[
                EventRecord(
                    type=EventType(e.type), detail=e.detail, recipient=e.recipient, smtp_reply=e.smtp_reply, at=e.at
                )
                for e in events
            ],
            client_ip=row.client_ip,
            sha256=row.sha256,
        )

    def _filters(self, q: HistoryQuery) -> list[ColumnElement[bool]]:
        m = MessageRow
        where: list[ColumnElement[bool]] = []
        if q.start is not None:
            where.append(m.id >= floor_id(q.start))
        if q.end is not None:
            where.append(m.id <= ceiling_id(q.end))
        if q.cursor is not None:
            where.append(m.id < q.cursor)
        if q.sender is not None:
            kind, value = _address_filter(q.sender)
            where.append((m.sender_domain if kind == "domain" else m.sender) == value)
        if q.recipient is not None:
            kind, value = _address_filter(q.recipient)
            r = RecipientRow
            column = r.domain if kind == "domain" else r.address
            where.append(exists().where(r.message_id == m.id, column == value))
        if q.subject is not None:
            where.extend(_subject_contains(word) for word in q.subject.split())
        if q.internet_message_id is not None:
            where.append(m.internet_message_id == canonical_message_id(q.internet_message_id))
        if q.direction is not None:
            where.append(m.direction == q.direction.value)
        if q.category is not None:
            where.append(m.category == q.category.value)
        if q.action is not None:
            where.append(m.action == q.action.value)
        if q.organisation is not None:
            where.append(m.organisation == q.organisation)
        return where


def _address_filter(value: str) -> tuple[str, str]:
    """('address', a) for an exact address, ('domain', d) for `@d` or `d`; `<>` is the null sender."""
    text = value.strip()
    if text in ("", "<>"):
        return "address", ""
    if text.startswith("@"):
        return "domain", text[1:].lower()
    if "@" not in text:
        return "domain", text.lower()
    return "address", normalise_address(text)


def _subject_contains(word: str) -> ColumnElement[bool]:
    """Case-insensitive substring match of one word.

    A word shorter than a trigram cannot narrow PostgreSQL's trigram index, only make it return
    every row for a re-check; matching on lower(subject) keeps the planner off that index, so a
    short word is a filter on whatever the other conditions (or the time range) select.
    """
    pattern = f"%{_escape_like(word)}%"
    if len(word) < TRIGRAM:
        return func.lower(MessageRow.subject).like(pattern.lower(), escape=_LIKE_ESCAPE)
    return MessageRow.subject.ilike(pattern, escape=_LIKE_ESCAPE)


def _escape_like(word: str) -> str:
    for special in (_LIKE_ESCAPE, "%", "_"):
        word = word.replace(special, _LIKE_ESCAPE + special)
    return word


def _insert_many(session: Session, items: Sequence[tuple[MessageRecord, Sequence[EventRecord]]]) -> int:
    ids = [rec.id for rec, _ in items]
    present = set(session.scalars(select(MessageRow.id).where(MessageRow.id.in_(ids))))
    fresh: dict[str, tuple[MessageRecord, Sequence[EventRecord]]] = {}
    for rec, events in items:
        if rec.id not in present:
            fresh.setdefault(rec.id, (rec, events))
    if not fresh:
        return 0
    # Core INSERTs of plain dicts (one executemany per table): no mapped object per row, no ORM bulk
    # bookkeeping; the history writer's cost per message is mostly this
    session.execute(_MESSAGES.insert(), [_message_values(rec) for rec, _ in fresh.values()])
    recipient_rows: list[dict[str, Any]] = []
    event_rows: list[dict[str, Any]] = []
    for rec, events in fresh.values():
        seen: set[str] = set()
        for recipient in rec.recipients:
            row = _recipient_values(rec.id, recipient, len(seen))
            if row["address"] not in seen:
                seen.add(row["address"])
                recipient_rows.append(row)
        event_rows.extend(_event_values(rec.id, event) for event in events)
    if recipient_rows:
        session.execute(_RECIPIENTS.insert(), recipient_rows)
    if event_rows:
        session.execute(_EVENTS.insert(), event_rows)
    return len(fresh)


def _require_message(session: Session, message_id: str) -> None:
    if session.get(MessageRow, message_id) is None:
        raise NotFoundError(f"message {message_id} is not in history")


def _recipients_of(session: Session, ids: Sequence[str]) -> dict[str, list[RecipientRow]]:
    out: dict[str, list[RecipientRow]] = {}
    if not ids:
        return out
    stmt = (
        select(RecipientRow)
        .where(RecipientRow.message_id.in_(ids))
        .order_by(RecipientRow.message_id, RecipientRow.position)
    )
    for row in session.scalars(stmt):
        out.setdefault(row.message_id, []).append(row)
    return out


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"{name} must carry a time zone")
    return value.astimezone(UTC)


def _message_row(rec: MessageRecord) -> MessageRow:
    return MessageRow(**_message_values(rec))


def _recipient_row(message_id: str, rec: RecipientRecord, position: int) -> RecipientRow:
    return RecipientRow(**_recipient_values(message_id, rec, position))


def _event_row(message_id: str, event: EventRecord) -> EventRow:
    return EventRow(**_event_values(message_id, event))


def _message_values(rec: MessageRecord) -> dict[str, Any]:
    if not _ID_RE.match(rec.id):
        raise ValueError(f"{rec.id!r} is not a message id")
    verdict = rec.verdict
    sender = normalise_address(rec.sender)
    return {
        "id": rec.id,
        "organisation": rec.organisation,
        "received_at": _aware(rec.received_at, "received_at"),
        "direction": rec.direction.value,
        "mode": rec.mode.value,
        "source": rec.source,
        "sender": sender,
        "sender_domain": domain_of(sender),
        "from_address": normalise_address(rec.from_address) if rec.from_address else None,
        "subject": rec.subject,
        "internet_message_id": canonical_message_id(rec.internet_message_id),
        "size": rec.size,
        "sha256": rec.sha256,
        "client_ip": rec.client_ip,
        "category": verdict.category.value,
        "scl": verdict.scl,
        "bcl": verdict.bcl,
        "phish": verdict.phish.value,
        "action": verdict.disposition.action.value,
        "applied": rec.applied,
        "verdict": verdict.as_dict(),
    }


def _recipient_values(message_id: str, rec: RecipientRecord, position: int) -> dict[str, Any]:
    address = normalise_address(rec.address)
    return {
        "message_id": message_id,
        "address": address,
        "domain": domain_of(address),
        "position": position,
        "field": rec.field,
        "status": rec.status.value,
        "expanded_from": normalise_address(rec.expanded_from) if rec.expanded_from else None,
        "forwarded_from": normalise_address(rec.forwarded_from) if rec.forwarded_from else None,
    }


def _event_values(message_id: str, event: EventRecord) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "at": datetime.now(UTC) if event.at is None else _aware(event.at, "event time"),
        "type": event.type.value,
        "recipient": normalise_address(event.recipient) if event.recipient else None,
        "detail": event.detail,
        "smtp_reply": event.smtp_reply,
    }


_MESSAGES = cast(Table, MessageRow.__table__)
_RECIPIENTS = cast(Table, RecipientRow.__table__)
_EVENTS = cast(Table, EventRow.__table__)


def _summary(row: MessageRow, recipients: list[str]) -> MessageSummary:
    return MessageSummary(
        id=row.id,
        received_at=row.received_at,
        direction=Direction(row.direction),
        mode=Mode(row.mode),
        source=row.source,
        sender=row.sender,
        from_address=row.from_address,
        subject=row.subject,
        internet_message_id=row.internet_message_id,
        size=row.size,
        category=Category(row.category),
        scl=row.scl,
        bcl=row.bcl,
        action=Action(row.action),
        applied=row.applied,
        recipients=recipients,
        organisation=row.organisation,
    )
