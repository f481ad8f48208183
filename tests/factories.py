"""Messages built in code, so each test says what it is about."""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP


def build_message(
    *,
    sender: str = "Alice Example <alice@example.org>",
    to: str = "bob@example.com",
    subject: str = "Quarterly numbers",
    text: str | None = "Hello Bob,\nthe numbers are attached.\n",
    html: str | None = None,
    attachments: list[tuple[str, str, bytes]] | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = "Tue, 14 Oct 2025 09:15:01 +0000"
    msg["Message-ID"] = "<test-1@example.org>"
    for name, value in (headers or {}).items():
        msg[name] = value
    if text is not None:
        msg.set_content(text)
    if html is not None:
        if text is None:
            msg.set_content(html, subtype="html")
        else:
            msg.add_alternative(html, subtype="html")
    for filename, ctype, data in attachments or []:
        maintype, subtype = ctype.split("/", 1)
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes(policy=SMTP)
