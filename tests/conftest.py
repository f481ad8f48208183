"""Shared factories: messages and envelopes built in code, so tests say what they are about."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from mailwarden.dns import DnsConfig, DnsResolver
from mailwarden.model import Envelope, Message
from tests.dnsserver import DnsServer
from tests.factories import build_message


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
