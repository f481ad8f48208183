"""The quarantine: entries per recipient, release through the delivery queue, preview, expiry.

Every state change is one transaction that also writes the audit row and the message's trace events,
so the trace, the audit log and the entry never disagree. A release is queued for delivery as the
original bytes (no re-filtering); where no delivery queue is at hand (the CLI beside a running server)
the entry is marked released and the server's release job queues it (`dispatch_releases`).
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
from sqlalchemy import ColumnElement, delete, func, insert, select, update
from sqlalchemy.orm import Session

from mailwarden.errors import NotFoundError
from mailwarden.ids import new_id
from mailwarden.model import Message, Policy
from mailwarden.model.envelope import normalise_address
from mailwarden.model.quarantine import (
    KEEPS_BLOB,
    Actor,
    Entry,
    NewEntry,
    Operation,
    PermissionDeniedError,
    QuarantineError,
    Reason,
    Role,
    Status,
    can,
)
from mailwarden.model.trace import EventType, RecipientStatus
from mailwarden.quarantine.preview import Preview, build_preview
from mailwarden.store.blobs import BlobStore
from mailwarden.store.db import Database
from mailwarden.store.history import History
from mailwarden.store.schema import AuditRow, EventRow, QuarantineRow, RecipientRow

log = structlog.get_logger(__name__)

MAX_LIMIT = 1000
_ID_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
# a plain-string actor is a trusted caller (the CLI, the server's own jobs): it acts as an administrator
SYSTEM_ROLE = Role.ADMIN


class ReleaseDispatcher(Protocol):
    """Queues the original message for delivery to `recipients`; returns the delivery job ids."""

    def __call__(self, message_id: str, mail_from: str, recipients: Sequence[str], raw: bytes) -> list[str]: ...


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


def _insert_entries(session: Session, entries: Sequence[NewEntry]) -> int:
    ids = list({e.message_id for e in entries})
    pairs = select(QuarantineRow.message_id, QuarantineRow.recipient).where(QuarantineRow.message_id.in_(ids))
    present = {(message_id, recipient) for message_id, recipient in session.execute(pairs)}
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
    if rows:  # one executemany, not a unit-of-work object per row (the writer's hot path)
        session.execute(insert(QuarantineRow), rows)
    return len(rows)


class Quarantine:
    """List, read, release, request, decide, delete, preview, download and expire quarantine entries."""

    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        history: History,
        *,
        policies: Callable[[str | None], Policy] | None = None,
        dispatcher: ReleaseDispatcher | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.history = history
        self._policies = policies
        self.dispatcher = dispatcher
        self._clock = clock or (lambda: datetime.now(UTC))

    def policy_for(self, organisation: str | None) -> Policy:
        if self._policies is None or organisation is None:
            return Policy()
        try:
            return self._policies(organisation)
        except NotFoundError:
            return Policy()

    # -- writing entries (the history writer) --------------------------------------------------

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

    def list(self, q: QuarantineQuery, actor: Actor | None = None) -> EntryPage:
        """Entries matching `q`, newest first. A `user` actor sees only their own entries, and only
        those their policy lets them see."""
        filters = self._filters(q)
        if actor is not None and actor.role is Role.USER:
            filters.append(QuarantineRow.recipient == normalise_address(actor.address or ""))
        stmt = select(QuarantineRow).where(*filters).order_by(QuarantineRow.id.desc()).limit(q.limit + 1)
        with self.db.session() as session:
            rows = list(session.scalars(stmt))
        more = len(rows) > q.limit
        rows = rows[: q.limit]
        items = [entry_of_row(row) for row in rows]
        if actor is not None and actor.role is Role.USER:
            items = [e for e in items if self.allowed(actor, Operation.VIEW, e)]
        return EntryPage(items, rows[-1].id if more and rows else None)

    def get(self, entry_id: str, actor: Actor | None = None) -> Entry:
        entry = entry_of_row(self._row_readonly(entry_id))
        if actor is not None and not self.allowed(actor, Operation.VIEW, entry):
            # a user asking for someone else's entry learns nothing about it, not even that it exists
            raise NotFoundError(f"quarantine entry {entry_id} does not exist")
        return entry

    def allowed(self, actor: Actor, action: Operation, entry: Entry) -> bool:
        return can(actor.role, action, entry, self.policy_for(entry.organisation), address=actor.address)

    def preview(self, entry_id: str, actor: Actor | None = None) -> Preview:
        """Headers, text, sanitised HTML and the attachment list; never runs or loads anything."""
        entry = self._checked(entry_id, actor, Operation.PREVIEW)
        return build_preview(Message(self._blob(entry)))

    def download(self, entry_id: str, actor: Actor | None = None) -> bytes:
        """The original message, byte for byte."""
        return self._blob(self._checked(entry_id, actor, Operation.DOWNLOAD))

    # -- changing ------------------------------------------------------------------------------

    def release(
        self, entry_id: str, actor: Actor | str, recipients: Sequence[str] | None = None
    ) -> builtins.list[Entry]:
        """Release the message to all its quarantined recipients the actor may release it to
        (`recipients=None`), or to the chosen original recipients; returns the released entries."""
        who = _actor(actor)
        now = self._clock()
        with self.db.session() as session:
            first = entry_of_row(self._row(session, entry_id))
            siblings = [
                entry_of_row(r)
                for r in session.scalars(
                    select(QuarantineRow).where(QuarantineRow.message_id == first.message_id).order_by(QuarantineRow.id)
                )
            ]
            if recipients is None:
                targets = [e for e in siblings if self.allowed(who, Operation.RELEASE, e)]
                if not targets:
                    self._require(who, Operation.RELEASE, first)
            else:
                by_address = {e.recipient: e for e in siblings}
                targets = []
                for address in dict.fromkeys(normalise_address(r) for r in recipients):
                    target = by_address.get(address)
                    if target is None:
                        raise QuarantineError(f"{address} is not a quarantined recipient of this message")
                    self._require(who, Operation.RELEASE, target)
                    targets.append(target)
            for target in targets:
                after: dict[str, Any] = {"status": Status.RELEASED.value, "released_by": who.name}
                values: dict[str, Any] = {"status": Status.RELEASED.value, "released_at": now, "released_by": who.name}
                if target.status is not Status.HELD:
                    values |= {"decided_at": now, "decided_by": who.name}
                session.execute(update(QuarantineRow).where(QuarantineRow.id == target.id).values(**values))
                _audit(session, now, who, "quarantine.release", target, after)
        released = [self._reload(e.id) for e in targets]
        if self.dispatcher is not None:
            self._dispatch(released)
        return released

    def request_release(self, entry_id: str, actor: Actor | str) -> Entry:
        """A user asks an administrator to release their message."""
        who = _actor(actor)
        now = self._clock()
        with self.db.session() as session:
            entry = entry_of_row(self._row(session, entry_id))
            if isinstance(actor, str):
                self._require_state(entry, Status.HELD, "request release of")
            else:
                self._require(who, Operation.REQUEST_RELEASE, entry)
            session.execute(
                update(QuarantineRow)
                .where(QuarantineRow.id == entry.id)
                .values(status=Status.RELEASE_REQUESTED.value, requested_at=now, requested_by=who.name)
            )
            _audit(session, now, who, "quarantine.request_release", entry, {"status": Status.RELEASE_REQUESTED.value})
        log.info("quarantine_release_requested", entry=entry_id, by=who.name, recipient=entry.recipient)
        return self._reload(entry_id)

    def approve(self, entry_id: str, actor: Actor | str) -> builtins.list[Entry]:
        """Grant a release request: the requesting recipient's copy is released."""
        who = _actor(actor)
        entry = self.get(entry_id)
        self._require(who, Operation.APPROVE, entry)
        return self.release(entry_id, actor, [entry.recipient])

    def _decide(self, entry_id: str, actor: Actor | str, operation: Operation, status: Status, audit: str) -> Entry:
        """Check `actor` may do `operation` on the entry, set its final `status` and audit it; the entry as it was."""
        who = _actor(actor)
        now = self._clock()
        with self.db.session() as session:
            entry = entry_of_row(self._row(session, entry_id))
            self._require(who, operation, entry)
            session.execute(
                update(QuarantineRow)
                .where(QuarantineRow.id == entry.id)
                .values(status=status.value, decided_at=now, decided_by=who.name)
            )
            _audit(session, now, who, audit, entry, {"status": status.value})
        return entry

    def deny(self, entry_id: str, actor: Actor | str) -> Entry:
        self._decide(entry_id, actor, Operation.DENY, Status.DENIED, "quarantine.deny")
        return self._reload(entry_id)

    def delete(self, entry_id: str, actor: Actor | str) -> Entry:
        """Delete the entry (kept as `deleted` for the audit trail until it expires); the message's
        blob goes when no other entry needs it."""
        entry = self._decide(entry_id, actor, Operation.DELETE, Status.DELETED, "quarantine.delete")
        if entry.blob_key:
            self._drop_unneeded_blobs({entry.blob_key})
        return self._reload(entry_id)

    def expire(self, now: datetime | None = None) -> int:
        """Remove entries past their expiry, their blobs when no other entry needs them, and write an
        Expire trace event for each entry that still held its message. Returns how many expired."""
        now = now or self._clock()
        with self.db.session() as session:
            rows = list(session.scalars(select(QuarantineRow).where(QuarantineRow.expires_at <= now)))
        if not rows:
            return 0
        ids = [r.id for r in rows]
        # blobs first: a crash after this leaves entries whose expiry simply runs again
        self._drop_unneeded_blobs({r.blob_key for r in rows if r.blob_key}, leaving=set(ids))
        with self.db.session() as session:
            existing = set(session.scalars(select(QuarantineRow.message_id).where(QuarantineRow.id.in_(ids))))
            for row in rows:
                if row.message_id not in existing or row.status not in {s.value for s in KEEPS_BLOB}:
                    continue
                what = "would-have entry" if row.would_have else "quarantined message"
                session.add(
                    EventRow(
                        message_id=row.message_id,
                        at=now,
                        type=EventType.EXPIRE.value,
                        recipient=row.recipient,
                        detail=f"{what} expired after retention ({row.reason}); entry {row.id} removed",
                        smtp_reply=None,
                    )
                )
            session.execute(delete(QuarantineRow).where(QuarantineRow.id.in_(ids)))
        log.info("quarantine_expired", entries=len(ids))
        return len(ids)

    def dispatch_releases(self) -> int:
        """Queue released entries that no delivery job carries yet (released by the CLI, or a crash
        between release and queueing). Returns how many entries were queued."""
        if self.dispatcher is None:
            return 0
        with self.db.session() as session:
            rows = list(
                session.scalars(
                    select(QuarantineRow).where(
                        QuarantineRow.status == Status.RELEASED.value,
                        QuarantineRow.release_job.is_(None),
                        QuarantineRow.would_have.is_(False),
                    )
                )
            )
        entries = [entry_of_row(r) for r in rows]
        self._dispatch(entries)
        return len(entries)

    # -- helpers -------------------------------------------------------------------------------

    def _dispatch(self, entries: Sequence[Entry]) -> None:
        assert self.dispatcher is not None
        by_message: dict[str, builtins.list[Entry]] = {}
        for entry in entries:
            by_message.setdefault(entry.message_id, []).append(entry)
        for message_id, group in by_message.items():
            raw = self._blob(group[0])
            recipients = [e.recipient for e in group]
            jobs = self.dispatcher(message_id, group[0].sender, recipients, raw)
            now = self._clock()
            with self.db.session() as session:
                session.execute(
                    update(QuarantineRow)
                    .where(QuarantineRow.id.in_([e.id for e in group]))
                    .values(release_job=jobs[0] if jobs else "")
                )
                for entry in group:
                    session.add(
                        EventRow(
                            message_id=message_id,
                            at=now,
                            type=EventType.RELEASE.value,
                            recipient=entry.recipient,
                            detail=f"released from quarantine by {entry.released_by}; queued for delivery "
                            "without re-filtering",
                            smtp_reply=None,
                        )
                    )
                    session.execute(
                        update(RecipientRow)
                        .where(RecipientRow.message_id == message_id, RecipientRow.address == entry.recipient)
                        .values(status=RecipientStatus.PENDING.value)
                    )
            log.info("quarantine_released", message_id=message_id, recipients=recipients, jobs=jobs)

    def _drop_unneeded_blobs(self, keys: set[str], leaving: set[str] | None = None) -> None:
        """Delete the blobs among `keys` that no entry (other than those in `leaving`) still needs."""
        if not keys:
            return
        keep = [s.value for s in KEEPS_BLOB]
        stmt = select(QuarantineRow.blob_key).where(QuarantineRow.blob_key.in_(keys), QuarantineRow.status.in_(keep))
        if leaving:
            stmt = stmt.where(QuarantineRow.id.not_in(leaving))
        with self.db.session() as session:
            needed = set(session.scalars(stmt))
        for key in keys - needed:
            self.blobs.delete(key)

    def _blob(self, entry: Entry) -> bytes:
        if entry.would_have or not entry.blob_key:
            raise QuarantineError(f"entry {entry.id} holds no message (monitor mode: it was delivered)")
        return self.blobs.get(entry.blob_key)

    def _checked(self, entry_id: str, actor: Actor | None, action: Operation) -> Entry:
        entry = self.get(entry_id, actor)
        if actor is not None:
            self._require(actor, action, entry)
        elif entry.status in (Status.DELETED, Status.EXPIRED):
            raise QuarantineError(f"entry {entry_id} is {entry.status.value}")
        return entry

    def _require(self, actor: Actor, action: Operation, entry: Entry) -> None:
        if self.allowed(actor, action, entry):
            return
        if actor.role is Role.USER and not self.allowed(actor, Operation.VIEW, entry):
            raise NotFoundError(f"quarantine entry {entry.id} does not exist")
        if action is Operation.REQUEST_RELEASE:
            state_allows = entry.status is Status.HELD and not entry.would_have
        else:
            state_allows = self.allowed(Actor("", Role.ADMIN), action, entry)
        if state_allows:
            # the entry's state allows it; this role does not
            raise PermissionDeniedError(f"{actor.role.value} may not {action.value} a {entry.reason.value} entry")
        verb = action.value.replace("_", " ")
        if entry.would_have:
            raise QuarantineError(f"cannot {verb} entry {entry.id}: monitor mode, the message was delivered")
        raise QuarantineError(f"cannot {verb} entry {entry.id}: it is {entry.status.value}")

    def _require_state(self, entry: Entry, status: Status, verb: str) -> None:
        if entry.status is not status or entry.would_have:
            raise QuarantineError(f"cannot {verb} entry {entry.id}: it is {entry.status.value}")

    def _row(self, session: Session, entry_id: str) -> QuarantineRow:
        row = session.get(QuarantineRow, entry_id.strip().upper())
        if row is None:
            raise NotFoundError(f"quarantine entry {entry_id} does not exist")
        return row

    def _row_readonly(self, entry_id: str) -> QuarantineRow:
        with self.db.session() as session:
            return self._row(session, entry_id)

    def _reload(self, entry_id: str) -> Entry:
        return entry_of_row(self._row_readonly(entry_id))

    def _filters(self, q: QuarantineQuery) -> builtins.list[ColumnElement[bool]]:
        out: builtins.list[ColumnElement[bool]] = []
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
                out.append(QuarantineRow.sender.like(f"%{_escape_like(text)}", escape="\\"))
            else:
                out.append(QuarantineRow.sender == normalise_address(text))
        for word in (q.subject or "").split():
            out.append(func.lower(QuarantineRow.subject).like(f"%{_escape_like(word.lower())}%", escape="\\"))
        if q.start is not None:
            out.append(QuarantineRow.received_at >= q.start)
        if q.end is not None:
            out.append(QuarantineRow.received_at <= q.end)
        if q.cursor is not None:
            out.append(QuarantineRow.id < q.cursor)
        return out


def _actor(actor: Actor | str) -> Actor:
    return actor if isinstance(actor, Actor) else Actor(actor, SYSTEM_ROLE)


def _audit(session: Session, now: datetime, actor: Actor, action: str, entry: Entry, after: dict[str, Any]) -> None:
    session.add(
        AuditRow(
            at=now,
            actor=actor.name[:200],
            action=action,
            object=f"quarantine/{entry.id}",
            before={"status": entry.status.value, "recipient": entry.recipient, "reason": entry.reason.value},
            after=after,
        )
    )


def _escape_like(word: str) -> str:
    for special in ("\\", "%", "_"):
        word = word.replace(special, "\\" + special)
    return word


def entry_of_row(row: QuarantineRow) -> Entry:
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


__all__ = [
    "EntryPage",
    "Quarantine",
    "QuarantineQuery",
    "ReleaseDispatcher",
]
