"""The SMTP ingress driven by a real, independent SMTP client: swaks (Debian package `swaks`)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from mailwarden.ingest.config import SmtpConfig
from mailwarden.ingest.replies import Reply
from mailwarden.ingest.smtp import SessionInfo, SmtpServer
from mailwarden.ingest.spool import Spool
from tests.services import unavailable

pytestmark = pytest.mark.integration


def swaks_binary() -> str:
    path = shutil.which("swaks")
    if path is None:
        unavailable("swaks is not installed (apt-get install swaks)")
    return path


async def accept_all(listener: str, rcpt: str, session: SessionInfo) -> Reply | None:
    return None


async def run_swaks(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        swaks_binary(), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(process.communicate(), 30)
    return process.returncode or 0, output.decode("utf-8", "replace")


async def test_swaks_delivers_a_journal_copy_over_starttls(tmp_path: Path) -> None:
    swaks_binary()
    config = SmtpConfig.model_validate(
        {
            "hostname": "mailwarden.test",
            "listeners": [
                {
                    "name": "journal",
                    "role": "journal",
                    "port": 0,
                    "require_tls": True,
                    "journal_addresses": ["journal@example.com"],
                    "allowed_networks": ["127.0.0.0/8"],
                }
            ],
        }
    )
    with Spool(tmp_path / "spool") as spool:
        server = SmtpServer(config, spool, accept_all)
        await server.start()
        try:
            code, transcript = await run_swaks(
                "--server", "127.0.0.1",
                "--port", str(server.bound_ports()["journal"]),
                "--tls",
                "--ehlo", "exchange.example.com",
                "--from", "alice@example.org",
                "--to", "journal+tenant1@example.com",
                "--header", "Subject: journal copy from swaks",
                "--body", "Quarterly numbers attached.",
            )  # fmt: skip
        finally:
            await server.stop(drain_timeout=5)
        entries = list(spool.pending())

    assert code == 0, transcript
    assert " -> STARTTLS" in transcript
    assert "<~  250 2.0.0 OK: queued as" in transcript  # "<~": swaks read it inside TLS
    [entry] = entries
    assert f"queued as {entry.id}" in transcript
    assert entry.envelope.mail_from == "alice@example.org"
    assert entry.envelope.rcpt_to == ("journal+tenant1@example.com",)
    assert entry.envelope.helo == "exchange.example.com"
    assert entry.envelope.tls is not None and entry.envelope.tls.version.startswith("TLSv1")
    assert b"Subject: journal copy from swaks\r\n" in entry.raw
    assert b"Quarterly numbers attached." in entry.raw
