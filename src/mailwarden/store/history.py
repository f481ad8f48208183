"""Message history (message trace): one row per message, its recipients and its events.

`History` writes them and answers searches (the queries are history_search.py's). Trace events are
written only through `add_events` here, whoever adds them (the history writer, the quarantine), and a
recipient's status only through `update_recipient_status`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailwarden.errors import NotFoundError
from mailwarden.ids import floor_id
from mailwarden.model.envelope import domain_of, normalise_address
from mailwarden.model.provider import ProviderVerdict, agreement
from mailwarden.model.trace import EventRecord, MessageRecord, RecipientRecord, RecipientStatus
from mailwarden.model.verdict import Category
from mailwarden.store import outbox
from mailwarden.store.db import Database, insert_rows, select_in
from mailwarden.store.history_search import (
    ID_RE,
    HistoryQuery,
    MessageDetail,
    Page,
    canonical_message_id,
    detail,
    search,
)
from mailwarden.store.schema import EventRow, MessageRow, RecipientRow

_MERGE_ATTEMPTS = 3


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
        event_rows = [_event_values(rec.id, event) for event in events]  # a bad time is refused before writing
        if self.exists(rec.id):
            return
        try:
            with self.db.session() as session:
                session.add(message)
                session.flush()  # the message row first: recipients and events reference it
                session.add_all(recipients.values())
                _insert_events(session, event_rows)
                _append_messages(session, [(rec, events)])
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

    @contextmanager
    def _reading(self, session: Session | None) -> Iterator[Session]:
        """The caller's session, or one of our own for this read."""
        if session is not None:
            yield session
        else:
            with self.db.session() as own:
                yield own

    def existing_ids(self, message_ids: Sequence[str], *, session: Session | None = None) -> set[str]:
        """Which of these ids are in history already (one query)."""
        if not message_ids:
            return set()
        with self._reading(session) as reading:
            return _present_ids(reading, message_ids)

    def find_by_internet_message_ids(
        self, keys: Sequence[tuple[str | None, str, str]], *, since: datetime, session: Session | None = None
    ) -> dict[tuple[str | None, str, str], str]:
        """For (organisation, Message-ID, sender) triples: the newest history id received since `since`, if
        any. The sender counts as it does in the journal de-duplication key: a copy naming another sender is
        another message (or a spoof reusing the Message-ID), never merged into this one's record.

        One query on the Message-ID index; organisation, sender and time are filtered afterwards, because
        letting the planner combine them made it scan an organisation's whole day instead.
        """
        wanted = {
            (org, canonical_message_id(imid), normalise_address(sender)): (org, imid, sender)
            for org, imid, sender in keys
        }
        if not wanted:
            return {}
        floor = floor_id(since)
        messages = _MESSAGES.c
        columns = [messages.id, messages.organisation, messages.internet_message_id, messages.sender]
        found: dict[tuple[str | None, str, str], str] = {}
        with self._reading(session) as reading:
            rows = select_in(reading, columns, messages.internet_message_id, {imid for _, imid, _ in wanted})
            for row_id, org, imid, sender in rows:
                key = wanted.get((org, imid, sender))
                if key is not None and row_id >= floor and row_id > found.get(key, ""):
                    found[key] = row_id
        return found

    def exists(self, message_id: str) -> bool:
        with self.db.session() as session:
            return session.get(MessageRow, message_id) is not None

    def add_event(self, message_id: str, event: EventRecord) -> None:
        with self.db.session() as session:
            _require_message(session, message_id)
            add_events(session, [(message_id, event)])

    def set_recipient_status(self, message_id: str, address: str, status: RecipientStatus) -> None:
        with self.db.session() as session:
            if not update_recipient_status(session, message_id, address, status):
                _require_message(session, message_id)
                raise NotFoundError(f"message {message_id} has no recipient {normalise_address(address)}")

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
                add_events(session, [(message_id, event(len(new)))])
            if also is not None:
                session.flush()
                also(session)
            return len(new)

    # -- reading -------------------------------------------------------------------------------

    def search(self, q: HistoryQuery) -> Page:
        """One page of messages matching every filter of `q`, newest first."""
        with self.db.session() as session:
            return search(session, q)

    def get(self, message_id: str) -> MessageDetail:
        """Everything history holds about one message; NotFoundError when it holds nothing."""
        with self.db.session() as session:
            return detail(session, message_id)

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


def _present_ids(session: Session, message_ids: Collection[str]) -> set[str]:
    return {row[0] for row in select_in(session, [_MESSAGES.c.id], _MESSAGES.c.id, message_ids)}


def _insert_many(session: Session, items: Sequence[tuple[MessageRecord, Sequence[EventRecord]]]) -> int:
    ids = [rec.id for rec, _ in items]
    present = _present_ids(session, ids)
    fresh: dict[str, tuple[MessageRecord, Sequence[EventRecord]]] = {}
    for rec, events in items:
        if rec.id not in present:
            fresh.setdefault(rec.id, (rec, events))
    if not fresh:
        return 0
    # one executemany per table of plain dicts (`db.insert_rows`): no mapped object per row, no generic
    # parameter building; the history writer's cost per message is mostly this
    rows = [_message_values(rec) for rec, _ in fresh.values()]
    insert_rows(session, _MESSAGES, rows)
    recipient_rows: list[dict[str, Any]] = []
    for rec, _ in fresh.values():
        seen: set[str] = set()
        for recipient in rec.recipients:
            row = _recipient_values(rec.id, recipient, len(seen))
            if row["address"] not in seen:
                seen.add(row["address"])
                recipient_rows.append(row)
    if recipient_rows:
        insert_rows(session, _RECIPIENTS, recipient_rows)
    event_rows = [[_event_values(rec.id, event) for event in events] for rec, events in fresh.values()]
    _insert_events(session, [row for rows_of in event_rows for row in rows_of])
    _append_messages(session, list(fresh.values()), rows, event_rows)
    return len(fresh)


def _append_messages(
    session: Session,
    items: Sequence[tuple[MessageRecord, Sequence[EventRecord]]],
    message_rows: Sequence[dict[str, Any]] | None = None,
    event_rows: Sequence[Sequence[dict[str, Any]]] | None = None,
) -> None:
    """The feed's row for each message just written, in the same transaction (docs/events.md); the
    rows just inserted, when given, are not built a second time."""
    messages = message_rows or [_message_values(rec) for rec, _ in items]
    events_of = event_rows or [[_event_values(rec.id, e) for e in events] for rec, events in items]
    outbox.append(
        session,
        [
            ("message", {
                "message": {k: v for k, v in values.items() if k != "id"} | {"id": rec.id},
                "recipients": [_recipient_values(rec.id, r, i) for i, r in enumerate(rec.recipients)],
                "events": list(events),
                "artifacts": getattr(rec, "artifacts", None) or {},
            })
            for (rec, _), values, events in zip(items, messages, events_of, strict=True)
        ],
    )  # fmt: skip


def add_events(session: Session, events: Sequence[tuple[str, EventRecord]]) -> None:
    """Write trace events, (message id, event) each, in `session`'s transaction: the one writer of the
    `events` table for events added after a message was recorded (delivery, quarantine, clawback, rescan),
    used by `History` and the other stores alike; each also becomes a row of the feed. One executemany."""
    rows = [_event_values(message_id, event) for message_id, event in events]
    _insert_events(session, rows)
    if rows:
        contexts = outbox.message_contexts(session, [r["message_id"] for r in rows])
        outbox.append(
            session,
            [
                ("event", {"event": {k: v for k, v in r.items() if k != "message_id"},
                                    "message": contexts.get(r["message_id"], {"id": r["message_id"]})})
                for r in rows
            ],
        )  # fmt: skip


def _insert_events(session: Session, rows: list[dict[str, Any]]) -> None:
    if rows:
        insert_rows(session, _EVENTS, rows)


def update_recipient_status(session: Session, message_id: str, address: str, status: RecipientStatus) -> bool:
    """Set one recipient's status in `session`'s transaction; False when the message has no such recipient."""
    result = session.execute(
        update(RecipientRow)
        .where(RecipientRow.message_id == message_id, RecipientRow.address == normalise_address(address))
        .values(status=status.value)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _require_message(session: Session, message_id: str) -> None:
    if session.get(MessageRow, message_id) is None:
        raise NotFoundError(f"message {message_id} is not in history")


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"{name} must carry a time zone")
    return value.astimezone(UTC)


def _message_row(rec: MessageRecord) -> MessageRow:
    return MessageRow(**_message_values(rec))


def _recipient_row(message_id: str, rec: RecipientRecord, position: int) -> RecipientRow:
    return RecipientRow(**_recipient_values(message_id, rec, position))


def _message_values(rec: MessageRecord) -> dict[str, Any]:
    if not ID_RE.match(rec.id):
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
        **_provider_values(rec.provider, verdict.category),
    }


def _provider_values(provider: ProviderVerdict | None, category: Category) -> dict[str, Any]:
    """The provider's verdict columns: all null when the provider gave none."""
    if provider is None:
        return dict.fromkeys(PROVIDER_COLUMNS)
    return {
        "provider": provider.provider.value,
        "provider_category": provider.category.value,
        "provider_scl": provider.scl,
        "provider_bcl": provider.bcl,
        "provider_fields": dict(provider.fields),
        "provider_agreement": agreement(provider.category, category).value,
    }


PROVIDER_COLUMNS = (
    "provider",
    "provider_category",
    "provider_scl",
    "provider_bcl",
    "provider_fields",
    "provider_agreement",
)


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
