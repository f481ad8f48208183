"""What `mailwarden serve` must never do with an acknowledged message: lose it, hold it up, record or
deliver it twice, or keep it silently. Real SMTP on loopback, the real process, history read back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailwarden.quarantine import QuarantineQuery
from mailwarden.quarantine.jobs import quarantine_for
from tests.dnsserver import DnsServer
from tests.factories import build_message
from tests.integration.harness import Mailwarden, eventually
from tests.integration.test_serve import journal_setup, send
from tests.unit.pipeline.malware.builders import EICAR

pytestmark = pytest.mark.integration


@pytest.fixture
def mw(tmp_path: Path, dns_server: DnsServer) -> Iterator[Mailwarden]:
    instance = Mailwarden(tmp_path, dns_port=dns_server.port)
    yield instance
    if instance.process is not None:
        instance.kill()


def spool_files(mw: Mailwarden) -> list[Path]:
    return sorted((mw.root / "var" / "spool" / "queue").glob("*.msg"))


def held_entries(mw: Mailwarden, message_id: str) -> list[str]:
    rt = mw.runtime()
    try:
        page = quarantine_for(rt).list(QuarantineQuery(message_id=message_id, limit=100))
        return sorted(e.recipient for e in page.items)
    finally:
        rt.close()


def test_every_journal_copy_of_a_quarantined_message_is_recorded(mw: Mailwarden) -> None:
    journal_setup(mw)
    raw = build_message(
        sender="partner@example.org",
        to="dave@example.com, erin@example.com",
        subject="two copies of malware",
        attachments=[("eicar.com", "application/octet-stream", EICAR)],
    )
    # Google and Postfix send one copy per recipient, the recipient encoded in the journal address
    for rcpt in ("dave", "erin"):
        send(mw.listeners["journal"], "partner@example.org", [f"journal+in.{rcpt}=example.com@mailwarden.test"], raw)
    bystander = build_message(subject="bystander").replace(b"<test-1@", b"<bystander@")
    # a message of its own that must not be held up by the other two
    send(mw.listeners["journal"], "partner@example.org", [mw.journal_address], bystander)

    def recorded() -> Any:
        found = mw.messages(subject="two copies of malware")
        assert len(found) == 1
        detail = found[0]
        assert sorted(r.address for r in detail.recipients) == ["dave@example.com", "erin@example.com"]
        return detail

    detail = eventually(recorded, timeout=30)
    assert detail.summary.category.value == "malware"
    # both recipients have their would-have quarantine entry, under the one record
    assert eventually(lambda: held_entries(mw, detail.summary.id) == ["dave@example.com", "erin@example.com"])
    eventually(lambda: mw.messages(subject="bystander"))
    eventually(lambda: spool_files(mw) == [], timeout=30)
    assert "processing_failed" not in mw.log() and "history_write_failed" not in mw.log()
    assert mw.stop() == 0
