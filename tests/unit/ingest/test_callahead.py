"""Call-ahead verification against an aiosmtpd next hop on loopback, and the reading of its replies."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP

from mailwarden.ingest.callahead import CallAheadVerifier, classify_rcpt_reply
from mailwarden.ingest.recipients import Known, Unavailable, Unknown


@pytest.mark.parametrize(
    ("code", "message", "kind"),
    [
        (250, "2.1.5 Ok", Known),
        (251, "User not local; will forward", Known),
        (550, "5.1.1 <x@example.com>: Recipient address rejected: User unknown in relay recipient table", Unknown),
        (550, "No such user here", Unknown),
        (551, "5.1.6 User has moved", Unknown),
        (553, "5.1.3 Bad recipient address syntax", Unknown),
        (550, "5.7.1 Client host rejected: policy", Unavailable),  # about us, not about the mailbox
        (554, "5.7.1 Relay access denied", Unavailable),
        (552, "5.2.2 Mailbox full", Unavailable),
        (450, "4.2.0 Greylisted", Unavailable),
        (451, "4.3.0 Temporary lookup failure", Unavailable),
    ],
)
def test_what_a_reply_says_about_the_mailbox(code: int, message: str, kind: type) -> None:
    assert isinstance(classify_rcpt_reply(code, message), kind)


class NextHop:
    """An aiosmtpd next hop that knows some mailboxes and counts its connections and transactions."""

    def __init__(self, known: set[str], *, mail_reply: str = "250 2.1.0 Ok") -> None:
        self.known = known
        self.mail_reply = mail_reply
        self.sessions: list[SMTP] = []
        self.quits = 0
        self.hung_up = asyncio.Event()  # a client closed its connection
        self.mail_commands = 0
        self.rcpts: list[str] = []
        self.port = 0
        self.server: asyncio.Server | None = None

    async def start(self, port: int = 0) -> NextHop:
        hop = self

        class Session(SMTP):
            def connection_lost(self, error: Exception | None) -> None:
                super().connection_lost(error)
                hop.hung_up.set()

        def session() -> SMTP:
            smtp = Session(self, hostname="next-hop.test")
            self.sessions.append(smtp)
            return smtp

        self.server = await asyncio.get_running_loop().create_server(session, "127.0.0.1", port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for smtp in self.sessions:
            if smtp.transport is not None:
                smtp.transport.close()
        await self.server.wait_closed()

    def hang_up(self) -> None:
        """Close every open connection, as a next hop does with idle clients."""
        for smtp in self.sessions:
            if smtp.transport is not None:
                smtp.transport.close()

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        self.quits += 1
        return "221 Bye"

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        self.mail_commands += 1
        envelope.mail_from = address or "<>"
        return self.mail_reply

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        self.rcpts.append(address)
        if address in self.known:
            return "250 2.1.5 Ok"
        return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"


@pytest.fixture
async def next_hop() -> AsyncIterator[NextHop]:
    hop = await NextHop({"alice@example.com", "carol@example.com"}).start()
    yield hop
    await hop.stop()


def verifier(port: int, **kwargs: Any) -> CallAheadVerifier:
    return CallAheadVerifier("127.0.0.1", port, helo="mailwarden.test", timeout=5, **kwargs)


async def test_one_connection_checks_several_addresses(next_hop: NextHop) -> None:
    probe = verifier(next_hop.port)
    answers = [await probe.verify(a) for a in ("alice@example.com", "nobody@example.com", "carol@example.com")]
    assert [type(a) for a in answers] == [Known, Unknown, Known]
    assert (len(next_hop.sessions), next_hop.mail_commands) == (1, 1)
    await probe.close()
    assert all(s.transport is None or s.transport.is_closing() for s in next_hop.sessions)


async def test_a_connection_is_replaced_after_its_share_of_checks(next_hop: NextHop) -> None:
    probe = verifier(next_hop.port, checks_per_connection=2)
    for _ in range(5):
        assert isinstance(await probe.verify("nobody@example.com"), Unknown)
    assert len(next_hop.sessions) == 3
    await probe.close()


async def test_a_kept_connection_the_next_hop_closed_is_replaced_unnoticed(next_hop: NextHop) -> None:
    probe = verifier(next_hop.port)
    assert isinstance(await probe.verify("alice@example.com"), Known)
    next_hop.hang_up()
    await asyncio.sleep(0)  # let the close reach the client
    assert isinstance(await probe.verify("carol@example.com"), Known)
    assert len(next_hop.sessions) == 2
    await probe.close()


async def test_an_idle_connection_is_closed(next_hop: NextHop) -> None:
    probe = verifier(next_hop.port, idle_seconds=0.05)
    await probe.verify("alice@example.com")
    await asyncio.wait_for(next_hop.hung_up.wait(), 5)
    assert next_hop.quits == 1  # politely, with QUIT
    await probe.close()


async def test_a_next_hop_that_refuses_the_null_sender_is_unavailable() -> None:
    hop = await NextHop(set(), mail_reply="550 5.7.1 No bounces here").start()
    try:
        answer = await verifier(hop.port).verify("alice@example.com")
    finally:
        await hop.stop()
    assert isinstance(answer, Unavailable) and "refused MAIL FROM:<>" in answer.detail


async def test_tls_required_but_not_offered_is_unavailable(next_hop: NextHop) -> None:
    answer = await verifier(next_hop.port, require_tls=True).verify("alice@example.com")
    assert isinstance(answer, Unavailable) and "does not offer STARTTLS" in answer.detail
    assert next_hop.rcpts == []  # no address was sent in clear text


async def test_an_unreachable_next_hop_is_not_tried_again_at_once() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    now = [0.0]
    probe = verifier(port, clock=lambda: now[0])
    first = await probe.verify("alice@example.com")
    assert isinstance(first, Unavailable) and "connect to 127.0.0.1" in first.detail
    hop = await NextHop({"alice@example.com"}).start(port)
    try:
        assert isinstance(await probe.verify("alice@example.com"), Unavailable)
        assert hop.sessions == []  # answered without a connection
        now[0] = 6.0
        assert isinstance(await probe.verify("alice@example.com"), Known)
        await probe.close()
    finally:
        await hop.stop()
