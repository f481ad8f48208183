"""A recorded message as OCSF events: Email Activity (4009), an Email File Activity (4011) per attachment, an
Email URL Activity (4012) per link, and a Detection Finding (2004) per malware, phish and DLP detection.

The disposition is the state the message is really in: in enforce mode the action taken, in monitor mode
what the mail service did (mailwarden only recorded), with the action that *would* have been taken in
`unmapped.would_have`. docs/events.md has the tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlsplit

from mailwarden.export.ocsf_base import (
    SECURITY_CONTROL,
    Draft,
    emails,
    epoch_ms,
    hostname_or_none,
    ip_or_none,
    is_email,
    text,
    when,
)
from mailwarden.export.ocsf_findings import finding_drafts
from mailwarden.export.ocsf_verdicts import (
    ALLOWED,
    DETECTED,
    SCAN,
    applied_disposition,
    category_severity,
    disposition_name,
    file_is_infected,
)

UNKNOWN_FROM: Final = "unknown@unknown.invalid"  # RFC 2606 .invalid: email.from is required, the message had none
DIRECTIONS: Final = {"inbound": 1, "outbound": 2, "internal": 3}
_ACTIONS: Final = {1: "Allowed", 2: "Denied"}
_AUTH_FIELDS: Final = {"spf": "spf", "dkim": "dkim", "dmarc": "dmarc", "dmarc_policy": "dmarc_policy"}


def message_drafts(payload: dict[str, Any], at: datetime) -> list[Draft]:
    """The events of one recorded message, in a fixed order (so each keeps its index, and its uid)."""
    message = payload["message"]
    artifacts = payload.get("artifacts") or {}
    email, bad_addresses = email_object(message, payload.get("recipients") or [], artifacts)
    state = _State.of(message)
    activity = _email_activity(message, email, bad_addresses, state, at)
    # the first timeline (receive, scan, record or the action, notifications) is summed up by this event
    activity.unmapped["timeline"] = [str(e.get("type")) for e in payload.get("events") or []]
    drafts = [activity]
    verdict = message.get("verdict") or {}
    for file in artifacts.get("attachments") or []:
        drafts.append(_file_activity(message, file, verdict, state, at))
    for url in artifacts.get("urls") or []:
        drafts.append(_url_activity(message, url, state, at))
    drafts += finding_drafts(message, email, artifacts, state.security, at)
    return drafts


@dataclass(frozen=True, slots=True)
class _State:
    """The security-control fields every event of the message carries, and the would-have in monitor mode."""

    security: dict[str, Any]
    would_have: dict[str, Any] | None

    @classmethod
    def of(cls, message: dict[str, Any]) -> _State:
        action = str(message.get("action") or "deliver")
        applied = bool(message.get("applied"))
        disposition_id, action_id = applied_disposition(action)
        would_have = None
        if not applied:
            verdict = message.get("verdict") or {}
            reason = (verdict.get("disposition") or {}).get("reason") or ""
            would_have = {
                "action": action,
                "disposition_id": disposition_id,
                "disposition": disposition_name(disposition_id),
                "action_id": action_id,
                "reason": reason,
            }
            # monitor mode: the message went on unchanged; a verdict other than deliver was only detected
            disposition_id, action_id = (ALLOWED, 1) if action == "deliver" else (DETECTED, 1)
        security = {
            "action_id": action_id,
            "action": _ACTIONS.get(action_id, "Unknown"),
            "disposition_id": disposition_id,
            "disposition": disposition_name(disposition_id),
        }
        return cls(security, would_have)


def email_object(
    message: dict[str, Any], recipients: list[dict[str, Any]], artifacts: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """OCSF's email object, and the addresses its email_t fields refuse (by field) for `unmapped`."""
    bad: dict[str, list[str]] = {}

    def valid(name: str, values: list[Any]) -> list[str]:
        refused: list[str] = []
        out = emails(values, refused)
        if refused:
            bad[name] = refused
        return out

    by_field = {f: [r["address"] for r in recipients if r.get("field") == f] for f in ("to", "cc")}
    sender = message.get("sender") or ""
    from_address = message.get("from_address")
    if from_address and not is_email(from_address):
        bad["from"] = [text(from_address, 320)]
    email: dict[str, Any] = {
        "uid": message["id"],
        "from": next((a for a in (from_address, sender) if is_email(a)), UNKNOWN_FROM),
        "to": valid("to", artifacts.get("to") or by_field["to"]),
        "subject": text(message.get("subject")),
        "size": int(message.get("size") or 0),
    }
    cc = valid("cc", artifacts.get("cc") or by_field["cc"])
    if cc:
        email["cc"] = cc
    if message.get("internet_message_id"):
        email["message_uid"] = text(message["internet_message_id"])
    if is_email(sender):
        email["smtp_from"] = sender
    elif sender:
        bad["smtp_from"] = [text(sender, 320)]
    smtp_to = valid("smtp_to", [r["address"] for r in recipients])
    if smtp_to:
        email["smtp_to"] = smtp_to
    return email, bad


def _email_activity(
    message: dict[str, Any], email: dict[str, Any], bad: dict[str, list[str]], state: _State, at: datetime
) -> Draft:
    verdict = message.get("verdict") or {}
    category = str(message.get("category") or verdict.get("category") or "")
    fields: dict[str, Any] = {
        "email": email,
        "direction_id": DIRECTIONS.get(str(message.get("direction")), 0),
        "direction": str(message.get("direction") or "unknown"),
        "start_time": _epoch(message.get("received_at"), at),
        "status_id": 2 if verdict.get("scan_errors") else 1,
        "message": _summary(message, state),
        **state.security,
    }
    if verdict.get("scan_errors"):
        fields["status_detail"] = text("; ".join(map(str, verdict["scan_errors"])))
    ip = ip_or_none(message.get("client_ip"))
    if ip:
        fields["src_endpoint"] = {"ip": ip}
    auth = verdict.get("auth") or {}
    email_auth = {ocsf: str(auth[key]) for key, ocsf in _AUTH_FIELDS.items() if auth.get(key)}
    if auth.get("dkim_domains"):
        email_auth["dkim_domain"] = str(auth["dkim_domains"])
    if email_auth:
        fields["email_auth"] = email_auth
    if verdict.get("malware"):
        fields["malware"] = [{"name": text(name, 1024), "classification_ids": [0]} for name in verdict["malware"]]
    unmapped = _verdict_unmapped(message, verdict, category, state)
    if bad:
        unmapped["invalid_addresses"] = bad
    severity = category_severity(category)
    return Draft(4009, SCAN, severity, fields, at, (SECURITY_CONTROL,), unmapped=unmapped)


def _verdict_unmapped(message: dict[str, Any], verdict: dict[str, Any], category: str, state: _State) -> dict[str, Any]:
    """SCL, BCL, PCL and the rest of the verdict that OCSF has no field for."""
    auth = verdict.get("auth") or {}
    out: dict[str, Any] = {
        "category": category,
        "scl": message.get("scl", verdict.get("scl")),
        "bcl": message.get("bcl", verdict.get("bcl")),
        "phish": message.get("phish", verdict.get("phish")),
        "score": verdict.get("score"),
        "mode": message.get("mode"),
        "applied": bool(message.get("applied")),
        "action": message.get("action"),
        "organisation": message.get("organisation"),
        "source": message.get("source"),
        "sha256": message.get("sha256"),
        "rule_hits": list(verdict.get("rule_hits") or []),
    }
    if verdict.get("pcl") is not None:
        out["pcl"] = verdict["pcl"]
    if state.would_have is not None:
        out["would_have"] = state.would_have
    if auth.get("source") == "provider":
        # a journal copy: the mail provider's own Authentication-Results, as the provider stamped it
        out["provider_authentication_results"] = text(auth.get("authentication_results"))
    if verdict.get("provider_verdict") is not None:
        out["provider_verdict"] = verdict["provider_verdict"]
    return {k: v for k, v in out.items() if v is not None}


def _file_activity(
    message: dict[str, Any], file: dict[str, Any], verdict: dict[str, Any], state: _State, at: datetime
) -> Draft:
    name = file.get("name") or ""
    infected = file_is_infected(name, verdict)
    ocsf_file: dict[str, Any] = {
        "name": text(name) or "(unnamed)",
        "type_id": 1,
        "size": int(file.get("size") or 0),
        "mime_type": text(file.get("real_type") or file.get("declared_type")),
        "hashes": [{"algorithm_id": 3, "algorithm": "SHA-256", "value": file["sha256"]}],
    }
    if "." in name:
        ocsf_file["ext"] = text(name.rsplit(".", 1)[1].lower(), 64)
    security = dict(state.security)
    if infected and state.would_have is None and message.get("action") == "replace_attachments":
        security |= {"disposition_id": 5, "disposition": "Deleted"}  # the file was replaced by an alert text
    fields: dict[str, Any] = {"email_uid": message["id"], "file": ocsf_file, **security}
    unmapped: dict[str, Any] = {
        "declared_type": file.get("declared_type"),
        "real_type": file.get("real_type"),
        "verdict": "malware" if infected else "clean",
    }
    if infected:
        fields["malware"] = [
            {"name": text(m, 1024), "classification_ids": [0]}
            for m in verdict.get("malware") or []
            if name and name in str(m)
        ] or [{"name": "malware", "classification_ids": [0]}]
    if state.would_have is not None:
        unmapped["would_have"] = state.would_have
    severity = 4 if infected else 1
    return Draft(4011, SCAN, severity, fields, at, (SECURITY_CONTROL,), unmapped=unmapped)


def _url_activity(message: dict[str, Any], url: str, state: _State, at: datetime) -> Draft:
    fields: dict[str, Any] = {"email_uid": message["id"], "url": url_object(url), **state.security}
    unmapped = {"would_have": state.would_have} if state.would_have is not None else {}
    return Draft(4012, SCAN, 1, fields, at, (SECURITY_CONTROL,), unmapped=unmapped)


def url_object(url: str) -> dict[str, Any]:
    """OCSF's url object: the whole link, and its parts where they parse."""
    out: dict[str, Any] = {"url_string": text(url)}
    try:
        parts = urlsplit(url if "://" in url else "http://" + url)
        port = parts.port
    except ValueError:  # a malformed port or IPv6 literal: the string alone
        return out
    out["scheme"] = parts.scheme
    host = hostname_or_none(parts.hostname)
    if host:
        out["hostname"] = host
    if parts.path:
        out["path"] = text(parts.path)
    if parts.query:
        out["query_string"] = text(parts.query)
    if port is not None:
        out["port"] = port
    return out


def _summary(message: dict[str, Any], state: _State) -> str:
    action = message.get("action") or "deliver"
    if state.would_have is None:
        return f"{message.get('category')}: {action} (enforce mode)"
    return f"{message.get('category')}: would have {action} (monitor mode: only recorded)"


def _epoch(value: Any, default: datetime) -> int:
    return epoch_ms(when(value, default))
