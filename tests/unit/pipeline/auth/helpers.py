"""Helpers for the authentication tests: scan contexts built in code."""

from __future__ import annotations

from mailwarden.model import Direction, Envelope, Message, Policy
from mailwarden.pipeline import ScanContext
from tests.factories import build_message


def context(
    raw: bytes | None = None,
    *,
    mail_from: str = "alice@example.org",
    ip: str | None = "192.0.2.10",
    helo: str | None = "mail.example.org",
    journal: bool = False,
    **message: object,
) -> ScanContext:
    env = Envelope(mail_from=mail_from, rcpt_to=("bob@example.com",), client_ip=ip, helo=helo)
    ctx = ScanContext(Message(raw or build_message(**message)), env, Direction.INBOUND, Policy())  # type: ignore[arg-type]
    if journal:
        ctx.facts.journal = True
    return ctx
