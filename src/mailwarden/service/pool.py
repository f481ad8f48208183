"""The scanning processes: CPU work away from the server's event loop, one batch per round trip.

Each scanning process has its own runtime: database connection (for the organisation directory),
stages (DNS resolver, YARA rules, clamd connections) and an event loop. The server process keeps the
SMTP listeners, the spool, history writing and delivery; only spool entries and outcomes cross over.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection

import structlog

from mailwarden.errors import DependencyUnavailable
from mailwarden.ingest.spool import SpoolEntry
from mailwarden.lifeline import exit_with_server, server_lifeline
from mailwarden.logs import configure as configure_logging
from mailwarden.model.listener import ListenerRole
from mailwarden.pipeline.cpu import run_inline, settle
from mailwarden.service.config import Config
from mailwarden.service.directory import OrgDirectory
from mailwarden.service.process_pool import result_async
from mailwarden.service.runtime import Runtime
from mailwarden.service.scan import Outcome, Scanner, outcomes_for
from mailwarden.service.sender_activity import SenderActivityLookup

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Unavailable:
    """A scan that met a dependency away (database, Redis): the entry waits and is tried again."""

    reason: str


Result = Outcome | Unavailable | str  # an outcome, a dependency away, or the error as text


class ScanningProcesses:
    """`count` processes started with forkserver (never by forking the threaded server)."""

    def __init__(self, config: Config, roles: dict[str, ListenerRole], count: int) -> None:
        self.config = config
        self.roles = roles
        self.count = count
        self._executor: Executor | None = None

    def start(self) -> None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["mailwarden.service.preload"])  # shared with every scanning process
        self._executor = ProcessPoolExecutor(
            max_workers=self.count,
            mp_context=context,
            initializer=_init_worker,
            initargs=(self.config, dict(self.roles), server_lifeline()),
        )

    async def shutdown(self) -> None:
        if self._executor is not None:
            await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
            self._executor = None

    async def scan(self, batch: list[SpoolEntry], *, retry: bool = True) -> list[Result]:
        """Scan a batch in one process; a result per entry, in order."""
        assert self._executor is not None
        try:
            executor = self._executor
            future = asyncio.get_running_loop().run_in_executor(executor, _scan_in_worker, batch)
            return await result_async(future, executor)
        except BrokenProcessPool:
            # a scanning process died (killed, out of memory, a crash in a library): start new ones and
            # try each entry alone, so that a message that kills its process holds up no other one
            log.error("scan_process_died", spool_ids=[e.id for e in batch])
            self._restart()
            if not retry:
                return ["the scanning process died twice on this message; it stays in the spool"]
            results: list[Result] = []
            for entry in batch:
                results += await self.scan([entry], retry=False)
            return results

    def _restart(self) -> None:
        old, self._executor = self._executor, None
        if old is not None:
            old.shutdown(wait=False, cancel_futures=True)
        self.start()


# ---- inside a scanning process ---------------------------------------------------------------
_scanner: Scanner | None = None
_loop: asyncio.AbstractEventLoop | None = None
_settled = False


def _init_worker(config: Config, roles: dict[str, ListenerRole], lifeline: Connection) -> None:
    global _scanner, _loop
    exit_with_server(lifeline)
    configure_logging(config.log.level, config.log.format)
    if config.processing.scan_nice:
        with contextlib.suppress(OSError):  # a container may forbid it: scanning still works
            os.nice(config.processing.scan_nice)
    run_inline()
    rt = Runtime(config)
    directory = OrgDirectory(rt.policies, refresh_seconds=config.processing.policy_refresh_seconds)
    senders = SenderActivityLookup(rt.db, directory.domains_of)
    _scanner = Scanner(rt.pipeline, directory, roles, outcomes_for(config, directory), senders=senders)
    _loop = asyncio.new_event_loop()
    asyncio.set_event_loop(_loop)


def _scan_in_worker(batch: list[SpoolEntry]) -> list[Result]:
    """Scan a batch concurrently (DNS waits overlap); per entry an outcome, or what stopped it."""
    global _settled
    assert _scanner is not None and _loop is not None
    scanner = _scanner

    async def one(entry: SpoolEntry) -> Result:
        try:
            outcome = await scanner.process(entry)
        except DependencyUnavailable as exc:
            return Unavailable(str(exc))
        except Exception as exc:
            log.exception("processing_failed", spool_id=entry.id)
            return f"{type(exc).__name__}: {exc}"
        outcome.entry = replace(entry, raw=b"")  # the server has the bytes; don't send them back
        return outcome

    async def run() -> list[Result]:
        return list(await asyncio.gather(*(one(entry) for entry in batch)))

    results = _loop.run_until_complete(run())
    if not _settled:  # the first messages have loaded what scanning loads lazily
        settle()
        _settled = True
    return results
