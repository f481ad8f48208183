"""A message nested past the MIME limits, through `mailwarden serve`: recorded and quarantined as malformed
like any other message, in monitor and in enforce mode, never left in the spool."""

from __future__ import annotations

import smtplib
from pathlib import Path
from typing import Any

import pytest

from mailwarden.model.trace import RecipientStatus
from mailwarden.store import MessageDetail
from tests.integration.harness import Mailwarden, Sink, eventually, free_port, organisation
from tests.integration.test_serve import simple

pytestmark = pytest.mark.integration


def deep(subject: str) -> bytes:
    """32 KB: a thousand message/rfc822 parts, each inside the one before."""
    return (
        f"From: partner@example.org\r\nTo: alice@example.com\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '-')}@example.org>\r\nMIME-Version: 1.0\r\n".encode()
        + b"Content-Type: message/rfc822\r\n\r\n" * 1000
        + b"Subject: core\r\n\r\nhello\r\n"
    )


def send(port: int, sender: str, rcpts: list[str], raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail(sender, rcpts, raw)


def spooled(mw: Mailwarden) -> list[Path]:
    return [p for p in (mw.root / "var" / "spool" / "queue").rglob("*") if p.is_file()]


def findings(detail: MessageDetail) -> dict[str, str]:
    return {f["code"]: f["detail"] for stage in detail.verdict["stages"] for f in stage["findings"]}


def assert_still_serving(mw: Mailwarden, port: int, sender: str, rcpts: list[str]) -> None:
    assert mw.process is not None and mw.process.poll() is None
    send(port, sender, rcpts, simple("after the deep one"))
    eventually(lambda: mw.messages(subject="after the deep one"), timeout=30)


def test_monitor_records_a_deep_journal_copy_as_malware_and_empties_the_spool(mw: Mailwarden) -> None:
    mw.listeners = {"journal": free_port()}
    mw.write_config()
    mw.import_organisation(organisation(monitor_only=True, domains=[{"name": "example.com"}]))
    mw.start()
    rcpt = "journal+in.alice=example.com@mailwarden.test"
    send(mw.listeners["journal"], "partner@example.org", [rcpt], deep("deep journal copy"))

    detail = eventually(lambda: mw.messages(subject="deep journal copy")[0], timeout=30)
    assert detail.summary.category.value == "malware"
    assert detail.summary.action.value == "quarantine"  # what enforce mode would have done
    assert findings(detail)["MALWARE_MIME_NESTING_LIMIT"] == "MIME parts nested deeper than 100 levels in (message)"
    eventually(lambda: spooled(mw) == [], timeout=30)
    assert_still_serving(mw, mw.listeners["journal"], "partner@example.org", [rcpt])


def test_enforce_quarantines_a_deep_message_and_delivers_nothing(mw: Mailwarden, sink: Sink) -> None:
    mw.listeners = {"inbound": free_port()}
    mw.write_config()
    domain: dict[str, Any] = {"name": "example.com", "mode": "gateway", "next_hop": f"127.0.0.1:{sink.port}"}
    mw.import_organisation(organisation(monitor_only=False, domains=[domain]))
    mw.start()
    send(mw.listeners["inbound"], "partner@example.org", ["alice@example.com"], deep("deep inbound"))

    detail = eventually(lambda: mw.messages(subject="deep inbound")[0], timeout=30)
    assert detail.summary.category.value == "malware"
    assert detail.summary.action.value == "quarantine"
    assert "MALWARE_MIME_NESTING_LIMIT" in findings(detail)
    assert [r.status for r in detail.recipients] == [RecipientStatus.QUARANTINED]
    assert list((mw.root / "var" / "blobs").rglob(f"quarantine-{detail.summary.id}*"))
    eventually(lambda: spooled(mw) == [], timeout=30)
    assert_still_serving(mw, mw.listeners["inbound"], "partner@example.org", ["alice@example.com"])
    delivered = eventually(lambda: sink.received, timeout=30)
    assert [m for _, _, m in delivered if b"deep inbound" in m] == []
