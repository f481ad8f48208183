"""The classifier's token statistics as the spam stage sees them: per token, in how many spam and ham
messages it was seen, and how many messages were learnt.

Only the interface lives here. The stores that keep the counts in the product database or in Redis are
`mailwarden.store.tokens`; the in-memory and caching ones stay with the classifier
(`mailwarden.pipeline.spam.statstore`). The wiring layer opens the configured one and hands it to the
stage, so no stage touches a database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable


class TokenStore(Protocol):
    """Token counts: how many spam and ham messages carried each token, and how many were learnt."""

    def totals(self) -> tuple[int, int]:
        """(spam messages learnt, ham messages learnt)."""
        ...

    def counts(self, tokens: Sequence[str]) -> dict[str, tuple[int, int]]:
        """(spam, ham) count of each token that was ever seen; unseen tokens are left out. One round trip."""
        ...

    def read(self, tokens: Sequence[str]) -> tuple[tuple[int, int], dict[str, tuple[int, int]]]:
        """`totals()` and `counts(tokens)` together, in one query or round trip: what scoring needs."""
        ...

    def add(self, tokens: Iterable[str], spam: int, ham: int) -> None:
        """Add `spam` and `ham` (negative to unlearn) to every token and to the message totals."""
        ...

    def load(self, counts: Mapping[str, tuple[int, int]], spam_messages: int, ham_messages: int) -> None:
        """Bulk-add a whole model (the shipped default)."""
        ...

    def load_once(
        self, counts: Mapping[str, tuple[int, int]], spam_messages: int, ham_messages: int, marker: str
    ) -> bool:
        """`load` unless `marker` was set by an earlier load; marker and counts are written together, so of
        several processes starting at once exactly one loads. True when this call loaded."""
        ...

    def set_mark(self, key: str, spam: int, ham: int) -> None:
        """Set (not add to) a bookkeeping row such as a learnt message's label; keys start with a space."""
        ...


@runtime_checkable
class SnapshotTokenStore(TokenStore, Protocol):
    """A store that can also hand over every count at once, when it holds few enough tokens."""

    def snapshot(self, limit: int) -> tuple[tuple[int, int], dict[str, tuple[int, int]]] | None:
        """`totals()` and the counts of every token, or None when the store holds more than `limit`."""
        ...
