"""The quarantine: who may list, read, release, request, decide and delete entries, what a release sends,
previews, and expiry.

The rules live here and in `model.quarantine.can`; the entries, their audit entries and the trace events
a change causes are written by `store.quarantine`, each change in one transaction. A release is queued for
delivery as the original bytes (no re-filtering); where no delivery queue is at hand (the CLI beside a
running server) the entry is marked released and the server's release job queues it (`dispatch_releases`).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

import structlog

from mailwarden.errors import NotFoundError
from mailwarden.model import Message, Policy
from mailwarden.model.envelope import normalise_address
from mailwarden.model.quarantine import (
    KEEPS_BLOB,
    Actor,
    Entry,
    Operation,
    PermissionDeniedError,
    QuarantineError,
    Role,
    Status,
    can,
)
from mailwarden.model.trace import EventRecord, EventType
from mailwarden.quarantine.preview import Preview, build_preview
from mailwarden.store.blobs import BlobStore
from mailwarden.store.db import Database
from mailwarden.store.history import History
from mailwarden.store.quarantine import EntryPage, QuarantineQuery, QuarantineStore

log = structlog.get_logger(__name__)

# a plain-string actor is a trusted caller (the CLI, the server's own jobs): it acts as an administrator
SYSTEM_ROLE = Role.ADMIN


class ReleaseDispatcher(Protocol):
    """Queues the original message for delivery to `recipients`; returns the delivery job ids."""

    def __call__(self, message_id: str, mail_from: str, recipients: Sequence[str], raw: bytes) -> list[str]: ...


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
        self.store = QuarantineStore(db)
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

    # -- reading -------------------------------------------------------------------------------

    def list(self, q: QuarantineQuery, actor: Actor | None = None) -> EntryPage:
        """Entries matching `q`, newest first. A `user` actor sees only their own entries, and only
        those their policy lets them see."""
        if actor is None or actor.role is not Role.USER:
            return self.store.page(q)
        page = self.store.page(q, recipient=actor.address or "")
        return EntryPage([e for e in page.items if self.allowed(actor, Operation.VIEW, e)], page.next_cursor)

    def get(self, entry_id: str, actor: Actor | None = None) -> Entry:
        entry = self.store.get(entry_id)
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
        first = self.store.get(entry_id)
        targets = self._release_targets(who, first, recipients)
        self.store.release(targets, by=who.name, at=self._clock())
        released = [self.store.get(e.id) for e in targets]
        if self.dispatcher is not None:
            self._dispatch(released)
        return released

    def _release_targets(self, who: Actor, first: Entry, recipients: Sequence[str] | None) -> builtins.list[Entry]:
        """The entries of `first`'s message that a release by `who` to `recipients` (None: all) covers."""
        siblings = self.store.of_message(first.message_id)
        if recipients is None:
            targets = [e for e in siblings if self.allowed(who, Operation.RELEASE, e)]
            if not targets:
                self._require(who, Operation.RELEASE, first)
            return targets
        by_address = {e.recipient: e for e in siblings}
        targets = []
        for address in dict.fromkeys(normalise_address(r) for r in recipients):
            target = by_address.get(address)
            if target is None:
                raise QuarantineError(f"{address} is not a quarantined recipient of this message")
            self._require(who, Operation.RELEASE, target)
            targets.append(target)
        return targets

    def request_release(self, entry_id: str, actor: Actor | str) -> Entry:
        """A user asks an administrator to release their message."""
        who = _actor(actor)
        entry = self.store.get(entry_id)
        if isinstance(actor, str):
            self._require_state(entry, Status.HELD, "request release of")
        else:
            self._require(who, Operation.REQUEST_RELEASE, entry)
        self.store.request_release(entry, by=who.name, at=self._clock())
        log.info("quarantine_release_requested", entry=entry_id, by=who.name, recipient=entry.recipient)
        return self.store.get(entry_id)

    def approve(self, entry_id: str, actor: Actor | str) -> builtins.list[Entry]:
        """Grant a release request: the requesting recipient's copy is released."""
        who = _actor(actor)
        entry = self.get(entry_id)
        self._require(who, Operation.APPROVE, entry)
        return self.release(entry_id, actor, [entry.recipient])

    def _decide(self, entry_id: str, actor: Actor | str, operation: Operation, status: Status, audit: str) -> Entry:
        """Check `actor` may do `operation` on the entry, set its final `status` and audit it; the entry as it was."""
        who = _actor(actor)
        entry = self.store.get(entry_id)
        self._require(who, operation, entry)
        self.store.decide(entry, status, action=audit, by=who.name, at=self._clock())
        return entry

    def deny(self, entry_id: str, actor: Actor | str) -> Entry:
        self._decide(entry_id, actor, Operation.DENY, Status.DENIED, "quarantine.deny")
        return self.store.get(entry_id)

    def delete(self, entry_id: str, actor: Actor | str) -> Entry:
        """Delete the entry (kept as `deleted` for the audit trail until it expires); the message's
        blob goes when no other entry needs it."""
        entry = self._decide(entry_id, actor, Operation.DELETE, Status.DELETED, "quarantine.delete")
        if entry.blob_key:
            self._drop_unneeded_blobs({entry.blob_key})
        return self.store.get(entry_id)

    def expire(self, now: datetime | None = None) -> int:
        """Remove entries past their expiry, their blobs when no other entry needs them, and write an
        Expire trace event for each entry that still held its message. Returns how many expired."""
        now = now or self._clock()
        entries = self.store.expiring(now)
        if not entries:
            return 0
        # blobs first: a crash after this leaves entries whose expiry simply runs again
        self._drop_unneeded_blobs({e.blob_key for e in entries if e.blob_key}, leaving={e.id for e in entries})
        events = [(e, _expire_event(e, now)) for e in entries if e.status in KEEPS_BLOB]
        self.store.remove(entries, events)
        log.info("quarantine_expired", entries=len(entries))
        return len(entries)

    def dispatch_releases(self) -> int:
        """Queue released entries that no delivery job carries yet (released by the CLI, or a crash
        between release and queueing). Returns how many entries were queued."""
        if self.dispatcher is None:
            return 0
        entries = self.store.undispatched_releases()
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
            events = [
                EventRecord(
                    EventType.RELEASE,
                    f"released from quarantine by {entry.released_by}; queued for delivery without re-filtering",
                    recipient=entry.recipient,
                    at=now,
                )
                for entry in group
            ]
            self.store.dispatched(group, jobs[0] if jobs else "", events)
            log.info("quarantine_released", message_id=message_id, recipients=recipients, jobs=jobs)

    def _drop_unneeded_blobs(self, keys: set[str], leaving: set[str] | None = None) -> None:
        """Delete the blobs among `keys` that no entry (other than those in `leaving`) still needs."""
        if not keys:
            return
        for key in keys - self.store.blobs_needed(keys, leaving=leaving):
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


def _actor(actor: Actor | str) -> Actor:
    return actor if isinstance(actor, Actor) else Actor(actor, SYSTEM_ROLE)


def _expire_event(entry: Entry, now: datetime) -> EventRecord:
    what = "would-have entry" if entry.would_have else "quarantined message"
    return EventRecord(
        EventType.EXPIRE,
        f"{what} expired after retention ({entry.reason.value}); entry {entry.id} removed",
        recipient=entry.recipient,
        at=now,
    )


__all__ = ["Quarantine", "ReleaseDispatcher"]
