"""Synthetic messages for the heuristics tests, built in code."""

from __future__ import annotations

from collections.abc import Mapping
from email.message import EmailMessage
from email.policy import SMTP

from mailwarden.model import Domain, Message, Organisation
from mailwarden.pipeline.facts import ScanFacts
from mailwarden.pipeline.spam.heuristics import Heuristics

RECEIVED = "from mail.example.net (mail.example.net [192.0.2.10]) by mx.example.com with ESMTPS; {date}"
DATE = "Mon, 02 Mar 2026 10:00:00 +0000"
ORG = Organisation("Example Corp", (Domain("example.com"),))
# the headers a list manager (Mailman) adds to a post it relays
LIST_POST = {
    "List-Id": "Dev list <dev.lists.example.org>",
    "List-Post": "<mailto:dev@lists.example.org>",
    "List-Unsubscribe": "<mailto:dev-leave@lists.example.org>",
    "Precedence": "list",
}


def mail(
    *,
    text: str | None = "Hello, see you on Tuesday.",
    html: str | None = None,
    headers: Mapping[str, str | list[str]] | None = None,
    defaults: bool = True,
) -> Message:
    """A message from alice@example.net to bob@example.com; `headers` add to or replace the defaults."""
    msg = EmailMessage()
    base: dict[str, str | list[str]] = (
        {
            "From": "Alice <alice@example.net>",
            "To": "bob@example.com",
            "Subject": "Lunch",
            "Date": DATE,
            "Message-ID": "<abc123@mail.example.net>",
            "Received": [RECEIVED.format(date=DATE)],
        }
        if defaults
        else {}
    )
    base.update(headers or {})
    for name, value in base.items():
        if value is None:
            continue
        for v in value if isinstance(value, list) else [value]:
            msg[name] = v
    if text is not None:
        msg.set_content(text)
    if html is not None:
        if text is not None:
            msg.add_alternative(html, subtype="html")
        else:
            msg.set_content(html, subtype="html")
    return Message(msg.as_bytes(policy=SMTP))


def codes(message: Message, facts: ScanFacts | None = None, org: Organisation | None = None) -> set[str]:
    return {code for code, _ in Heuristics().symbols(message, facts, org)}
