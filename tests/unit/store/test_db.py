from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import Table, inspect, select, text
from sqlalchemy.exc import IntegrityError

from mailwarden.store import Database
from mailwarden.store.db import head_revision, insert_rows, select_in
from mailwarden.store.schema import OrganisationRow

_ORGANISATIONS = cast(Table, OrganisationRow.__table__)


def test_migrate_from_empty_to_head(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'deep' / 'dir' / 'mw.sqlite3'}")
    assert (tmp_path / "deep" / "dir").is_dir()  # the parent directory is created for the user
    assert db.current_revision() is None
    db.migrate()
    assert db.current_revision() == head_revision()
    tables = set(inspect(db.engine).get_table_names())
    assert {"messages", "recipients", "events", "organisations", "domains", "policies", "audit_log"} <= tables
    db.migrate()  # running it again on every start is harmless
    assert db.current_revision() == head_revision()
    db.close()


def test_migrations_create_exactly_the_models(db: Database) -> None:
    assert db.schema_differences() == []


def test_sqlite_runs_in_wal_mode_with_foreign_keys(db: Database) -> None:
    with db.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 10_000


def test_session_commits_on_success_and_rolls_back_on_error(db: Database) -> None:
    with db.session() as session:
        session.add(OrganisationRow(name="kept", monitor_only=True))
    with pytest.raises(RuntimeError), db.session() as session:
        session.add(OrganisationRow(name="lost", monitor_only=True))
        session.flush()
        raise RuntimeError("boom")
    with db.session() as session:
        names = set(session.scalars(OrganisationRow.__table__.select().with_only_columns(OrganisationRow.name)))
    assert names == {"kept"}


def test_rows_inserted_on_the_driver_read_back_as_the_orm_writes_them(db: Database) -> None:
    at = datetime(2026, 11, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    with db.session() as session:
        insert_rows(session, _ORGANISATIONS, [
            {"name": "corp", "monitor_only": False, "created_at": at},
            {"name": "other", "monitor_only": True, "created_at": at},
        ])  # fmt: skip
        # a column left to its Python default (created_at): SQLAlchemy's own execution fills it in
        insert_rows(session, _ORGANISATIONS, [{"name": "defaulted", "monitor_only": True}])
    with db.session() as session:
        rows = {row.name: row for row in session.scalars(select(OrganisationRow))}
    assert rows["corp"].created_at == at and rows["corp"].created_at.tzinfo == UTC
    assert rows["corp"].monitor_only is False and rows["other"].monitor_only is True
    assert rows["defaulted"].created_at.tzinfo == UTC


def test_a_row_the_database_refuses_fails_the_whole_insert_as_sqlalchemy_reports_it(db: Database) -> None:
    row = {"name": "corp", "monitor_only": True, "created_at": datetime.now(UTC)}
    with db.session() as session:
        insert_rows(session, _ORGANISATIONS, [row])
    with pytest.raises(IntegrityError), db.session() as session:  # what record_many's fallback catches
        insert_rows(session, _ORGANISATIONS, [{**row, "name": "new"}, row])
    with db.session() as session:
        assert list(session.scalars(select(OrganisationRow.name))) == ["corp"]


def check_select_in(db: Database) -> None:
    at = datetime(2026, 11, 1, 13, 0, tzinfo=UTC)
    names = [f"org-{i:04d}" for i in range(1_200)]  # more than one IN list of values
    with db.session() as session:
        insert_rows(
            session, _ORGANISATIONS, [{"name": n, "monitor_only": n.endswith("7"), "created_at": at} for n in names]
        )
    org = _ORGANISATIONS.c
    with db.session() as session:
        found = select_in(session, [org.id, org.name], org.name, [*names[::3], "nobody"])
        converted = select_in(session, [org.name, org.monitor_only, org.created_at], org.name, ["org-0007", "org-0008"])
        assert select_in(session, [org.id], org.name, []) == []
    assert sorted(name for _, name in found) == names[::3] and all(isinstance(i, int) for i, _ in found)
    # columns the driver returns unconverted (booleans and times on SQLite) come as SQLAlchemy returns them
    assert sorted(converted) == [("org-0007", True, at), ("org-0008", False, at)]


def test_a_look_up_by_a_list_of_values_finds_each_row_once_with_its_values_typed(db: Database) -> None:
    check_select_in(db)
