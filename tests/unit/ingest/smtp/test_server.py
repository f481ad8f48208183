"""The SMTP server: a 250 only after the spool has the message, connections per address, shutdown."""

from __future__ import annotations

import asyncio
import smtplib

import pytest

from mailwarden.ingest.spool import Spool, SpoolEntry
from tests.unit.ingest.smtp.helpers import (
    MESSAGE,
    StartServer,
    converse,
    in_thread,
    spooled,
    transaction,
)


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


# ---- limits ----------------------------------------------------------------------------------
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
