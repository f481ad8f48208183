"""What `mailwarden serve` must never do with an acknowledged message: lose it, hold it up, record or
deliver it twice, or keep it silently. Real SMTP on loopback, the real process, history read back."""

from __future__ import annotations

import asyncio
import email
import smtplib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from mailwarden.service.quarantine_jobs import quarantine_for
from mailwarden.store.quarantine import QuarantineQuery
from tests.factories import build_message
from tests.integration.conftest import database_beside
from tests.integration.harness import Mailwarden, Sink, eventually, free_port, organisation
from tests.integration.tcpproxy import TcpProxy
from tests.integration.test_serve import journal_setup, send, simple
from tests.unit.pipeline.malware.builders import EICAR

pytestmark = pytest.mark.integration
SENDER = "partner@example.org"


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
    with database_beside(postgres_url, "outage") as url:
        yield url


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


class Stream:
    """A client sending messages until stopped, reconnecting across restarts; what got a 250 is kept."""

    def __init__(self, port: int, transactions: Callable[[int], list[tuple[str, list[str], bytes, Any]]]) -> None:
        self.port = port
        self.transactions = transactions  # message number → its SMTP transactions (from, to, bytes, key)
        self.acked: list[Any] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            try:
                with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as client:
                    while not self._stop.is_set():
                        for sender, rcpts, raw, key in self.transactions(n):
                            client.sendmail(sender, rcpts, raw)
                            self.acked.append(key)  # the 250 arrived
                        n += 1
            except (OSError, smtplib.SMTPException):
                n += 1  # a message half sent when the server died is sent again under a new name
                time.sleep(0.05)

    def wait_for(self, count: int) -> None:
        eventually(lambda: len(self.acked) >= count, timeout=120)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def test_sigkill_loses_no_journal_copy_of_a_quarantined_or_malware_message(mw: Mailwarden) -> None:
    mw.listeners = {"journal": free_port()}
    mw.write_config()
    document = organisation(monitor_only=True, domains=[{"name": "example.com"}])
    document["policy"] = {
        "rules": [
            {"name": "Hold", "conditions": {"subject_or_body_contains": ["hold-"]}, "actions": {"quarantine": True}}
        ]
    }
    mw.import_organisation(document)
    mw.start()

    def copies(n: int) -> list[tuple[str, list[str], bytes, Any]]:
        subject = f"{'malware' if n % 2 else 'hold'}-{n:04d}"
        attachments = [("e.com", "application/octet-stream", EICAR)] if n % 2 else None
        raw = build_message(
            sender="partner@example.org",
            to="dave@example.com, erin@example.com",
            subject=subject,
            attachments=attachments,
        ).replace(b"<test-1@", f"<{subject}@".encode())
        # one journal copy per recipient, as Google and Postfix send them
        return [
            (
                "partner@example.org",
                [f"journal+in.{who}=example.com@mailwarden.test"],
                raw,
                (subject, f"{who}@example.com"),
            )
            for who in ("dave", "erin")
        ]

    stream = Stream(mw.listeners["journal"], copies)
    for goal in (40, 80):
        stream.wait_for(goal)
        mw.kill()  # SIGKILL in the middle of scanning, merging and writing
        time.sleep(0.3)
        mw.start()
    stream.wait_for(100)
    stream.stop()
    expected: dict[str, set[str]] = {}
    for subject, rcpt in stream.acked:
        expected.setdefault(subject, set()).add(rcpt)

    def all_there() -> list[Any]:
        details = [*mw.messages(subject="hold-"), *mw.messages(subject="malware-")]
        by_subject: dict[str, list[Any]] = {}
        for d in details:
            by_subject.setdefault(d.summary.subject, []).append(d)
        missing = [s for s in expected if s not in by_subject]
        assert not missing, f"{len(missing)} acknowledged messages missing"
        for subject, rcpts in expected.items():
            assert rcpts <= {r.address for r in by_subject[subject][0].recipients}, subject
        return details

    details = eventually(all_there, timeout=120)
    subjects = [d.summary.subject for d in details]
    assert len(subjects) == len(set(subjects)), "a message was recorded twice"
    for d in details:
        if d.summary.subject in expected:  # every recipient's would-have entry, under the one record
            assert set(held_entries(mw, d.summary.id)) >= expected[d.summary.subject], d.summary.subject
    eventually(lambda: spool_files(mw) == [], timeout=60)
    assert mw.stop() == 0


class SlowSink(Sink):
    """A next hop that takes its time over each recipient and over QUIT (as many do), so that deliveries
    are in flight, and some accepted but not yet recorded by the sender, when the kill comes.

    It keeps every accepted message in order (`accepted`) and marks the ones whose sender went on with
    the session after the 250 (here: QUIT), which shows the sender had read the acceptance. A kill
    between a next hop's acceptance and the sender reading it makes any SMTP sender send the message
    again (RFC 1047): a copy after an unconfirmed one is no defect; a copy after a confirmed one is."""

    def __init__(self) -> None:
        super().__init__()
        self.accepted: list[dict[str, Any]] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        await asyncio.sleep(0.02)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        subject = email.message_from_bytes(envelope.original_content)["Subject"]
        session.accepted = {"subject": subject, "rcpts": list(envelope.rcpt_tos), "confirmed": False}
        self.accepted.append(session.accepted)
        return "250 2.0.0 Ok: queued"

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        if getattr(session, "accepted", None) is not None:
            session.accepted["confirmed"] = True
        await asyncio.sleep(0.3)
        return "221 Bye"


def test_sigkill_in_enforce_mode_loses_no_recipient_copy_and_delivers_none_twice(mw: Mailwarden) -> None:
    sink = SlowSink()
    sink.controller.start()
    try:
        mw.listeners = {"inbound": free_port()}
        mw.write_config()
        mw.import_organisation(
            organisation(
                monitor_only=False,
                domains=[{"name": "example.com", "mode": "gateway", "next_hop": f"127.0.0.1:{sink.port}"}],
            )
        )
        mw.start()
        rcpts = ["alice@example.com", "bob@example.com"]

        def one(n: int) -> list[tuple[str, list[str], bytes, Any]]:
            return [("partner@example.org", rcpts, simple(f"enforce-{n:04d}"), f"enforce-{n:04d}")]

        stream = Stream(mw.listeners["inbound"], one)
        for _ in range(3):
            delivered_before = len(sink.accepted)
            eventually(lambda n=delivered_before: len(sink.accepted) >= n + 10, timeout=120)  # deliveries flowing
            mw.kill()  # SIGKILL while messages are being accepted, scanned, written and delivered
            time.sleep(0.3)
            mw.start()
        stream.wait_for(len(stream.acked) + 10)
        stream.stop()

        def delivered() -> list[dict[str, Any]]:
            log = list(sink.accepted)
            got = {(a["subject"], r) for a in log for r in a["rcpts"]}
            missing = [(s, r) for s in stream.acked for r in rcpts if (s, r) not in got]
            assert not missing, f"{len(missing)} recipient copies not delivered, e.g. {missing[:3]}"
            return log

        known: set[tuple[str, str]] = set()  # copies the sender knew it had delivered
        again: list[tuple[str, str]] = []
        for accepted in eventually(delivered, timeout=120):
            for key in ((accepted["subject"], r) for r in accepted["rcpts"]):
                if key in known:
                    again.append(key)
                if accepted["confirmed"]:
                    known.add(key)
        assert again == [], f"{len(again)} recipient copies delivered again after a known delivery: {again[:3]}"
        assert mw.stop() == 0
    finally:
        sink.controller.stop()
