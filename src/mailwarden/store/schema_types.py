"""The column types and the declarative base every table of the store shares (`schema.py`,
`schema_response.py`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Integer, String, TypeDecorator
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase


class UTCDateTime(TypeDecorator[datetime]):
    """A tz-aware UTC timestamp on every dialect (SQLite keeps no zone: store UTC, read back as UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use a tz-aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Ids compare byte-wise on PostgreSQL whatever the database's locale, so they sort as ULIDs do.
IdType = String(26).with_variant(String(26, collation="C"), "postgresql")
JsonType = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets 64 bits for the big tables.
SerialType = BigInteger().with_variant(Integer(), "sqlite")
# Counters that may pass 2**31 on PostgreSQL; SQLite's INTEGER is 64 bits already.
CountType = BigInteger().with_variant(Integer(), "sqlite")
MAX_TOKEN_BYTES = 200


# Indexes that exist on PostgreSQL only; schema comparison on other dialects leaves them out.
POSTGRESQL_ONLY_INDEXES = frozenset({"ix_messages_subject_trgm"})


def include_object_for(dialect: str) -> Callable[[Any, str | None, str, bool, Any], bool]:
    """An Alembic `include_object` hook: skip PostgreSQL-only indexes when comparing another dialect."""

    def include(_obj: Any, name: str | None, type_: str, _reflected: bool, _compare_to: Any) -> bool:
        return not (dialect != "postgresql" and type_ == "index" and name in POSTGRESQL_ONLY_INDEXES)

    return include


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass
