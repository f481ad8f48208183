"""A quarantine over a migrated database and a blob directory, with a dispatcher that records releases."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mailwarden.ids import new_id
from mailwarden.model import Action, Category, Direction, Disposition, Finding, Mode, StageOutcome, StageResult, Verdict
from mailwarden.model.policy import Policy
from mailwarden.model.quarantine import Entry, Reason, new_entries
from mailwarden.model.trace import MessageRecord, RecipientRecord, RecipientStatus
from mailwarden.quarantine import Quarantine
from mailwarden.store import Database, History, LocalBlobStore
from mailwarden.store.quarantine import QuarantineQuery
from tests.factories import build_message

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@dataclass
class Dispatched:
    """What the quarantine handed to delivery."""

    calls: list[tuple[str, str, tuple[str, ...], bytes]] = field(default_factory=list)

    def __call__(self, message_id: str, mail_from: str, recipients: Sequence[str], raw: bytes) -> list[str]:
        self.calls.append((message_id, mail_from, tuple(recipients), raw))
        return [new_id()]


@dataclass
class World:
    db: Database
    history: History
    blobs: LocalBlobStore
    quarantine: Quarantine
    dispatched: Dispatched
    policies: dict[str, Policy]

    def quarantined(
        self,
        *,
        reason: Reason = Reason.SPAM,
        recipients: tuple[str, ...] = ("bob@corp.example",),
        raw: bytes | None = None,
        would_have: bool = False,
        at: datetime = T0,
        subject: str = "Cheap watches",
        sender: str = "spammer@bad.example",
        findings: tuple[Finding, ...] = (),
        malware: tuple[str, ...] = (),
    ) -> list[Entry]:
        """A message in history, its blob, and one entry per recipient, as the history writer leaves them."""
        raw = raw if raw is not None else build_message(sender=sender, to=", ".join(recipients), subject=subject)
        message_id = new_id(at)
        verdict = Verdict(
            direction=Direction.INBOUND,
            category=Category(reason.value) if reason.value != "dlp" else Category.RULE,
            disposition=Disposition(Action.QUARANTINE),
            malware=malware,
            stages=(StageResult("spam", StageOutcome.DETECTED, findings),) if findings else (),
        )
        status = RecipientStatus.RECORDED if would_have else RecipientStatus.QUARANTINED
        self.history.record(
            MessageRecord(
                id=message_id,
                organisation="corp",
                received_at=at,
                direction=Direction.INBOUND,
                mode=Mode.MONITOR if would_have else Mode.ENFORCE,
                source="smtp",
                sender=sender,
                from_address=sender,
                subject=subject,
                internet_message_id=None,
                size=len(raw),
                sha256="ab" * 32,
                client_ip=None,
                verdict=verdict,
                applied=not would_have,
                recipients=[RecipientRecord(r, "envelope", status) for r in recipients],
            )
        )
        key = f"quarantine-{message_id}.eml"
        if not would_have:
            self.blobs.put(key, raw)
        entries = new_entries(
            message_id=message_id,
            organisation="corp",
            recipients=recipients,
            reason=reason,
            sender=sender,
            subject=subject,
            received_at=at,
            policy=self.policies.get("corp", Policy()),
            would_have=would_have,
            blob_key=key,
            sha256="ab" * 32,
            size=len(raw),
        )
        self.quarantine.store.record(entries)
        page = self.quarantine.list(QuarantineQuery(message_id=message_id))
        return sorted(page.items, key=lambda e: recipients.index(e.recipient))
