"""The classifier's token statistics in this process: a plain dict, and a short-lived cache in front of a
shared store.

The persistent stores (the product database, Redis) belong to the store package (`store/tokens.py`); the
wiring layer opens the configured one and hands it to the stage (`StageServices.token_store`). Both kinds
here are pure.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import cast

from mailwarden.model.tokens import SnapshotTokenStore, TokenStore

SNAPSHOT_RETRY_SECONDS = 3600.0  # a store too large to copy whole is asked again after this long


class MemoryTokenStore:
    """Token statistics in a dict: for training runs, benchmarks and tests."""

    def __init__(self) -> None:
        self.table: dict[str, list[int]] = {}
        self.spam_messages = 0
        self.ham_messages = 0

    def totals(self) -> tuple[int, int]:
        return self.spam_messages, self.ham_messages

    def read(self, tokens: Sequence[str]) -> tuple[tuple[int, int], dict[str, tuple[int, int]]]:
        return self.totals(), self.counts(tokens)

    def counts(self, tokens: Sequence[str]) -> dict[str, tuple[int, int]]:
        table = self.table
        return {t: (c[0], c[1]) for t in tokens if (c := table.get(t)) is not None}

    def add(self, tokens: Iterable[str], spam: int, ham: int) -> None:
        table = self.table
        for token in tokens:
            c = table.get(token)
            if c is None:
                table[token] = [spam, ham]
            else:
                c[0] += spam
                c[1] += ham
        self.spam_messages += spam
        self.ham_messages += ham

    def load(self, counts: Mapping[str, tuple[int, int]], spam_messages: int, ham_messages: int) -> None:
        table = self.table
        for token, (spam, ham) in counts.items():
            c = table.setdefault(token, [0, 0])
            c[0] += spam
            c[1] += ham
        self.spam_messages += spam_messages
        self.ham_messages += ham_messages

    def load_once(
        self, counts: Mapping[str, tuple[int, int]], spam_messages: int, ham_messages: int, marker: str
    ) -> bool:
        if marker in self.table:
            return False
        self.table[marker] = [0, 0]
        self.load(counts, spam_messages, ham_messages)
        return True

    def set_mark(self, key: str, spam: int, ham: int) -> None:
        self.table[key] = [spam, ham]


class CachedTokenStore:
    """A scanning process's short-lived copy of the counts it has read, in front of a shared store.

    Mail repeats its vocabulary, so after a few hundred messages nearly every token a message carries
    has been read before: reading it again from SQLite, PostgreSQL or Redis costs more than the rest of
    scoring. Counts (and "never seen") are kept for `ttl` seconds and then the whole copy is dropped, so
    what other processes learn (`mailwarden learn`, the API, another node) is used within `ttl`; what
    this process learns drops its copy at once. At most `max_tokens` tokens are kept.

    A store of at most `snapshot_max` tokens (the shipped model has 25,000) is copied whole, in one query,
    each time the copy is renewed: a token then missing from the copy was never seen, and no message
    waits for a read. A larger store is read per message, and asked again for a whole copy an hour later.
    """

    def __init__(
        self,
        inner: TokenStore,
        *,
        ttl: float,
        max_tokens: int = 500_000,
        snapshot_max: int = 200_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.ttl = ttl
        self.max_tokens = max_tokens
        self.snapshot_max = snapshot_max if isinstance(inner, SnapshotTokenStore) else 0
        self._clock = clock
        self._counts: dict[str, tuple[int, int]] = {}
        self._totals: tuple[int, int] | None = None
        self._expires = 0.0
        self._complete = False  # the copy holds every token of the store
        self._next_snapshot = 0.0

    def _fresh(self) -> dict[str, tuple[int, int]]:
        now = self._clock()
        if now >= self._expires or len(self._counts) > self.max_tokens:
            self.clear()
            self._expires = now + self.ttl
            if self.snapshot_max and now >= self._next_snapshot:
                self._take_snapshot(now)
        return self._counts

    def _take_snapshot(self, now: float) -> None:
        taken = cast(SnapshotTokenStore, self.inner).snapshot(self.snapshot_max)
        if taken is None:
            self._next_snapshot = now + SNAPSHOT_RETRY_SECONDS
            return
        self._totals, self._counts = taken
        self._complete = True

    def clear(self) -> None:
        self._counts = {}
        self._totals = None
        self._complete = False

    def totals(self) -> tuple[int, int]:
        self._fresh()
        if self._totals is None:
            self._totals = self.inner.totals()
        return self._totals

    def read(self, tokens: Sequence[str]) -> tuple[tuple[int, int], dict[str, tuple[int, int]]]:
        cache = self._fresh()
        if self._complete and self._totals is not None:
            return self._totals, {t: c for t in tokens if (c := cache.get(t)) is not None}
        missing = [t for t in dict.fromkeys(tokens) if t not in cache]
        if missing or self._totals is None:
            totals, found = self.inner.read(missing)
            self._totals = totals
            for token in missing:
                cache[token] = found.get(token, _UNSEEN)
        return self._totals, {t: c for t in tokens if (c := cache[t]) is not _UNSEEN}

    def counts(self, tokens: Sequence[str]) -> dict[str, tuple[int, int]]:
        return self.read(tokens)[1]

    def add(self, tokens: Iterable[str], spam: int, ham: int) -> None:
        self.inner.add(tokens, spam, ham)
        self.clear()

    def load(self, counts: Mapping[str, tuple[int, int]], spam_messages: int, ham_messages: int) -> None:
        self.inner.load(counts, spam_messages, ham_messages)
        self.clear()

    def load_once(
        self, counts: Mapping[str, tuple[int, int]], spam_messages: int, ham_messages: int, marker: str
    ) -> bool:
        loaded = self.inner.load_once(counts, spam_messages, ham_messages, marker)
        self.clear()
        return loaded

    def set_mark(self, key: str, spam: int, ham: int) -> None:
        self.inner.set_mark(key, spam, ham)
        self.clear()


_UNSEEN = (0, 0)
