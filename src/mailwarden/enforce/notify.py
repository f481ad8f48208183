"""Notifications sent through the delivery path: malware alerts to administrators and internal senders,
and transport rules' incident reports."""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from mailwarden.model import Message, Policy, Verdict


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
        "subject": message.subject or "(no subject)",
        "sender": message.from_address or "<>",
        "recipients": ", ".join(recipients),
        "malware": ", ".join(verdict.malware) or "-",
        "action": verdict.disposition.action.value,
        "message_id": message_id,
        "received": format_datetime(received),
    }
    note = EmailMessage(policy=SMTP)
    note["From"] = f"mailwarden <postmaster@{hostname}>"
    note["To"] = to
    note["Subject"] = policy.malware.notification_subject.format(**values)
    note["Date"] = format_datetime(received)
    note["Message-ID"] = make_msgid(domain=hostname)
    note["Auto-Submitted"] = "auto-generated"
    note.set_content(policy.malware.notification_text.format(**values))
    return note.as_bytes()


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
    only (the matched values are never in it).
    """
    reasons = [f.detail for f in verdict.findings if f.stage == "rules" and f.detail.split(" (", 1)[0] in rules]
    lines = [
        "A message matched transport rules of your organisation.",
        "",
        f"Subject:    {message.subject or '(no subject)'}",
        f"Sender:     {sender or '<>'}",
        f"Recipients: {', '.join(recipients)}",
        f"Received:   {format_datetime(received)}",
        f"Action:     {verdict.disposition.action.value}",
        f"Trace id:   {message_id}",
        "",
        "Rules:",
        *(f"  - {r}" for r in reasons),
    ]
    if verdict.dlp_matches:
        lines += ["", "Sensitive information:"]
        lines += [f"  - {m['type']}: {m['count']} ({m['confidence']} confidence)" for m in verdict.dlp_matches]
    note = EmailMessage(policy=SMTP)
    note["From"] = f"mailwarden <postmaster@{hostname}>"
    note["To"] = to
    note["Subject"] = f"Incident report: {', '.join(rules)}: {message.subject or '(no subject)'}"
    note["Date"] = format_datetime(received)
    note["Message-ID"] = make_msgid(domain=hostname)
    note["Auto-Submitted"] = "auto-generated"
    note.set_content("\n".join(lines) + "\n")
    return note.as_bytes()
