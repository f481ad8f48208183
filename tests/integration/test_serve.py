"""`mailwarden serve` end to end: real SMTP on loopback, the real process, history read back.

Each test runs its own instance in a temporary directory; next hops are aiosmtpd sinks in this process.
"""

from __future__ import annotations

import re
import smtplib
import threading
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

import pytest

from mailwarden.model.trace import EventType, RecipientStatus
from tests.integration.harness import Mailwarden, Sink, eventually, free_port, organisation, relayed_as_sent

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[1] / "data" / "journal"


def simple(subject: str, *, sender: str = "partner@example.org", to: str = "alice@example.com") -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{subject.replace(' ', '-')}@example.org>"
    msg.set_content(f"Body of {subject}\n")
    return msg.as_bytes(policy=SMTP)  # CRLF: bare LF in DATA is refused (SMTP smuggling defence)


def send(port: int, sender: str, rcpts: list[str], raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail(sender, rcpts, raw)


def journal_setup(mw: Mailwarden) -> None:
    mw.listeners = {"journal": free_port()}
    mw.write_config()
    mw.import_organisation(organisation(monitor_only=True, domains=[{"name": "example.com"}]))
    mw.start()


def test_exchange_journal_report_is_recorded_once_with_its_whole_envelope(mw: Mailwarden) -> None:
    journal_setup(mw)
    report = (DATA / "exchange_outbound.eml").read_bytes()
    send(mw.listeners["journal"], "", [mw.journal_address], report)
    # the same message journaled again from a forked copy with one more recipient
    fork = report.replace(b"Bcc: erin@example.com\r\n", b"Bcc: erin@example.com\r\nTo: zoe@example.net\r\n")
    send(mw.listeners["journal"], "", [mw.journal_address], fork)

    def recorded() -> Any:
        found = mw.messages(subject="Q3 budget draft")
        assert len(found) == 1
        addresses = {r.address for r in found[0].recipients}
        assert "zoe@example.net" in addresses
        # both copies are in: one recorded, the other merged (either may come first)
        assert sum(e.type is EventType.JOURNAL_UNWRAP for e in found[0].events) == 2
        return found[0]

    detail = eventually(recorded)
    assert detail.summary.direction.value == "outbound"
    assert detail.summary.sender == "alice@example.com"
    assert detail.summary.applied is False
    by_address = {r.address: r for r in detail.recipients}
    assert by_address["erin@example.com"].field == "bcc"  # a Bcc only the report knows about
    assert by_address["carol@example.com"].expanded_from == "finance@example.com"
    assert all(r.status is RecipientStatus.RECORDED for r in detail.recipients)
    unwraps = [e.detail for e in detail.events if e.type is EventType.JOURNAL_UNWRAP]
    # the two copies are scanned in parallel, so either may be recorded first
    first, merged = unwraps
    if first.startswith("exchange_envelope_v2007: 6 recipients"):
        assert merged == "another journal copy merged: 1 new recipients"
    else:
        assert first.startswith("exchange_envelope_v2007: 7 recipients")
        assert merged == "another journal copy merged: 0 new recipients"


def _processes() -> dict[int, tuple[int, int]]:
    """pid → (parent pid, niceness) of every process."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[int(entry.name)] = (int(fields[1]), int(fields[16]))
    return out


def test_scanning_processes_yield_the_cpu_to_the_listeners(mw: Mailwarden) -> None:
    journal_setup(mw)
    send(mw.listeners["journal"], "partner@example.org", [mw.journal_address], simple("priority check"))
    eventually(lambda: mw.messages(subject="priority check"))  # scanned: a scanning process runs
    assert mw.process is not None
    server = mw.process.pid
    table = _processes()
    helpers = {pid for pid, (parent, _) in table.items() if parent == server}  # the forkserver
    scanners = {pid: nice for pid, (parent, nice) in table.items() if parent in helpers}
    assert scanners, table
    # processing.scan_nice = 10 (the default) below the server, which keeps its own priority
    assert set(scanners.values()) == {min(table[server][1] + 10, 19)}
    assert all(table[pid][1] == table[server][1] for pid in helpers)


def test_a_broken_journal_report_is_recorded_and_kept(mw: Mailwarden) -> None:
    journal_setup(mw)
    broken = (
        b"From: Microsoft Outlook <journal@example.com>\r\nTo: journal@mailwarden.test\r\n"
        b"Subject: broken report\r\nX-MS-Journal-Report:\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\n'
        b"Sender: a@example.org\r\n--B--\r\n"
    )
    send(mw.listeners["journal"], "", [mw.journal_address], broken)
    detail = eventually(lambda: mw.messages(subject="broken report")[0])
    assert detail.summary.category.value == "scan_error"
    unwrap = next(e for e in detail.events if e.type is EventType.JOURNAL_UNWRAP)
    assert unwrap.detail.startswith("journal_parse_error: ")
    kept = mw.root / "var" / "blobs"
    assert any(p.read_bytes() == broken for p in kept.rglob("journal-error-*"))


def test_sigkill_loses_no_acknowledged_message(mw: Mailwarden) -> None:
    journal_setup(mw)
    acked: list[str] = []
    stop = threading.Event()

    def client() -> None:
        n = 0
        while not stop.is_set():
            subject = f"crash-{n:05d}"
            try:
                with smtplib.SMTP("127.0.0.1", mw.listeners["journal"], timeout=10) as s:
                    while not stop.is_set():
                        subject = f"crash-{n:05d}"
                        s.sendmail("partner@example.org", [mw.journal_address], simple(subject))
                        acked.append(subject)  # the 250 arrived
                        n += 1
            except (OSError, smtplib.SMTPException):
                time.sleep(0.05)
                n += 1

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    eventually(lambda: len(acked) >= 150, timeout=60)
    mw.kill()  # SIGKILL in the middle of the stream
    time.sleep(0.3)
    stop.set()
    thread.join(timeout=30)
    assert acked, "no message was acknowledged"
    mw.start()

    def all_there() -> list[str]:
        subjects = [d.summary.subject for d in mw.messages(subject="crash-")]
        assert set(acked) <= set(subjects), f"{len(set(acked) - set(subjects))} acknowledged messages missing"
        return subjects

    subjects = eventually(all_there, timeout=60)
    assert len(subjects) == len(set(subjects)), "a message was recorded twice"
    assert mw.stop() == 0


def test_sigterm_drains_and_leaves_the_spool_consistent(mw: Mailwarden) -> None:
    journal_setup(mw)
    with smtplib.SMTP("127.0.0.1", mw.listeners["journal"], timeout=30) as s:
        for n in range(60):
            s.sendmail("partner@example.org", [mw.journal_address], simple(f"drain-{n:03d}"))
    assert mw.stop() == 0
    mw.start()
    eventually(lambda: len(mw.messages(subject="drain-")) == 60, timeout=60)
    assert len({d.summary.subject for d in mw.messages(subject="drain-")}) == 60
    assert mw.stop() == 0


def test_inbound_refuses_domains_it_does_not_serve(mw: Mailwarden, sink: Sink) -> None:
    mw.listeners = {"inbound": free_port()}
    mw.write_config()
    mw.import_organisation(
        organisation(
            monitor_only=False,
            domains=[
                {"name": "example.com", "mode": "gateway", "next_hop": f"127.0.0.1:{sink.port}"},
                {"name": "example.net", "mode": "journal"},
            ],
        )
    )
    mw.start()
    with smtplib.SMTP("127.0.0.1", mw.listeners["inbound"], timeout=30) as s:
        s.ehlo("client.example.org")
        s.mail("partner@example.org")
        for rcpt in ("victim@elsewhere.example", "bob@example.net"):
            code, text = s.rcpt(rcpt)
            assert (code, text[:5]) == (550, b"5.7.1"), rcpt
        assert s.rcpt("alice@example.com")[0] == 250


def test_enforce_relays_to_the_next_hop_through_temporary_failures(mw: Mailwarden) -> None:
    sink = Sink(temporary_failures=2)
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
        send(mw.listeners["inbound"], "partner@example.org", ["alice@example.com"], simple("retry me"))
        eventually(lambda: sink.received, timeout=60)

        def delivered() -> Any:
            detail = mw.messages(subject="retry me")[0]
            assert detail.recipients[0].status is RecipientStatus.DELIVERED
            return detail

        detail = eventually(delivered, timeout=30)
    finally:
        sink.controller.stop()
    mail_from, rcpts, content = sink.received[0]
    assert (mail_from, rcpts) == ("partner@example.org", ["alice@example.com"])
    # enforce mode stamps the verdict: not spam, SCL 0 or 1
    assert re.search(rb"X-Mailwarden-Antispam: DIR:INB;SFV:NSPM;SCL:[01];", content)
    assert detail.summary.applied is True
    receive = detail.events[0]
    assert receive.type is EventType.RECEIVE
    assert receive.smtp_reply == f"250 2.0.0 OK: queued as {detail.summary.id}"
    defers = [e for e in detail.events if e.type is EventType.DEFER]
    assert len(defers) == 2 and all("451 4.7.1" in (e.smtp_reply or "") for e in defers)
    assert any(e.type is EventType.DELIVER and "250" in (e.smtp_reply or "") for e in detail.events)


def test_monitor_mode_on_the_gateway_relays_the_message_unchanged(mw: Mailwarden, sink: Sink) -> None:
    mw.listeners = {"inbound": free_port()}
    mw.write_config()
    mw.import_organisation(
        organisation(
            monitor_only=True,
            domains=[{"name": "example.com", "mode": "gateway", "next_hop": f"127.0.0.1:{sink.port}"}],
        )
    )
    mw.start()
    raw = simple("watch only")
    send(mw.listeners["inbound"], "partner@example.org", ["alice@example.com"], raw)
    eventually(lambda: sink.received, timeout=30)
    assert relayed_as_sent(sink.received[0][2], raw)  # our Received field on top, nothing else
    detail = eventually(lambda: mw.messages(subject="watch only")[0])
    assert detail.summary.applied is False
    assert any(e.type is EventType.RECORD and e.detail.startswith("would have:") for e in detail.events)


def test_outbound_relays_for_listed_networks_only(mw: Mailwarden, sink: Sink, tmp_path: Path) -> None:
    mw.listeners = {"outbound": free_port()}
    mw.write_config(smart_host=f"127.0.0.1:{sink.port}")
    mw.import_organisation(organisation(monitor_only=False, domains=[{"name": "example.com"}]))
    mw.start()
    send(
        mw.listeners["outbound"],
        "alice@example.com",
        ["partner@example.org"],
        simple("going out", sender="alice@example.com", to="partner@example.org"),
    )
    eventually(lambda: sink.received, timeout=30)
    assert sink.received[0][1] == ["partner@example.org"]
    detail = eventually(lambda: mw.messages(subject="going out")[0])
    assert detail.summary.direction.value == "outbound"
    assert mw.stop() == 0

    closed = Mailwarden(tmp_path / "closed", dns_port=mw.dns_port)
    closed.root.mkdir()
    closed.listeners = {"outbound": free_port()}
    closed.write_config(outbound_networks=("192.0.2.0/24",))
    closed.start()
    try:
        with smtplib.SMTP("127.0.0.1", closed.listeners["outbound"], timeout=30) as s:
            s.ehlo("client.example.org")
            code, _ = s.mail("alice@example.com")
            if code == 250:
                code, _ = s.rcpt("partner@example.org")
            assert code in (530, 550)
    finally:
        closed.kill()


def test_a_blocked_ip_is_refused_at_rcpt_and_only_counted(mw: Mailwarden, sink: Sink) -> None:
    mw.listeners = {"inbound": free_port()}
    mw.write_config()
    document = organisation(
        monitor_only=False,
        domains=[{"name": "example.com", "mode": "gateway", "next_hop": f"127.0.0.1:{sink.port}"}],
    )
    document["policy"] = {"lists": {"ip_block": ["127.0.0.0/8"]}}
    mw.import_organisation(document)
    mw.start()
    with smtplib.SMTP("127.0.0.1", mw.listeners["inbound"], timeout=30) as s:
        s.ehlo("client.example.org")
        s.mail("partner@example.org")
        code, text = s.rcpt("alice@example.com")
    assert code == 550
    assert b"client host [127.0.0.1] blocked using IP block list" in text
    assert mw.messages() == []  # not in message history
    from mailwarden.store.connections import ConnectionStats

    rt = mw.runtime()
    try:
        days = ConnectionStats(rt.db).daily("acme", since=(datetime.now(UTC) - timedelta(days=1)).date())
    finally:
        rt.close()
    assert [(d.ip, d.count) for d in days] == [("127.0.0.1", 1)]
