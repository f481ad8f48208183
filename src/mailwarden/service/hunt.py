"""Retro-hunt: rescan the messages kept for it with today's rules, or search them for an indicator
(docs/retro-hunt.md).

A rescan rebuilds each kept message's spool entry and runs it through the product's own scan path
(`Scanner.process`: today's signatures, YARA rules, hash lists, clamd, policies), writing no history
record; a message whose verdict (category or action) now differs is a result. A search unwraps each
kept message (journal reports) and matches the indicators. Every result gets a RESCAN event on its
timeline. The message's recorded verdict is never rewritten: history stays what was decided then;
what is decided now lives in the hunt's results (and drives clawback: `changed_verdicts`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import structlog

from mailwarden.errors import NotFoundError
from mailwarden.ingest.journal import JournalParseError, unwrap
from mailwarden.ingest.spool import SpoolEntry
from mailwarden.model import Action, Category, Message, Verdict
from mailwarden.model.listener import ListenerRole
from mailwarden.model.trace import EventRecord, EventType, MessageRecord
from mailwarden.service.clawback import Clawback
from mailwarden.service.directory import OrgDirectory
from mailwarden.service.indicators import Indicators
from mailwarden.service.runtime import Runtime
from mailwarden.service.scan import Scanner, outcomes_for
from mailwarden.store.db import Database
from mailwarden.store.hunts import Hunt, HuntKind, HuntResult, HuntState, HuntStore
from mailwarden.store.kept import KeptMessage, KeptStore, Window

log = structlog.get_logger(__name__)

ROUND = 200  # messages per round: progress and results are written after each
CONCURRENCY = 8  # messages scanned at once within a round (DNS waits overlap)
MAX_NEW_FINDINGS = 3  # findings named in a RESCAN event's detail

Progress = Callable[[Hunt], None]


@dataclass(frozen=True, slots=True)
class Found:
    """One message a round found: its result row and its timeline event."""

    result: HuntResult
    event: EventRecord


def new_hunt(
    db: Database,
    kind: HuntKind,
    *,
    created_by: str,
    organisation: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    indicators: Indicators | None = None,
    running: bool = False,
) -> Hunt:
    """A hunt, queued for `serve` to run, or (`running`) to be run by the caller with `Hunter.run`.
    A search needs indicators; a rescan takes none."""
    if kind is HuntKind.SEARCH and indicators is None:
        raise ValueError("a search needs indicators")
    query: dict[str, Any] = indicators.as_dict() if kind is HuntKind.SEARCH and indicators else {}
    return HuntStore(db).create(
        kind,
        query,
        organisation=organisation,
        created_by=created_by,
        since=since,
        until=until,
        running=running,
    )


def changed_verdicts(db: Database, hunt_id: str) -> list[tuple[str, Category, Action]]:
    """The messages a rescan found with another verdict, each with today's (category, action): what
    a clawback of the hunt's results acts on. A search's results have no new verdict: see `found_ids`."""
    return [
        (r.message_id, Category(r.after_category), Action(r.after_action or Action.DELIVER.value))
        for r in HuntStore(db).all_results(hunt_id)
        if r.after_category is not None
    ]


def found_ids(db: Database, hunt_id: str) -> list[str]:
    """Every message a hunt found (changed verdict or matched indicator)."""
    return [r.message_id for r in HuntStore(db).all_results(hunt_id)]


class Hunter:
    """Runs hunts over one runtime's store and blobs, with its own scanner for rescans."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.store = HuntStore(rt.db)
        self.kept = KeptStore(rt.db, rt.blobs)
        self.directory = OrgDirectory(rt.policies, refresh_seconds=rt.config.processing.policy_refresh_seconds)
        self.roles = {listener.name: ListenerRole(listener.role) for listener in rt.config.smtp.listeners}

    @cached_property
    def scanner(self) -> Scanner:
        return Scanner(self.rt.pipeline, self.directory, self.roles, outcomes_for(self.rt.config, self.directory))

    async def run(self, hunt: Hunt, on_progress: Progress | None = None) -> Hunt:
        """Work a hunt to its end (done, failed, or cancelled by someone meanwhile); the final state."""
        window = Window(hunt.organisation, hunt.since, hunt.until)
        indicators = Indicators.from_dict(hunt.query) if hunt.kind is HuntKind.SEARCH else None
        try:
            self.directory.refresh(force=True)
            self.store.started(hunt.id, self.kept.count(window))
            state = await self._rounds(hunt, window, indicators, on_progress)
            self.store.finish(hunt.id, state)
            if state is HuntState.DONE and hunt.kind is HuntKind.RESCAN:
                self._claw_back_changed(hunt.id)
        except Exception as exc:
            log.exception("hunt_failed", hunt=hunt.id)
            self.store.finish(hunt.id, HuntState.FAILED, error=f"{type(exc).__name__}: {exc}")
        final = self.store.get(hunt.id)
        log.info("hunt_finished", hunt=hunt.id, state=final.state.value, done=final.done, matched=final.matched)
        return final

    def _claw_back_changed(self, hunt_id: str) -> None:
        """The automatic clawback policy acts on verdicts a rescan changed (docs/clawback.md)."""
        changes = [(message_id, category) for message_id, category, _ in changed_verdicts(self.rt.db, hunt_id)]
        if changes:
            jobs = Clawback(self.rt).after_rescan(changes, self.directory.policy_of)
            log.info("hunt_clawback_jobs", hunt=hunt_id, changed=len(changes), jobs=len(jobs))

    async def _rounds(
        self, hunt: Hunt, window: Window, indicators: Indicators | None, on_progress: Progress | None
    ) -> HuntState:
        after: str | None = None
        done = 0
        while page := self.kept.page(window, after=after, limit=ROUND):
            found = await self._round(hunt, page, indicators)
            done += len(page)
            after = page[-1].message_id
            state = self.store.progress(
                hunt.id,
                done=done,
                results=[f.result for f in found],
                events=[(f.result.message_id, f.event) for f in found],
            )
            if on_progress is not None:
                on_progress(self.store.get(hunt.id))
            if state is HuntState.CANCELLED:
                return state
        return HuntState.DONE

    async def _round(self, hunt: Hunt, page: Sequence[KeptMessage], indicators: Indicators | None) -> list[Found]:
        then = self.store.verdicts([k.message_id for k in page])
        limit = asyncio.Semaphore(CONCURRENCY)

        async def one(kept: KeptMessage) -> Found | None:
            before = then.get(kept.message_id)
            if before is None:  # its record was deleted meanwhile (the row goes with it)
                return None
            async with limit:
                try:
                    raw = self.kept.raw(kept)
                except NotFoundError:  # its blob expired meanwhile
                    return None
                if indicators is None:
                    return await self._rescan(hunt, kept, raw, before)
                return self._search(hunt, kept, raw, before, indicators)

        return [f for f in await asyncio.gather(*(one(k) for k in page)) if f is not None]

    async def _rescan(
        self, hunt: Hunt, kept: KeptMessage, raw: bytes, before: tuple[str, str, dict[str, Any]]
    ) -> Found | None:
        entry = rebuilt_entry(kept, raw)
        try:
            outcome = await self.scanner.process(entry)
        except Exception as exc:  # one message that cannot be scanned today holds up no other
            error = f"{type(exc).__name__}: {exc}"
            log.warning("hunt_rescan_failed", hunt=hunt.id, message=kept.message_id, error=error)
            return None
        record = _record_of(outcome.records, kept.message_id)
        if record is None:
            return None
        category, action, verdict_then = before
        now = record.verdict
        if now.category.value == category and now.disposition.action.value == action:
            return None
        detail = rescan_detail(category, action, now, verdict_then)
        result = HuntResult(kept.message_id, category, action, now.category.value, now.disposition.action.value, detail)
        return Found(result, EventRecord(EventType.RESCAN, f"hunt {hunt.id}: {detail}"))

    def _search(
        self,
        hunt: Hunt,
        kept: KeptMessage,
        raw: bytes,
        before: tuple[str, str, dict[str, Any]],
        indicators: Indicators,
    ) -> Found | None:
        message, sender = self._original(kept, raw)
        matched = indicators.matches(message, sender)
        if not matched:
            return None
        detail = "matched " + "; ".join(matched)
        result = HuntResult(kept.message_id, before[0], before[1], None, None, detail)
        return Found(result, EventRecord(EventType.RESCAN, f"hunt {hunt.id}: {detail}"))

    def _original(self, kept: KeptMessage, raw: bytes) -> tuple[Message, str]:
        """The message as scanned (a journal report's original) and its sender."""
        env = kept.envelope
        if self.roles.get(kept.listener, ListenerRole.JOURNAL) is ListenerRole.JOURNAL:
            try:
                domains = self.directory.domains
                je = unwrap(raw, smtp_mail_from=env.mail_from, smtp_rcpt_to=env.rcpt_to, org_domains=domains)
            except JournalParseError:
                return Message(raw), env.mail_from
            return Message(je.original), je.sender
        return Message(raw), env.mail_from


def rebuilt_entry(kept: KeptMessage, raw: bytes) -> SpoolEntry:
    """The spool entry a kept message was recorded from."""
    return SpoolEntry(id=kept.spool_id, listener=kept.listener, envelope=kept.envelope, raw=raw, path=Path())


def _record_of(records: Sequence[tuple[MessageRecord, object]], message_id: str) -> MessageRecord | None:
    for record, _ in records:
        if record.id == message_id:
            return record
    return records[0][0] if len(records) == 1 else None


def rescan_detail(category: str, action: str, now: Verdict, then: dict[str, Any]) -> str:
    """ "verdict clean → malware, action deliver → quarantine (MALWARE_YARA: NewRule in invoice.doc)"."""
    text = f"verdict {category} → {now.category.value}"
    if now.disposition.action.value != action:
        text += f", action {action} → {now.disposition.action.value}"
    known = {f.get("code") for stage in then.get("stages", []) for f in stage.get("findings", [])}
    new = [f for stage in now.stages for f in stage.findings if f.code not in known]
    if new:
        shown = [f"{f.code}: {f.detail}" if f.detail else f.code for f in new[:MAX_NEW_FINDINGS]]
        text += " (" + "; ".join(shown) + ")"
    return text


def lower_priority() -> None:
    """Hunt only on CPU that live scanning leaves idle: the SCHED_IDLE class where the kernel has it
    (Linux), else the lowest nice level. The scanning processes run at `scan_nice` (10 by default); one
    nice step below them would still take ~45 % of a contended CPU, SCHED_IDLE takes ~0.3 %."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        return
    except (AttributeError, OSError):
        pass
    with contextlib.suppress(OSError):  # a container may forbid it: the hunt still runs
        os.nice(19 - os.nice(0))
