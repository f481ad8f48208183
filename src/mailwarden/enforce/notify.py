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

from mailwarden.i18n import DEFAULT_LANGUAGE, catalogue, words
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
    language: str = DEFAULT_LANGUAGE,
) -> bytes:
    """A transport rule's incident report to an administrator: which rules matched, why, what was done.

    The original message is not attached; sensitive information appears by type, count and confidence
    only (the matched values are never in it, nor in the subject quoted).
    """
    reasons = [f.detail for f in verdict.findings if f.stage == "rules" and f.detail.split(" (", 1)[0] in rules]
    subject = _subject_of(message, language)
    action = verdict.disposition.action.value
    lines = [
        words("notify.incident.intro", language),
        "",
        words("notify.incident.subject", language, subject=subject),
        words("notify.incident.sender", language, sender=sender or "<>"),
        words("notify.incident.recipients", language, recipients=", ".join(recipients)),
        words("notify.incident.received", language, received=format_datetime(received)),
        words("notify.incident.action", language, action=_value_words("action", action, language)),
        words("notify.incident.trace_id", language, id=message_id),
        "",
        words("notify.incident.rules", language),
        *(f"  - {redact_values(r)}" for r in reasons),
    ]
    if verdict.dlp_matches:
        lines += ["", words("notify.incident.sensitive", language)]
        lines += [
            "  - "
            + words(
                "notify.incident.dlp_match",
                language,
                type=_value_words("dlp_type", str(m["type"]), language),
                count=m["count"],
                confidence=m["confidence"],
            )
            for m in verdict.dlp_matches
        ]
    title = words("notify.incident.title", language, rules=", ".join(rules), subject=subject)
    return _notice(to, hostname, title, "\n".join(lines) + "\n", received)


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
    language: str = DEFAULT_LANGUAGE,
) -> bytes:
    """The administrators' alert that a sender was restricted from sending (EOP's "User restricted from
    sending email" alert), or in monitor mode would have been."""
    who = {"sender": sender, "organisation": organisation}
    if would_have:
        head = words("notify.restricted.would_have", language, **who)
        subject = words("notify.restricted.title_would_have", language, sender=sender)
    else:
        head = words("notify.restricted.is", language, **who)
        subject = words("notify.restricted.title", language, sender=sender)
    lines = [
        head,
        "",
        words("notify.restricted.why", language, why=why),
        words("notify.restricted.since", language, at=f"{at:%Y-%m-%d %H:%M:%S}"),
    ]
    if would_have:
        lines.append("")
    elif until:
        lines.append(words("notify.restricted.until", language, until=f"{until:%Y-%m-%d %H:%M}"))
    else:
        lines.append(words("notify.restricted.until_released", language))
    lines += ["", words("notify.restricted.release", language)]
    return _notice(to, hostname, subject, "\n".join(lines) + "\n", at)


def release_request_notice(
    to: str,
    hostname: str,
    requests: Sequence[tuple[str, str, str, str]],
    console_url: str,
    at: datetime,
    language: str = DEFAULT_LANGUAGE,
) -> bytes:
    """The administrators' alert that users asked for quarantined messages to be released (EOP's "User
    requested to release a quarantined message"). `requests`: (entry id, recipient, sender, subject)."""
    lines = [words("notify.requests.intro", language, count=len(requests)), ""]
    for entry_id, recipient, sender, subject in requests:
        shown = redact_values(subject) or words("common.no_subject", language)
        link = f"{console_url.rstrip('/')}/quarantine/{entry_id}"
        lines += [
            words("notify.requests.asks", language, recipient=recipient, subject=shown),
            words("notify.requests.decide", language, sender=sender or "<>", link=link),
        ]
    subject = words("notify.requests.title", language, count=len(requests))
    return _notice(to, hostname, subject, "\n".join(lines) + "\n", at)


def _value_words(kind: str, value: str, language: str) -> str:
    """An enum value in `language` (`enum.<kind>.<value>`); one the catalogues lack (a custom type) as it is."""
    key = f"enum.{kind}.{value}"
    return words(key, language) if key in catalogue(DEFAULT_LANGUAGE) else value


def _subject_of(message: Message, language: str = DEFAULT_LANGUAGE) -> str:
    return redact_values(message.subject) or words("common.no_subject", language)


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
