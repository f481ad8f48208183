"""`mailwarden serve` leaves no process behind when it is killed."""

from __future__ import annotations

import signal
import smtplib
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import psutil
import pytest

from tests.dnsserver import DnsServer
from tests.integration.harness import Mailwarden, eventually, free_port, organisation
from tests.processes import describe, still_running

pytestmark = pytest.mark.integration


@pytest.fixture
def mw(tmp_path: Path, dns_server: DnsServer) -> Iterator[Mailwarden]:
    instance = Mailwarden(tmp_path, dns_port=dns_server.port, listeners={"journal": free_port()})
    instance.write_config()
    instance.import_organisation(organisation(monitor_only=True, domains=[{"name": "example.com"}]))
    yield instance
    if instance.process is not None:
        instance.kill()


def journal(mw: Mailwarden, subject: str) -> None:
    msg = EmailMessage()
    msg["From"] = "partner@example.org"
    msg["To"] = "alice@example.com"
    msg["Subject"] = subject
    msg.set_content("hello\n")
    with smtplib.SMTP("127.0.0.1", mw.listeners["journal"], timeout=30) as client:
        client.sendmail("", [mw.journal_address], msg.as_bytes(policy=SMTP))


def started_by(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def scanning(processes: list[psutil.Process]) -> list[psutil.Process]:
    """The scanning processes: children of multiprocessing's forkserver."""
    servers = {p.pid for p in processes if "multiprocessing.forkserver" in " ".join(p.cmdline())}
    return [p for p in processes if p.ppid() in servers]


def test_the_scanning_processes_end_when_the_server_is_killed(mw: Mailwarden) -> None:
    mw.start()
    for n in range(4):  # enough work for both scanning processes to start
        journal(mw, f"before the crash {n}")
    eventually(lambda: len(mw.messages(subject="before the crash")) == 4)
    assert mw.process is not None
    server = mw.process
    helpers = started_by(server.pid)
    assert scanning(helpers), f"no scanning process was started: {helpers}"

    server.send_signal(signal.SIGKILL)  # a crash: nothing of the server's own clean-up runs
    server.wait(timeout=30)

    left = still_running(helpers, grace=10)
    assert not left, "still running after the server was killed: " + ", ".join(describe(p) for p in left)
