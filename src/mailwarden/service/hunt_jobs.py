"""Retro-hunt's part of `mailwarden serve`: expiry of kept messages, and hunts queued through the API run
in the background (docs/retro-hunt.md).

Expiry runs every `[retention] expiry_interval_seconds`: blobs first, then rows. Queued hunts run one
at a time, each in a process of its own in the SCHED_IDLE class (`hunt.lower_priority`), so the kernel
gives live scanning the CPU first; the hunt writes its progress to the
database, where the console and the API read it. When the server stops, a hunt still running is
stopped with it and marked failed (its results so far stay).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
from collections.abc import Callable
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import structlog

from mailwarden.lifeline import exit_with_server, server_lifeline
from mailwarden.logs import configure as configure_logging
from mailwarden.service.config import Config
from mailwarden.service.hunt import Hunter, lower_priority
from mailwarden.service.runtime import Runtime
from mailwarden.store.db import unavailable
from mailwarden.store.hunts import HuntState, HuntStore
from mailwarden.store.kept import KeptStore

log = structlog.get_logger(__name__)

HUNT_POLL_SECONDS = 2.0  # how soon a hunt queued through the API starts


class RetroHuntJobs:
    """Expiry and the background hunt runner of one server."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.kept = KeptStore(rt.db, rt.blobs)
        self.hunts = HuntStore(rt.db)
        self._tasks: list[asyncio.Task[None]] = []
        self._running: tuple[str, BaseProcess] | None = None

    async def start(self) -> None:
        interval = self.rt.config.retention.expiry_interval_seconds
        self._tasks = [
            asyncio.create_task(self._every(interval, self.expire), name="kept-expiry"),
            asyncio.create_task(self._every(HUNT_POLL_SECONDS, self.run_queued), name="hunt-runner"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._running is not None:
            hunt_id, process = self._running
            process.terminate()
            await asyncio.to_thread(process.join, 10)
            with contextlib.suppress(Exception):
                self.hunts.finish(hunt_id, HuntState.FAILED, error="stopped with the server")
            self._running = None

    def expire(self) -> None:
        removed = self.kept.expire(datetime.now(UTC))
        if removed:
            log.info("kept_messages_expired", removed=removed)

    def run_queued(self) -> None:
        """Start the oldest queued hunt when none runs (called from a thread: it may wait for the process)."""
        if self._running is not None:
            hunt_id, process = self._running
            if process.is_alive():
                return
            self._running = None
            if process.exitcode:  # killed or crashed: the hunt cannot have recorded that
                self.hunts.finish(hunt_id, HuntState.FAILED, error=f"the hunt process ended with {process.exitcode}")
        hunt = self.hunts.claim_queued()
        if hunt is None:
            return
        context = multiprocessing.get_context("forkserver")
        process = context.Process(
            target=_run_hunt, args=(self.rt.config, hunt.id, server_lifeline()), name=f"hunt-{hunt.id}", daemon=True
        )
        process.start()
        self._running = (hunt.id, process)
        log.info("hunt_started", hunt=hunt.id, kind=hunt.kind.value, pid=process.pid)

    async def _every(self, seconds: float, work: Callable[[], None]) -> None:
        while True:
            try:
                await asyncio.to_thread(work)
            except Exception as exc:  # a failed round is retried at the next one; the server keeps running
                reason = unavailable(exc)
                if reason is not None:
                    log.error("retro_hunt_job_waiting", job=work.__name__, error=reason)
                else:
                    log.exception("retro_hunt_job_failed", job=work.__name__)
            await asyncio.sleep(seconds)


def _run_hunt(config: Config, hunt_id: str, lifeline: Connection) -> None:
    """In the hunt's own process: lower priority, a runtime of its own, the hunt to its end."""
    exit_with_server(lifeline)
    configure_logging(config.log.level, config.log.format)
    rt = Runtime(config)
    lower_priority()
    try:
        hunt = HuntStore(rt.db).get(hunt_id)
        asyncio.run(Hunter(rt).run(hunt))
    finally:
        rt.close()
