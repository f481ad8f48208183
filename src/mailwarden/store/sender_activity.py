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
from typing import Any, TypeVar, cast

from sqlalchemy import Table, delete, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite

from mailwarden.store.db import Database
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
class SenderHistory:
    """A sender's hours (hour → recipients, first-time external recipients, delivery reports) over the
    last `BASELINE_DAYS`, and which of the asked external addresses it has written to before."""

    hours: dict[int, tuple[int, int, int]]
    known: frozenset[str]


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
            last_hours: dict[tuple[str, str, str], int] = {}
            for chunk in _chunks(wanted):
                key = (_CONTACTS.c.organisation, _CONTACTS.c.sender, _CONTACTS.c.recipient)
                stmt = select(*key, _CONTACTS.c.last_hour).where(tuple_(*key).in_(chunk))
                last_hours.update({(o, s, c): int(h) for o, s, c, h in connection.execute(stmt)})
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
                stmt = self._insert(_CONTACTS)
                connection.execute(
                    stmt.on_conflict_do_update(
                        index_elements=[_CONTACTS.c.organisation, _CONTACTS.c.sender, _CONTACTS.c.recipient],
                        set_={"last_hour": stmt.excluded.last_hour},
                    ),
                    [
                        {"organisation": o, "sender": s, "recipient": c, "last_hour": h}
                        for (o, s, c), h in contacts.items()
                    ],
                )
            if hours:
                stmt = self._insert(_HOURS)
                connection.execute(
                    stmt.on_conflict_do_update(
                        index_elements=[_HOURS.c.organisation, _HOURS.c.sender, _HOURS.c.hour],
                        set_={
                            "recipients": _HOURS.c.recipients + stmt.excluded.recipients,
                            "new_external": _HOURS.c.new_external + stmt.excluded.new_external,
                            "ndrs": _HOURS.c.ndrs + stmt.excluded.ndrs,
                        },
                    ),
                    [
                        {"organisation": o, "sender": s, "hour": h, "recipients": r, "new_external": n, "ndrs": d}
                        for (o, s, h), (r, n, d) in hours.items()
                    ],
                )
        return news

    def history(self, organisation: str, sender: str, at: datetime, external: Sequence[str]) -> SenderHistory:
        hour = epoch_hour(at)
        addresses = sorted({a.lower() for a in external})
        rows = (
            select(_HOURS.c.hour, _HOURS.c.recipients, _HOURS.c.new_external, _HOURS.c.ndrs)
            .where(_HOURS.c.organisation == organisation, _HOURS.c.sender == sender.lower())
            .where(_HOURS.c.hour > hour - 24 * BASELINE_DAYS, _HOURS.c.hour <= hour)
        )
        with self.db.engine.connect() as connection:
            hours = {int(h): (int(r), int(n), int(d)) for h, r, n, d in connection.execute(rows)}
            known: set[str] = set()
            for chunk in _chunks(addresses):
                known.update(connection.scalars(self._contacts_in(organisation, sender.lower(), chunk, hour)))
        return SenderHistory(hours, frozenset(known))

    def prune(self, at: datetime) -> int:
        """Delete hours past the baseline and contacts past the contact window; how many rows went."""
        hour = epoch_hour(at)
        with self.db.engine.begin() as connection:
            gone = connection.execute(delete(_HOURS).where(_HOURS.c.hour <= hour - 24 * BASELINE_DAYS)).rowcount
            gone += connection.execute(
                delete(_CONTACTS).where(_CONTACTS.c.last_hour <= hour - 24 * CONTACT_DAYS)
            ).rowcount
        return int(gone)

    def _contacts_in(self, organisation: str, sender: str, addresses: Sequence[str], hour: int) -> Any:
        return select(_CONTACTS.c.recipient).where(
            _CONTACTS.c.organisation == organisation,
            _CONTACTS.c.sender == sender,
            _CONTACTS.c.recipient.in_(addresses),
            _CONTACTS.c.last_hour > hour - 24 * CONTACT_DAYS,
        )
