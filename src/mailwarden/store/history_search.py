"""Searching message history: the query, its filters, and what a search or a trace detail returns.

Searches page by message id (a ULID, so newest first is `ORDER BY id DESC`) with a keyset cursor,
never OFFSET; a time range becomes an id range so the primary key serves it. `History` (history.py)
runs these in its sessions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, exists, func, select
from sqlalchemy.orm import Session, defer

from mailwarden.errors import MailwardenError, NotFoundError
from mailwarden.ids import ceiling_id, floor_id
from mailwarden.model import Action, Category, Direction, Mode
from mailwarden.model.envelope import normalise_address
from mailwarden.model.provider import Agreement, Provider, ProviderCategory, ProviderVerdict
from mailwarden.model.trace import EventRecord, EventType, RecipientRecord, RecipientStatus
from mailwarden.store.schema import EventRow, MessageRow, RecipientRow

MAX_LIMIT = 1000
TRIGRAM = 3
ID_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
_LIKE_ESCAPE = "\\"
_AGREEMENTS = frozenset(a.value for a in Agreement)


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
    provider_category: ProviderCategory | None = None  # the mail provider's verdict of a journal copy
    agreement: Agreement | None = None  # how the provider's verdict compares with mailwarden's
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
            if not ID_RE.match(self.cursor):
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
    provider: ProviderVerdict | None = None  # the mail provider's verdict of a journal copy
    agreement: Agreement | None = None


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


def search(session: Session, q: HistoryQuery) -> Page:
    """One page of messages matching every filter of `q`, newest first."""
    stmt = (
        select(MessageRow)
        .options(defer(MessageRow.verdict))  # a summary never shows it; it is most of the row
        .where(*_filters(q))
        .order_by(MessageRow.id.desc())
        .limit(q.limit + 1)
    )
    rows = list(session.scalars(stmt))
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    recipients = _recipients_of(session, [r.id for r in rows])
    items = [_summary(row, [r.address for r in recipients.get(row.id, [])]) for row in rows]
    return Page(items, rows[-1].id if more else None)


def detail(session: Session, message_id: str) -> MessageDetail:
    """Everything history holds about one message; NotFoundError when it holds nothing."""
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


def _filters(q: HistoryQuery) -> list[ColumnElement[bool]]:
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
    if q.provider_category is not None:
        where.append(m.provider_category == q.provider_category.value)
    if q.agreement is not None:
        where.append(m.provider_agreement == q.agreement.value)
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
    pattern = f"%{escape_like(word)}%"
    if len(word) < TRIGRAM:
        return func.lower(MessageRow.subject).like(pattern.lower(), escape=_LIKE_ESCAPE)
    return MessageRow.subject.ilike(pattern, escape=_LIKE_ESCAPE)


def escape_like(word: str) -> str:
    """`word` matched literally by LIKE ... ESCAPE '\\': its wildcards and the escape character escaped."""
    for special in (_LIKE_ESCAPE, "%", "_"):
        word = word.replace(special, _LIKE_ESCAPE + special)
    return word


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
        provider=_provider(row),
        agreement=Agreement(row.provider_agreement) if row.provider_agreement in _AGREEMENTS else None,
    )


def _provider(row: MessageRow) -> ProviderVerdict | None:
    """The provider's verdict as stored; None when there is none (or a value this version does not know)."""
    if row.provider is None or row.provider_category is None:
        return None
    try:
        return ProviderVerdict(
            provider=Provider(row.provider),
            category=ProviderCategory(row.provider_category),
            scl=row.provider_scl,
            bcl=row.provider_bcl,
            fields={str(k): str(v) for k, v in (row.provider_fields or {}).items()},
        )
    except ValueError:
        return None
