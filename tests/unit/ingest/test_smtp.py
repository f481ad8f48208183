"""The SMTP ingress on 127.0.0.1, driven by smtplib and by raw bytes on a socket."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import smtplib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from mailwarden.ingest import replies
from mailwarden.ingest.access import hash_password, verify_password
from mailwarden.ingest.config import SmtpConfig
from mailwarden.ingest.replies import Reply
from mailwarden.ingest.smtp import SessionInfo, SmtpServer
from mailwarden.ingest.spool import Spool, SpoolEntry
from tests.factories import build_message

JOURNAL = {
    "name": "journal",
    "role": "journal",
    "port": 0,
    "journal_addresses": ["journal@example.com"],
    "allowed_networks": ["127.0.0.0/8"],
}
INBOUND = {"name": "mx", "role": "inbound", "port": 0}
PASSWORD = "correct horse battery staple"
PASSWORD_HASH = hash_password(PASSWORD)
SUBMISSION = {
    "name": "submission",
    "role": "outbound",
    "port": 0,
    "auth_required": True,
    "auth_users": {"relay": PASSWORD_HASH},
}
MESSAGE = build_message(to="journal@example.com")
UNVERIFIED = ssl._create_unverified_context()

StartServer = Callable[..., Awaitable[SmtpServer]]


async def org_domains_only(listener: str, rcpt: str, session: SessionInfo) -> Reply | None:
    return None if rcpt.endswith("@example.com") else replies.RELAY_DENIED


@pytest.fixture
def spool(tmp_path: Path) -> Any:
    with Spool(tmp_path / "spool") as s:
        yield s


@pytest.fixture
async def start_server(spool: Spool) -> AsyncIterator[StartServer]:
    servers: list[SmtpServer] = []

    async def start(*listeners: dict[str, Any], on_spooled: Any = None, **smtp: Any) -> SmtpServer:
        config = SmtpConfig.model_validate({"hostname": "mx.test", "listeners": list(listeners or [JOURNAL]), **smtp})
        server = SmtpServer(config, spool, org_domains_only, on_spooled=on_spooled)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop(drain_timeout=1)


def spooled(spool: Spool) -> list[SpoolEntry]:
    return list(spool.pending())


async def converse(port: int, payload: bytes, *, wait: float = 5) -> bytes:
    """Send raw bytes at once (pipelined) and return every byte the server sends until it hangs up."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(-1), wait)
    finally:
        writer.close()


def transaction(body: bytes, *, sender: bytes = b"alice@example.org") -> bytes:
    return b"EHLO client.example.org\r\nMAIL FROM:<" + sender + b">\r\nRCPT TO:<journal@example.com>\r\nDATA\r\n" + body


async def in_thread(fn: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(fn)


# ---- accepting mail --------------------------------------------------------------------------
async def test_a_message_is_spooled_with_its_envelope_before_the_250(start_server: StartServer, spool: Spool) -> None:
    notified: list[SpoolEntry] = []
    server = await start_server(on_spooled=notified.append)
    port = server.bound_ports()["journal"]

    def send() -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.ehlo("client.example.org")
            client.mail("Alice@Example.org")
            client.rcpt("Journal@Example.COM")
            return client.data(MESSAGE)

    code, text = await in_thread(send)

    [entry] = spooled(spool)
    assert code == 250
    assert text.decode() == f"2.0.0 OK: queued as {entry.id}"
    assert entry.raw == MESSAGE.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    assert entry.listener == "journal"
    assert entry.envelope.mail_from == "alice@example.org"
    assert entry.envelope.rcpt_to == ("journal@example.com",)
    assert entry.envelope.client_ip == "127.0.0.1"
    assert entry.envelope.helo == "client.example.org"
    assert entry.envelope.tls is None
    assert notified == [entry]


async def test_null_sender_and_plus_addressed_journal_mailbox(start_server: StartServer, spool: Spool) -> None:
    server = await start_server()
    reply = await converse(
        server.bound_ports()["journal"],
        b"EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<journal+tenant-7@example.com>\r\nDATA\r\nbounce\r\n.\r\nQUIT\r\n",
    )
    assert b"250 2.0.0 OK: queued as" in reply
    [entry] = spooled(spool)
    assert entry.envelope.mail_from == ""
    assert entry.envelope.rcpt_to == ("journal+tenant-7@example.com",)


async def test_journal_listener_refuses_other_mailboxes(start_server: StartServer, spool: Spool) -> None:
    server = await start_server()
    reply = await converse(
        server.bound_ports()["journal"],
        b"EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<ceo@example.com>\r\nRCPT TO:<journalx@example.com>\r\n"
        b"DATA\r\nQUIT\r\n",
    )
    assert reply.count(str(replies.NOT_A_JOURNAL_MAILBOX).encode()) == 2
    assert str(replies.NEED_RECIPIENT).encode() in reply
    assert spooled(spool) == []


async def test_ehlo_announces_size_8bitmime_smtputf8_starttls_and_no_chunking(start_server: StartServer) -> None:
    server = await start_server(max_message_size=4096)
    port = server.bound_ports()["journal"]

    def ehlo() -> dict[str, str]:
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.ehlo("c")
            return dict(client.esmtp_features)

    features = await in_thread(ehlo)
    assert features["size"] == "4096"
    assert {"8bitmime", "smtputf8", "starttls", "pipelining"} <= features.keys()
    assert "chunking" not in features
    assert "auth" not in features  # no AUTH on a journal listener


async def test_smtputf8_and_8bit_mail_is_kept_byte_for_byte(start_server: StartServer, spool: Spool) -> None:
    server = await start_server()
    body = "Subject: Grüße\r\n\r\nÄrger mit Umlauten\r\n".encode()
    reply = await converse(
        server.bound_ports()["journal"],
        "EHLO c\r\nMAIL FROM:<jürgen@exämple.org> SMTPUTF8 BODY=8BITMIME\r\nRCPT TO:<journal@example.com>\r\n"
        "DATA\r\n".encode()
        + body
        + b".\r\nQUIT\r\n",
    )
    assert b"250 2.0.0 OK: queued as" in reply
    [entry] = spooled(spool)
    assert entry.raw == body
    assert entry.envelope.mail_from == "jürgen@exämple.org"


async def test_dot_stuffed_lines_are_unstuffed(start_server: StartServer, spool: Spool) -> None:
    server = await start_server()
    await converse(server.bound_ports()["journal"], transaction(b"a\r\n..\r\n..b\r\n.\r\nQUIT\r\n"))
    [entry] = spooled(spool)
    assert entry.raw == b"a\r\n.\r\n.b\r\n"


# ---- limits ----------------------------------------------------------------------------------
async def test_declared_size_over_the_limit_is_refused_at_mail(start_server: StartServer, spool: Spool) -> None:
    server = await start_server(max_message_size=2048)
    reply = await converse(
        server.bound_ports()["journal"], b"EHLO c\r\nMAIL FROM:<a@example.org> SIZE=4096\r\nQUIT\r\n"
    )
    assert b"552 5.3.4 " in reply


async def test_a_message_over_the_limit_is_refused_after_data(start_server: StartServer, spool: Spool) -> None:
    server = await start_server(max_message_size=2048)
    big = b"".join(b"line %04d of a long message\r\n" % i for i in range(200))
    reply = await converse(server.bound_ports()["journal"], transaction(big + b".\r\n") + b"QUIT\r\n")
    assert b"552 5.3.4 Message size exceeds fixed maximum message size" in reply
    assert b"221" in reply  # the session goes on after the refusal
    assert spooled(spool) == []


async def test_too_many_recipients_get_452_and_the_accepted_ones_keep_the_message(
    start_server: StartServer, spool: Spool
) -> None:
    server = await start_server(INBOUND, max_recipients=2)
    reply = await converse(
        server.bound_ports()["mx"],
        b"EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<one@example.com>\r\nRCPT TO:<two@example.com>\r\n"
        b"RCPT TO:<three@example.com>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n",
    )
    assert b"452 4.5.3 Too many recipients" in reply
    [entry] = spooled(spool)
    assert entry.envelope.rcpt_to == ("one@example.com", "two@example.com")


async def test_a_full_spool_answers_452_until_scanning_catches_up(start_server: StartServer, spool: Spool) -> None:
    server = await start_server(max_backlog=2)
    port = server.bound_ports()["journal"]
    first = await converse(
        port,
        transaction(b"one\r\n.\r\n") + b"MAIL FROM:<b@example.org>\r\n"
        b"RCPT TO:<journal@example.com>\r\nDATA\r\ntwo\r\n.\r\nQUIT\r\n",
    )
    assert first.count(b"250 2.0.0 OK: queued as") == 2
    # two messages wait: the sender is asked to retry, nothing is taken
    full = await converse(port, transaction(b"three\r\n.\r\n") + b"QUIT\r\n")
    assert b"452 4.3.1 Insufficient system storage" in full
    assert b"queued as" not in full
    assert spool.backlog == 2 and len(spooled(spool)) == 2
    # one is finished (recorded): mail is taken again
    spool.done(spooled(spool)[0].id)
    again = await converse(port, transaction(b"three\r\n.\r\n") + b"QUIT\r\n")
    assert b"250 2.0.0 OK: queued as" in again
    assert spool.backlog == 2


async def test_connections_per_address_are_limited(start_server: StartServer) -> None:
    server = await start_server(max_connections_per_ip=2)
    port = server.bound_ports()["journal"]
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
    for reader, _ in held:
        assert (await reader.readline()).startswith(b"220 ")

    refused = await converse(port, b"")
    assert refused == b"421 4.7.0 Too many connections from your address, try again later\r\n"

    held[0][1].close()
    await asyncio.sleep(0.1)
    again = await converse(port, b"QUIT\r\n")
    assert again.startswith(b"220 ")
    held[1][1].close()


async def test_an_over_long_line_in_data_is_refused(start_server: StartServer, spool: Spool) -> None:
    server = await start_server(max_line_length=100)
    port = server.bound_ports()["journal"]
    at_limit = b"x" * 98 + b"\r\n"
    reply = await converse(port, transaction(at_limit + b".\r\n") + b"QUIT\r\n")
    assert b"250 2.0.0" in reply
    reply = await converse(port, transaction(b"y" * 500 + b"\r\n.\r\n") + b"QUIT\r\n")
    assert b"500 5.5.2 Line too long" in reply
    assert [e.raw for e in spooled(spool)] == [at_limit]


async def test_an_over_long_command_is_refused_and_the_session_goes_on(start_server: StartServer) -> None:
    server = await start_server(max_line_length=100)
    reply = await converse(server.bound_ports()["journal"], b"EHLO " + b"c" * 300 + b"\r\nNOOP\r\nQUIT\r\n")
    assert b"500 5.5.2 Line too long" in reply
    assert b"221" in reply


async def test_an_idle_client_is_told_421_and_disconnected(start_server: StartServer) -> None:
    server = await start_server(command_timeout=0.3)
    reply = await converse(server.bound_ports()["journal"], b"EHLO c\r\n")
    assert reply.endswith(b"421 4.4.2 Timeout exceeded, closing connection\r\n")


# ---- SMTP smuggling --------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [b"bare\nLF inside\r\n", b"bare\rCR inside\r\n", b"ends in bare LF\n"])
async def test_bare_lf_or_cr_in_data_refuses_the_message(start_server: StartServer, spool: Spool, bad: bytes) -> None:
    server = await start_server()
    reply = await converse(
        server.bound_ports()["journal"],
        transaction(b"Subject: x\r\n\r\n" + bad + b"more\r\n.\r\n") + b"QUIT\r\n",
    )
    assert b"550 5.5.2 Bare <LF> or <CR> in message data not allowed" in reply
    assert b"250 2.0.0" not in reply
    assert spooled(spool) == []


SMUGGLED = (
    b"MAIL FROM:<ceo@example.com>\r\nRCPT TO:<journal@example.com>\r\nDATA\r\n"
    b"From: ceo@example.com\r\nSubject: smuggled\r\n\r\nwire the money\r\n"
)


@pytest.mark.parametrize(
    "fake_end",
    [b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r.\r\n", b"\r\n.\r", b"\n.\r"],
    ids=["LF.LF", "LF.CRLF", "CRLF.LF", "CR.CR", "CR.CRLF", "CRLF.CR", "LF.CR"],
)
async def test_a_fake_end_of_data_never_smuggles_a_second_message(
    start_server: StartServer, spool: Spool, fake_end: bytes
) -> None:
    server = await start_server()
    legit = b"From: alice@example.org\r\nSubject: legit\r\n\r\nhello"
    reply = await converse(
        server.bound_ports()["journal"],
        transaction(legit + fake_end + SMUGGLED + b".\r\n") + b"QUIT\r\n",
    )
    messages = spooled(spool)
    assert reply.count(b"250 2.0.0 OK: queued") == len(messages) <= 1
    assert all(e.envelope.mail_from != "ceo@example.com" for e in messages)
    assert all(b"smuggled" not in e.raw for e in messages)
    assert b"550 5.5.2" in reply


async def test_data_ended_only_by_bare_newlines_never_completes(start_server: StartServer, spool: Spool) -> None:
    server = await start_server(data_timeout=0.5)
    reply = await converse(
        server.bound_ports()["journal"], transaction(b"Subject: x\n\nbody\n.\n" + SMUGGLED.replace(b"\r\n", b"\n"))
    )
    assert reply.endswith(b"421 4.4.2 Timeout exceeded, closing connection\r\n")
    assert b"250 2.0.0" not in reply
    assert spooled(spool) == []


async def test_a_legitimate_pipelined_second_message_is_accepted(start_server: StartServer, spool: Spool) -> None:
    server = await start_server()
    reply = await converse(
        server.bound_ports()["journal"],
        transaction(b"Subject: one\r\n\r\nfirst\r\n.\r\n")
        + b"MAIL FROM:<b@example.org>\r\nRCPT TO:<journal@example.com>\r\nDATA\r\nSubject: two\r\n\r\nsecond\r\n.\r\n"
        + b"QUIT\r\n",
    )
    assert reply.count(b"250 2.0.0 OK: queued") == 2
    assert sorted(e.raw for e in spooled(spool)) == [
        b"Subject: one\r\n\r\nfirst\r\n",
        b"Subject: two\r\n\r\nsecond\r\n",
    ]


@pytest.mark.parametrize("command", [b"MAIL FROM:<a@example.org>\n", b"MAIL FROM:<a@example.org>\rRCPT TO:<x>\r\n"])
async def test_bare_lf_or_cr_in_a_command_ends_the_session(start_server: StartServer, command: bytes) -> None:
    server = await start_server()
    reply = await converse(
        server.bound_ports()["journal"],
        b"EHLO c\r\n" + command + b"RCPT TO:<journal@example.com>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n",
    )
    assert reply.endswith(b"500 5.5.2 Bare <LF> or <CR> in command not allowed, closing connection\r\n")
    assert b"250 2.1.5" not in reply  # nothing after the bad line was processed


# ---- no open relay ---------------------------------------------------------------------------
async def test_inbound_refuses_recipients_outside_the_organisation(start_server: StartServer, spool: Spool) -> None:
    server = await start_server(INBOUND)
    reply = await converse(
        server.bound_ports()["mx"],
        b"EHLO c\r\nMAIL FROM:<spammer@example.net>\r\nRCPT TO:<victim@elsewhere.example>\r\n"
        b"RCPT TO:<bob@example.com>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n",
    )
    assert b"550 5.7.1 Relay access denied" in reply
    [entry] = spooled(spool)
    assert entry.envelope.rcpt_to == ("bob@example.com",)


async def test_outbound_refuses_a_client_outside_its_networks(start_server: StartServer, spool: Spool) -> None:
    outside = {"name": "out", "role": "outbound", "port": 0, "allowed_networks": ["192.0.2.0/24"]}
    server = await start_server(outside)
    reply = await converse(
        server.bound_ports()["out"],
        b"EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<x@example.net>\r\nDATA\r\nQUIT\r\n",
    )
    assert b"550 5.7.1 Client host not allowed to relay" in reply
    assert spooled(spool) == []


async def test_outbound_accepts_a_client_inside_its_networks(start_server: StartServer, spool: Spool) -> None:
    inside = {"name": "out", "role": "outbound", "port": 0, "allowed_networks": ["127.0.0.0/8", "::1/128"]}
    server = await start_server(inside)
    reply = await converse(
        server.bound_ports()["out"],
        b"EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<x@example.net>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n",
    )
    assert b"250 2.0.0 OK: queued" in reply
    [entry] = spooled(spool)
    assert entry.envelope.rcpt_to == ("x@example.net",)


async def test_auth_is_neither_offered_nor_accepted_before_starttls(start_server: StartServer) -> None:
    server = await start_server(SUBMISSION)
    port = server.bound_ports()["submission"]

    def attempt() -> tuple[bool, tuple[int, bytes], tuple[int, bytes]]:
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.ehlo("c")
            offered = client.has_extn("auth")
            auth = client.docmd("AUTH", "PLAIN " + _plain("relay", PASSWORD))
            mail = client.docmd("MAIL", "FROM:<a@example.com>")
            return offered, auth, mail

    offered, auth, mail = await in_thread(attempt)
    assert not offered
    assert auth == (538, b"5.7.11 Encryption required for requested authentication mechanism")
    assert mail == (530, b"5.7.0 Authentication required")


@pytest.mark.parametrize(("password", "accepted"), [(PASSWORD, True), ("wrong password", False)])
async def test_auth_over_starttls(start_server: StartServer, spool: Spool, password: str, accepted: bool) -> None:
    server = await start_server(SUBMISSION)
    port = server.bound_ports()["submission"]

    def send() -> tuple[int, int]:
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.starttls(context=UNVERIFIED)
            client.ehlo("laptop.example.com")
            try:
                code, _ = client.login("relay", password)
            except smtplib.SMTPAuthenticationError as exc:
                code = exc.smtp_code
            mail_code, _ = client.mail("a@example.com")
            return code, mail_code

    auth_code, mail_code = await in_thread(send)
    if accepted:
        assert (auth_code, mail_code) == (235, 250)
    else:
        assert (auth_code, mail_code) == (535, 530)


async def test_auth_login_and_the_user_is_recorded(start_server: StartServer, spool: Spool) -> None:
    server = await start_server(SUBMISSION)
    port = server.bound_ports()["submission"]

    def send() -> None:
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.starttls(context=UNVERIFIED)
            client.ehlo("laptop.example.com")
            client.user, client.password = "relay", PASSWORD
            client.auth("LOGIN", client.auth_login)
            client.sendmail("a@example.com", ["x@example.net"], b"Subject: out\r\n\r\nhi\r\n")

    await in_thread(send)
    [entry] = spooled(spool)
    assert entry.envelope.authenticated_as == "relay"
    assert entry.envelope.tls is not None


async def test_require_tls_refuses_mail_before_starttls(start_server: StartServer) -> None:
    server = await start_server({**JOURNAL, "require_tls": True})
    reply = await converse(server.bound_ports()["journal"], b"EHLO c\r\nMAIL FROM:<a@example.org>\r\nQUIT\r\n")
    assert b"530 5.7.0 Must issue a STARTTLS command first" in reply


# ---- TLS -------------------------------------------------------------------------------------
async def test_starttls_with_the_generated_certificate_records_tls_facts(
    start_server: StartServer, spool: Spool
) -> None:
    server = await start_server({**JOURNAL, "require_tls": True})
    port = server.bound_ports()["journal"]

    def send() -> str:
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.starttls(context=UNVERIFIED)
            client.sendmail("a@example.org", ["journal@example.com"], MESSAGE)
            sock = client.sock
            assert isinstance(sock, ssl.SSLSocket)
            cert = sock.getpeercert(binary_form=True)
            assert cert is not None
            return ssl.DER_cert_to_PEM_cert(cert)

    pem = await in_thread(send)
    assert "BEGIN CERTIFICATE" in pem
    [entry] = spooled(spool)
    assert entry.envelope.tls is not None
    assert entry.envelope.tls.version in {"TLSv1.2", "TLSv1.3"}
    assert entry.envelope.tls.cipher


async def test_implicit_tls_port(start_server: StartServer, spool: Spool) -> None:
    server = await start_server({**JOURNAL, "name": "smtps", "implicit_tls": True})
    port = server.bound_ports()["smtps"]

    def send() -> bool:
        with smtplib.SMTP_SSL("127.0.0.1", port, context=UNVERIFIED) as client:
            client.ehlo("c")
            starttls_offered = client.has_extn("starttls")
            client.sendmail("a@example.org", ["journal@example.com"], MESSAGE)
            return starttls_offered

    assert await in_thread(send) is False
    [entry] = spooled(spool)
    assert entry.envelope.tls is not None


async def test_plaintext_on_the_implicit_tls_port_gets_nothing_spooled(start_server: StartServer, spool: Spool) -> None:
    server = await start_server({**JOURNAL, "name": "smtps", "implicit_tls": True})
    await converse(server.bound_ports()["smtps"], transaction(b"x\r\n.\r\n"), wait=2)
    assert spooled(spool) == []


# ---- shutdown --------------------------------------------------------------------------------
async def test_stop_lets_an_in_flight_message_finish_and_sends_idle_clients_away(
    start_server: StartServer, spool: Spool
) -> None:
    server = await start_server()
    port = server.bound_ports()["journal"]
    busy_reader, busy_writer = await asyncio.open_connection("127.0.0.1", port)
    busy_writer.write(transaction(b"Subject: in flight\r\n\r\npart one\r\n"))
    while not (await busy_reader.readline()).startswith(b"354"):
        pass
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", port)
    await idle_reader.readline()

    stopping = asyncio.create_task(server.stop(drain_timeout=5))
    idle_reply = await asyncio.wait_for(idle_reader.read(-1), 2)
    assert idle_reply == b"421 4.3.2 Service shutting down, try again later\r\n"
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
    assert not stopping.done()

    busy_writer.write(b"part two\r\n.\r\n")
    rest = await asyncio.wait_for(busy_reader.read(-1), 2)
    await asyncio.wait_for(stopping, 2)

    assert rest.startswith(b"250 2.0.0 OK: queued as")
    assert rest.endswith(b"421 4.3.2 Service shutting down, try again later\r\n")
    [entry] = spooled(spool)
    assert entry.raw == b"Subject: in flight\r\n\r\npart one\r\npart two\r\n"
    busy_writer.close()
    idle_writer.close()


async def test_stop_ends_a_stalled_session_after_the_drain_timeout(start_server: StartServer, spool: Spool) -> None:
    server = await start_server()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.bound_ports()["journal"])
    writer.write(transaction(b"never finished\r\n"))
    while not (await reader.readline()).startswith(b"354"):
        pass
    await asyncio.wait_for(server.stop(drain_timeout=0.2), 2)
    assert await asyncio.wait_for(reader.read(-1), 2) == b""
    assert spooled(spool) == []
    writer.close()


# ---- configuration and passwords -------------------------------------------------------------
def test_password_hashes_verify() -> None:
    assert verify_password(PASSWORD.encode(), PASSWORD_HASH)
    assert not verify_password(b"nope", PASSWORD_HASH)
    pbkdf2 = "pbkdf2_sha256$1000$c2FsdHNhbHRzYWx0$" + "Vh1FHT7xvHBb1HB1nSXTHN1XyQgOOu9KhhOFp8ZoyaQ="
    assert not verify_password(b"x", pbkdf2)
    assert not verify_password(b"x", "plaintext")


def test_pbkdf2_hashes_are_accepted() -> None:
    salt = b"saltsaltsalt"
    key = hashlib.pbkdf2_hmac("sha256", b"secret", salt, 1000)
    hashed = f"pbkdf2_sha256$1000${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"
    assert verify_password(b"secret", hashed)
    assert not verify_password(b"Secret", hashed)


@pytest.mark.parametrize(
    ("listener", "message"),
    [
        ({"name": "j", "role": "journal", "port": 25, "allow_any_source": True}, "needs journal_addresses"),
        ({**SUBMISSION, "auth_users": {"relay": "plaintext-password"}}, "not a scrypt"),
        ({"name": "o", "role": "outbound", "port": 25}, "needs allowed_networks, auth_users or tls_client_ca"),
        ({**INBOUND, "allowed_networks": ["10.0.0.0/8"]}, "apply to outbound and journal listeners"),
        ({**INBOUND, "role": "relay"}, "role"),
    ],
)
def test_bad_listener_config_is_refused(listener: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SmtpConfig.model_validate({"listeners": [listener]})


def test_duplicate_listener_names_are_refused() -> None:
    with pytest.raises(ValidationError, match="unique"):
        SmtpConfig.model_validate({"listeners": [JOURNAL, JOURNAL]})


def _plain(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()
