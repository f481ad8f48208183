"""Where the classifier's token statistics live: per token, in how many spam and ham messages it was seen.

Two backends with one protocol. `SqlTokenStore` keeps them in a table of its own in our SQLAlchemy
`Database` (SQLite embedded, PostgreSQL for scale-out), created with CREATE TABLE IF NOT EXISTS from a
metadata separate from the history schema, so the statistics never enter the history migrations.
`RedisTokenStore` keeps one hash per token, so several nodes share one model as rspamd's Redis Bayes
does. Both read all the tokens of a message in one query or one pipelined round trip.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateTable

from mailwarden.errors import DependencyUnavailable
from mailwarden.store.db import Database, unavailable

# The row/hash holding the number of spam and ham messages learnt; no token starts with a space.
TOTALS_KEY = " totals"
MAX_TOKEN_BYTES = 200
_READ_CHUNK = 500  # tokens per IN (...) query; SQLite's bound-parameter limit is far above
_SQLITE_READ = "SELECT token, spam, ham FROM token_stats WHERE token IN ({marks})"
_PG_READ = "SELECT token, spam, ham FROM token_stats WHERE token = ANY(%s)"


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


token_metadata = MetaData()
token_stats = Table(
    "token_stats",
    token_metadata,
    Column("token", String(MAX_TOKEN_BYTES), primary_key=True),
    Column("spam", BigInteger().with_variant(Integer, "sqlite"), nullable=False, default=0),
    Column("ham", BigInteger().with_variant(Integer, "sqlite"), nullable=False, default=0),
)


class SqlTokenStore:
    """Token statistics in the `token_stats` table of a `Database` (SQLite or PostgreSQL)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        _create_table(db)

    def totals(self) -> tuple[int, int]:
        return self.counts([TOTALS_KEY]).get(TOTALS_KEY, (0, 0))

    def read(self, tokens: Sequence[str]) -> tuple[tuple[int, int], dict[str, tuple[int, int]]]:
        counts = self.counts([*tokens, TOTALS_KEY])
        return counts.pop(TOTALS_KEY, (0, 0)), counts

    def counts(self, tokens: Sequence[str]) -> dict[str, tuple[int, int]]:
        # Scoring reads ~200 tokens per message: the statement goes to the driver's own cursor as written
        # (no SQL compilation, no result wrapping per row), a sixth of the cost of the same select built
        # with the expression API. The pooled connection is still SQLAlchemy's.
        out: dict[str, tuple[int, int]] = {}
        keys = list(dict.fromkeys(_key(t) for t in tokens))
        if not keys:
            return out
        try:
            return self._counts(keys, out)
        except DBAPIError as exc:
            reason = unavailable(exc)
            if reason is None:
                raise
            raise DependencyUnavailable(f"token statistics: {reason}") from None

    def _counts(self, keys: list[str], out: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
        with self.db.engine.connect() as connection:
            cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                if self.db.dialect == "postgresql":
                    cursor.execute(_PG_READ, (keys,))
                    out.update((token, (int(spam), int(ham))) for token, spam, ham in cursor.fetchall())
                    return out
                for start in range(0, len(keys), _READ_CHUNK):
                    chunk = tuple(keys[start : start + _READ_CHUNK])
                    cursor.execute(_SQLITE_READ.format(marks=",".join("?" * len(chunk))), chunk)
                    out.update((token, (int(spam), int(ham))) for token, spam, ham in cursor.fetchall())
            finally:
                cursor.close()
        return out

    def add(self, tokens: Iterable[str], spam: int, ham: int) -> None:
        deltas = dict.fromkeys((_key(t) for t in tokens), (spam, ham))
        deltas[TOTALS_KEY] = (spam, ham)
        self._upsert(deltas)

    def load(self, counts: Mapping[str, tuple[int, int]], spam_messages: int, ham_messages: int) -> None:
        self._upsert(_load_deltas(counts, spam_messages, ham_messages))

    def load_once(
        self, counts: Mapping[str, tuple[int, int]], spam_messages: int, ham_messages: int, marker: str
    ) -> bool:
        with self.db.engine.begin() as connection:
            claimed = connection.execute(
                self._insert()
                .values(token=_key(marker), spam=0, ham=0)
                .on_conflict_do_nothing(index_elements=[token_stats.c.token])
            )
            if claimed.rowcount != 1:
                return False
            self._upsert(_load_deltas(counts, spam_messages, ham_messages), connection)
        return True

    def set_mark(self, key: str, spam: int, ham: int) -> None:
        stmt = self._insert().values(token=_key(key), spam=spam, ham=ham)
        stmt = stmt.on_conflict_do_update(
            index_elements=[token_stats.c.token], set_={"spam": stmt.excluded.spam, "ham": stmt.excluded.ham}
        )
        with self.db.engine.begin() as connection:
            connection.execute(stmt)

    def _insert(self) -> Any:
        insert: Any = postgresql.insert if self.db.dialect == "postgresql" else sqlite.insert
        return insert(token_stats)

    def _upsert(self, deltas: Mapping[str, tuple[int, int]], connection: Any = None) -> None:
        stmt = self._insert()
        stmt = stmt.on_conflict_do_update(
            index_elements=[token_stats.c.token],
            set_={"spam": token_stats.c.spam + stmt.excluded.spam, "ham": token_stats.c.ham + stmt.excluded.ham},
        )
        rows = [{"token": t, "spam": s, "ham": h} for t, (s, h) in sorted(deltas.items())]
        if connection is None:
            with self.db.engine.begin() as own:
                for start in range(0, len(rows), 5000):
                    own.execute(stmt, rows[start : start + 5000])
            return
        for start in range(0, len(rows), 5000):
            connection.execute(stmt, rows[start : start + 5000])


def _create_table(db: Database) -> None:
    """CREATE TABLE IF NOT EXISTS, safe when several processes start on a new database at once: the
    scanning processes build their stages together, and a check-then-create would let the slower one
    fail on a table the other has just made (on PostgreSQL even IF NOT EXISTS can race that way)."""
    try:
        with db.engine.begin() as connection:
            connection.execute(CreateTable(token_stats, if_not_exists=True))
    except DBAPIError:
        if not sa_inspect(db.engine).has_table(token_stats.name):
            raise


class RedisTokenStore:
    """Token statistics in Redis: hash `<prefix><token>` with fields `s` and `h`, shared by every node."""

    def __init__(self, client: Any, prefix: str = "mailwarden:bayes:") -> None:
        self.client = client  # a redis.Redis; typed loosely so redis-py stays an optional import
        self.prefix = prefix

    def totals(self) -> tuple[int, int]:
        return self.counts([TOTALS_KEY]).get(TOTALS_KEY, (0, 0))

    def read(self, tokens: Sequence[str]) -> tuple[tuple[int, int], dict[str, tuple[int, int]]]:
        counts = self.counts([*tokens, TOTALS_KEY])
        return counts.pop(TOTALS_KEY, (0, 0)), counts

    def counts(self, tokens: Sequence[str]) -> dict[str, tuple[int, int]]:
        keys = list(dict.fromkeys(_key(t) for t in tokens))
        pipe = self.client.pipeline(transaction=False)
        for token in keys:
            pipe.hmget(self.prefix + token, "s", "h")
        out: dict[str, tuple[int, int]] = {}
        from redis.exceptions import ConnectionError as RedisDown
        from redis.exceptions import TimeoutError as RedisTimeout

        try:
            answers = pipe.execute()
        except (RedisDown, RedisTimeout) as exc:
            raise DependencyUnavailable(f"token statistics in Redis: {exc}") from None
        for token, (spam, ham) in zip(keys, answers, strict=True):
            if spam is not None or ham is not None:
                out[token] = (int(spam or 0), int(ham or 0))
        return out

    def add(self, tokens: Iterable[str], spam: int, ham: int) -> None:
        keys = dict.fromkeys(_key(t) for t in tokens)
        keys[TOTALS_KEY] = None
        pipe = self.client.pipeline(transaction=True)
        for token in keys:
            if spam:
                pipe.hincrby(self.prefix + token, "s", spam)
            if ham:
                pipe.hincrby(self.prefix + token, "h", ham)
        pipe.execute()

    def load(self, counts: Mapping[str, tuple[int, int]], spam_messages: int, ham_messages: int) -> None:
        items = [*counts.items(), (TOTALS_KEY, (spam_messages, ham_messages))]
        for start in range(0, len(items), 5000):
            pipe = self.client.pipeline(transaction=False)
            for token, (spam, ham) in items[start : start + 5000]:
                key = self.prefix + _key(token)
                if spam:
                    pipe.hincrby(key, "s", spam)
                if ham:
                    pipe.hincrby(key, "h", ham)
            pipe.execute()

    def load_once(
        self, counts: Mapping[str, tuple[int, int]], spam_messages: int, ham_messages: int, marker: str
    ) -> bool:
        # Redis has no multi-key transaction of this size: the marker is claimed first with SETNX and
        # the counts are loaded after; a node that crashes in between leaves a marker and partial counts,
        # which `mailwarden learn --reset` (or deleting the keys) repairs.
        if not self.client.set(self.prefix + _key(marker), "1", nx=True):
            return False
        self.load(counts, spam_messages, ham_messages)
        return True

    def set_mark(self, key: str, spam: int, ham: int) -> None:
        self.client.hset(self.prefix + _key(key), mapping={"s": spam, "h": ham})


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
    this process learns drops its copy at once. At most `max_tokens` tokens are kept."""

    def __init__(
        self,
        inner: TokenStore,
        *,
        ttl: float,
        max_tokens: int = 500_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.ttl = ttl
        self.max_tokens = max_tokens
        self._clock = clock
        self._counts: dict[str, tuple[int, int]] = {}
        self._totals: tuple[int, int] | None = None
        self._expires = 0.0

    def _fresh(self) -> dict[str, tuple[int, int]]:
        now = self._clock()
        if now >= self._expires or len(self._counts) > self.max_tokens:
            self.clear()
            self._expires = now + self.ttl
        return self._counts

    def clear(self) -> None:
        self._counts = {}
        self._totals = None

    def totals(self) -> tuple[int, int]:
        self._fresh()
        if self._totals is None:
            self._totals = self.inner.totals()
        return self._totals

    def read(self, tokens: Sequence[str]) -> tuple[tuple[int, int], dict[str, tuple[int, int]]]:
        cache = self._fresh()
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


def _load_deltas(
    counts: Mapping[str, tuple[int, int]], spam_messages: int, ham_messages: int
) -> dict[str, tuple[int, int]]:
    deltas: dict[str, tuple[int, int]] = {TOTALS_KEY: (spam_messages, ham_messages)}
    for token, (spam, ham) in counts.items():
        key = _key(token)
        before = deltas.get(key, (0, 0))  # tokens cut to the same key add up
        deltas[key] = (before[0] + spam, before[1] + ham)
    return deltas


def _key(token: str) -> str:
    """Tokens are short by construction; a pathological one is cut to fit the column, NULs replaced."""
    if "\x00" in token:
        token = token.replace("\x00", "\ufffd")
    return token if len(token) <= MAX_TOKEN_BYTES // 4 else token[: MAX_TOKEN_BYTES // 4]
