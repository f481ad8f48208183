"""Offline scans of messages from files (`mailwarden scan`): in this process, or in scanning processes
(one per core), the results always in input order.

The input is cut into *units*: a file, or a run of an mbox's messages, so one large mbox is shared out
too. A scanning process gets units by path and reads them itself (no message bytes cross over), builds
its pipeline once, and sends back per message a small `Scanned`: the JSON line already encoded, or the
table's row, and the history record when one is asked for. What one message does (unreadable, not mail,
a failing scan, a process that died on it) is reported for that message and stops nothing else.
"""

from __future__ import annotations

import asyncio
import collections
import json
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson

from mailwarden import ids
from mailwarden.enforce.record import monitor_record
from mailwarden.errors import MailwardenError
from mailwarden.ingest.files import MAX_MESSAGE_BYTES, InputItem, read_items, split_mbox
from mailwarden.lifeline import exit_with_server, forked_from_server, server_lifeline
from mailwarden.logs import configure as configure_logging
from mailwarden.model import Envelope, Message, Organisation, Policy, Verdict
from mailwarden.model.direction import assumed_direction
from mailwarden.model.trace import EventRecord, MessageRecord
from mailwarden.pipeline.cpu import run_inline, settle
from mailwarden.pipeline.engine import Pipeline
from mailwarden.pipeline.registry import BUILTIN_STAGES
from mailwarden.service.config import Config
from mailwarden.service.process_pool import end_now
from mailwarden.service.process_pool import result as pool_result
from mailwarden.service.runtime import Runtime, offline_envelope

MBOX_RUN = 8  # an mbox's messages per unit
TASK_MESSAGES = 8  # about this many messages per round trip to a scanning process (scanned concurrently)
TASKS_PER_PROCESS = 4  # round trips in flight per process: none waits for the next while one is read
# a scanning process costs about 0.2 s of CPU to start (its pipeline, what the first scans load), what
# about 50 messages' scans cost: fewer messages than this per process are not worth one by default
MESSAGES_PER_PROCESS = 100
DEATHS_IN_A_ROW = 3  # units in a row that kill their process: the processes, not the messages, are at fault
DIED = "scan failed: the scanning process died on this message"


class ScanningFailed(MailwardenError):
    """The scanning processes cannot scan: their pipeline cannot be built, or they keep dying."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def __reduce__(self) -> tuple[type[ScanningFailed], tuple[str, int]]:
        return ScanningFailed, (str(self), self.exit_code)


@dataclass(frozen=True, slots=True)
class Unit:
    """A file, or the messages [start, stop) of an mbox; `size` is what it counts for on a progress bar."""

    path: str
    size: int
    messages: int = 1
    start: int = 0
    stop: int | None = None


@dataclass(frozen=True, slots=True)
class Row:
    """What the table shows of one message."""

    sender: str
    subject: str
    category: str
    scl: int
    bcl: int
    action: str


@dataclass(frozen=True, slots=True)
class Scanned:
    """One message's result: an error, or its JSON line / table row and (with --record) its record."""

    source: str
    error: str | None = None
    line: bytes | None = None
    row: Row | None = None
    record: tuple[MessageRecord, list[EventRecord]] | None = None


@dataclass(frozen=True, slots=True)
class ScanSettings:
    """What every scanner of one run needs (picklable: it is sent to each scanning process)."""

    config: Config
    organisation: Organisation | None
    policy: Policy
    as_json: bool = False
    record: bool = False


def plan(files: Iterable[Path]) -> list[Unit]:
    """The units of the inputs, in order: each file whole, an mbox in runs of MBOX_RUN messages."""
    units: list[Unit] = []
    for path in files:
        try:
            size = path.stat().st_size
            with path.open("rb") as handle:
                mbox = handle.read(5) == b"From " and size <= MAX_MESSAGE_BYTES
            count = len(split_mbox(path.read_bytes())) if mbox else 1
        except OSError:  # the scanner reports it when it reads the file
            units.append(Unit(str(path), 0))
            continue
        if count == 1:
            units.append(Unit(str(path), size))
            continue
        for start in range(0, count, MBOX_RUN):
            stop = min(start + MBOX_RUN, count)
            units.append(Unit(str(path), size * (stop - start) // count, stop - start, start, stop))
    return units


def json_line(row: dict[str, Any]) -> bytes:
    """One JSON line; text that is no valid Unicode (a lone surrogate from a broken header) is escaped."""
    try:
        return orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)
    except orjson.JSONEncodeError:
        return json.dumps(row).encode() + b"\n"


class OfflineScanner:
    """Scans units with one pipeline on an event loop of its own."""

    def __init__(self, settings: ScanSettings, pipeline: Pipeline) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.loop = asyncio.new_event_loop()
        self._mbox: tuple[str, list[InputItem]] | None = None  # the last mbox read: its next run is likely next
        organisation = settings.organisation
        self._domains = organisation.domain_names if organisation else frozenset()
        self._organisation_name = organisation.name if organisation else None

    def close(self) -> None:
        self.loop.run_until_complete(self.pipeline.close())
        self.loop.close()

    def scan(self, units: Sequence[Unit]) -> list[list[Scanned]]:
        """Per unit, its messages' results; the messages of all units are scanned concurrently."""
        items = [self._items(unit) for unit in units]

        async def run() -> list[Scanned]:
            return list(await asyncio.gather(*(self._one(item) for group in items for item in group)))

        flat = iter(self.loop.run_until_complete(run()))
        return [[next(flat) for _ in group] for group in items]

    def _items(self, unit: Unit) -> list[InputItem]:
        if unit.stop is None:
            return list(read_items([Path(unit.path)]))
        if self._mbox is None or self._mbox[0] != unit.path:
            self._mbox = (unit.path, list(read_items([Path(unit.path)])))
        return self._mbox[1][unit.start : unit.stop]

    async def _one(self, item: InputItem) -> Scanned:
        if item.raw is None:
            return Scanned(item.source, error=item.error)
        message = Message(item.raw)
        if not message.looks_like_mail():
            return Scanned(item.source, error="not an email message (no mail header block)")
        envelope = offline_envelope(message)
        settings = self.settings
        direction = assumed_direction(envelope.mail_from, envelope.rcpt_to, self._domains)
        try:
            verdict = await self.pipeline.scan(
                message, envelope, settings.policy, organisation=settings.organisation, direction=direction
            )
        except Exception as exc:  # the engine guards stages; this guards the engine itself
            return Scanned(item.source, error=f"scan failed: {type(exc).__name__}: {exc}")
        record = self._record(message, envelope, verdict) if settings.record else None
        if settings.as_json:
            return Scanned(item.source, line=json_line(_json_row(item.source, message, verdict)), record=record)
        row = Row(
            message.from_address or "",
            message.subject,
            verdict.category.value,
            verdict.scl,
            verdict.bcl,
            verdict.disposition.action.value,
        )
        return Scanned(item.source, row=row, record=record)

    def _record(
        self, message: Message, envelope: Envelope, verdict: Verdict
    ) -> tuple[MessageRecord, list[EventRecord]]:
        return monitor_record(
            message_id=ids.new_id(envelope.received_at),
            message=message,
            envelope=envelope,
            verdict=verdict,
            organisation=self._organisation_name,
            source="scan",
            receive_detail="offline scan",
        )


def _json_row(source: str, message: Message, verdict: Verdict) -> dict[str, Any]:
    return {
        "file": source,
        "message_id": message.message_id,
        "from": message.from_address,
        "subject": message.subject,
        **verdict.as_dict(),
    }


def scan_in_process(scanner: OfflineScanner, units: Iterable[Unit]) -> Iterator[tuple[Unit, list[Scanned]]]:
    """`--jobs 1`: each unit in turn, in this process."""
    for unit in units:
        [results] = scanner.scan([unit])
        yield unit, results


class ScanJobs:
    """`processes` scanning processes (forked from this process, see `_start`): units in, results out in
    input order.

    Leaving the `with` block ends every process, also on Ctrl-C or an error: none outlives the command
    (and a process whose command was killed outright exits by its lifeline)."""

    def __init__(self, settings: ScanSettings, processes: int, *, preload: Sequence[str] = ()) -> None:
        self.settings = settings
        self.processes = processes
        self.preload = [__name__, *(target.partition(":")[0] for target in BUILTIN_STAGES.values()), *preload]
        self._executor: ProcessPoolExecutor | None = None

    def __enter__(self) -> ScanJobs:
        self._start()
        assert self._executor is not None
        self._executor.submit(_ready)  # the processes start now, before the caller starts any thread
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop(kill=exc[0] is not None)

    def _start(self) -> None:
        # Forked from this process while it runs no other thread (no lock can be held by one): the
        # processes start with everything imported, a third of a second of CPU less per run than from a
        # forkserver, which imports it all again. Else (a progress bar's thread, a test's servers), from
        # the forkserver, as the server's scanning processes do.
        fork = threading.active_count() == 1 and sys.platform.startswith("linux")  # macOS's libraries forbid it
        context = multiprocessing.get_context("fork" if fork else "forkserver")
        if not fork:
            context.set_forkserver_preload(self.preload)  # imported once, by the forkserver
        self._executor = ProcessPoolExecutor(
            max_workers=self.processes,
            mp_context=context,
            initializer=_init_process,
            initargs=(self.settings, server_lifeline(), fork),
        )

    def _stop(self, *, kill: bool) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        if kill:  # what is in hand is of no use any more: end the processes now, not after their task
            end_now(executor)
        else:
            executor.shutdown(wait=True, cancel_futures=True)

    def run(self, units: Iterable[Unit]) -> Iterator[tuple[Unit, list[Scanned]]]:
        """Each unit with its results, in the order given, whatever finishes first.

        When a process dies (killed, out of memory, a crash in a library), new processes start and the
        units that were in flight are scanned again one at a time, so that the one that kills its process
        is found and reported, and holds up no other. Processes that die on DEATHS_IN_A_ROW units in a
        row, or cannot build their pipeline, end the run with ScanningFailed."""
        tasks = _tasks(units)
        in_flight: collections.deque[tuple[list[Unit], Future[list[list[Scanned]]]]] = collections.deque()
        alone: collections.deque[Unit] = collections.deque()  # after a death: one unit at a time
        deaths = 0
        limit = self.processes * TASKS_PER_PROCESS
        while True:
            if alone:
                unit = alone.popleft()
                try:
                    [results] = self._result(self._submit([unit]))
                except BrokenProcessPool:
                    self._restart()
                    deaths += 1
                    if deaths >= DEATHS_IN_A_ROW:
                        raise ScanningFailed(f"the scanning processes died on {deaths} inputs in a row") from None
                    yield unit, _died(unit)
                    continue
                deaths = 0
                yield unit, results
                continue
            while len(in_flight) < limit and (task := next(tasks, None)) is not None:
                in_flight.append((task, self._submit(task)))
            if not in_flight:
                return
            task, future = in_flight.popleft()
            try:
                done = self._result(future)
            except BrokenProcessPool:
                self._restart()
                alone.extend(task)
                for other, _ in in_flight:
                    alone.extend(other)
                in_flight.clear()
                continue
            yield from zip(task, done, strict=True)

    def _restart(self) -> None:
        self._stop(kill=True)
        self._start()

    def _result(self, future: Future[list[list[Scanned]]]) -> list[list[Scanned]]:
        assert self._executor is not None
        return pool_result(future, self._executor)

    def _submit(self, task: list[Unit]) -> Future[list[list[Scanned]]]:
        assert self._executor is not None
        try:
            return self._executor.submit(_scan_in_process, task)
        except BrokenProcessPool as exc:  # a process died meanwhile: `run` sees it when it gets here
            future: Future[list[list[Scanned]]] = Future()
            future.set_exception(exc)
            return future


def _tasks(units: Iterable[Unit]) -> Iterator[list[Unit]]:
    task: list[Unit] = []
    messages = 0
    for unit in units:
        task.append(unit)
        messages += unit.messages
        if messages >= TASK_MESSAGES:
            yield task
            task, messages = [], 0
    if task:
        yield task


def _died(unit: Unit) -> list[Scanned]:
    if unit.stop is None:
        return [Scanned(unit.path, error=DIED)]
    return [Scanned(f"{unit.path}:{index + 1}", error=DIED) for index in range(unit.start, unit.stop)]


# ---- inside a scanning process ---------------------------------------------------------------
_scanner: OfflineScanner | None = None
_failed: ScanningFailed | None = None
_settled = False


def _ready() -> None:
    return None


def _init_process(settings: ScanSettings, lifeline: Connection, forked: bool) -> None:
    global _scanner, _failed
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the command ends us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the command's handler, when forked from it
    if forked:
        forked_from_server()
    exit_with_server(lifeline)
    configure_logging(settings.config.log.level, settings.config.log.format)
    run_inline()
    try:
        _scanner = OfflineScanner(settings, Runtime(settings.config).pipeline)
    except Exception as exc:  # said by the first task, not by a process that dies (and is started again)
        code = exc.exit_code if isinstance(exc, MailwardenError) else 1
        _failed = ScanningFailed(str(exc) if isinstance(exc, MailwardenError) else f"{type(exc).__name__}: {exc}", code)


def _scan_in_process(task: list[Unit]) -> list[list[Scanned]]:
    global _settled
    if _failed is not None:
        raise _failed
    assert _scanner is not None
    results = _scanner.scan(task)
    if not _settled:  # the first messages have loaded what scanning loads lazily
        settle()
        _settled = True
    return results


def default_jobs(messages: int) -> int:
    """One scanning process per CPU this process may use, but none for fewer than MESSAGES_PER_PROCESS
    messages each: a short run is scanned sooner in this process than processes are started for it."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, messages // MESSAGES_PER_PROCESS))
