"""The delivery agent: takes due jobs off the queue, relays them, retries, bounces, and reports each step.

Every change to a job is on disk before the agent reports it, so a crash at any point loses no message
and no trace event; the price is that a crash between the next hop's 250 and that write delivers the
message again (at least once, as every MTA; the window is one file write).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import structlog

from mailwarden.deliver.config import DeliveryConfig
from mailwarden.deliver.dsn import RecipientFailure, build_dsn
from mailwarden.deliver.queue import DeliveryJob, DeliveryQueue, FinishedEvent, JobKind, Route
from mailwarden.deliver.relay import DeliveryResult, Outcome, RecipientResult, Sender
from mailwarden.ids import derive_id

log = structlog.get_logger(__name__)

STATUS_EXPIRED = "4.4.7"  # RFC 3463: delivery time expired


class DeliveryEventType(StrEnum):
    """Message trace events the delivery layer reports (EOP's Deliver, Defer, Fail and DSN)."""

    DELIVER = "deliver"
    DEFER = "defer"
    FAIL = "fail"
    DSN = "dsn"


class JobInFlightError(Exception):
    """The job is being delivered right now: it can be neither retried nor deleted until the attempt ends."""


# on_event(message_id, event_type, recipient, detail, smtp_reply); may be a plain or an async function.
OnEvent = Callable[[str, DeliveryEventType, str, str, str], Awaitable[None] | None]


def _now() -> datetime:
    return datetime.now(UTC)


def _internet(_sender: str) -> Route:
    return Route(pool="default")


class DeliveryAgent:
    """Delivers due jobs with at most `config.concurrency` attempts at once, and at most
    `config.pool_limit(pool)` of one pool: a pool whose relay is slow waits alone (docs/outbound.md).

    `dsn_route` gives the route of a DSN to a sender (default: the internet through the default pool);
    `clock` is the time source (tests).
    """

    def __init__(
        self,
        queue: DeliveryQueue,
        relay: Sender,
        config: DeliveryConfig,
        on_event: OnEvent,
        *,
        dsn_route: Callable[[str], Route] = _internet,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.queue = queue
        self.relay = relay
        self.config = config
        self.on_event = on_event
        self.reporting_mta = config.ehlo_hostname()
        self._dsn_route = dsn_route
        self._clock = clock
        self._slots = asyncio.Semaphore(config.concurrency)
        self._wake = asyncio.Event()
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._pool_of: dict[str, str] = {}  # job id in flight → its pool
        self._busy: dict[str, int] = {}  # pool → attempts in flight
        self._waiting: set[str] = set()  # due jobs whose pool is at its limit: not a reason to wake
        self._operated: set[str] = set()  # jobs an administrator is retrying or deleting: not started meanwhile
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._unreported = False  # finished jobs wait on disk for their events to be reported

    @property
    def running(self) -> bool:
        return self._loop_task is not None and not self._loop_task.done()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def start(self) -> None:
        if self.running:
            return
        self._stopping = False
        await self.replay_finished()
        self._loop_task = asyncio.create_task(self._run(), name="delivery-agent")
        log.info("delivery_agent_started", pending=self.queue.pending_count(), concurrency=self.config.concurrency)

    async def stop(self, drain_timeout: float = 30.0) -> None:
        """Take no new jobs; let attempts in flight finish for up to `drain_timeout` seconds.

        An attempt still running then is cancelled; its job stays queued as it was before the attempt
        and is tried again after the next start.
        """
        # the flag, not only the cancel: Python 3.11's wait_for can swallow a cancellation
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
            self._loop_task = None
        tasks = list(self._in_flight.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=drain_timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if pending:
                log.warning("delivery_agent_drain_timeout", left_queued=len(pending))
        log.info("delivery_agent_stopped", pending=self.queue.pending_count())

    def notify(self) -> None:
        """Look at the queue now (a job was enqueued) instead of at the next poll."""
        self._wake.set()

    async def submit(self, job: DeliveryJob) -> None:
        """Enqueue durably and wake the agent."""
        await asyncio.to_thread(self.queue.enqueue, job)
        self.notify()

    def is_in_flight(self, job_id: str) -> bool:
        """True while an attempt of the job runs."""
        return job_id in self._in_flight

    async def retry_now(self, job_id: str) -> DeliveryJob | None:
        """An administrator's "retry now": the job is due at once and the agent looks at the queue.

        Call on the agent's loop. Raises JobInFlightError while an attempt of it runs; None when the job
        is not queued (delivered, given up or deleted meanwhile)."""
        return await self._operate(job_id, lambda: self.queue.retry_at(job_id, self._clock()))

    async def delete(self, job_id: str) -> DeliveryJob | None:
        """An administrator deletes a queued job: it is never attempted again (no DSN, no trace event).

        Call on the agent's loop. Raises JobInFlightError while an attempt of it runs; None when the job
        is not queued."""

        def remove() -> DeliveryJob | None:
            job = self.queue.get(job_id)
            if job is not None:
                self.queue.remove(job_id)
            return job

        return await self._operate(job_id, remove)

    async def _operate(self, job_id: str, change: Callable[[], DeliveryJob | None]) -> DeliveryJob | None:
        # checked and marked on the loop, with no await in between: an attempt cannot start meanwhile
        if job_id in self._in_flight or job_id in self._operated:
            raise JobInFlightError(job_id)
        self._operated.add(job_id)
        try:
            return await asyncio.to_thread(change)
        finally:
            self._operated.discard(job_id)
            self.notify()

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            if self._unreported:
                await self.replay_finished()
            try:
                jobs = await asyncio.to_thread(self.queue.due, self._clock())
            except OSError as exc:  # the queue directory itself is unreadable: wait and look again
                log.error("delivery_queue_unreadable", error=str(exc))
                jobs = []
            self._waiting.clear()
            for job in jobs:
                if job.id in self._in_flight or job.id in self._operated:
                    continue
                pool = job.route.pool
                if self._busy.get(pool, 0) >= self.config.pool_limit(pool):  # each pool is a queue of its own
                    self._waiting.add(job.id)
                    continue
                await self._slots.acquire()
                if self._stopping:
                    self._slots.release()
                    return
                # the list is a snapshot: while we waited for a slot the job may have been delivered
                # (removed) or rescheduled; starting it again would send it twice
                busy = job.id in self._in_flight or job.id in self._operated
                if busy or not self.queue.is_due(job.id, self._clock()):
                    self._slots.release()
                    continue
                task = asyncio.create_task(self._attempt(job), name=f"deliver-{job.id}")
                self._in_flight[job.id] = task
                self._pool_of[job.id] = pool
                self._busy[pool] = self._busy.get(pool, 0) + 1
                task.add_done_callback(functools.partial(self._done, job.id))
            await self._sleep()

    def _done(self, job_id: str, _task: asyncio.Task[None]) -> None:
        self._in_flight.pop(job_id, None)
        pool = self._pool_of.pop(job_id, None)
        if pool is not None:
            self._busy[pool] -= 1
        self._slots.release()
        self._wake.set()  # a slot is free, and the job may have been rescheduled for soon

    async def _sleep(self) -> None:
        wait = self.config.poll_interval
        next_due = self.queue.next_due_at(exclude=self._in_flight.keys() | self._waiting)
        if next_due is not None:
            wait = max(0.0, min(wait, (next_due - self._clock()).total_seconds()))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self._wake.wait()

    async def _attempt(self, job: DeliveryJob) -> None:
        try:
            result = await self.relay.send(job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in the relay must not lose the job: treat it as a temporary failure
            log.exception("delivery_relay_error", job_id=job.id)
            text = f"internal error in the relay: {type(exc).__name__}: {exc}"
            result = DeliveryResult(tuple(RecipientResult(r, Outcome.TEMPORARY, "4.3.0", text) for r in job.recipients))
        try:
            await self._apply(job, result)
        except Exception as exc:
            # the job stays on disk for its recipients as before; wait before trying it again (not in a tight loop)
            log.exception("delivery_apply_error", job_id=job.id)
            with contextlib.suppress(Exception):
                next_at = self._clock() + self._backoff(job.attempts)
                await asyncio.to_thread(self.queue.reschedule, job, f"internal error: {exc}", next_at)

    async def _apply(self, job: DeliveryJob, result: DeliveryResult) -> None:
        """Make the attempt's result durable first, then report its events: a crash in between neither
        sends the job again nor loses what happened (a finished job keeps its events on disk)."""
        now = self._clock()
        attempt = job.attempts + 1
        events: list[FinishedEvent] = []
        failures: list[RecipientFailure] = []
        for r in result.with_outcome(Outcome.DELIVERED):
            events.append(_event(job, DeliveryEventType.DELIVER, r.recipient, f"delivered to {r.remote_mta}", r.reply))
        for r in result.with_outcome(Outcome.PERMANENT):
            events.append(_event(job, DeliveryEventType.FAIL, r.recipient, r.text, r.reply))
            failures.append(_failure(r, now))
        temporary = result.with_outcome(Outcome.TEMPORARY)
        expired = bool(temporary) and now >= job.expires_at
        if expired:
            for r in temporary:
                detail = f"expired after {attempt} attempts: {r.description}"
                events.append(_event(job, DeliveryEventType.FAIL, r.recipient, detail, r.reply))
                failures.append(replace(_failure(r, now), status=STATUS_EXPIRED, reason=detail))

        # the DSN is queued before the job is changed: a crash in between queues the same DSN again
        if failures:
            events += await self._report(job, failures, attempt)
        if temporary and not expired:
            next_at = min(now + self._backoff(job.attempts), job.expires_at)
            remaining = replace(job, recipients=tuple(r.recipient for r in temporary))
            await asyncio.to_thread(self.queue.reschedule, remaining, temporary[0].description, next_at)
            for r in temporary:
                detail = f"{r.description}; next attempt at {next_at.isoformat(timespec='seconds')}"
                events.append(_event(job, DeliveryEventType.DEFER, r.recipient, detail, r.reply))
            await self._emit_all(events)
        else:
            self.queue.finish(job.id, events)  # on the loop, before anything else runs: see its docstring
            await asyncio.to_thread(self.queue.sync)
            await self._report_finished(job.id, events)

    def _backoff(self, failed_before: int) -> timedelta:
        """Wait after the (failed_before + 1)-th failed attempt: first_retry × factorⁿ, at most max_retry."""
        first = self.config.first_retry.total_seconds()
        longest = self.config.max_retry.total_seconds()
        factor = self.config.retry_factor
        # capped exponent: factor ** n overflows a float long before a queue lifetime runs out
        seconds = first * factor ** min(failed_before, 64)
        return timedelta(seconds=min(seconds, longest))

    async def _report(self, job: DeliveryJob, failures: list[RecipientFailure], attempt: int) -> list[FinishedEvent]:
        """Bounce to the sender, unless that would make a loop (null sender, or the job is itself a DSN)."""
        if job.kind is JobKind.DSN:
            log.warning(
                "delivery_dsn_dropped",
                job_id=job.id,
                message_id=job.message_id,
                recipient=job.recipients[0],
                reason=failures[0].diagnostic or failures[0].reason,
            )
            return []
        if not job.mail_from:
            log.info("delivery_no_dsn_null_sender", job_id=job.id, message_id=job.message_id)
            return []
        dsn = build_dsn(job.message, job.mail_from, failures, self.reporting_mta, arrival_date=job.created_at)
        dsn_job = DeliveryJob.create(
            message_id=job.message_id,
            mail_from="",
            recipients=[job.mail_from],
            route=self._dsn_route(job.mail_from),
            message=dsn,
            lifetime=self.config.max_queue_lifetime,
            kind=JobKind.DSN,
            now=self._clock(),
        )
        # derived from the job and the attempt: queued again after a crash, it replaces itself
        await asyncio.to_thread(self.queue.enqueue, replace(dsn_job, id=derive_id(job.id, f"dsn/{attempt}")))
        names = ", ".join(f.recipient for f in failures)
        return [_event(job, DeliveryEventType.DSN, job.mail_from, f"DSN to the sender for {names}", "")]

    async def replay_finished(self) -> None:
        """Report the events of finished jobs the trace does not have yet (a crash came in between, or
        the database was away), then forget them."""
        self._unreported = False
        for job_id, events in (await asyncio.to_thread(self.queue.finished)).items():
            await self._report_finished(job_id, events)

    async def _report_finished(self, job_id: str, events: list[FinishedEvent]) -> None:
        """Report a finished job's events; those that could not be reported stay on disk for later."""
        for n, event in enumerate(events):
            if not await self._emit(event):
                await asyncio.to_thread(self.queue.finish, job_id, events[n:])  # keeps only what is left
                self._unreported = True
                return
        await asyncio.to_thread(self.queue.forget, job_id)

    async def _emit_all(self, events: list[FinishedEvent]) -> None:
        for event in events:
            await self._emit(event)

    async def _emit(self, event: FinishedEvent) -> bool:
        """Report one event; False when the receiver failed (it is logged)."""
        try:
            log.info(
                "delivery_event",
                message_id=event.message_id,
                event_type=event.kind,
                recipient=event.recipient,
                detail=event.detail,
            )
            outcome = self.on_event(
                event.message_id, DeliveryEventType(event.kind), event.recipient, event.detail, event.reply
            )
            if inspect.isawaitable(outcome):
                await outcome
        except Exception as exc:
            log.error(
                "delivery_event_callback_failed",
                message_id=event.message_id,
                event_type=event.kind,
                error=f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}",
                kept="until it can be reported",
            )
            return False
        return True


def _event(job: DeliveryJob, kind: DeliveryEventType, recipient: str, detail: str, reply: str) -> FinishedEvent:
    # a DSN's own fate is traced on the original message as what happened to the DSN
    if job.kind is JobKind.DSN:
        detail = f"DSN: {detail}"
    return FinishedEvent(job.message_id, kind.value, recipient, detail, reply)


def _failure(result: RecipientResult, now: datetime) -> RecipientFailure:
    return RecipientFailure(
        recipient=result.recipient,
        status=result.status,
        diagnostic=result.reply or result.text,
        remote_mta=result.remote_mta,
        last_attempt=now,
        diagnostic_type="smtp" if result.reply else "X-mailwarden",
    )
