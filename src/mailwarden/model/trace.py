"""What message history records: the message, its recipients and the events of its timeline (trace).

Plain values, no I/O: the scanner and the outcome of a verdict make them, the store keeps them, the API,
console and event feed show them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from mailwarden.model.direction import Direction
from mailwarden.model.org import Mode
from mailwarden.model.provider import ProviderVerdict
from mailwarden.model.verdict import Verdict


class EventType(StrEnum):
    """Trace events, in the words of Exchange message tracking where one exists."""

    RECEIVE = "receive"
    JOURNAL_UNWRAP = "journal_unwrap"
    SCAN = "scan"
    DELIVER = "deliver"
    DEFER = "defer"
    FAIL = "fail"
    QUARANTINE = "quarantine"
    DROP = "drop"
    REJECT = "reject"
    REDIRECT = "redirect"
    JUNK = "junk"
    RELEASE = "release"
    EXPIRE = "expire"
    CLAWBACK = "clawback"  # a delivered copy was moved out of the recipient's Inbox or deleted
    CLAWBACK_FAILED = "clawback_failed"  # the provider refused or the copy could not be reached
    RESTORE = "restore"  # a clawed-back copy was moved back to the Inbox
    RECORD = "record"  # monitor mode: the action that would have been taken, recorded only
    DSN = "dsn"  # a delivery status notification (NDR) was sent to the sender
    NOTIFY = "notify"  # a notification about the message was sent (malware alert to admins / sender)
    RULE = "rule"  # a transport rule matched and acted (audit-mode rules are recorded as Record)
    RESCAN = "rescan"  # a retro-hunt found the message: today's verdict differs, or an indicator matched


class RecipientStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEFERRED = "deferred"
    FAILED = "failed"
    QUARANTINED = "quarantined"
    DROPPED = "dropped"
    REJECTED = "rejected"
    REDIRECTED = "redirected"
    JUNKED = "junked"
    RECORDED = "recorded"  # monitor mode: the mail service delivered it, we only recorded
    INTERNAL = "internal"


@dataclass
class RecipientRecord:
    address: str
    field: str = "envelope"  # to / cc / bcc / recipient / envelope / header
    status: RecipientStatus = RecipientStatus.PENDING
    expanded_from: str | None = None
    forwarded_from: str | None = None


@dataclass
class EventRecord:
    type: EventType
    detail: str = ""
    recipient: str | None = None
    smtp_reply: str | None = None
    at: datetime | None = None  # None: now (UTC)


@dataclass
class MessageRecord:
    """One message as history keeps it. `id` is a `mailwarden.ids.new_id()`."""

    id: str
    organisation: str | None
    received_at: datetime
    direction: Direction
    mode: Mode
    source: str  # "smtp" | "journal" | "scan"
    sender: str  # envelope sender, "" for the null sender
    from_address: str | None
    subject: str
    internet_message_id: str | None
    size: int
    sha256: str
    client_ip: str | None
    verdict: Verdict
    applied: bool  # False in monitor mode: the action was only recorded as would-have
    recipients: list[RecipientRecord] = field(default_factory=list)
    # the message's files, links and To/Cc addresses (`model.artifacts.artifacts_of`, text redacted) for the
    # event feed; history's tables do not store them
    artifacts: dict[str, Any] = field(default_factory=dict)
    # a journal copy's verdict by the mail provider that delivered it (Microsoft 365, Google), when it says one
    provider: ProviderVerdict | None = None
