"""SMTP DATA read in blocks: the one real end, the smuggling checks, the size limit and the memory budget.

A message is read from the session's stream in blocks of up to the stream buffer's size (64 KiB and
more), never line by line, and checked with whole-block byte operations, so an empty line costs
nothing but its two bytes. The rules (docs/ingress.md, "SMTP smuggling"):

* The data ends at the first `<CR><LF>.<CR><LF>` of the stream, the CRLF that ended the DATA command
  counting as the first CRLF (so `.<CR><LF>` right after DATA is an empty message). Nothing else ends
  it: not `<LF>.<LF>`, `<CR>.<CR>` or any other mix.
* Every LF must follow a CR and every CR must precede an LF; a bare one refuses the message (550).
* A line over the limit (CRLF and the transparency dot included), a NUL byte or more bytes than
  `max_message_size` refuse the message; so does running out of the shared in-flight budget (452).
* A refused message is still read to its end, and its bytes are dropped at once: nothing of it is
  kept while the rest streams by.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from mailwarden.ingest import replies as r
from mailwarden.ingest.replies import Reply

END_OF_DATA = b"\r\n.\r\n"
_LF_DOT_LINE = b"\n.\r\n"
_SLICE = 16 * 1024  # bytes checked at a time, so that many sessions in DATA take turns often
_CHUNK = 256 * 1024  # bytes gathered before they become one chunk of a message
_OFF_LOOP = 1024 * 1024  # messages at least this large are joined in a thread (CPython then drops the GIL)
SMALL_MESSAGE = 1024 * 1024  # messages up to this size may use the budget's reserve


@dataclass(frozen=True, slots=True)
class DataLimits:
    """What one message may be: bytes after dot-unstuffing, and octets per line as sent."""

    max_message_size: int
    max_line: int  # CRLF and the transparency dot of RFC 5321 4.5.2 included


class DataBudget:
    """The message bytes every session holds while it reads DATA and commits it, bounded together.

    When a session's next block would pass the limit, the message in transit with the most bytes
    gives way (its bytes are dropped at once and it is answered 452 at its end), so a flood of
    large messages is cut back. A message being committed is never dropped: its bytes are already
    on their way to disk. When such messages fill the limit, messages of up to `SMALL_MESSAGE`
    bytes may still use a reserve of an eighth of it: ordinary mail keeps flowing.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.reserve = limit // 8
        self.in_flight = 0
        self._holds: set[DataHold] = set()

    def hold(self) -> DataHold:
        """A new, empty hold for one message."""
        hold = DataHold(self)
        self._holds.add(hold)
        return hold

    def _make_room(self, asking: DataHold, size: int) -> bool:
        """Room for `size` more bytes of `asking`, dropping larger messages; False when there is none."""
        wanted = asking.held + size
        while self.in_flight + size > self.limit:
            others = [hold for hold in self._holds if hold is not asking and not hold.pinned]
            largest = max(others, key=lambda hold: hold.held, default=None)
            if largest is None or largest.held <= wanted:
                break
            largest.drop(evicted=True)
        limit = self.limit + (self.reserve if wanted <= SMALL_MESSAGE else 0)
        return self.in_flight + size <= limit

    def _forget(self, hold: DataHold) -> None:
        self._holds.discard(hold)


class DataHold:
    """One message's bytes while DATA is read and committed, counted in the server's `DataBudget`.

    The bytes are kept as a list of chunks of about `_CHUNK` bytes (small blocks are gathered in a
    buffer first, so a line never becomes an object of its own), joined once at the end: joining
    `bytes` objects releases the GIL, so a large message is copied off the event loop.
    """

    def __init__(self, budget: DataBudget) -> None:
        self._budget = budget
        self._chunks: list[bytes] = []
        self._gathering = bytearray()
        self.held = 0
        self.evicted = False  # dropped to make room for others
        self.pinned = False  # being committed: never dropped

    def append(self, data: bytes) -> bool:
        """Keep `data`; False (and nothing kept any more) when the budget has no room for it."""
        if self.evicted:
            return False
        if not self._budget._make_room(self, len(data)):
            self.drop(evicted=True)
            return False
        self._gathering += data
        if len(self._gathering) >= _CHUNK:
            self._chunks.append(bytes(self._gathering))
            self._gathering.clear()
        self._count(len(data))
        return True

    def head(self, size: int) -> bytes:
        """The first `size` bytes kept (all of them when there are fewer)."""
        parts, length = [], 0
        for chunk in (*self._chunks, bytes(self._gathering)):
            if length >= size:
                break
            parts.append(chunk)
            length += len(chunk)
        return b"".join(parts)[:size]

    async def take(self, header: bytes) -> bytes:
        """The message with `header` in front; it stays counted (and cannot be dropped) until `release`.

        While it is copied into one piece it is there twice, and counted twice.
        """
        self.pinned = True
        self._count(len(header))
        chunks = [header, *self._chunks, bytes(self._gathering)]
        self._chunks, self._gathering = [], bytearray()
        if self.held < _OFF_LOOP:
            return b"".join(chunks)
        copy = self.held
        self._budget._make_room(self, copy)  # others give way if they can; this message goes on regardless
        self._count(copy)
        try:
            return await asyncio.to_thread(b"".join, chunks)
        finally:
            self._count(-copy)

    def drop(self, *, evicted: bool = False) -> None:
        """Forget the bytes kept so far (the message is refused); `evicted`: because others needed the room."""
        self._chunks.clear()
        self._gathering.clear()
        self._count(-self.held)
        self.evicted = self.evicted or evicted

    def release(self) -> None:
        """The message is committed or refused: its bytes no longer count."""
        self.drop()
        self._budget._forget(self)

    def _count(self, size: int) -> None:
        self.held += size
        self._budget.in_flight += size


class _DataCheck:
    """The checks of one message, fed its raw blocks in order; what to keep of each."""

    def __init__(self, limits: DataLimits) -> None:
        self.limits = limits
        self.problem: Reply | None = None
        self.size = 0
        self._pending_cr = False  # the previous block ended in CR: this one must start with LF
        self._line_start = True  # the previous block ended a line (the DATA command's CRLF at first)
        self._line_length = 0  # octets of the current line in earlier blocks

    def feed(self, block: bytes) -> bytes | None:
        """The bytes of `block` to keep (dot-unstuffed), or None when the message is refused."""
        if self.problem is not r.BARE_LINE_ENDING_IN_DATA and _has_bare_line_ending(block, self._pending_cr):
            self.problem = r.BARE_LINE_ENDING_IN_DATA  # wins over every other reason: the framing is broken
        if block:
            self._pending_cr = block.endswith(b"\r")
        if self.problem is not None:
            return None
        kept = self._checked(block)
        if block:
            self._line_start = block.endswith(b"\n")
        return kept

    def _checked(self, block: bytes) -> bytes | None:
        too_long, self._line_length = _over_long_line(block, self._line_length, self.limits.max_line)
        if too_long:
            self.problem = r.LINE_TOO_LONG
            return None
        if b"\0" in block:
            self.problem = r.NUL_IN_DATA
            return None
        kept = block.replace(b"\n.", b"\n")
        if self._line_start and kept[:1] == b".":
            kept = kept[1:]
        self.size += len(kept)
        if self.size > self.limits.max_message_size:
            self.problem = r.MESSAGE_TOO_BIG
            return None
        return kept


def _has_bare_line_ending(block: bytes, pending_cr: bool) -> bool:
    """A LF not after a CR, or a CR not before a LF; `pending_cr`: the block before ended in CR."""
    if not block:
        return False
    joined = pending_cr and block[:1] == b"\n"
    if pending_cr and not joined:
        return True
    pairs = block.count(b"\r\n")
    return block.count(b"\n") != pairs + joined or block.count(b"\r") != pairs + block.endswith(b"\r")


def _over_long_line(block: bytes, line_length: int, max_line: int) -> tuple[bool, int]:
    """Whether a line in `block` passes `max_line` octets, its LF included; the open line's length after it.

    Jumps from the last LF of one window of the allowed length to the next, so a block costs about
    `len(block) / max_line` searches however short its lines are.
    """
    position, end = 0, len(block)
    while True:
        allowed = max_line - line_length  # octets the current line may still take, its LF included
        last_lf = block.rfind(b"\n", position, position + allowed)
        if last_lf < 0:
            rest = end - position
            return rest >= allowed, line_length + rest
        position, line_length = last_lf + 1, 0


async def read_data(
    reader: asyncio.StreamReader,
    hold: DataHold,
    limits: DataLimits,
    on_progress: Callable[[], None],
    *,
    slice_size: int = _SLICE,
) -> Reply | None:
    """Read DATA up to its one real end into `hold`; the reply refusing the message, or None to accept it.

    `on_progress` is called after every block read (the caller re-arms its timeout there). A block
    is checked `slice_size` bytes at a time, and the session lets the others run after each slice:
    twenty connections flooding DATA must not make an ordinary sender wait for twenty large blocks
    at every reply.
    """
    check = _DataCheck(limits)
    tail = b"\r\n"  # the last bytes read so far; the DATA command's CRLF at first
    unyielded = 0  # bytes checked since the session last let the others run
    while True:
        block, end = await _next_block(reader, tail)
        on_progress()
        content = block[:-3] if end else block
        for start in range(0, max(len(content), 1), slice_size):
            piece = content[start : start + slice_size]
            kept = check.feed(piece)
            if kept is not None and not hold.append(kept):
                check.problem = r.DATA_MEMORY_FULL
            if check.problem is not None:
                hold.drop()
            unyielded += len(piece)
            if unyielded >= slice_size:
                unyielded = 0
                await asyncio.sleep(0)
        if end:
            return check.problem
        tail = (tail + block[-4:])[-4:]


async def _next_block(reader: asyncio.StreamReader, tail: bytes) -> tuple[bytes, bool]:
    """The next bytes of DATA after `tail`, and whether they end it (then they end in `.<CR><LF>`).

    Never reads past the end marker: what follows it is the client's next command. The stream
    reader keeps the last bytes that could begin a separator until it knows, so a block ends
    inside an end marker only where `tail` says so, and that is where the marker is looked for.
    """
    if tail.endswith(b"\r\n"):
        # a line just ended, so the marker's `.<CR><LF>` may come now: one byte tells
        first = await reader.readexactly(1)
        if first != b".":
            return first, False
        rest = await reader.readexactly(2)
        return first + rest, rest == b"\r\n"
    separator = _LF_DOT_LINE if tail.endswith(b"\r") else END_OF_DATA
    try:
        block = await reader.readuntil(separator)
    except asyncio.LimitOverrunError as exc:
        return await reader.readexactly(exc.consumed), False
    # `<LF>.<CR><LF>` after anything but the CR in `tail` or the block is a bare LF, not the end
    return block, separator is END_OF_DATA or (block[-5:-4] if len(block) > 4 else tail[-1:]) == b"\r"
