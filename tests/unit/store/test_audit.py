"""`store.audit`: an audit entry's whole before and after, read field by field; the log read newest first;
and what it may never hold (password hashes, token secrets)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from argon2 import PasswordHasher
from sqlalchemy import select

from mailwarden.model.accounts import Role
from mailwarden.service.accounts import Accounts
from mailwarden.service.config import load_config
from mailwarden.service.runtime import Runtime
from mailwarden.store import Database
from mailwarden.store.audit import AuditLog, Change, changes, write_entry
from mailwarden.store.schema import ApiTokenRow, AuditRow, UserRow


def test_nested_fields_are_named_by_their_path() -> None:
    before = {"monitor_only": True, "policy": {"spam": {"bcl_threshold": 7, "actions": {"spam": "junk"}}}}
    after = {"monitor_only": False, "policy": {"spam": {"bcl_threshold": 7, "actions": {"spam": "quarantine"}}}}
    assert changes(before, after) == [
        Change("monitor_only", True, False),
        Change("policy.spam.actions.spam", "junk", "quarantine"),
    ]


def test_list_entries_added_and_removed_are_named_one_by_one() -> None:
    before = {"lists": {"blocked_senders": ["a@x.example", "b@x.example", "b@x.example"]}}
    after = {"lists": {"blocked_senders": ["b@x.example", "c@x.example"]}}
    assert changes(before, after) == [
        Change("lists.blocked_senders[]", "a@x.example", None),
        Change("lists.blocked_senders[]", "b@x.example", None),
        Change("lists.blocked_senders[]", None, "c@x.example"),
    ]
    reordered = {"lists": {"blocked_senders": ["b@x.example", "a@x.example"]}}
    assert changes({"lists": {"blocked_senders": ["a@x.example", "b@x.example"]}}, reordered) == [
        Change("lists.blocked_senders", ["a@x.example", "b@x.example"], ["b@x.example", "a@x.example"])
    ]


def test_rules_are_matched_by_name_wherever_they_moved() -> None:
    keep = {"name": "Keep", "actions": {"quarantine": True}}
    edited = {"name": "Edit", "conditions": {"subject_contains": ["a"]}}
    before = {"rules": [keep, edited, {"name": "Gone"}]}
    after = {"rules": [{**edited, "conditions": {"subject_contains": ["a", "b"]}}, keep, {"name": "New"}]}
    assert changes(before, after) == [
        Change("rules[Edit].conditions.subject_contains[]", None, "b"),
        Change("rules[Gone]", {"name": "Gone"}, None),
        Change("rules[New]", None, {"name": "New"}),
    ]


def test_creation_deletion_and_no_change() -> None:
    assert changes(None, {"disabled": False}) == [Change("disabled", None, False)]
    assert changes({"disabled": False}, None) == [Change("disabled", False, None)]
    assert changes({"domains": [{"name": "a.example"}]}, {"domains": [{"name": "a.example"}]}) == []
    assert changes(None, None) == []


def test_no_password_hash_or_token_secret_reaches_the_audit_log(tmp_path: Path) -> None:
    (tmp_path / "mw.toml").write_text('organisation = "corp"\n[paths]\ndata_dir = "var"\n')
    rt = Runtime(load_config(tmp_path / "mw.toml", environ={}))
    try:
        rt.db.migrate()
        accounts = Accounts(rt.db, hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
        accounts.add_user("ann", role=Role.ADMIN, password="a long first password", actor="test")
        accounts.set_password("ann", "a long second password", actor="test")
        info, secret = accounts.create_token("ann", name="ci", actor="test")
        accounts.revoke_token(info.prefix, actor="test")
        with rt.db.session() as session:
            logged = json.dumps([[r.before, r.after] for r in session.scalars(select(AuditRow))])
            password_hash = session.scalars(select(UserRow.password_hash)).one()
            token_hash = session.scalars(select(ApiTokenRow.token_hash)).one()
    finally:
        rt.close()
    assert password_hash and token_hash and info.prefix in logged
    for secret_value in ("a long first password", "a long second password", password_hash, secret, token_hash):
        assert secret_value not in logged


def test_the_log_pages_newest_first_by_actor_and_object(db: Database) -> None:
    at = datetime(2026, 11, 1, tzinfo=UTC)
    with db.session() as session:
        for n, (actor, obj) in enumerate([("ann", "user:bob"), ("cli", "user:bob"), ("ann", "user:eve")] * 2):
            write_entry(session, at=at, actor=actor, action="user.update", obj=obj, before={"n": n}, after=None)
        write_entry(session, at=at, actor="x" * 300, action="user.add", obj="user:long", before=None, after=None)
    log = AuditLog(db)
    assert log.newest(limit=1)[0]["actor"] == "x" * 200  # cut to the column
    first = log.page(limit=1, actor="ann", obj="user:bob")
    assert [e["before"] for e in first.items] == [{"n": 3}] and first.next_cursor is not None
    rest = log.page(limit=5, actor="ann", obj="user:bob", cursor=first.next_cursor)
    assert [e["before"] for e in rest.items] == [{"n": 0}] and rest.next_cursor is None
