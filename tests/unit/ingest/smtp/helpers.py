"""What the SMTP ingress tests share: listener configurations, a password, raw bytes on a socket."""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from mailwarden.ingest import replies
from mailwarden.ingest.access import hash_password
from mailwarden.ingest.replies import Reply
from mailwarden.ingest.smtp import SessionInfo, SmtpServer
from mailwarden.ingest.spool import Spool, SpoolEntry
from tests.factories import build_message

JOURNAL = {
    "name": "journal",
    "role": "journal",
    "port": 0,
    "journal_addresses": ["journal@example.com"],
    "allowed_networks": ["127.0.0.0/8"],
}
INBOUND = {"name": "mx", "role": "inbound", "port": 0}
PASSWORD = "correct horse battery staple"
PASSWORD_HASH = hash_password(PASSWORD)
SUBMISSION = {
    "name": "submission",
    "role": "outbound",
    "port": 0,
    "auth_required": True,
    "auth_users": {"relay": PASSWORD_HASH},
}
MESSAGE = build_message(to="journal@example.com")
UNVERIFIED = ssl._create_unverified_context()

StartServer = Callable[..., Awaitable[SmtpServer]]


async def org_domains_only(listener: str, rcpt: str, session: SessionInfo) -> Reply | None:
    return None if rcpt.endswith("@example.com") else replies.RELAY_DENIED


def spooled(spool: Spool) -> list[SpoolEntry]:
    return list(spool.pending())


async def converse(port: int, payload: bytes, *, wait: float = 5) -> bytes:
    """Send raw bytes at once (pipelined) and return every byte the server sends until it hangs up."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(-1), wait)
    finally:
        writer.close()


def transaction(body: bytes, *, sender: bytes = b"alice@example.org") -> bytes:
    return b"EHLO client.example.org\r\nMAIL FROM:<" + sender + b">\r\nRCPT TO:<journal@example.com>\r\nDATA\r\n" + body


async def in_thread(fn: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(fn)


def plain(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()
