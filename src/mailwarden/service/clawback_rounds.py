"""How clawback jobs are worked off: claimed items grouped per connector, worked in chunks whose outcomes
are recorded as each chunk finishes, in the server's loop or for a command that waits for its job.

`Rounds` is the working half of `service.clawback.Clawback` (which makes the jobs); it needs the stores,
the sealed-secret box, the retry rule and the config that `Clawback.__init__` sets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import structlog

from mailwarden import metrics
from mailwarden.clawback import registry
from mailwarden.clawback.connector import MailboxConnector
from mailwarden.clawback.engine import RetryRule, Round
from mailwarden.clawback.secrets import SecretBox
from mailwarden.model.clawback import Claimed, ItemOutcome, ItemStatus, JobView
from mailwarden.model.envelope import domain_of
from mailwarden.model.trace import EventRecord, EventType
from mailwarden.service.config import ClawbackConfig
from mailwarden.store.clawback import ClawbackStore, ConnectorStore, SealedConnector

log = structlog.get_logger(__name__)
CHUNK = 50  # recipients per connector call batch; each chunk's outcomes are recorded when it is done


class Rounds:
    cfg: ClawbackConfig
    jobs: ClawbackStore
    connectors: ConnectorStore
    retry: RetryRule
    _built: dict[tuple[str, str], tuple[datetime, MailboxConnector]]
    _wake: asyncio.Event | None
    _loop: asyncio.AbstractEventLoop | None

    @property
    def box(self) -> SecretBox:
        raise NotImplementedError

    def notify(self) -> None:
        """Wake the server's loop (from any thread: jobs are made in worker threads)."""
        if self._wake is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run_round(self) -> int:
        """Claim due items and work them, connectors side by side, each in chunks whose outcomes are
        recorded as soon as the chunk is done (the first removals show while a campaign runs)."""
        claimed = await asyncio.to_thread(
            self.jobs.claim, limit=self.cfg.batch_size, lease_seconds=self.cfg.lease_seconds
        )
        if not claimed:
            return 0
        groups, unserved = await asyncio.to_thread(self._group, claimed)
        if unserved:
            by_id = {i.item_id: i for i in claimed}
            events = [
                (by_id[o.item_id].target.message_id, EventRecord(
                    EventType.CLAWBACK_FAILED, f"no_connector: {o.detail} [job {by_id[o.item_id].job_id}]",
                    recipient=by_id[o.item_id].target.recipient,
                ))
                for o in unserved
            ]  # fmt: skip
            await asyncio.to_thread(self.jobs.report, unserved, events)
        await asyncio.gather(*(self._work(sealed, items) for sealed, items in groups))
        return len(claimed)

    async def _work(self, sealed: SealedConnector, items: list[Claimed]) -> None:
        for start in range(0, len(items), CHUNK):
            chunk = items[start : start + CHUNK]
            try:
                r = await self._round(sealed, chunk)
                await r.run(chunk)
                outcomes, events = r.outcomes, r.events
            except Exception as exc:  # a connector that cannot be built or broke: retried like a busy one
                reason = f"{type(exc).__name__}: {exc}"
                log.error("clawback_round_failed", connector=sealed.info.name, error=reason)
                outcomes, events = self._broken(chunk, reason), []
            answered = {o.item_id for o in outcomes}
            outcomes += [
                ItemOutcome(i.item_id, ItemStatus.FAILED, "the connector gave no answer")
                for i in chunk
                if i.item_id not in answered
            ]
            await asyncio.to_thread(self.jobs.report, outcomes, events)
            for o in outcomes:
                if o.retry_at is None:
                    metrics.CLAWBACK_ITEMS.labels(o.status.value).inc()

    def _group(
        self, claimed: Sequence[Claimed]
    ) -> tuple[list[tuple[SealedConnector, list[Claimed]]], list[ItemOutcome]]:
        by_org: dict[str | None, list[SealedConnector]] = {}
        groups: dict[tuple[str, str], tuple[SealedConnector, list[Claimed]]] = {}
        outcomes = []
        for item in claimed:
            if item.organisation not in by_org:
                by_org[item.organisation] = self.connectors.list(item.organisation) if item.organisation else []
            domain = domain_of(item.target.recipient) or ""
            sealed = _pick(by_org[item.organisation], domain)
            if sealed is None:
                outcomes.append(
                    ItemOutcome(item.item_id, ItemStatus.NO_CONNECTOR, f"no mailbox connector serves {domain}")
                )
                continue
            key = (sealed.info.organisation, sealed.info.name)
            groups.setdefault(key, (sealed, []))[1].append(item)
        return list(groups.values()), outcomes

    async def _round(self, sealed: SealedConnector, items: list[Claimed]) -> Round:
        key = (sealed.info.organisation, sealed.info.name)
        cached = self._built.get(key)
        if cached is None or cached[0] != sealed.info.updated_at:
            if cached is not None:
                await cached[1].aclose()
            connector = registry.build(sealed.info.kind, sealed.info.settings, self.box.open(sealed.sealed_secret))
            self._built[key] = (sealed.info.updated_at, connector)
        return Round(self._built[key][1], name=f"{sealed.info.kind}:{sealed.info.name}", retry=self.retry)

    def _broken(self, items: Sequence[Claimed], reason: str) -> list[ItemOutcome]:
        now = datetime.now(UTC)
        out = []
        for item in items:
            retry_at = self.retry.retry_at(item.attempts, None, now)
            status = ItemStatus.RETRYING if retry_at else ItemStatus.FAILED
            out.append(ItemOutcome(item.item_id, status, reason, retry_at=retry_at))
        return out

    async def serve(self, stopping: asyncio.Event) -> None:
        """The server's loop: rounds while there is work, then a nap until woken or the poll interval."""
        self._wake, self._loop = asyncio.Event(), asyncio.get_running_loop()
        while not stopping.is_set():
            try:
                handled = await self.run_round()
            except Exception as exc:  # the database away, a bad key: logged, tried again after a pause
                log.error("clawback_round_error", error=f"{type(exc).__name__}: {exc}")
                handled = 0
            if handled:
                continue
            self._wake.clear()
            waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stopping.wait())]
            await asyncio.wait(waiters, timeout=self.cfg.poll_seconds, return_when=asyncio.FIRST_COMPLETED)
            for w in waiters:
                w.cancel()

    async def until_done(
        self, job_id: str, progress: Callable[[JobView], None] | None = None, *, patience: float | None = None
    ) -> JobView:
        """Work (beside any server) until the job is finished, telling `progress` how far it is every fifth
        of a second; for commands that wait for their job. A round under way is finished, never cut off."""
        loop = asyncio.get_running_loop()
        deadline = None if patience is None else loop.time() + patience
        stop = asyncio.Event()

        async def work() -> None:
            while not stop.is_set():
                if not await self.run_round():
                    await asyncio.sleep(min(self.cfg.poll_seconds, 0.5))

        worker = asyncio.create_task(work())
        try:
            while not worker.done():
                view = await asyncio.to_thread(self.jobs.job, job_id, items=False)
                if progress is not None:
                    progress(view)
                if not view.running or (deadline is not None and loop.time() > deadline):
                    break
                await asyncio.sleep(0.2)
        finally:
            stop.set()
            await worker  # raises what broke the worker, if anything did
        return await asyncio.to_thread(self.jobs.job, job_id)

    async def aclose(self) -> None:
        for _, connector in self._built.values():
            await connector.aclose()
        self._built.clear()


def _pick(connectors: Sequence[SealedConnector], domain: str) -> SealedConnector | None:
    """The connector named for the domain, else one that serves every domain of the organisation."""
    named = [c for c in connectors if domain in c.info.domains]
    if named:
        return named[0]
    return next((c for c in connectors if not c.info.domains), None)
