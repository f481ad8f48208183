"""The JSON-lines file sink: one OCSF event per line, for shippers like Filebeat or Vector that tail a file.

A batch is written, flushed and fsynced before `send` returns, so an acknowledged event survives a crash.
A failed write is cut back to the last whole line: the file never ends in half an event. Rotation renames
`path` to `path.1` (and `path.1` to `path.2`, ... up to `path.<keep>`) and starts a new file; shippers
follow the old file by inode until they have read it, so nothing is skipped at a rotation.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import structlog

from mailwarden.durable import fsync_directory
from mailwarden.errors import ConfigError
from mailwarden.export.event import ExportEvent
from mailwarden.export.sink import SinkError

log = structlog.get_logger(__name__)

FILE_MODE = 0o640  # events name senders, recipients and subjects: not for every local user


def json_line(event: ExportEvent) -> bytes:
    """The OCSF body as one line of compact UTF-8 JSON (JSON escapes every line break inside a value)."""
    return json.dumps(event.body, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


class JsonLinesSink:
    """Appends to `path`; rotates before a batch that would take the file past `max_bytes`, or once the file
    is `max_age_seconds` old (counted from when this sink started writing it). A batch is never split
    across two files, so one bigger than `max_bytes` gets a file of its own."""

    def __init__(
        self,
        name: str,
        path: Path | str,
        *,
        max_bytes: int = 100 * 1024 * 1024,
        max_age_seconds: float = 24 * 3600,
        keep: int = 7,
    ) -> None:
        if max_bytes <= 0:
            raise ConfigError("must be positive", field="max_bytes")
        if max_age_seconds <= 0:
            raise ConfigError("must be positive", field="max_age_seconds")
        if keep < 1:
            raise ConfigError("must be at least 1 (rotated files kept beside the current one)", field="keep")
        self.name = name
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.max_age_seconds = max_age_seconds
        self.keep = keep
        self._fd: int | None = None
        self._started = 0.0  # monotonic time this sink opened the current file
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"JsonLinesSink({self.name!r}, {str(self.path)!r})"

    async def send(self, events: Sequence[ExportEvent]) -> None:
        """Append the batch; return once it is on disk. Blocking file work runs in a thread, so a slow disk
        slows only this sink."""
        if not events:
            return
        data = b"".join(json_line(event) for event in events)
        async with self._lock:
            try:
                await asyncio.to_thread(self._write, data)
            except OSError as exc:
                reason = f"file {self.path}: {type(exc).__name__}: {exc.strerror or exc}"
                log.warning("export_file_failed", sink=self.name, reason=reason)
                raise SinkError(reason) from exc

    async def close(self) -> None:
        async with self._lock:
            self._close()

    def _write(self, data: bytes) -> None:
        fd = self._open()
        end = os.fstat(fd).st_size
        if end > 0 and (end + len(data) > self.max_bytes or self._age() >= self.max_age_seconds):
            self._rotate()
            fd, end = self._open(), 0
        try:
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
            os.fsync(fd)
        except OSError:
            self._cut_back(fd, end)
            raise

    def _open(self) -> int:
        if self._fd is not None and not self._still_at_path(self._fd):
            self._close()  # moved or deleted by someone else (logrotate): start a new file at `path`
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
            self._started = time.monotonic()
        return self._fd

    def _still_at_path(self, fd: int) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    def _age(self) -> float:
        return time.monotonic() - self._started

    def _rotate(self) -> None:
        """path.<keep-1> → path.<keep> (replacing it), ..., path → path.1; then the next write makes a new
        path. Renames keep inodes, so a shipper reading the old file reads it to the end."""
        self._close()
        for n in range(self.keep - 1, 0, -1):
            older = self._numbered(n)
            if older.exists():
                older.rename(self._numbered(n + 1))
        self.path.rename(self._numbered(1))
        fsync_directory(self.path.parent)
        log.info("export_file_rotated", sink=self.name, path=str(self.path), keep=self.keep)

    def _numbered(self, n: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{n}")

    def _cut_back(self, fd: int, end: int) -> None:
        """Take a half-written batch off again (the exporter sends it once more), so the file only ever
        holds whole lines."""
        try:
            os.ftruncate(fd, end)
        except OSError:
            self._close()  # the next batch opens the file afresh; nothing more can be done about this one

    def _close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
