"""Test helpers for the delivery layer: an SMTP sink handler, a sample message, a job factory."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from mailwarden.deliver import DeliveryJob, Route

MESSAGE = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: Bob <bob@example.com>\r\n"
    b"Subject: quarterly figures\r\n"
    b"Message-ID: <q1@example.org>\r\n"
    b"Date: Mon, 02 Jun 2025 10:00:00 +0000\r\n"
    b"\r\n"
    b"Hello Bob,\r\n"
    b".a line that starts with a dot\r\n"
    b"\r\n"
    b"figures attached.\r\n"
)


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    tls: bool
    peer: str = ""  # the address the connection came from


@dataclass
class Sink:
    """Records what it accepts; replies can be scripted per recipient and per DATA."""

    port: int = 0
    messages: list[Received] = field(default_factory=list)
    mail_commands: int = 0
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_replies: list[str] = field(default_factory=list)  # consumed one per DATA, then accepted
    data_delay: float = 0.0

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        self.mail_commands += 1
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        if self.data_replies:
            return self.data_replies.pop(0)
        self.messages.append(
            Received(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                envelope.original_content,
                session.ssl is not None,
                session.peer[0],
            )
        )
        return f"250 2.0.0 Ok: queued as Q{len(self.messages)}"


def make_job(
    port: int,
    *,
    recipients: tuple[str, ...] = ("bob@example.com",),
    mail_from: str = "alice@example.org",
    message: bytes = MESSAGE,
    lifetime: timedelta = timedelta(days=2),
    require_tls: bool = False,
    pool: str = "default",
) -> DeliveryJob:
    return DeliveryJob.create(
        message_id="01JXMESSAGE0000000000000000"[:26],
        mail_from=mail_from,
        recipients=recipients,
        route=Route("127.0.0.1", port, require_tls=require_tls, pool=pool),
        message=message,
        lifetime=lifetime,
    )


async def eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    """Wait until `check()` holds; fail the test when it does not within `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
