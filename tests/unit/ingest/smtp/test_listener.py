"""A listener's policy: its EHLO keywords, who may send, which recipients it takes, by role."""

from __future__ import annotations

import smtplib

from mailwarden.ingest import replies
from mailwarden.ingest.spool import Spool
from tests.unit.ingest.smtp.helpers import (
    INBOUND,
    StartServer,
    converse,
    in_thread,
    spooled,
)


# ---- journal mailboxes -----------------------------------------------------------------------
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


# ---- EHLO and MAIL FROM ----------------------------------------------------------------------
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


async def test_declared_size_over_the_limit_is_refused_at_mail(start_server: StartServer, spool: Spool) -> None:
    server = await start_server(max_message_size=2048)
    reply = await converse(
        server.bound_ports()["journal"], b"EHLO c\r\nMAIL FROM:<a@example.org> SIZE=4096\r\nQUIT\r\n"
    )
    assert b"552 5.3.4 " in reply


# ---- recipients and no open relay ------------------------------------------------------------
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
