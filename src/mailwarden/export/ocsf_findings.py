"""A Detection Finding (OCSF 2004) for each malware detection, phish signal and DLP match of a verdict.

The verdict is history's (`enforce.record.redacted_verdict`): detections, finding details and DLP samples
are already redacted there, so nothing rendered here can carry a full card number.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from mailwarden.export.ocsf_base import SECURITY_CONTROL, Draft, epoch_ms, text

CREATE: Final = 1
_CONFIDENCE: Final = {"low": 1, "medium": 2, "high": 3}
_CONFIDENCE_NAMES: Final = {1: "Low", 2: "Medium", 3: "High"}
_RULE: Final = {"type_id": 1, "type": "Rule"}
_PATTERN: Final = {"type_id": 8, "type": "Regular Expressions"}
_PHISH_LEVELS: Final = ("phish", "high_confidence")


def finding_drafts(
    message: dict[str, Any], email: dict[str, Any], artifacts: dict[str, Any], security: dict[str, Any], at: datetime
) -> list[Draft]:
    """Malware detections first, then phish signals, then DLP matches, each in the verdict's order."""
    verdict = message.get("verdict") or {}
    context = _Context(message, email, artifacts, security, at)
    drafts = [_malware(context, i, m) for i, m in enumerate(verdict.get("malware") or [])]
    if verdict.get("phish") in _PHISH_LEVELS:
        drafts += _phish(context, verdict)
    drafts += [_dlp(context, i, match, verdict) for i, match in enumerate(verdict.get("dlp_matches") or [])]
    return drafts


class _Context:
    def __init__(
        self,
        message: dict[str, Any],
        email: dict[str, Any],
        artifacts: dict[str, Any],
        security: dict[str, Any],
        at: datetime,
    ) -> None:
        self.message = message
        self.email = email
        self.files = artifacts.get("attachments") or []
        self.security = security
        self.at = at

    def draft(
        self,
        kind: str,
        index: int,
        *,
        title: str,
        analytic: dict[str, Any],
        severity: int,
        confidence: int,
        info: dict[str, Any] | None = None,
        evidence: dict[str, Any] | None = None,
        fields: dict[str, Any] | None = None,
        unmapped: dict[str, Any] | None = None,
    ) -> Draft:
        """A finding with its uid (stable: the message's id, what kind, which one), the message as evidence."""
        finding_info: dict[str, Any] = {
            "uid": f"{self.message['id']}.{kind}.{index}",
            "title": text(title, 1024),
            "types": [kind],
            "analytic": analytic,
            "created_time": epoch_ms(self.at),
            **(info or {}),
        }
        body: dict[str, Any] = {
            "finding_info": finding_info,
            "confidence_id": confidence,
            "confidence": _CONFIDENCE_NAMES.get(confidence, "Unknown"),
            "status_id": 1,
            "status": "New",
            "message": text(title, 1024),
            "evidences": [{"email": self.email, **(evidence or {})}],
            **self.security,
            **(fields or {}),
        }
        extra = {"email_uid": self.message["id"], **(unmapped or {})}
        return Draft(2004, CREATE, severity, body, self.at, (SECURITY_CONTROL,), unmapped=extra)


def _malware(context: _Context, index: int, detection: Any) -> Draft:
    detection = str(detection)
    signature, _, where = detection.partition(" in ")
    file = next((f for f in context.files if f.get("name") and where.split("/", 1)[0] == f["name"]), None)
    evidence = {"file": _file(file)} if file else {}
    return context.draft(
        "malware",
        index,
        title=f"Malware: {signature}",
        analytic={"name": text(signature, 1024), **_RULE},
        severity=4,
        confidence=3,  # a signature matched
        info={"desc": text(detection)},
        evidence=evidence,
        fields={"malware": [{"name": text(signature, 1024), "classification_ids": [0]}]},
        unmapped={"detection": text(detection)},
    )


def _phish(context: _Context, verdict: dict[str, Any]) -> list[Draft]:
    """One finding per phish signal that scored; high-confidence phish is high severity and confidence."""
    high = verdict.get("phish") == "high_confidence"
    severity, confidence = (4, 3) if high else (3, 2)
    signals = [
        f
        for stage in verdict.get("stages") or []
        for f in stage.get("findings") or []
        if str(f.get("code", "")).startswith("PHISH_") and f.get("score")
    ]
    if not signals:  # the classifier's level alone
        signals = [{"code": "PHISH", "score": None, "detail": f"phish level {verdict.get('phish')}", "stage": ""}]
    return [
        context.draft(
            "phish",
            i,
            title=f"Phish: {s['code']}",
            analytic={"name": str(s["code"]), "uid": str(s.get("stage") or ""), **_RULE},
            severity=severity,
            confidence=confidence,
            info={"desc": text(s.get("detail"))} if s.get("detail") else {},
            unmapped={"score": s.get("score"), "phish": verdict.get("phish")},
        )
        for i, s in enumerate(signals)
    ]


def _dlp(context: _Context, index: int, match: dict[str, Any], verdict: dict[str, Any]) -> Draft:
    """A sensitive information type found: how many values, how sure, a few samples in redacted form, and
    the transport rules that matched the message (one of them asked for the DLP scan)."""
    kind = str(match.get("type") or "sensitive_information")
    confidence = _CONFIDENCE.get(str(match.get("confidence") or "").lower(), 0)
    rules = [{"name": text(r, 1024), **_RULE} for r in verdict.get("rule_hits") or []]
    return context.draft(
        "dlp",
        index,
        title=f"DLP: {kind}",
        analytic={"name": kind, **_PATTERN},
        severity=3,
        confidence=confidence,
        info={"related_analytics": rules} if rules else {},
        unmapped={"count": match.get("count"), "samples": [text(s, 256) for s in match.get("samples") or []]},
    )


def _file(file: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": text(file.get("name")),
        "type_id": 1,
        "size": int(file.get("size") or 0),
        "mime_type": text(file.get("real_type") or file.get("declared_type")),
        "hashes": [{"algorithm_id": 3, "algorithm": "SHA-256", "value": file.get("sha256")}],
    }
