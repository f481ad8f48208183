"""Malware notifications to administrators and internal senders, sent through the delivery path."""

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
