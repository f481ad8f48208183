"""The round trip every `TokenStore` must pass, whatever keeps the counts (memory, SQL, Redis, a cache)."""

from __future__ import annotations

from mailwarden.model.tokens import TokenStore


def exercise(store: TokenStore) -> None:
    assert store.totals() == (0, 0)
    assert store.counts(["free", "meeting"]) == {}
    store.add({"free", "money", "日本語"}, 1, 0)
    store.add({"meeting", "free"}, 0, 1)
    store.add({"free"}, 1, 0)
    assert store.totals() == (2, 1)
    assert store.counts(["free", "money", "meeting", "日本語", "unseen"]) == {
        "free": (2, 1),
        "money": (1, 0),
        "meeting": (0, 1),
        "日本語": (1, 0),
    }
    store.add({"free"}, -1, 0)  # unlearn
    assert store.counts(["free"]) == {"free": (1, 1)}
    assert store.read(["free", "unseen"]) == ((1, 1), {"free": (1, 1)})
    store.load({"bulk": (5, 7)}, 10, 20)
    assert store.counts(["bulk"]) == {"bulk": (5, 7)}
    assert store.totals() == (11, 21)
