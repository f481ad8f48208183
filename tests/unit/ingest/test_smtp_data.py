"""SMTP DATA read in blocks: memory bounded per message and in total, NUL bytes, the exact end of data."""

from __future__ import annotations

import asyncio
import socket
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailwarden.ingest import replies
from mailwarden.ingest.config import SmtpConfig
from mailwarden.ingest.data import DataBudget, DataLimits, read_data
from mailwarden.ingest.replies import Reply
from mailwarden.ingest.smtp import SessionInfo, SmtpServer
from mailwarden.ingest.spool import Spool

JOURNAL = {
    "name": "journal",
    "role": "journal",
    "port": 0,
    "journal_addresses": ["journal@example.com"],
    "allowed_networks": ["127.0.0.0/8"],
}
StartServer = Callable[..., Awaitable[SmtpServer]]


async def accept_all(listener: str, rcpt: str, session: SessionInfo) -> Reply | None:
    return None


@pytest.fixture
def spool(tmp_path: Path) -> Any:
    with Spool(tmp_path / "spool") as s:
        yield s


@pytest.fixture
async def start_server(spool: Spool) -> AsyncIterator[StartServer]:
    servers: list[SmtpServer] = []

    async def start(**smtp: Any) -> SmtpServer:
        config = SmtpConfig.model_validate({"hostname": "mx.test", "listeners": [JOURNAL], **smtp})
        server = SmtpServer(config, spool, accept_all)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop(drain_timeout=1)


def transaction(body: bytes) -> bytes:
    return b"EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<journal@example.com>\r\nDATA\r\n" + body


async def converse(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    try:
        return await asyncio.wait_for(reader.read(-1), 20)
    finally:
        writer.close()


async def until(condition: Callable[[], bool]) -> None:
    """Wait (up to 10 s) for what the server does with bytes already sent."""
    async with asyncio.timeout(10):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)


def lines_of(size: int) -> bytes:
    return b"".join(b"%097d\r\n" % i for i in range(size // 99))


# ---- memory -----------------------------------------------------------------------------------
async def test_a_message_of_empty_lines_costs_about_its_size_in_memory(start_server: StartServer, spool: Spool) -> None:
    server = await start_server()
    size = 2 * 1024 * 1024
    payload = transaction(b"\r\n" * (size // 2) + b".\r\nQUIT\r\n")

    def send() -> bytes:
        with socket.create_connection(("127.0.0.1", server.bound_ports()["journal"])) as sock:
            sock.sendall(payload)
            return b"".join(iter(lambda: sock.recv(65536), b""))

    tracemalloc.start()
    try:
        reply = await asyncio.to_thread(send)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert b"250 2.0.0 OK: queued as" in reply
    [entry] = list(spool.pending())
    assert len(entry.raw) == size
    # the message itself, its copy for the spool file and the stream buffer; a line each once cost 20 times as much
    assert peak < 4 * size


async def test_a_message_over_the_size_limit_keeps_nothing_while_it_streams(
    start_server: StartServer, spool: Spool
) -> None:
    server = await start_server(max_message_size=300_000)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.bound_ports()["journal"])
    writer.write(transaction(lines_of(200_000)))
    await until(lambda: server.data_budget.in_flight >= 100_000)  # the stream buffer holds back up to 64 KiB
    writer.write(lines_of(200_000))  # past the limit: what was kept is dropped at once
    await until(lambda: server.data_budget.in_flight == 0)
    writer.write(lines_of(200_000) + b".\r\nQUIT\r\n")
    reply = await asyncio.wait_for(reader.read(-1), 10)
    writer.close()
    assert b"552 5.3.4 Message size exceeds fixed maximum message size" in reply
    assert b"221" in reply
    assert list(spool.pending()) == []


async def test_the_message_with_the_most_bytes_in_transit_gives_way(start_server: StartServer, spool: Spool) -> None:
    server = await start_server(max_message_size=900_000, max_data_in_flight=1_000_000)
    port = server.bound_ports()["journal"]
    big_reader, big_writer = await asyncio.open_connection("127.0.0.1", port)
    big_writer.write(transaction(b"Subject: big\r\n\r\n" + lines_of(800_000)))
    await until(lambda: server.data_budget.in_flight >= 700_000)

    # a smaller message needs room: the big one, stalled half-way, is dropped for it
    small = await converse(port, transaction(b"Subject: small\r\n\r\n" + lines_of(300_000) + b".\r\nQUIT\r\n"))
    assert b"250 2.0.0 OK: queued as" in small

    big_writer.write(b"the rest\r\n.\r\nQUIT\r\n")
    big = await asyncio.wait_for(big_reader.read(-1), 10)
    big_writer.close()
    assert b"452 4.3.1 Insufficient system resources: too much mail in transit, try again later" in big
    assert [entry.raw[:14] for entry in spool.pending()] == [b"Subject: small"]
    assert server.data_budget.in_flight == 0


async def test_a_message_larger_than_the_room_left_is_refused_for_now(start_server: StartServer, spool: Spool) -> None:
    server = await start_server(max_message_size=900_000, max_data_in_flight=1_000_000)
    port = server.bound_ports()["journal"]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(transaction(b"Subject: first\r\n\r\n" + lines_of(400_000)))
    await until(lambda: server.data_budget.in_flight >= 300_000)

    second = await converse(port, transaction(b"Subject: second\r\n\r\n" + lines_of(800_000) + b".\r\nQUIT\r\n"))
    assert b"452 4.3.1" in second  # it is the largest: it gives way, the first goes on

    writer.write(b".\r\nQUIT\r\n")
    first = await asyncio.wait_for(reader.read(-1), 10)
    writer.close()
    assert b"250 2.0.0 OK: queued as" in first
    assert [entry.raw[:14] for entry in spool.pending()] == [b"Subject: first"]


# ---- NUL bytes -------------------------------------------------------------------------------
@pytest.mark.parametrize("body", [b"Subject: x\r\n\r\n\x00.\r\nmore\r\n", b"Subject: \x00\r\n\r\nhi\r\n"])
async def test_a_nul_byte_refuses_the_message_and_the_session_goes_on(
    start_server: StartServer, spool: Spool, body: bytes
) -> None:
    server = await start_server()
    reply = await converse(
        server.bound_ports()["journal"],
        transaction(body + b".\r\n")
        + b"MAIL FROM:<b@example.org>\r\nRCPT TO:<journal@example.com>\r\nDATA\r\nSubject: clean\r\n\r\nok\r\n.\r\n"
        + b"QUIT\r\n",
    )
    assert b"550 5.6.0 NUL character in message data not allowed" in reply
    assert reply.count(b"250 2.0.0 OK: queued as") == 1
    assert [entry.raw for entry in spool.pending()] == [b"Subject: clean\r\n\r\nok\r\n"]


# ---- the end of data, block by block against line by line -------------------------------------
MAX_LINE, MAX_SIZE = 12, 60
PIECES = [b"a", b"xyz", b".", b"..", b"\r\n", b"\r", b"\n", b"\x00", b"\r\n.\r\n", b"\r\n..\r\n", b"\n.\r\n", b"\r.\r"]


def line_by_line(stream: bytes) -> tuple[int, bytes | None, set[Reply]]:
    """The rules written plainly: (bytes the data takes, the message kept or None, the reasons to refuse it)."""
    framed = b"\r\n" + stream
    end = framed.find(b"\r\n.\r\n")
    data = framed[2 : end + 2]
    reasons: set[Reply] = set()
    if data.replace(b"\r\n", b"").count(b"\r") or data.replace(b"\r\n", b"").count(b"\n"):
        return end + 3, None, {replies.BARE_LINE_ENDING_IN_DATA}
    lines = data.split(b"\r\n")[:-1]
    if any(len(line) + 2 > MAX_LINE for line in lines):
        reasons.add(replies.LINE_TOO_LONG)
    if b"\0" in data:
        reasons.add(replies.NUL_IN_DATA)
    kept = b"".join((line[1:] if line[:1] == b"." else line) + b"\r\n" for line in lines)
    if len(kept) > MAX_SIZE:
        reasons.add(replies.MESSAGE_TOO_BIG)
    return end + 3, None if reasons else kept, reasons


async def read_in_segments(
    stream: bytes, cuts: list[int], limit: int, slice_size: int
) -> tuple[bytes, Reply | None, bytes]:
    reader = asyncio.StreamReader(limit=limit)
    budget = DataBudget(10_000)
    hold = budget.hold()

    async def feed() -> None:
        previous = 0
        for cut in [*sorted(cuts), len(stream)]:
            reader.feed_data(stream[previous:cut])
            previous = cut
            await asyncio.sleep(0)
        reader.feed_eof()

    feeder = asyncio.create_task(feed())
    problem = await read_data(reader, hold, DataLimits(MAX_SIZE, MAX_LINE), lambda: None, slice_size=slice_size)
    await feeder
    return hold.head(10_000), problem, await reader.read()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pieces=st.lists(st.sampled_from(PIECES), max_size=40),
    cuts=st.lists(st.integers(0, 200), max_size=8),
    limit=st.sampled_from([4, 5, 8, 64]),
    slice_size=st.sampled_from([1, 3, 7, 1024]),
)
def test_blocks_find_the_same_end_and_faults_as_lines(
    pieces: list[bytes], cuts: list[int], limit: int, slice_size: int
) -> None:
    stream = b"".join(pieces) + b"\r\n.\r\nQUIT\r\n"
    cuts = [cut for cut in cuts if cut <= len(stream)]
    taken, expected, reasons = line_by_line(stream)
    kept, problem, rest = asyncio.run(read_in_segments(stream, cuts, limit, slice_size))

    assert rest == stream[taken:]  # not a byte more or less: what follows is the client's next command
    if replies.BARE_LINE_ENDING_IN_DATA in reasons:
        assert problem == replies.BARE_LINE_ENDING_IN_DATA
    elif reasons:
        assert problem in reasons
        assert kept == b""  # a refused message keeps nothing
    else:
        assert (problem, kept) == (None, expected)


def test_the_largest_message_in_transit_gives_way() -> None:
    budget = DataBudget(100)
    first, second = budget.hold(), budget.hold()
    assert first.append(b"x" * 60)
    assert second.append(b"y" * 30)
    assert not second.append(b"y" * 40)  # it would hold 70 of 130: it is the largest, so it gives way
    assert (second.evicted, second.head(100), budget.in_flight) == (True, b"", 60)
    third = budget.hold()
    assert third.append(b"z" * 50)  # 110: now the first (60) is the largest and is dropped
    assert (first.evicted, first.head(100), budget.in_flight) == (True, b"", 50)
    for hold in (first, second, third):
        hold.release()
    assert budget.in_flight == 0


async def test_a_message_being_committed_is_never_dropped() -> None:
    budget = DataBudget(100)
    committing, reading = budget.hold(), budget.hold()
    assert committing.append(b"x" * 50) and committing.append(b"y" * 30)
    assert await committing.take(b"H: v\r\n") == b"H: v\r\n" + b"x" * 50 + b"y" * 30
    assert not reading.append(b"y" * 30)
    assert reading.evicted and not committing.evicted
    assert budget.in_flight == 86
    committing.release()
    assert budget.in_flight == 0


async def test_ordinary_mail_keeps_flowing_while_large_messages_are_committed() -> None:
    budget = DataBudget(8 * 1024 * 1024)
    committing = budget.hold()
    assert committing.append(b"x" * (8 * 1024 * 1024))
    await committing.take(b"")  # on its way to disk: it fills the budget and cannot give way
    ordinary, large = budget.hold(), budget.hold()
    assert ordinary.append(b"y" * 4096)  # a small message may use the reserve
    assert not large.append(b"z" * (2 * 1024 * 1024))  # a large one may not
    committing.release()
    assert large.append(b"z" * (2 * 1024 * 1024)) is False  # it gave way for good: refused at its end
    assert budget.hold().append(b"z" * (2 * 1024 * 1024))
