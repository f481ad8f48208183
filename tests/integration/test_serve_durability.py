"""What `mailwarden serve` must never do with an acknowledged message: lose it, hold it up, record or
deliver it twice, or keep it silently. Real SMTP on loopback, the real process, history read back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from mailwarden.quarantine import QuarantineQuery
from mailwarden.quarantine.jobs import quarantine_for
from tests.dnsserver import DnsServer
from tests.factories import build_message
from tests.integration.harness import Mailwarden, eventually
from tests.integration.tcpproxy import TcpProxy
from tests.integration.test_serve import journal_setup, send, simple
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


@pytest.fixture
def own_postgres(postgres_url: str) -> Iterator[str]:
    """A database of this test's own (the session's database stays unmigrated for the store tests)."""
    url = make_url(postgres_url)
    name = f"{url.database}_outage"
    admin_url = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield url.set(database=name).render_as_string(hide_password=False)
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_a_database_outage_keeps_mail_flowing_into_the_spool_and_loses_none(mw: Mailwarden, own_postgres: str) -> None:
    url = make_url(own_postgres)
    proxy = TcpProxy(url.port or 5432)
    try:
        mw.extra_config = f'[store]\nurl = "{url.set(port=proxy.port).render_as_string(hide_password=False)}"\n'
        journal_setup(mw)
        send(mw.listeners["journal"], "partner@example.org", [mw.journal_address], simple("outage-before"))
        eventually(lambda: mw.messages(subject="outage-before"), timeout=30)

        proxy.cut()
        for n in range(5):  # every one still acknowledged: the spool takes mail while the database is away
            send(mw.listeners["journal"], "partner@example.org", [mw.journal_address], simple(f"outage-{n}"))
        eventually(lambda: "database_unavailable" in mw.log() or "scanning_paused" in mw.log(), timeout=30)
        assert len(spool_files(mw)) == 5
        proxy.restore()

        def all_recorded() -> list[Any]:
            found = [d for d in mw.messages(subject="outage-") if d.summary.subject != "outage-before"]
            assert len(found) == 5
            return found

        recorded = eventually(all_recorded, timeout=90)
        # scanned properly once the database was back, not given up on or recorded as a scan error
        assert {d.summary.category.value for d in recorded} == {"clean"}
        eventually(lambda: spool_files(mw) == [], timeout=30)
        log = mw.log()
        assert "Traceback" not in log and "processing_given_up" not in log
        outage_lines = [line for line in log.splitlines() if "database_unavailable" in line or "paused" in line]
        assert 1 <= len(outage_lines) <= 20, outage_lines  # one line per pause, not one per message or a loop
        assert mw.stop() == 0
    finally:
        proxy.close()
