"""The classifier's in-process token stores: a dict, and the short-lived cache in front of a shared store."""

from __future__ import annotations

from collections.abc import Sequence

from mailwarden.pipeline.spam.statstore import CachedTokenStore, MemoryTokenStore
from tests.unit.model.token_store_cases import exercise


def test_memory_store_round_trip() -> None:
    exercise(MemoryTokenStore())


class _CountingStore(MemoryTokenStore):
    """A shared store that counts how often the cache in front of it had to ask."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def read(self, tokens: Sequence[str]) -> tuple[tuple[int, int], dict[str, tuple[int, int]]]:
        self.reads += 1
        return super().read(tokens)


def test_cached_store_round_trip() -> None:
    exercise(CachedTokenStore(MemoryTokenStore(), ttl=60))


def test_cached_store_reads_each_token_once_until_it_expires() -> None:
    shared = _CountingStore()
    shared.add({"free", "money"}, 1, 0)
    now = [0.0]
    cached = CachedTokenStore(shared, ttl=10, clock=lambda: now[0])
    assert cached.read(["free", "unseen"]) == ((1, 0), {"free": (1, 0)})
    assert cached.read(["free", "unseen"]) == ((1, 0), {"free": (1, 0)})
    assert shared.reads == 1  # the second message's tokens, seen or not, came from the copy
    # another process learns: this one keeps its copy until the copy expires, then sees the change
    shared.add({"unseen"}, 0, 1)
    assert cached.read(["unseen"]) == ((1, 0), {})
    now[0] = 10.0
    assert cached.read(["unseen"]) == ((1, 1), {"unseen": (0, 1)})
    # what this process learns is used at once
    cached.add({"money"}, 0, 3)
    assert cached.read(["money"]) == ((1, 4), {"money": (1, 3)})


def test_cached_store_never_grows_past_its_limit() -> None:
    shared = _CountingStore()
    cached = CachedTokenStore(shared, ttl=3600, max_tokens=100)
    for start in range(0, 1000, 50):
        cached.read([f"t{i}" for i in range(start, start + 50)])
        assert len(cached._counts) <= 150
