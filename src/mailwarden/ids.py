"""Sortable message ids: 48-bit milliseconds + 80 random bits in Crockford base32 (ULID layout).

Ids sort by the time they were made, so history can page and range by id alone.
"""

from __future__ import annotations

import hashlib
import os
import time
from datetime import UTC, datetime

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DECODE = {c: i for i, c in enumerate(ALPHABET)}
ID_LENGTH = 26


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        chars.append(ALPHABET[rem])
    return "".join(reversed(chars))


def new_id(at: datetime | None = None) -> str:
    """A new id for a message received at `at` (now when omitted)."""
    ms = int(at.timestamp() * 1000) if at is not None else time.time_ns() // 1_000_000
    return _encode(ms, 10) + _encode(int.from_bytes(os.urandom(10), "big"), 16)


def floor_id(at: datetime) -> str:
    """The smallest id a message received at or after `at` can have."""
    return _encode(int(at.timestamp() * 1000), 10) + "0" * 16


def ceiling_id(at: datetime) -> str:
    """The largest id a message received at or before `at` can have."""
    return _encode(int(at.timestamp() * 1000), 10) + "Z" * 16


def id_time(value: str) -> datetime:
    """When the id was made."""
    ms = 0
    for ch in value[:10].upper():
        ms = ms * 32 + _DECODE[ch]
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def derive_id(base: str, key: str) -> str:
    """A stable id derived from `base` for the thing named `key` (a record, a delivery job, a notice).

    It keeps the base's time part, so it sorts with the message, and takes its 80 other bits from a
    hash of base and key: a replay after a crash derives the same id, and distinct keys never share one
    in practice (a 2⁻⁸⁰ chance), however many notices or routes a message has."""
    digest = hashlib.blake2b(f"{base}/{key}".encode(), digest_size=10).digest()
    return base[:10] + _encode(int.from_bytes(digest, "big"), 16)
