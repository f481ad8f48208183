"""Where the classifier's token statistics persist: the product database or Redis (`model.tokens.TokenStore`).

`SqlTokenStore` keeps them in the `token_stats` table of our `Database` (SQLite embedded, PostgreSQL for
scale-out); the table is the schema's like any other, made by migration 0006. `RedisTokenStore` keeps one
hash per token, so several nodes share one model as rspamd's Redis Bayes does. Both read all the tokens of
a message in one query or one pipelined round trip.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects import postgresql, sqlite

from mailwarden.errors import DependencyUnavailable
from mailwarden.store.db import Database
from mailwarden.store.schema import MAX_TOKEN_BYTES, TokenStatRow

# The row/hash holding the number of spam and ham messages learnt; no token starts with a space.
TOTALS_KEY = " totals"
_READ_CHUNK = 500  # tokens per IN (...) query; SQLite's bound-parameter limit is far above
_WRITE_CHUNK = 5000  # rows per executemany / pipeline
_SQLITE_READ = "SELECT token, spam, ham FROM token_stats WHERE token IN ({marks})"
_PG_READ = "SELECT token, spam, ham FROM token_stats WHERE token = ANY(%s)"
_SNAPSHOT = "SELECT token, spam, ham FROM token_stats LIMIT {limit}"
_TABLE = cast(Table, TokenStatRow.__table__)


def has_token_table(db: Database) -> bool:
    """Whether the database holds the token statistics: migrated (revision 0006 on), or made by an older
    mailwarden that created the table itself."""
    return sa_inspect(db.engine).has_table(_TABLE.name)


class SqlTokenStore:
    """Token statistics in the `token_stats` table of a migrated `Database` (SQLite or PostgreSQL)."""

    def __init__(self, db: Database) -> None:
        self.db = db

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
        with self.db.driver_cursor("token statistics") as cursor:
            if self.db.dialect == "postgresql":
                cursor.execute(_PG_READ, (keys,))
                out.update((token, (int(spam), int(ham))) for token, spam, ham in cursor.fetchall())
                return out
            for start in range(0, len(keys), _READ_CHUNK):
                chunk = tuple(keys[start : start + _READ_CHUNK])
                cursor.execute(_SQLITE_READ.format(marks=",".join("?" * len(chunk))), chunk)
                out.update((token, (int(spam), int(ham))) for token, spam, ham in cursor.fetchall())
        return out

    def snapshot(self, limit: int) -> tuple[tuple[int, int], dict[str, tuple[int, int]]] | None:
        """Every row in one query, or None after reading `limit` + 1 rows (the totals row counts)."""
        with self.db.driver_cursor("token statistics") as cursor:
            cursor.execute(_SNAPSHOT.format(limit=int(limit) + 2))
            rows = cursor.fetchall()
        if len(rows) > limit + 1:
            return None
        counts = {token: (int(spam), int(ham)) for token, spam, ham in rows}
        return counts.pop(TOTALS_KEY, (0, 0)), counts

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
                .on_conflict_do_nothing(index_elements=[_TABLE.c.token])
            )
            if claimed.rowcount != 1:
                return False
            self._upsert(_load_deltas(counts, spam_messages, ham_messages), connection)
        return True

    def set_mark(self, key: str, spam: int, ham: int) -> None:
        stmt = self._insert().values(token=_key(key), spam=spam, ham=ham)
        stmt = stmt.on_conflict_do_update(
            index_elements=[_TABLE.c.token], set_={"spam": stmt.excluded.spam, "ham": stmt.excluded.ham}
        )
        with self.db.engine.begin() as connection:
            connection.execute(stmt)

    def _insert(self) -> Any:
        insert: Any = postgresql.insert if self.db.dialect == "postgresql" else sqlite.insert
        return insert(_TABLE)

    def _upsert(self, deltas: Mapping[str, tuple[int, int]], connection: Any = None) -> None:
        stmt = self._insert()
        stmt = stmt.on_conflict_do_update(
            index_elements=[_TABLE.c.token],
            set_={"spam": _TABLE.c.spam + stmt.excluded.spam, "ham": _TABLE.c.ham + stmt.excluded.ham},
        )
        rows = [{"token": t, "spam": s, "ham": h} for t, (s, h) in sorted(deltas.items())]
        if connection is None:
            with self.db.engine.begin() as own:
                for start in range(0, len(rows), _WRITE_CHUNK):
                    own.execute(stmt, rows[start : start + _WRITE_CHUNK])
            return
        for start in range(0, len(rows), _WRITE_CHUNK):
            connection.execute(stmt, rows[start : start + _WRITE_CHUNK])


class RedisTokenStore:
    """Token statistics in Redis: hash `<prefix><token>` with fields `s` and `h`, shared by every node."""

    def __init__(self, client: Any, prefix: str = "mailwarden:bayes:") -> None:
        self.client = client  # a redis.Redis; typed loosely so redis-py stays an optional import
        self.prefix = prefix

    @classmethod
    def from_url(cls, url: str, prefix: str) -> RedisTokenStore:
        """A store on a new client for `url` (redis-py is imported only when Redis is configured)."""
        import redis

        return cls(redis.Redis.from_url(url), prefix=prefix)

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
        for start in range(0, len(items), _WRITE_CHUNK):
            pipe = self.client.pipeline(transaction=False)
            for token, (spam, ham) in items[start : start + _WRITE_CHUNK]:
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
