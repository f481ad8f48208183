"""What the pipeline concluded about one message, as plain values."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mailwarden.model.direction import Direction


class StageOutcome(StrEnum):
    """What one engine or stage made of a message. A stage that failed is never `clean`."""

    CLEAN = "clean"
    DETECTED = "detected"
    ENCRYPTED = "encrypted"
    SKIPPED = "skipped"
    ERROR = "error"


class Action(StrEnum):
    """What happens (or would have happened, in monitor mode) to a message."""

    DELIVER = "deliver"
    JUNK = "junk"
    ADD_HEADER = "add_header"
    PREPEND_SUBJECT = "prepend_subject"
    REDIRECT = "redirect"
    QUARANTINE = "quarantine"
    REJECT = "reject"
    DROP = "drop"
    REPLACE_ATTACHMENTS = "replace_attachments"


class Category(StrEnum):
    """The verdict category, the one word an analyst filters history by."""

    CLEAN = "clean"
    SPAM = "spam"
    HIGH_CONFIDENCE_SPAM = "high_confidence_spam"
    BULK = "bulk"
    PHISH = "phish"
    HIGH_CONFIDENCE_PHISH = "high_confidence_phish"
    MALWARE = "malware"
    RULE = "rule"
    BLOCKED = "blocked"  # refused at connection level (IP block list)
    INTERNAL = "internal"
    SCAN_ERROR = "scan_error"


class PhishLevel(StrEnum):
    NONE = "none"
    PHISH = "phish"
    HIGH_CONFIDENCE = "high_confidence"


@dataclass(frozen=True, slots=True)
class Finding:
    """One named piece of evidence (`SPF_FAIL`, `MALWARE_EICAR`, ...) with its score."""

    stage: str
    code: str
    score: float = 0.0
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "code": self.code, "score": self.score, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class StageResult:
    """The per-stage record: it is the trace row, the report header and the exported event."""

    stage: str
    outcome: StageOutcome
    findings: tuple[Finding, ...] = ()
    duration_ms: float = 0.0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "outcome": self.outcome.value,
            "findings": [f.as_dict() for f in self.findings],
            "duration_ms": round(self.duration_ms, 3),
            "error": self.error,
        }


class ModificationKind(StrEnum):
    """A change a transport rule makes to a message that is still delivered (docs/rules.md)."""

    ADD_HEADER = "add_header"
    SET_HEADER = "set_header"
    REMOVE_HEADER = "remove_header"
    ADD_RECIPIENT = "add_recipient"  # name: To, Cc or Bcc; value: the address
    PREPEND_SUBJECT = "prepend_subject"
    DISCLAIMER = "disclaimer"  # value: text, html: the HTML form
    DELIVERY_POOL = "delivery_pool"  # value: the pool name
    INCIDENT_REPORT = "incident_report"  # value: the administrator's address


@dataclass(frozen=True, slots=True)
class Modification:
    kind: ModificationKind
    rule: str
    name: str = ""
    value: str = ""
    html: str = ""

    def as_dict(self) -> dict[str, Any]:
        out = {"kind": self.kind.value, "rule": self.rule, "name": self.name, "value": self.value}
        if self.html:
            out["html"] = self.html
        return out


@dataclass(frozen=True, slots=True)
class Disposition:
    """The action chosen for a message and its parameters.

    `applied` is False when the action was only recorded (monitor mode, audit rules).
    """

    action: Action
    reason: str = ""
    header: tuple[str, str] | None = None
    subject_prefix: str | None = None
    redirect_to: tuple[str, ...] = ()
    replace_attachments: tuple[str, ...] = ()
    alert_text: str | None = None
    smtp_reply: str | None = None
    applied: bool = False
    # transport rules' changes to a message that is delivered (headers, recipients, disclaimer, pool)
    modifications: tuple[Modification, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "modifications": [m.as_dict() for m in self.modifications],
            "action": self.action.value,
            "reason": self.reason,
            "header": list(self.header) if self.header else None,
            "subject_prefix": self.subject_prefix,
            "redirect_to": list(self.redirect_to),
            "replace_attachments": list(self.replace_attachments),
            "smtp_reply": self.smtp_reply,
            "applied": self.applied,
        }


@dataclass(frozen=True, slots=True)
class RuleHit:
    """A transport rule that matched: its name, whether it only audits, and why it matched."""

    name: str
    audit: bool = False
    reasons: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.name} (audit)" if self.audit else self.name

    @property
    def detail(self) -> str:
        mode = "audit: would have" if self.audit else "enforce"
        return f"{self.name} ({mode}): " + "; ".join(self.reasons)


@dataclass(frozen=True, slots=True)
class Verdict:
    """Everything the pipeline concluded. SCL is -1..9, BCL 0..9."""

    direction: Direction
    category: Category
    disposition: Disposition
    scl: int = 0
    bcl: int = 0
    phish: PhishLevel = PhishLevel.NONE
    score: float = 0.0
    malware: tuple[str, ...] = ()
    dlp_matches: tuple[dict[str, Any], ...] = ()
    rules: tuple[RuleHit, ...] = ()  # the transport rules that matched, in order
    auth: dict[str, str] = field(default_factory=dict)
    stages: tuple[StageResult, ...] = ()
    scan_errors: tuple[str, ...] = ()

    @property
    def rule_hits(self) -> tuple[str, ...]:
        """The matched rules as shown: their names, audit rules marked."""
        return tuple(hit.label for hit in self.rules)

    @property
    def findings(self) -> tuple[Finding, ...]:
        return tuple(f for s in self.stages for f in s.findings)

    def as_dict(self) -> dict[str, Any]:
        return {
            "direction": self.direction.value,
            "category": self.category.value,
            "scl": self.scl,
            "bcl": self.bcl,
            "phish": self.phish.value,
            "score": round(self.score, 3),
            "malware": list(self.malware),
            "dlp_matches": list(self.dlp_matches),
            "rule_hits": list(self.rule_hits),
            "auth": dict(self.auth),
            "disposition": self.disposition.as_dict(),
            "stages": [s.as_dict() for s in self.stages],
            "scan_errors": list(self.scan_errors),
        }
