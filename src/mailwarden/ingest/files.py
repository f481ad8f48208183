"""Messages from files for offline scans: single .eml files, directories of them, and mbox files."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

# An mbox "From_" separator line: `From sender  Thu Aug 22 13:17:22 2002`
_FROM_LINE = re.compile(rb"^From \S+ +\w{3} \w{3} +\d{1,2} \d{1,2}:\d{2}(:\d{2})? .*\d{4}\s*$", re.MULTILINE)
MAX_MESSAGE_BYTES = 200 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class InputItem:
    """One message found in the inputs, or the reason a file could not be read."""

    source: str  # path, or path:index for a message inside an mbox
    raw: bytes | None
    error: str | None = None


def expand_paths(paths: Iterable[Path]) -> list[Path]:
    """Files named directly, and every regular file below named directories, in sorted order."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")))
        else:
            out.append(path)
    return out


def read_items(files: Iterable[Path]) -> Iterator[InputItem]:
    """Each message of each file; unreadable files yield an item with an error instead."""
    for path in files:
        try:
            size = path.stat().st_size
            if size > MAX_MESSAGE_BYTES:
                yield InputItem(str(path), None, f"larger than {MAX_MESSAGE_BYTES // (1024 * 1024)} MiB")
                continue
            data = path.read_bytes()
        except OSError as exc:
            yield InputItem(str(path), None, exc.strerror or str(exc))
            continue
        messages = split_mbox(data)
        if len(messages) == 1:
            yield InputItem(str(path), messages[0])
        else:
            for index, raw in enumerate(messages, 1):
                yield InputItem(f"{path}:{index}", raw)


def split_mbox(data: bytes) -> list[bytes]:
    """Split an mbox into messages; anything else is returned whole as one message.

    A file counts as an mbox when it starts with a From_ line and has at least one more. The From_
    line stays on each message (the parser takes it as the unix-from), and `>From ` quoting of the
    mboxrd format is undone.
    """
    if not data.startswith(b"From "):
        return [data]
    # a separator starts the file or follows an empty line; a From_ line inside a body does not split
    starts = [
        m.start()
        for m in _FROM_LINE.finditer(data)
        if m.start() == 0 or data[: m.start()].endswith((b"\n\n", b"\r\n\r\n"))
    ]
    if len(starts) < 2 or starts[0] != 0:
        return [data]
    bounds = [*starts, len(data)]
    out = []
    for begin, end in itertools.pairwise(bounds):
        chunk = data[begin:end]
        chunk = re.sub(rb"(?m)^>(>*From )", rb"\1", chunk)
        out.append(chunk.rstrip(b"\r\n") + b"\n")
    return out
