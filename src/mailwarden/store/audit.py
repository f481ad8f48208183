"""The audit log: who changed what, kept whole; the one place that writes it, reads it, and reads a change.

The log stores each changed object whole (JSON `before` / `after`, no length limit, never a password
hash or a token secret). Every store that changes an audited object (policies, accounts, quarantine)
writes its entry through `write_entry`, in the transaction of the change itself, so the change and its
entry are kept or lost together. `AuditLog` reads it newest first. `changes` walks an entry's before and
after and names each difference by its path, so a change to one rule of a thousand, or three senders
added to a long block list, reads as exactly that.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailwarden.store import outbox
from mailwarden.store.db import Database
from mailwarden.store.schema import AuditRow

ACTOR_CHARS = 200  # the column's width: a longer name (a digest link's "<address> (digest link)") is cut
_ABSENT: Final = object()


def write_entry(
    session: Session,
    *,
    at: datetime,
    actor: str,
    action: str,
    obj: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
) -> None:
    """Add one audit entry to `session`'s transaction: `actor` did `action` to `obj` (`user:ann`,
    `organisation:corp`, `quarantine/<id>`), which was `before` and became `after` (None: absent)."""
    row = AuditRow(
        at=at,
        actor=actor[:ACTOR_CHARS],
        action=action,
        object=obj,
        before=None if before is None else dict(before),
        after=None if after is None else dict(after),
    )
    session.add(row)
    # the feed's row, in the same transaction: every admin change reaches the SIEM (docs/events.md)
    payload = {"at": at, "actor": row.actor, "action": action, "object": obj, "before": row.before, "after": row.after}
    outbox.append(session, [("audit", payload)])


@dataclass(frozen=True, slots=True)
class AuditPage:
    """Entries as plain mappings (id, at, actor, action, object, before, after), newest first."""

    items: list[dict[str, Any]]
    next_cursor: int | None  # the id to read on from; None on the last page


class AuditLog:
    """Reads the audit log, newest first."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def page(
        self, *, limit: int = 100, actor: str | None = None, obj: str | None = None, cursor: int | None = None
    ) -> AuditPage:
        """One page of entries by `actor` and on `obj` (each when given), older than `cursor` (an entry id)."""
        stmt = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit + 1)
        if actor is not None:
            stmt = stmt.where(AuditRow.actor == actor)
        if obj is not None:
            stmt = stmt.where(AuditRow.object == obj)
        if cursor is not None:
            stmt = stmt.where(AuditRow.id < cursor)
        with self.db.session() as session:
            rows = list(session.scalars(stmt))
        more = len(rows) > limit
        rows = rows[:limit]
        return AuditPage([_entry(r) for r in rows], rows[-1].id if more else None)

    def newest(self, *, limit: int = 100) -> list[dict[str, Any]]:
        """The newest `limit` entries."""
        return self.page(limit=limit).items


def _entry(row: AuditRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "at": row.at,
        "actor": row.actor,
        "action": row.action,
        "object": row.object,
        "before": row.before,
        "after": row.after,
    }


@dataclass(frozen=True, slots=True)
class Change:
    """One difference. `path` names the field: `policy.rules[Wire fraud].actions.quarantine`, and
    `policy.lists.blocked_senders[]` for an entry added to or removed from a list of plain values.
    `before` / `after` are None where the field (or entry) did not exist on that side."""

    path: str
    before: Any
    after: Any


def changes(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> list[Change]:
    """Every difference between two audited states, in document order; [] when they are equal."""
    out: list[Change] = []
    _diff("", before or {}, after or {}, out)
    return out


def _diff(path: str, before: Any, after: Any, out: list[Change]) -> None:
    if before == after:
        return
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        for key in dict.fromkeys([*before, *after]):
            _diff(f"{path}.{key}" if path else str(key), before.get(key, _ABSENT), after.get(key, _ABSENT), out)
    elif isinstance(before, list) and isinstance(after, list):
        _diff_lists(path, before, after, out)
    else:
        out.append(Change(path, None if before is _ABSENT else before, None if after is _ABSENT else after))


def _diff_lists(path: str, before: list[Any], after: list[Any], out: list[Change]) -> None:
    if _named(before) and _named(after):  # rules, custom types: matched by name, wherever they moved
        old = {item["name"]: item for item in before}
        new = {item["name"]: item for item in after}
        for name in dict.fromkeys([*old, *new]):
            _diff(f"{path}[{name}]", old.get(name, _ABSENT), new.get(name, _ABSENT), out)
    elif _plain(before) and _plain(after):  # block lists, domains: entries removed and added
        removed, added = Counter(before) - Counter(after), Counter(after) - Counter(before)
        out += [Change(f"{path}[]", item, None) for item in removed.elements()]
        out += [Change(f"{path}[]", None, item) for item in added.elements()]
        if not removed and not added:  # the same entries in another order
            out.append(Change(path, before, after))
    else:
        for index in range(max(len(before), len(after))):
            was = before[index] if index < len(before) else _ABSENT
            now = after[index] if index < len(after) else _ABSENT
            _diff(f"{path}[{index}]", was, now, out)


def _named(items: list[Any]) -> bool:
    names = [item.get("name") for item in items if isinstance(item, Mapping)]
    return len(names) == len(items) and all(isinstance(n, str) for n in names) and len(set(names)) == len(names)


def _plain(items: list[Any]) -> bool:
    return not any(isinstance(item, (Mapping, list)) for item in items)
