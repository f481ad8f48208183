"""The database handle: one engine, transactional sessions, migrations shipped inside the package.

SQLite is the embedded default; PostgreSQL is the scale-out store. Both run the same schema, the same
migrations and the same queries (PostgreSQL adds a trigram index for subject search).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Column, Connection, Dialect, Engine, Insert, Table, create_engine, event, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from mailwarden.errors import DependencyUnavailable

MIGRATIONS = Path(__file__).parent / "migrations"
_VERSION_TABLE = "alembic_version"  # where Alembic keeps the revision
SQLITE_BUSY_TIMEOUT_MS = 10_000


def unavailable(exc: BaseException) -> str | None:
    """One line saying why the database cannot be used right now (server down, connection lost, file
    locked), or None when `exc` is something else: a failure of the statement itself."""
    if isinstance(exc, OperationalError | InterfaceError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    ):
        cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
        lines = str(cause).strip().splitlines()
        return lines[0] if lines else type(cause).__name__
    return None


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS


def json_text(value: Any) -> str:
    """A JSON column's value as stored: times as ISO 8601 in UTC. orjson (a tenth of the standard
    library's CPU, and no walk over the value to convert times first); what orjson refuses and the
    standard library takes (a lone surrogate, an integer past 64 bits) goes through the latter."""
    try:
        return orjson.dumps(value, default=_json_default, option=_ORJSON_OPTIONS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, default=_json_default)


@dataclass(frozen=True, slots=True)
class _Insert:
    """A table's INSERT of a fixed set of columns, compiled once for a dialect: the statement as the driver
    takes it and each column's own conversion (its type's bind processor), in parameter order."""

    sql: str
    keys: tuple[str, ...]
    convert: tuple[Callable[[Any], Any] | None, ...]
    positional: bool

    def parameters(self, row: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        pairs = zip(self.keys, self.convert, strict=True)
        values = [row[key] if convert is None else convert(row[key]) for key, convert in pairs]
        return tuple(values) if self.positional else dict(zip(self.keys, values, strict=True))


_INSERTS: dict[tuple[Table, frozenset[str], str, str], _Insert | None] = {}


def _prepare_insert(statement: Insert, table: Table, keys: frozenset[str], dialect: Dialect) -> _Insert | None:
    """None when the statement needs what only SQLAlchemy's own execution does (a column default computed
    in Python, renamed parameters, a parameter that is no column): such rows go through `execute`."""
    if any(c.key not in keys and c.default is not None for c in table.columns):
        return None
    compiled = statement.compile(dialect=dialect, column_keys=sorted(keys))
    names = list(compiled.positiontup or []) if compiled.positional else sorted(compiled.binds)
    if set(names) != keys or getattr(compiled, "escaped_bind_names", None):
        return None
    columns = {c.key: c for c in table.columns}
    convert = tuple(columns[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names)
    return _Insert(compiled.string, tuple(names), convert, compiled.positional)


def _execute_many(
    connection: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    name: str,
    build: Callable[[], Insert],
) -> bool:
    """`build()` run for `rows` as one driver executemany, compiled once per (table, columns, dialect,
    name); False when it cannot be (the caller runs it through SQLAlchemy's own execution)."""
    keys = frozenset(rows[0])
    cache_key = (table, keys, connection.dialect.name, name)
    if cache_key not in _INSERTS:
        _INSERTS[cache_key] = _prepare_insert(build(), table, keys, connection.dialect)
    prepared = _INSERTS[cache_key]
    if prepared is None or any(row.keys() != keys for row in rows):
        return False
    connection.exec_driver_sql(prepared.sql, [prepared.parameters(row) for row in rows])
    return True


def insert_rows(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT rows (dicts with the same keys) in `session`'s transaction, as one executemany of a statement
    compiled once, each value converted by its column's type as SQLAlchemy converts it. The history writer's
    hot path: Core's `session.execute(table.insert(), rows)` builds every row's parameters generically (13 %
    of `serve`'s own process, decisions.md). Errors come wrapped as SQLAlchemy's (IntegrityError,
    OperationalError)."""
    if rows and not _execute_many(session.connection(), table, rows, "insert", table.insert):
        session.execute(table.insert(), list(rows))


def upsert_rows(
    connection: Connection, table: Table, rows: Sequence[Mapping[str, Any]], name: str, build: Callable[[], Insert]
) -> None:
    """`insert_rows` for an INSERT with its own clauses (ON CONFLICT ... DO UPDATE): `build()` makes the
    statement, which is compiled once under `name` for the table, columns and dialect."""
    if rows and not _execute_many(connection, table, rows, name, build):
        connection.execute(build(), list(rows))


_IN_CHUNK = 500  # values per IN (...) list


def placeholder(dialect: Dialect) -> str:
    """The driver's positional placeholder, for statements written out: sqlite3 takes `?`, psycopg `%s`."""
    return "?" if dialect.paramstyle == "qmark" else "%s"


def select_in(
    session: Session, columns: Sequence[Column[Any]], key: Column[Any], values: Collection[Any]
) -> list[tuple[Any, ...]]:
    """The rows (`columns` of `key`'s table) whose `key` is one of `values`, in `session`'s transaction: the
    statement written out and sent to the driver. Core's expanding `IN` renders its statement again for
    every execution, and the history writer makes three or four such look-ups a batch, each costing the
    server 0.1–0.3 ms on a cold processor cache (decisions.md, "fifth round"). Only for columns the driver
    returns as stored (text, integers), looked up by a key the driver takes as given: any other look-up goes
    through Core, with its conversions."""
    if not values:
        return []
    connection = session.connection()
    dialect = connection.dialect
    converted = any(c.type.dialect_impl(dialect).result_processor(dialect, None) is not None for c in columns)
    if converted or key.type.dialect_impl(dialect).bind_processor(dialect) is not None:
        stmt = select(*columns).where(key.in_(list(values)))
        return [tuple(row) for row in session.execute(stmt)]
    quote = dialect.identifier_preparer.quote
    mark = placeholder(dialect)
    names = ", ".join(quote(c.name) for c in columns)
    head = f"SELECT {names} FROM {quote(key.table.name)} WHERE {quote(key.name)} IN"  # noqa: S608 (schema names)
    listed = list(values)
    rows: list[tuple[Any, ...]] = []
    for start in range(0, len(listed), _IN_CHUNK):
        chunk = listed[start : start + _IN_CHUNK]
        sql = f"{head} ({', '.join([mark] * len(chunk))})"  # names from the schema, every value a parameter
        rows += [tuple(row) for row in connection.exec_driver_sql(sql, tuple(chunk))]
    return rows


class Database:
    """One database: an engine, a session factory and the schema's migrations."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = make_url(url)
        kwargs: dict[str, Any] = {"echo": echo, "json_serializer": json_text}
        if self.url.get_backend_name() == "sqlite":
            _create_sqlite_parent(self.url.database)
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _configure_sqlite)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed when the block ends, rolled back when it raises."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def migrate(self, revision: str = "head") -> None:
        """Bring the schema to `revision` (the newest by default); safe to run on every start."""
        from alembic import command

        with self.engine.begin() as connection:
            config = _alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

    def current_revision(self) -> str | None:
        """The schema revision the database is at; None for a database never migrated."""
        # read directly, as Alembic keeps it: importing Alembic costs every command a tenth of a second
        with self.engine.connect() as connection:
            if not inspect(connection).has_table(_VERSION_TABLE):
                return None
            revisions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        if len(revisions) > 1:  # mailwarden's migrations are one line of revisions
            raise RuntimeError(f"the database is at several revisions at once: {', '.join(revisions)}")
        return revisions[0] if revisions else None

    def schema_differences(self) -> list[Any]:
        """How the database's schema differs from the models (Alembic autogenerate diffs); [] when in step."""
        from alembic.autogenerate import compare_metadata
        from alembic.runtime.migration import MigrationContext

        from mailwarden.store.schema import Base, include_object_for

        with self.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"include_object": include_object_for(self.dialect)})
            differences: list[Any] = compare_metadata(context, Base.metadata)
            return differences

    @contextmanager
    def driver_cursor(self, what: str, *, write: bool = False) -> Iterator[Any]:
        """The driver's own cursor on a pooled connection, for hot statements run as written (no SQL
        compilation, no result wrapping per row), in a transaction when `write`. The database being away
        raises DependencyUnavailable naming `what`; a failing statement raises as it is."""
        try:
            with self.engine.begin() if write else self.engine.connect() as connection:
                cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
                try:
                    yield cursor
                finally:
                    cursor.close()
        except DBAPIError as exc:
            reason = unavailable(exc)
            if reason is None:
                raise
            raise DependencyUnavailable(f"{what}: {reason}") from None

    def close(self) -> None:
        self.engine.dispose()


def head_revision() -> str:
    """The newest revision this version of mailwarden ships."""
    from alembic.script import ScriptDirectory

    head: str | None = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def _alembic_config() -> Any:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _create_sqlite_parent(database: str | None) -> None:
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _configure_sqlite(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets readers (history search) run while the pipeline writes.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()
