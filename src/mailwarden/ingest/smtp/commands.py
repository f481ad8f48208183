"""Command lines as the session reads them: one line off the stream, split into command and argument.

A line is judged on its raw bytes before aiosmtpd parses anything, so a bare LF or a bare CR is
seen (SMTP smuggling) and an over-long line is thrown away without being held in memory.
"""

from __future__ import annotations

import asyncio

from mailwarden.ingest import replies as r
from mailwarden.ingest.replies import Reply


async def read_line(reader: asyncio.StreamReader, max_line: int) -> tuple[bytes, bool, bool]:
    """The next line with its LF; whether a bare LF ended it or a bare CR is in it; whether it was too long.

    An over-long line is read to its end and thrown away; only its last two bytes are kept, so
    the caller still knows whether it ended in CRLF.
    """
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError as exc:
        consumed = exc.consumed
    else:
        if len(line) > max_line:
            return line[-2:], line[-2:-1] != b"\r", True
        return line, line[-2:-1] != b"\r" or b"\r" in line[:-2], False
    tail = b""
    while True:
        tail = (tail + await reader.readexactly(consumed))[-2:]
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError as exc:
            consumed = exc.consumed
            continue
        tail = (tail + line)[-2:]
        return tail, tail != b"\r\n", True


def parse_command(line: bytes) -> tuple[str, str | None, Reply | None]:
    """(COMMAND, argument, None) from a command line ending in CRLF, or a reply refusing it."""
    line = line[:-2]
    command_bytes, _, arg_bytes = line.partition(b" ")
    try:
        command = command_bytes.decode("ascii").upper()
    except UnicodeDecodeError:
        return "", None, r.BAD_SYNTAX
    if not command:
        return "", None, r.BAD_SYNTAX
    # SMTPUTF8 addresses arrive as UTF-8; surrogateescape keeps any other byte for aiosmtpd's parser
    arg = arg_bytes.strip().decode("utf-8", "surrogateescape") or None
    return command, arg, None
