"""Sender activity for the compromised-account signals of the outbound spam filter (`sender_hours`,
`sender_contacts`, migration 0012).

Written after a message is recorded (`service/sender_activity.py`): an outbound message adds its
recipients to its sender's UTC hour and its external recipients to the sender's contacts, counting those
written to for the first time; a delivery report coming back (null-sender mail to an organisation's
address) adds to that address's hour. Read before an outbound message is scanned: the sender's last
`BASELINE_DAYS` of hours and which of the message's external recipients are known contacts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, TypeVar, cast

from sqlalchemy import Connection, Table, delete
from sqlalchemy.dialects import postgresql, sqlite

from mailwarden.store.db import Database, placeholder, upsert_rows
from mailwarden.store.schema import SenderContactRow, SenderHourRow

BASELINE_DAYS = 14  # the sender's own busiest hours are looked for this far back
CONTACT_DAYS = 90  # an external address not written to for this long is new again
_CHUNK = 500  # addresses per IN (...) list
_HOURS = cast(Table, SenderHourRow.__table__)
_CONTACTS = cast(Table, SenderContactRow.__table__)
_T = TypeVar("_T")


def epoch_hour(at: datetime) -> int:
    """Hours since the epoch of a tz-aware datetime: the `hour` key of `sender_hours`."""
    if at.tzinfo is None:
        raise ValueError("naive datetime given to the store; use a tz-aware UTC datetime")
    return int(at.timestamp()) // 3600


@dataclass(frozen=True)
class Activity:
    """What one recorded message adds to a sender's activity."""

    organisation: str
    sender: str
    at: datetime
    recipients: int = 0
    external: tuple[str, ...] = ()
    ndrs: int = 0


@dataclass(frozen=True)
class Ask:
    """One outbound message's question: its sender's history up to `at` and which of `external` it knows."""

    organisation: str
    sender: str
    at: datetime
    external: tuple[str, ...] = ()


@dataclass(frozen=True)
class SenderHistory:
    """A sender's hours (hour → recipients, first-time external recipients, delivery reports) over the
    last `BASELINE_DAYS`, and which of the asked external addresses it has written to before."""

    hours: dict[int, tuple[int, int, int]]
    known: frozenset[str]


# The batch look-ups, written out: per batch, Core's select with row-value IN lists cost a scanning process
# 1.6 ms (building the expressions, expanding the lists); the same SQL sent to the driver costs a quarter of
# that (docs/decisions.md). `(a, b) IN (VALUES ...)` is the row-value IN both SQLite and PostgreSQL take.
# Only placeholders are put in the text; every value goes as a parameter.
_HOURS_SQL: Final = (
    "SELECT organisation, sender, hour, recipients, new_external, ndrs FROM sender_hours"
    " WHERE hour > {mark} AND hour <= {mark} AND (organisation, sender) IN ({senders})"
)
_CONTACTS_SQL: Final = (
    "SELECT organisation, sender, recipient, last_hour FROM sender_contacts"
    " WHERE (organisation, sender, recipient) IN ({contacts})"
)


def _last_hours(connection: Connection, contacts: Sequence[tuple[str, str, str]]) -> dict[tuple[str, str, str], int]:
    """The last hour each (organisation, sender, recipient) was written to, of those on record."""
    mark = placeholder(connection.dialect)
    found: dict[tuple[str, str, str], int] = {}
    for chunk in _chunks(contacts):
        sql = _CONTACTS_SQL.format(contacts=_row_values(len(chunk), 3, mark))
        rows = connection.exec_driver_sql(sql, tuple(v for triple in chunk for v in triple))
        found.update({(o, s, c): int(h) for o, s, c, h in rows})
    return found


def _row_values(rows: int, width: int, mark: str) -> str:
    row = "(" + ", ".join([mark] * width) + ")"
    return "VALUES " + ", ".join([row] * rows)


def _chunks(items: Sequence[_T]) -> Iterable[Sequence[_T]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


class SenderActivity:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._insert: Any = postgresql.insert if db.dialect == "postgresql" else sqlite.insert

    def note_sent(self, organisation: str, sender: str, at: datetime, recipients: int, external: Sequence[str]) -> int:
        """Add one outbound message (see `note`); how many of its external recipients were new."""
        return self.note([Activity(organisation, sender, at, recipients, tuple(external))])[0]

    def note_ndr(self, organisation: str, address: str, at: datetime, count: int = 1) -> None:
        """Add delivery reports that came back to `address`."""
        self.note([Activity(organisation, address, at, ndrs=count)])

    def note(self, items: Sequence[Activity]) -> list[int]:
        """Add a batch in one transaction: each item's recipients (`external` of them outside the
        organisation) and delivery reports to its sender's hour, and its external recipients to the
        sender's contacts. For each item, how many of its external recipients the sender had not written
        to within `CONTACT_DAYS`."""
        hours: dict[tuple[str, str, int], list[int]] = {}
        contacts: dict[tuple[str, str, str], int] = {}
        news = []
        with self.db.engine.begin() as connection:
            # every item's contacts as they were before this batch, in one look-up (not one per message)
            wanted = sorted({(i.organisation, i.sender.lower(), a.lower()) for i in items for a in i.external})
            last_hours = _last_hours(connection, wanted)
            for item in items:
                hour, sender = epoch_hour(item.at), item.sender.lower()
                addresses = sorted({a.lower() for a in item.external})
                # new: not written to earlier in this batch, nor within CONTACT_DAYS before it
                window_start = hour - 24 * CONTACT_DAYS
                keys = [(item.organisation, sender, a) for a in addresses]
                new = sum(key not in contacts and last_hours.get(key, window_start) <= window_start for key in keys)
                news.append(new)
                for address in addresses:
                    contacts[(item.organisation, sender, address)] = hour
                totals = hours.setdefault((item.organisation, sender, hour), [0, 0, 0])
                totals[0] += item.recipients
                totals[1] += new
                totals[2] += item.ndrs
            if contacts:
                rows = [
                    {"organisation": o, "sender": s, "recipient": c, "last_hour": h}
                    for (o, s, c), h in contacts.items()
                ]
                upsert_rows(connection, _CONTACTS, rows, "contacts", self._contacts_upsert)
            if hours:
                rows = [
                    {"organisation": o, "sender": s, "hour": h, "recipients": r, "new_external": n, "ndrs": d}
                    for (o, s, h), (r, n, d) in hours.items()
                ]
                upsert_rows(connection, _HOURS, rows, "hours", self._hours_upsert)
        return news

    def _contacts_upsert(self) -> Any:
        """A contact written to again: its last hour moves."""
        stmt = self._insert(_CONTACTS)
        return stmt.on_conflict_do_update(
            index_elements=[_CONTACTS.c.organisation, _CONTACTS.c.sender, _CONTACTS.c.recipient],
            set_={"last_hour": stmt.excluded.last_hour},
        )

    def _hours_upsert(self) -> Any:
        """An hour already on record: the counts add up."""
        stmt = self._insert(_HOURS)
        return stmt.on_conflict_do_update(
            index_elements=[_HOURS.c.organisation, _HOURS.c.sender, _HOURS.c.hour],
            set_={
                "recipients": _HOURS.c.recipients + stmt.excluded.recipients,
                "new_external": _HOURS.c.new_external + stmt.excluded.new_external,
                "ndrs": _HOURS.c.ndrs + stmt.excluded.ndrs,
            },
        )

    def history(self, organisation: str, sender: str, at: datetime, external: Sequence[str]) -> SenderHistory:
        """What one message's facts are summed from (see `histories`)."""
        return self.histories([Ask(organisation, sender, at, tuple(external))])[0]

    def histories(self, asks: Sequence[Ask]) -> list[SenderHistory]:
        """Each ask's sender history: its sender's hours over the `BASELINE_DAYS` up to its hour, and which of
        its external addresses the sender wrote to within `CONTACT_DAYS` of it. Two look-ups for the whole
        batch (every sender's hours, every (sender, address) contact), not two per message: per message
        they cost a scanning process more than a small message's scan (docs/decisions.md)."""
        if not asks:
            return []
        hours = [epoch_hour(ask.at) for ask in asks]
        senders = sorted({(ask.organisation, ask.sender.lower()) for ask in asks})
        wanted = sorted({(a.organisation, a.sender.lower(), r.lower()) for a in asks for r in a.external})
        sent: dict[tuple[str, str], list[tuple[int, tuple[int, int, int]]]] = {}
        with self.db.engine.connect() as connection:
            mark = placeholder(connection.dialect)
            for chunk in _chunks(senders):
                sql = _HOURS_SQL.format(senders=_row_values(len(chunk), 2, mark), mark=mark)
                params = (min(hours) - 24 * BASELINE_DAYS, max(hours), *(v for pair in chunk for v in pair))
                for o, s, h, r, n, d in connection.exec_driver_sql(sql, params):
                    sent.setdefault((o, s), []).append((int(h), (int(r), int(n), int(d))))
            last_hours = _last_hours(connection, wanted)
        out = []
        for ask, hour in zip(asks, hours, strict=True):
            sender = ask.sender.lower()
            since = hour - 24 * BASELINE_DAYS
            own = {h: row for h, row in sent.get((ask.organisation, sender), ()) if since < h <= hour}
            window_start = hour - 24 * CONTACT_DAYS
            known = {
                address
                for address in {r.lower() for r in ask.external}
                if last_hours.get((ask.organisation, sender, address), window_start) > window_start
            }
            out.append(SenderHistory(own, frozenset(known)))
        return out

    def prune(self, at: datetime) -> int:
        """Delete hours past the baseline and contacts past the contact window; how many rows went."""
        hour = epoch_hour(at)
        with self.db.engine.begin() as connection:
            gone = connection.execute(delete(_HOURS).where(_HOURS.c.hour <= hour - 24 * BASELINE_DAYS)).rowcount
            gone += connection.execute(
                delete(_CONTACTS).where(_CONTACTS.c.last_hour <= hour - 24 * CONTACT_DAYS)
            ).rowcount
        return int(gone)
