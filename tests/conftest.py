"""Shared factories: messages and envelopes built in code, so tests say what they are about.

And the session's process hygiene: a run that leaves a process behind fails (see tests/processes.py).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator

import pytest

from mailwarden.dns import DnsConfig, DnsResolver
from mailwarden.model import Envelope, Message
from tests import processes
from tests.dnsserver import DnsServer
from tests.factories import build_message

LEFTOVER_GRACE_SECONDS = 5.0  # what the last tests stopped may still be ending its helpers


def pytest_configure(config: pytest.Config) -> None:
    # orphans of the session (a killed server's scanning processes, daemons) stay its descendants
    processes.become_subreaper()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when a process the tests started is still running at the end; end it either way."""
    left = processes.still_running(processes.descendants(), grace=LEFTOVER_GRACE_SECONDS)
    if not left:
        return
    lines = [f"{len(left)} process(es) started by the tests were still running at the end (now killed):"]
    lines += [f"  {processes.describe(p)}" for p in left]
    processes.kill(left)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        for line in lines:
            reporter.write_line(line, red=True)
    else:
        print("\n".join(lines), file=sys.stderr)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def make_message() -> Callable[..., Message]:
    def factory(**kwargs: object) -> Message:
        return Message(build_message(**kwargs))  # type: ignore[arg-type]

    return factory


@pytest.fixture
def envelope() -> Envelope:
    return Envelope(mail_from="alice@example.org", rcpt_to=("bob@example.com",), client_ip="198.51.100.7")


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    """An authoritative DNS server on 127.0.0.1 (UDP and TCP, one port) with records set by the test."""
    server = DnsServer().start()
    yield server
    server.stop()


@pytest.fixture
def resolver(dns_server: DnsServer) -> DnsResolver:
    """mailwarden's resolver pointed at the test DNS server."""
    return DnsResolver(DnsConfig(nameservers=["127.0.0.1"], port=dns_server.port, timeout=1.0))
