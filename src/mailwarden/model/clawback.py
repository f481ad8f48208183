"""Clawback as values: what an analyst or the policy asks for, and what became of each recipient's copy.

No I/O: `clawback/` does the work through the mailbox connectors, `store/clawback.py` keeps jobs and items,
the service runs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from mailwarden.model.accounts import Role


class ClawbackAction(StrEnum):
    """What to do with every copy found. `recoverable` is a soft delete out of the user's sight (Microsoft
    365's Recoverable Items; the Trash elsewhere); `delete` is for good and admin-only; `restore` brings a
    copy back to the Inbox."""

    TRASH = "trash"
    JUNK = "junk"
    RECOVERABLE = "recoverable"
    DELETE = "delete"
    RESTORE = "restore"

    @property
    def hard(self) -> bool:
        return self is ClawbackAction.DELETE


def may(role: Role, action: ClawbackAction) -> bool:
    """Admins and analysts claw back and restore; only admins delete for good; users never."""
    if role is Role.ADMIN:
        return True
    return role is Role.ANALYST and not action.hard


class ItemStatus(StrEnum):
    """One recipient's copy. `pending` and `retrying` are waiting for the job engine; the rest are final."""

    PENDING = "pending"
    RETRYING = "retrying"  # the provider was busy or away: tried again after a pause
    NOT_FOUND = "not_found"
    MOVED = "moved"
    DELETED = "deleted"
    RESTORED = "restored"
    ALREADY = "already"  # every copy already where the action would put it: nothing to do
    NO_CONNECTOR = "no_connector"  # no mailbox connector serves the recipient's domain
    FAILED = "failed"

    @property
    def final(self) -> bool:
        return self not in (ItemStatus.PENDING, ItemStatus.RETRYING)

    @property
    def removed(self) -> bool:
        return self in (ItemStatus.MOVED, ItemStatus.DELETED)


class JobKind(StrEnum):
    MESSAGE = "message"  # one message, from its page, the CLI or the API
    CAMPAIGN = "campaign"  # every message a trace search matched
    QUARANTINE = "quarantine"  # monitor-mode quarantine entries (what would have been quarantined)
    AUTO = "auto"  # the organisation's automatic policy, after a verdict or a rescan
    HUNT = "hunt"  # the results of a retro-hunt


@dataclass(frozen=True)
class Target:
    """One recipient's copy of one message to act on."""

    message_id: str  # history id
    internet_message_id: str  # the Message-ID the provider searches for, with angle brackets
    recipient: str


@dataclass(frozen=True)
class ItemView:
    message_id: str
    recipient: str
    status: ItemStatus
    detail: str
    attempts: int
    updated_at: datetime | None


@dataclass(frozen=True)
class JobView:
    """A job as the console, the API and the CLI show it: counts per status and, when asked, its items."""

    id: str
    organisation: str | None
    kind: JobKind
    action: ClawbackAction
    requested_by: str
    reason: str
    created_at: datetime
    finished_at: datetime | None
    counts: dict[ItemStatus, int]
    query: dict[str, object] = field(default_factory=dict)
    items: tuple[ItemView, ...] = ()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def done(self) -> int:
        return sum(n for status, n in self.counts.items() if status.final)

    @property
    def running(self) -> bool:
        return self.finished_at is None


@dataclass(frozen=True)
class ConnectorInfo:
    """A mailbox connector as anyone may see it: everything but the secret."""

    organisation: str
    name: str
    kind: str  # graph / gmail / imap
    domains: tuple[str, ...]  # () = every domain of the organisation
    settings: dict[str, object]
    updated_at: datetime
    updated_by: str

    def serves(self, domain: str) -> bool:
        return not self.domains or domain.lower() in self.domains


@dataclass(frozen=True)
class NewJob:
    """A clawback request as the service hands it to the store, with every recipient's copy in `targets`."""

    id: str
    organisation: str | None
    kind: JobKind
    action: ClawbackAction
    requested_by: str
    reason: str
    targets: tuple[Target, ...]
    query: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Claimed:
    """An item a worker holds (its lease) until it reports the outcome."""

    item_id: int
    job_id: str
    organisation: str | None
    action: ClawbackAction
    target: Target
    attempts: int
    requested_by: str
    reason: str


@dataclass(frozen=True)
class ItemOutcome:
    """What became of a claimed item. `retry_at`: not final, take it again then."""

    item_id: int
    status: ItemStatus
    detail: str
    retry_at: datetime | None = None
