"""Blob storage for message bodies (quarantine, retro-hunt): a protocol, and the local-directory implementation."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Protocol

from mailwarden.durable import atomic_write, fsync_directory
from mailwarden.errors import NotFoundError

_KEY_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$")


class BlobStore(Protocol):
    """Bytes by key. `put` is atomic: a reader sees the old blob, the new one, or none; never a part."""

    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes: ...

    def delete(self, key: str) -> None: ...

    def exists(self, key: str) -> bool: ...

    def read(self, key: str, offset: int, length: int) -> bytes: ...


def validate_key(key: str) -> str:
    """Keys are plain file names: letters, digits, `.`, `_`, `-`, no leading dot, at most 200 characters."""
    if not _KEY_RE.match(key):
        raise ValueError(f"invalid blob key {key!r}: use letters, digits, '.', '_' and '-', not starting with '.'")
    return key


class LocalBlobStore:
    """A directory of files, one per key, written atomically and durably (fsync of file and directory)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.directory / validate_key(key)

    def put(self, key: str, data: bytes) -> None:
        # the temporary name starts with a dot, so it can never collide with (or be read as) a key
        atomic_write(self._path(key), data)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"blob {key} does not exist") from None

    def delete(self, key: str) -> None:
        """Remove the blob; removing one that is already gone is not an error (expiry may run twice)."""
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            return
        self._sync_directory()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def read(self, key: str, offset: int, length: int) -> bytes:
        """`length` bytes of a blob from `offset` (one message of a blob that holds several)."""
        try:
            with self._path(key).open("rb") as fh:
                fh.seek(offset)
                return fh.read(length)
        except FileNotFoundError:
            raise NotFoundError(f"blob {key} does not exist") from None

    def _sync_directory(self) -> None:
        fsync_directory(self.directory)
