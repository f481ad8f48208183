"""Behind the spool: every committed message is unwrapped, scanned, recorded and (in enforce mode)
delivered, quarantined, bounced or dropped.

Scanning runs in separate processes (or in this one); the history writer (`service/writer.py`) makes
each outcome durable in an order a crash cannot break. A message whose processing fails is tried
again after a pause; after RETRY_ATTEMPTS failures it is given up on, never silently: it is recorded
with the error and held in quarantine (the raw message kept), so an administrator sees it in the trace
and can release it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from functools import cached_property

import structlog

from mailwarden import metrics
from mailwarden.deliver import DeliveryAgent
from mailwarden.errors import DependencyUnavailable
from mailwarden.ingest.spool import Spool, SpoolEntry
from mailwarden.model.listener import ListenerRole
from mailwarden.service.directory import OrgDirectory
from mailwarden.service.pool import ScanningProcesses, Unavailable
from mailwarden.service.runtime import Runtime
from mailwarden.service.scan import Outcome, Scanner, outcomes_for
from mailwarden.service.sender_activity import SenderActivityLookup
from mailwarden.service.writer import FIRST_PAUSE, LONGEST_PAUSE, HistoryWriter

log = structlog.get_logger(__name__)

RETRY_ATTEMPTS = 3  # a spool entry whose processing failed is tried again this often
RETRY_DELAY_SECONDS = 5.0  # times the attempt number


class Processor:
    """Consumes the spool with a few workers (or scanning processes) and hands outcomes to the writer."""

    def __init__(
        self,
        rt: Runtime,
        spool: Spool | None,
        directory: OrgDirectory,
        *,
        roles: Mapping[str, ListenerRole],
        agent: DeliveryAgent | None = None,
    ) -> None:
        self.rt = rt
        self.spool = spool
        self.directory = directory
        self.roles = {name: ListenerRole(role) for name, role in roles.items()}
        cfg = rt.config.processing
        self.workers = cfg.workers
        self._entries: asyncio.Queue[SpoolEntry] = asyncio.Queue(maxsize=cfg.workers * 4)
        self.scan_processes = cfg.scan_processes
        self._processes = ScanningProcesses(rt.config, dict(roles), cfg.scan_processes)
        self._tasks: list[asyncio.Task[None]] = []
        self._attempts: dict[str, int] = {}  # spool id → failed attempts, while a retry is pending
        self._paused_until = float("-inf")  # scanning waits for a dependency that is away until then
        self._pause = FIRST_PAUSE
        self.outcomes = outcomes_for(rt.config, directory)
        self.writer = HistoryWriter(rt, spool, on_failure=self._write_failed, on_written=self._written)
        self.writer.agent = agent

    @cached_property
    def scanner(self) -> Scanner:
        """Built on first use: with scanning processes, the server process never builds the pipeline."""
        senders = SenderActivityLookup(self.rt.db, self.directory.domains_of)
        return Scanner(self.rt.pipeline, self.directory, dict(self.roles), self.outcomes, senders=senders)

    async def process(self, entry: SpoolEntry) -> Outcome:
        return await self.scanner.process(entry)

    @property
    def agent(self) -> DeliveryAgent | None:
        return self.writer.agent

    @agent.setter
    def agent(self, agent: DeliveryAgent | None) -> None:
        self.writer.agent = agent

    @property
    def processed(self) -> int:
        return self.writer.processed

    # ---- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        await asyncio.to_thread(self.writer.settle_held_jobs)
        self._tasks = [asyncio.create_task(self._feed(), name="spool-feed")]
        if self.scan_processes:
            self._processes.start()
            # two batches per scanning process: one being scanned, the next one already there
            dispatchers = 2 * self.scan_processes
            self._tasks += [asyncio.create_task(self._dispatcher(), name=f"scan-{i}") for i in range(dispatchers)]
        else:
            self._tasks += [asyncio.create_task(self._worker(), name=f"scan-{i}") for i in range(self.workers)]
        self._tasks.append(asyncio.create_task(self.writer.run(), name="history-writer"))

    async def stop(self, drain_timeout: float = 30.0) -> None:
        """Finish what is in hand (scanned messages get written), leave the rest in the spool."""
        feed, *rest = self._tasks
        feed.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feed
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(drain_timeout):
                await self._entries.join()
                await self.writer.outcomes.join()
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)
        self._tasks = []
        await self._processes.shutdown()

    async def _feed(self) -> None:
        assert self.spool is not None
        async for entry in self.spool.entries():
            await self._entries.put(entry)

    async def _worker(self) -> None:
        while True:
            await self._pause_while_unavailable()
            entry = await self._entries.get()
            try:
                outcome = await self.process(entry)
                self._pause = FIRST_PAUSE
            except DependencyUnavailable as exc:
                self._wait_for_dependency(entry, str(exc))
            except Exception as exc:  # a bug here must not lose the message: it stays in the spool
                log.error("processing_failed", spool_id=entry.id, error=_error_text(exc), exc_info=exc)
                await self._retry_later(entry, _error_text(exc))
            else:
                await self.writer.outcomes.put(outcome)
            finally:
                self._entries.task_done()

    # ---- a dependency away ---------------------------------------------------------------------
    def _wait_for_dependency(self, entry: SpoolEntry, reason: str) -> None:
        """The database or Redis is away: nobody's failure. The entry goes back to the spool's hand-out
        and scanning pauses, longer each time (one log line per pause), until a scan gets through."""
        loop = asyncio.get_running_loop()
        if loop.time() >= self._paused_until:
            log.error("scanning_paused", error=reason, retry_in_seconds=self._pause)
            self._paused_until = loop.time() + self._pause
            self._pause = min(self._pause * 2, LONGEST_PAUSE)
        if self.spool is not None:
            self.spool.hand_again(entry)

    async def _pause_while_unavailable(self) -> None:
        delay = self._paused_until - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)

    # ---- failures ----------------------------------------------------------------------------
    async def _retry_later(self, entry: SpoolEntry, error: str) -> None:
        """A failed entry stays in the spool and is handed out again after a pause (a scanning process
        that died, a bug met by one message); after RETRY_ATTEMPTS failures it is given up on."""
        if self.spool is None:
            return
        metrics.PROCESSING_FAILURES.inc()
        attempt = self._attempts.get(entry.id, 0) + 1
        if attempt > RETRY_ATTEMPTS:
            self._attempts.pop(entry.id, None)
            await self._give_up(entry, error)
            return
        self._attempts[entry.id] = attempt
        delay = RETRY_DELAY_SECONDS * attempt
        log.warning("processing_retry_scheduled", spool_id=entry.id, attempt=attempt, in_seconds=delay, error=error)
        asyncio.get_running_loop().call_later(delay, self.spool.hand_again, entry)

    async def _give_up(self, entry: SpoolEntry, error: str) -> None:
        """Record the message with the error (see `given_up_outcome`). The
        writer's queue is fed from a task: the writer itself may be the one giving up."""
        metrics.GIVEN_UP.inc()
        log.error("processing_given_up", spool_id=entry.id, attempts=RETRY_ATTEMPTS, error=error, kept="in quarantine")
        try:
            outcome = self.scanner.given_up(entry, error, RETRY_ATTEMPTS)
        except Exception as exc:  # not even the header could be read: the entry stays for the next start
            metrics.UNRECORDED.inc()
            log.error("processing_given_up_unrecorded", spool_id=entry.id, error=_error_text(exc), kept="in the spool")
            return
        task = asyncio.create_task(self.writer.outcomes.put(outcome))
        self._tasks.append(task)
        task.add_done_callback(self._tasks.remove)

    async def _write_failed(self, outcome: Outcome, error: str) -> None:
        if outcome.given_up:  # its last chance: the entry waits in the spool for the next start
            metrics.UNRECORDED.inc()
            log.error("processing_given_up_unrecorded", spool_id=outcome.entry.id, error=error, kept="in the spool")
            return
        await self._retry_later(outcome.entry, error)

    def _written(self, entries: list[SpoolEntry]) -> None:
        for entry in entries:
            self._attempts.pop(entry.id, None)

    async def _dispatcher(self) -> None:
        """Hand the scanning processes what the spool has, up to `workers` entries per batch.

        One round trip per batch instead of per message: the pickling, pipe writes and wake-ups of a
        process pool cost about as much as a small message's scan. Message bytes go over once; results
        come back without them."""
        while True:
            await self._pause_while_unavailable()
            batch = [await self._entries.get()]
            while len(batch) < self.workers and not self._entries.empty():
                batch.append(self._entries.get_nowait())
            try:
                results = await self._processes.scan(batch)
                for entry, result in zip(batch, results, strict=True):
                    if isinstance(result, Unavailable):
                        self._wait_for_dependency(entry, result.reason)
                        continue
                    self._pause = FIRST_PAUSE
                    if isinstance(result, str):  # a bug here must not lose the message: it stays in the spool
                        log.error("processing_failed", spool_id=entry.id, error=result)
                        await self._retry_later(entry, result)
                        continue
                    result.entry = entry
                    await self.writer.outcomes.put(result)
            except Exception as exc:
                log.error("processing_failed", spool_ids=[e.id for e in batch], error=_error_text(exc), exc_info=exc)
                for entry in batch:
                    await self._retry_later(entry, _error_text(exc))
            finally:
                for _ in batch:
                    self._entries.task_done()


def _error_text(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
