"""The quarantine's closed sets, its entry as plain values, and who may do what (`can`).

`can` is pure: the service, the REST API and the console all ask it, so the three never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from mailwarden.errors import MailwardenError
from mailwarden.model import Action, Category, Verdict
from mailwarden.model.envelope import normalise_address
from mailwarden.model.policy import EndUserAccess, Policy
from mailwarden.model.rules import Rule, RuleMode
from mailwarden.model.rules_outcome import rule_action


class Reason(StrEnum):
    """Why a message was quarantined (EOP's quarantine reasons)."""

    SPAM = "spam"
    HIGH_CONFIDENCE_SPAM = "high_confidence_spam"
    BULK = "bulk"
    PHISH = "phish"
    HIGH_CONFIDENCE_PHISH = "high_confidence_phish"
    MALWARE = "malware"
    RULE = "rule"
    DLP = "dlp"


class Status(StrEnum):
    HELD = "held"
    RELEASE_REQUESTED = "release_requested"
    RELEASED = "released"
    DENIED = "denied"
    DELETED = "deleted"
    EXPIRED = "expired"


class Role(StrEnum):
    ADMIN = "admin"
    ANALYST = "analyst"  # reads everything, releases spam and bulk
    USER = "user"  # own entries only, as the policy's quarantine_permissions allow


class Operation(StrEnum):
    VIEW = "view"  # list and read the entry's details
    PREVIEW = "preview"
    DOWNLOAD = "download"
    RELEASE = "release"
    REQUEST_RELEASE = "request_release"
    APPROVE = "approve"
    DENY = "deny"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: a name for the trace and audit, a role, and (for users) the address they own."""

    name: str
    role: Role
    address: str | None = None


# entries that still hold the message: the blob must stay while one of them needs it
KEEPS_BLOB = frozenset({Status.HELD, Status.RELEASE_REQUESTED, Status.RELEASED, Status.DENIED})
RELEASABLE = frozenset({Status.HELD, Status.RELEASE_REQUESTED, Status.DENIED})
ANALYST_RELEASES = frozenset({Reason.SPAM, Reason.BULK})
ADMIN_ONLY_RELEASE = frozenset({Reason.MALWARE, Reason.HIGH_CONFIDENCE_PHISH})

_CATEGORY_REASONS = {
    Category.SPAM: Reason.SPAM,
    Category.HIGH_CONFIDENCE_SPAM: Reason.HIGH_CONFIDENCE_SPAM,
    Category.BULK: Reason.BULK,
    Category.PHISH: Reason.PHISH,
    Category.HIGH_CONFIDENCE_PHISH: Reason.HIGH_CONFIDENCE_PHISH,
    Category.MALWARE: Reason.MALWARE,
    Category.RULE: Reason.RULE,
    # a message held because scanning failed (the fail-safe) may carry anything: admins only
    Category.SCAN_ERROR: Reason.MALWARE,
}


class QuarantineError(MailwardenError):
    """A quarantine operation that cannot be done in the entry's present state (a conflict)."""

    exit_code = 65


class PermissionDeniedError(MailwardenError):
    """The actor may not do this to this entry."""

    exit_code = 77  # EX_NOPERM


@dataclass(frozen=True, slots=True)
class Entry:
    """One quarantined recipient of one message (`would_have`: monitor mode, nothing is held)."""

    id: str
    message_id: str
    organisation: str | None
    recipient: str
    reason: Reason
    sender: str
    subject: str
    received_at: datetime
    expires_at: datetime
    status: Status
    would_have: bool
    blob_key: str | None
    sha256: str
    size: int
    released_at: datetime | None = None
    released_by: str | None = None
    requested_at: datetime | None = None
    requested_by: str | None = None
    decided_at: datetime | None = None
    decided_by: str | None = None


def reason_for(verdict: Verdict, policy: Policy) -> Reason | None:
    """The quarantine reason of a verdict whose action is (or would be) quarantine; None otherwise.

    A message a transport rule quarantined is `dlp` when that rule (`policy`'s, by name) matched on
    sensitive information, `rule` otherwise.
    """
    if verdict.disposition.action is not Action.QUARANTINE:
        return None
    reason = _CATEGORY_REASONS.get(verdict.category, Reason.RULE)
    if reason is Reason.RULE:
        rule = _quarantining_rule(verdict, policy)
        if rule is not None and rule.conditions.sensitive_info:
            return Reason.DLP
    return reason


def _quarantining_rule(verdict: Verdict, policy: Policy) -> Rule | None:
    """The rule whose action became the verdict's quarantine: the first matched enforce rule that
    quarantines (a stronger action, reject or delete, would have won over it: see rules/outcome.py)."""
    enforced = {r.name: r for r in policy.rules if r.mode is RuleMode.ENFORCE}
    for hit in verdict.rules:  # matched rules in order
        rule = None if hit.audit else enforced.get(hit.name)
        if rule is not None:
            action = rule_action(rule)
            if action is not None and action.action is Action.QUARANTINE:
                return rule
    return None


def user_access(policy: Policy, reason: Reason) -> EndUserAccess:
    access: EndUserAccess = getattr(policy.quarantine_permissions, reason.value)
    return access


def can(role: Role, action: Operation, entry: Entry, policy: Policy, *, address: str | None = None) -> bool:
    """Whether `role` may do `action` to `entry` now (its state included).

    A `user` acts only on entries addressed to `address` (compared case-insensitively); without an
    address a user may do nothing. Monitor-mode (would-have) entries can only be viewed and deleted:
    the message was delivered, nothing is held to preview or release.
    """
    role, action = Role(role), Operation(action)
    access: EndUserAccess | None = None
    if role is Role.USER:
        if address is None or address.strip().lower() != entry.recipient.lower():
            return False
        access = user_access(policy, entry.reason)
        if access is EndUserAccess.NONE:
            return False
    gone = entry.status in (Status.DELETED, Status.EXPIRED)
    if action is Operation.VIEW:
        return not gone or role is not Role.USER
    if gone:
        return False
    if action is Operation.DELETE:
        return role is not Role.ANALYST
    if entry.would_have:
        return False
    match action:
        case Operation.PREVIEW:
            return True
        case Operation.DOWNLOAD:
            return role is not Role.USER
        case Operation.RELEASE:
            if role is Role.ADMIN:
                return entry.status in RELEASABLE
            if role is Role.ANALYST:
                return entry.reason in ANALYST_RELEASES and entry.status in RELEASABLE
            return access is EndUserAccess.RELEASE and entry.status is Status.HELD
        case Operation.REQUEST_RELEASE:
            return role is Role.USER and access is EndUserAccess.REQUEST and entry.status is Status.HELD
        case Operation.APPROVE | Operation.DENY:
            if entry.status is not Status.RELEASE_REQUESTED:
                return False
            return role is Role.ADMIN or (role is Role.ANALYST and entry.reason in ANALYST_RELEASES)
    return False


@dataclass(frozen=True, slots=True)
class NewEntry:
    """An entry the history writer adds beside the message's history record."""

    message_id: str
    organisation: str | None
    recipient: str
    reason: Reason
    sender: str
    subject: str
    received_at: datetime
    expires_at: datetime
    would_have: bool
    blob_key: str | None
    sha256: str
    size: int


def new_entries(
    *,
    message_id: str,
    organisation: str | None,
    recipients: Iterable[str],
    reason: Reason,
    sender: str,
    subject: str,
    received_at: datetime,
    policy: Policy,
    would_have: bool,
    blob_key: str | None,
    sha256: str,
    size: int,
) -> list[NewEntry]:
    """One entry per distinct recipient, expiring after the policy's retention for the reason."""
    days: int = getattr(policy.quarantine_retention, reason.value)
    expires = received_at + timedelta(days=days)
    return [
        NewEntry(
            message_id,
            organisation,
            address,
            reason,
            sender,
            subject,
            received_at,
            expires,
            would_have,
            None if would_have else blob_key,
            sha256,
            size,
        )
        for address in dict.fromkeys(normalise_address(r) for r in recipients)
    ]
