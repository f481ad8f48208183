"""Notifications sent through the delivery path: malware alerts to administrators and internal senders,
and transport rules' incident reports.

Any language goes: the subject is RFC 2047-encoded and the body UTF-8 in a transfer encoding any relay
carries. Text taken from the message (its subject, file names in detections and rule reasons) is
redacted as history keeps it (`pipeline.dlp.redact_values`), so no card number or My Number is mailed.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from mailwarden.model import Message, Policy, Verdict
from mailwarden.pipeline.dlp import redact_values

ALERT_MESSAGE_PREFIX = "alert-"  # delivery jobs of administrators' alerts carry no history id


def malware_notification(
    *,
    to: str,
    hostname: str,
    message: Message,
    recipients: tuple[str, ...],
    verdict: Verdict,
    message_id: str,
    received: datetime,
    policy: Policy,
) -> bytes:
    """One notification message, from the template in the malware policy."""
    values = {
        "subject": _subject_of(message),
        "sender": message.from_address or "<>",
        "recipients": ", ".join(recipients),
        "malware": ", ".join(map(redact_values, verdict.malware)) or "-",
        "action": verdict.disposition.action.value,
        "message_id": message_id,
        "received": format_datetime(received),
    }
    subject = policy.malware.notification_subject.format(**values)
    return _notice(to, hostname, subject, policy.malware.notification_text.format(**values), received)


def incident_report(
    *,
    to: str,
    hostname: str,
    message: Message,
    sender: str,
    recipients: tuple[str, ...],
    verdict: Verdict,
    rules: tuple[str, ...],
    message_id: str,
    received: datetime,
) -> bytes:
    """A transport rule's incident report to an administrator: which rules matched, why, what was done.

    The original message is not attached; sensitive information appears by type, count and confidence
    only (the matched values are never in it, nor in the subject quoted).
    """
    reasons = [f.detail for f in verdict.findings if f.stage == "rules" and f.detail.split(" (", 1)[0] in rules]
    subject = _subject_of(message)
    lines = [
        "A message matched transport rules of your organisation.",
        "",
        f"Subject:    {subject}",
        f"Sender:     {sender or '<>'}",
        f"Recipients: {', '.join(recipients)}",
        f"Received:   {format_datetime(received)}",
        f"Action:     {verdict.disposition.action.value}",
        f"Trace id:   {message_id}",
        "",
        "Rules:",
        *(f"  - {redact_values(r)}" for r in reasons),
    ]
    if verdict.dlp_matches:
        lines += ["", "Sensitive information:"]
        lines += [f"  - {m['type']}: {m['count']} ({m['confidence']} confidence)" for m in verdict.dlp_matches]
    return _notice(to, hostname, f"Incident report: {', '.join(rules)}: {subject}", "\n".join(lines) + "\n", received)


def restriction_notice(
    to: str,
    hostname: str,
    *,
    sender: str,
    organisation: str,
    why: str,
    until: datetime | None,
    at: datetime,
    would_have: bool,
) -> bytes:
    """The administrators' alert that a sender was restricted from sending (EOP's "User restricted from
    sending email" alert), or in monitor mode would have been."""
    state = "would have been restricted (monitor mode: nothing was refused)" if would_have else "is restricted"
    ends = f"until {until:%Y-%m-%d %H:%M} UTC" if until else "until an administrator releases the sender"
    lines = [
        f"The sender {sender} of organisation {organisation} {state} from sending outbound mail.",
        "",
        f"Why: {why}",
        f"Since: {at:%Y-%m-%d %H:%M:%S} UTC",
        f"Restricted {ends}." if not would_have else "",
        "",
        "Release: mailwarden sender release, or the console's Restricted senders page.",
    ]
    subject = f"Sender restricted from sending: {sender}" if not would_have else f"Sender would be restricted: {sender}"
    return _notice(to, hostname, subject, "\n".join(lines) + "\n", at)


def release_request_notice(
    to: str, hostname: str, requests: Sequence[tuple[str, str, str, str]], console_url: str, at: datetime
) -> bytes:
    """The administrators' alert that users asked for quarantined messages to be released (EOP's "User
    requested to release a quarantined message"). `requests`: (entry id, recipient, sender, subject)."""
    lines = [f"{len(requests)} quarantined message(s) wait for an administrator's decision:", ""]
    for entry_id, recipient, sender, subject in requests:
        lines += [
            f"- {recipient} asks for: {redact_values(subject) or '(no subject)'}",
            f"  from {sender or '<>'}; approve or deny: {console_url.rstrip('/')}/quarantine/{entry_id}",
        ]
    subject = f"Release requested: {len(requests)} quarantined message(s)"
    return _notice(to, hostname, subject, "\n".join(lines) + "\n", at)


def _subject_of(message: Message) -> str:
    return redact_values(message.subject) or "(no subject)"


def _notice(to: str, hostname: str, subject: str, text: str, received: datetime) -> bytes:
    """The notification message: from the postmaster, auto-generated (RFC 3834), `subject` on one line."""
    note = EmailMessage(policy=SMTP)
    note["From"] = f"mailwarden <postmaster@{hostname}>"
    note["To"] = to
    note["Subject"] = _one_line(subject)
    note["Date"] = format_datetime(received)
    note["Message-ID"] = make_msgid(domain=hostname)
    note["Auto-Submitted"] = "auto-generated"
    # UTF-8 in base64: an 8bit body would need 8BITMIME at every hop (the next hop may not offer it)
    note.set_content(text, cte=None if text.isascii() else "base64")
    return note.as_bytes()


def _one_line(text: str) -> str:
    """A header value: line breaks and other control characters (from a template or a decoded subject)
    would end the field or break it, so they become spaces."""
    return " ".join("".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in text).split())
