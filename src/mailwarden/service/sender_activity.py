"""The sender activity behind the compromised-account signals (docs/outbound.md).

Before an outbound message is scanned, `SenderActivityLookup.facts` reads its sender's last two weeks of
hours and which of its external recipients the sender has written to before, and sums them into the
`SenderFacts` the spam stage judges (`pipeline/spam/compromise.py`). After messages are recorded,
`SenderActivityLookup.recorded` adds them: outbound messages to their sender, delivery reports
(null-sender mail coming in) to the address they came back to. A database that cannot be reached costs the
signals, never the message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from weakref import WeakKeyDictionary

import structlog

from mailwarden.model import Direction
from mailwarden.model.envelope import domain_of
from mailwarden.model.trace import MessageRecord
from mailwarden.pipeline.facts import SenderFacts
from mailwarden.store.db import Database
from mailwarden.store.sender_activity import Activity, Ask, SenderActivity, SenderHistory, epoch_hour

log = structlog.get_logger(__name__)
_Waiting = tuple[Ask, asyncio.Future[SenderHistory | None]]  # an ask and where its answer goes
WINDOW_HOURS = 2  # the signals look at this UTC hour and the one before
BASELINE_MIN_DAYS = 2  # a sender seen for less than this has no baseline (new accounts, a new install)


def summarise(history: SenderHistory, hour: int, recipients: int, external: Sequence[str]) -> SenderFacts:
    """The facts for a message with `recipients` (`external` of them outside) sent in UTC hour `hour`."""
    window = range(hour - WINDOW_HOURS + 1, hour + 1)
    now = [history.hours.get(h, (0, 0, 0)) for h in window]
    new_now = len({a.lower() for a in external} - history.known)
    baseline = None
    before = [h for h in history.hours if h < window.start]
    if before and min(before) <= hour - 24 * BASELINE_MIN_DAYS:
        sent = {h: history.hours[h][0] for h in before}
        baseline = max(sum(sent.get(h - i, 0) for i in range(WINDOW_HOURS)) for h in before)
    return SenderFacts(
        window_hours=WINDOW_HOURS,
        recipients=sum(r for r, _, _ in now) + recipients,
        new_external=sum(n for _, n, _ in now) + new_now,
        ndrs=sum(d for _, _, d in now),
        baseline=baseline,
    )


class SenderActivityLookup:
    """Sender facts for outbound messages, read for every message that asks in the same turn of the event
    loop at once: a scanning process scans its batch concurrently, so the batch's outbound messages ask
    together and cost one database round trip and one thread hand-off between them."""

    def __init__(self, db: Database, domains_of: Callable[[str | None], frozenset[str]]) -> None:
        self.store = SenderActivity(db)
        self.domains_of = domains_of
        # per event loop: the asks of its current turn (a loop that stopped before reading them holds up no other)
        self._waiting: WeakKeyDictionary[asyncio.AbstractEventLoop, list[_Waiting]] = WeakKeyDictionary()
        self._reading: set[asyncio.Task[None]] = set()  # held: the loop keeps only weak references

    async def facts(
        self, organisation: str, sender: str, recipients: Sequence[str], own: frozenset[str], at: datetime
    ) -> SenderFacts | None:
        external = [r for r in recipients if (domain_of(r) or "") not in own]
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[SenderHistory | None] = loop.create_future()
        waiting = self._waiting.get(loop)
        if waiting is None:  # the first to ask this turn: the others of the turn join before it is read
            waiting = self._waiting[loop] = []
            loop.call_soon(self._read_waiting, loop)
        waiting.append((Ask(organisation, sender, at, tuple(external)), answer))
        history = await answer
        if history is None:
            return None
        return summarise(history, epoch_hour(at), len(recipients), external)

    def _read_waiting(self, loop: asyncio.AbstractEventLoop) -> None:
        task = loop.create_task(self._read(self._waiting.pop(loop, [])))
        self._reading.add(task)
        task.add_done_callback(self._reading.discard)

    async def _read(self, waiting: list[_Waiting]) -> None:
        try:
            found: list[SenderHistory | None] = list(
                await asyncio.to_thread(self.store.histories, [ask for ask, _ in waiting])
            )
        except Exception as exc:  # the signals are lost for these messages; the messages are not
            log.error("sender_activity_read_failed", error=f"{type(exc).__name__}: {exc}", messages=len(waiting))
            found = [None] * len(waiting)
        for (_, answer), history in zip(waiting, found, strict=True):
            if not answer.done():  # its scan may have been cancelled meanwhile
                answer.set_result(history)

    async def recorded(self, records: Sequence[MessageRecord]) -> None:
        await asyncio.to_thread(self._note, records)

    def _note(self, records: Sequence[MessageRecord]) -> None:
        items = []
        for record in records:
            if record.organisation is None:
                continue
            org, own, at = record.organisation, self.domains_of(record.organisation), record.received_at
            addresses = [r.address for r in record.recipients]
            if record.direction is Direction.OUTBOUND and record.sender:
                external = tuple(a for a in addresses if (domain_of(a) or "") not in own)
                items.append(Activity(org, record.sender, at, len(addresses), external))
            elif record.direction is Direction.INBOUND and not record.sender:  # a delivery report comes back
                items += [Activity(org, a, at, ndrs=1) for a in addresses if (domain_of(a) or "") in own]
        if items:
            self.store.note(items)
