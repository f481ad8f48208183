"""One SMTP session, driven by smtplib and by raw bytes: DATA, line limits, smuggling, AUTH, TLS."""

from __future__ import annotations

import asyncio
import smtplib
import ssl

import pytest

from mailwarden.ingest.spool import Spool
from tests.unit.ingest.smtp.helpers import (
    JOURNAL,
    MESSAGE,
    PASSWORD,
    SUBMISSION,
    UNVERIFIED,
    StartServer,
    converse,
    in_thread,
    plain,
    spooled,
    transaction,
)


# ---- DATA ------------------------------------------------------------------------------------
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


async def test_a_message_over_the_limit_is_refused_after_data(start_server: StartServer, spool: Spool) -> None:
    server = await start_server(max_message_size=2048)
    big = b"".join(b"line %04d of a long message\r\n" % i for i in range(200))
    reply = await converse(server.bound_ports()["journal"], transaction(big + b".\r\n") + b"QUIT\r\n")
    assert b"552 5.3.4 Message size exceeds fixed maximum message size" in reply
    assert b"221" in reply  # the session goes on after the refusal
    assert spooled(spool) == []


# ---- limits ----------------------------------------------------------------------------------
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


async def test_a_pipelined_group_is_answered_in_one_write(
    start_server: StartServer, spool: Spool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RFC 2920: MAIL, RCPT and DATA sent together get their three replies in one write (one segment on the
    wire, not three), in order, and the lines of the EHLO reply go out together; the message then goes
    through as usual."""
    writes: list[bytes] = []
    write = asyncio.StreamWriter.write

    def recording(self: asyncio.StreamWriter, data: bytes | bytearray | memoryview) -> None:
        writes.append(bytes(data))
        write(self, data)

    monkeypatch.setattr(asyncio.StreamWriter, "write", recording)
    server = await start_server()
    group = b"MAIL FROM:<a@example.org>\r\nRCPT TO:<journal@example.com>\r\nDATA\r\n"
    reply = await converse(
        server.bound_ports()["journal"], b"EHLO c\r\n" + group + b"Subject: s\r\n\r\nbody\r\n.\r\nQUIT\r\n"
    )
    answer = b"250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
    assert answer in writes  # the server's one write for the group (the client's own writes are commands)
    assert any(w.startswith(b"250-mx.test\r\n") and w.endswith(b"250 HELP\r\n") for w in writes)  # EHLO: one write
    assert answer in reply and reply.endswith(b"221 Bye\r\n")
    assert [e.raw for e in spooled(spool)] == [b"Subject: s\r\n\r\nbody\r\n"]


async def test_no_reply_held_for_a_pipelined_group_is_lost_when_the_session_ends(start_server: StartServer) -> None:
    """A refused recipient, a reset and QUIT in one group: every reply comes, in order, before the close."""
    server = await start_server()
    reply = await converse(
        server.bound_ports()["journal"],
        b"EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<someone@elsewhere.example>\r\nRSET\r\nQUIT\r\n",
    )
    codes = [line[:3] for line in reply.split(b"\r\n") if line[:3].isdigit() and line[3:4] == b" "]
    assert codes[-4:][0] == b"250" and codes[-4:][1][:1] == b"5" and codes[-4:][2:] == [b"250", b"221"]


@pytest.mark.parametrize("command", [b"MAIL FROM:<a@example.org>\n", b"MAIL FROM:<a@example.org>\rRCPT TO:<x>\r\n"])
async def test_bare_lf_or_cr_in_a_command_ends_the_session(start_server: StartServer, command: bytes) -> None:
    server = await start_server()
    reply = await converse(
        server.bound_ports()["journal"],
        b"EHLO c\r\n" + command + b"RCPT TO:<journal@example.com>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n",
    )
    assert reply.endswith(b"500 5.5.2 Bare <LF> or <CR> in command not allowed, closing connection\r\n")
    assert b"250 2.1.5" not in reply  # nothing after the bad line was processed


# ---- AUTH ------------------------------------------------------------------------------------
async def test_auth_is_neither_offered_nor_accepted_before_starttls(start_server: StartServer) -> None:
    server = await start_server(SUBMISSION)
    port = server.bound_ports()["submission"]

    def attempt() -> tuple[bool, tuple[int, bytes], tuple[int, bytes]]:
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.ehlo("c")
            offered = client.has_extn("auth")
            auth = client.docmd("AUTH", "PLAIN " + plain("relay", PASSWORD))
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


# ---- TLS -------------------------------------------------------------------------------------
async def test_require_tls_refuses_mail_before_starttls(start_server: StartServer) -> None:
    server = await start_server({**JOURNAL, "require_tls": True})
    reply = await converse(server.bound_ports()["journal"], b"EHLO c\r\nMAIL FROM:<a@example.org>\r\nQUIT\r\n")
    assert b"530 5.7.0 Must issue a STARTTLS command first" in reply


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
