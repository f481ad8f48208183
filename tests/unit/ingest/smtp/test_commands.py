"""Command lines judged on their raw bytes: bare line endings, over-long lines, command and argument."""

from __future__ import annotations

import asyncio

import pytest

from mailwarden.ingest import replies
from mailwarden.ingest.smtp.commands import parse_command, read_line


def stream(data: bytes, *, limit: int = 64) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=limit)
    reader.feed_data(data)
    reader.feed_eof()
    return reader


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"NOOP\r\n", (b"NOOP\r\n", False, False)),
        (b"NOOP\n", (b"NOOP\n", True, False)),  # a bare LF ends the line
        (b"NO\rOP\r\n", (b"NO\rOP\r\n", True, False)),  # a bare CR inside it
    ],
)
async def test_a_line_is_read_with_its_ending_judged(data: bytes, expected: tuple[bytes, bool, bool]) -> None:
    assert await read_line(stream(data), 100) == expected


async def test_a_line_over_the_limit_keeps_only_its_ending() -> None:
    reader = stream(b"x" * 50 + b"\r\nNOOP\r\n")
    assert await read_line(reader, 20) == (b"\r\n", False, True)
    assert await read_line(reader, 20) == (b"NOOP\r\n", False, False)


@pytest.mark.parametrize(("ending", "tail", "bare"), [(b"\r\n", b"\r\n", False), (b"\n", b"y\n", True)])
async def test_a_line_over_the_stream_buffer_is_thrown_away_as_it_arrives(
    ending: bytes, tail: bytes, bare: bool
) -> None:
    reader = stream(b"y" * 1000 + ending + b"QUIT\r\n", limit=64)
    assert await read_line(reader, 100) == (tail, bare, True)
    assert await read_line(reader, 100) == (b"QUIT\r\n", False, False)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"mail FROM:<a@example.org>\r\n", ("MAIL", "FROM:<a@example.org>", None)),
        (b"QUIT\r\n", ("QUIT", None, None)),
        (b"RCPT TO:<j\xc3\xbcrgen@example.org>  \r\n", ("RCPT", "TO:<jürgen@example.org>", None)),
        (b"\r\n", ("", None, replies.BAD_SYNTAX)),
        (b"M\xc3\xa4IL FROM:<a@b>\r\n", ("", None, replies.BAD_SYNTAX)),
    ],
)
def test_a_command_line_is_split_into_command_and_argument(
    line: bytes, expected: tuple[str, str | None, object]
) -> None:
    assert parse_command(line) == expected
