"""Delivery status notifications (RFC 3464): a pure builder, bytes in, bytes out."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, make_msgid

_STATUS = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_LINE_END = re.compile(rb"\r\n|\r|\n")
_MESSAGE_ID = re.compile(rb"(?im)^message-id:[ \t]*(<[^>\r\n]{1,500}>)")
MAX_FIELD = 900  # well under the 998-octet line limit, after the field name


@dataclass(frozen=True, slots=True)
class RecipientFailure:
    """What the DSN says about one recipient.

    `status` is the enhanced status code (RFC 3463) such as "5.1.1"; `diagnostic` the next hop's reply
    ("550 5.1.1 no such user"), or our own reason with `diagnostic_type` "X-mailwarden" when no server
    answered; `remote_mta` the host that gave it; `reason` a sentence for the human-readable part that
    replaces the diagnostic there (such as "expired after 5 attempts: ...").
    """

    recipient: str
    status: str
    diagnostic: str | None = None
    remote_mta: str | None = None
    last_attempt: datetime | None = None
    reason: str = ""
    diagnostic_type: str = "smtp"


def build_dsn(
    original: bytes,
    mail_from: str,
    failures: list[RecipientFailure],
    reporting_mta: str,
    *,
    delayed: bool = False,
    arrival_date: datetime | None = None,
    now: datetime | None = None,
) -> bytes:
    """A multipart/report DSN to `mail_from` about `failures` of the message `original`.

    The report has a human-readable part, a message/delivery-status part and the original's header as
    text/rfc822-headers (not the body: the sender has it, and it may be what was refused). `delayed`
    makes it a warning (Action: delayed) instead of a failure (Action: failed).
    """
    if not mail_from:
        raise ValueError("no DSN to the null sender")
    if not failures:
        raise ValueError("a DSN reports at least one recipient")
    now = now or datetime.now(UTC)
    mta = _clean(reporting_mta)
    action = "delayed" if delayed else "failed"
    boundary = f"=_mailwarden_{secrets.token_hex(12)}"
    subject = "Delayed Mail (still being retried)" if delayed else "Undelivered Mail Returned to Sender"
    headers_part = original_headers(original)
    original_id = _MESSAGE_ID.search(headers_part)

    head = [
        f"From: Mail Delivery System <MAILER-DAEMON@{mta}>",
        f"To: <{_clean(mail_from)}>",
        f"Subject: {subject}",
        f"Date: {format_datetime(now)}",
        f"Message-ID: {make_msgid('dsn', domain=mta)}",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
    ]
    if original_id:
        ref = original_id.group(1).decode("ascii", "replace")
        head += [f"In-Reply-To: {ref}", f"References: {ref}"]

    human = _human_text(failures, mta, delayed)
    status_fields = [f"Reporting-MTA: dns; {mta}"]
    if arrival_date is not None:
        status_fields.append(f"Arrival-Date: {format_datetime(arrival_date)}")
    recipient_groups = []
    for failure in failures:
        status = failure.status if _STATUS.match(failure.status) else ("4.0.0" if delayed else "5.0.0")
        group = [
            f"Final-Recipient: rfc822; {_clean(failure.recipient)}",
            f"Action: {action}",
            f"Status: {status}",
        ]
        if failure.remote_mta:
            group.append(f"Remote-MTA: dns; {_clean(failure.remote_mta)}")
        if failure.diagnostic:
            group.append(f"Diagnostic-Code: {_clean(failure.diagnostic_type)}; {_clean(failure.diagnostic)}")
        if failure.last_attempt is not None:
            group.append(f"Last-Attempt-Date: {format_datetime(failure.last_attempt)}")
        recipient_groups.append("\r\n".join(group))

    out = "\r\n".join(head) + "\r\n\r\n"
    out += "This is a MIME-encapsulated message.\r\n\r\n"
    out += f"--{boundary}\r\n"
    out += "Content-Description: Notification\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    out += human + "\r\n"
    out += f"--{boundary}\r\n"
    out += "Content-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\n"
    out += "\r\n".join(status_fields) + "\r\n\r\n" + "\r\n\r\n".join(recipient_groups) + "\r\n\r\n"
    out += f"--{boundary}\r\n"
    # 8bit: the original header may hold raw UTF-8 (RFC 6532); it is copied, never re-encoded
    out += (
        "Content-Description: Undelivered message headers\r\nContent-Type: text/rfc822-headers\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
    )
    return out.encode("ascii") + headers_part + f"\r\n--{boundary}--\r\n".encode("ascii")


def original_headers(original: bytes) -> bytes:
    """The header block of a message, with CRLF line ends and no trailing empty line."""
    match = _HEADER_END.search(original)
    block = original[: match.start()] if match else original
    return _LINE_END.sub(b"\r\n", block).rstrip(b"\r\n") + b"\r\n"


def _human_text(failures: list[RecipientFailure], mta: str, delayed: bool) -> str:
    if delayed:
        lines = [
            f"This is the mail system at host {mta}.",
            "",
            "Your message could not be delivered yet to the recipients below.",
            "It is still in the queue and delivery will be tried again; you do not need to resend it.",
        ]
    else:
        lines = [
            f"This is the mail system at host {mta}.",
            "",
            "Your message could not be delivered to one or more recipients.",
            "It has not been delivered to the recipients below, and delivery will not be tried again.",
        ]
    lines.append("")
    for failure in failures:
        remote = _clean(failure.remote_mta) if failure.remote_mta else ""
        if failure.reason:
            said = _clean(failure.reason) + (f" (host {remote})" if remote else "")
        elif failure.diagnostic:
            said = f"host {remote} said: {_clean(failure.diagnostic)}" if remote else _clean(failure.diagnostic)
        else:
            said = f"status {failure.status}"
        lines.append(f"<{_clean(failure.recipient)}>: {said}")
    return "\r\n".join(lines) + "\r\n"


def _clean(text: str) -> str:
    """One line of printable ASCII: a reply or an address can carry neither line breaks nor 8-bit here."""
    flat = " ".join(text.split())
    ascii_only = flat.encode("ascii", "replace").decode("ascii")
    return ascii_only[:MAX_FIELD]
