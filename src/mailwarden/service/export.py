"""The exporter: one loop per configured sink reads the outbox from that sink's cursor, renders the rows as
OCSF events (once, shared by the sinks), keeps what the sink's filter wants, sends, and advances the cursor
only after the sink acknowledged. A sink that fails keeps its cursor and tries the same batch again after
growing pauses; it never holds up mail or another sink. A housekeeping loop prunes what every sink has passed,
and trims the outbox to its bound, saying loudly when it drops rows nobody sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import structlog

from mailwarden import metrics
from mailwarden.export.config import ExportConfig, FileSink, NatsSink, SinkConfig, SyslogSink, WebhookSink
from mailwarden.export.event import ExportEvent
from mailwarden.export.ocsf import render
from mailwarden.export.sink import Sink, SinkError
from mailwarden.store.db import Database
from mailwarden.store.outbox import Outbox, OutboxItem

log = structlog.get_logger(__name__)
LONGEST_PAUSE = 60.0
RENDERED_KEPT = 20_000  # outbox rows whose rendering is kept for the other sinks


def build_sink(cfg: SinkConfig) -> Sink:
    """The sink a config section describes (its module is loaded only when configured)."""
    if isinstance(cfg, SyslogSink):
        from mailwarden.export.sinks.syslog import SyslogSink as Syslog

        return Syslog(
            cfg.name, cfg.host, cfg.port, transport=cfg.transport, ca_file=cfg.ca_file, format=cfg.format,
            app_name=cfg.app_name, facility=cfg.facility,
        )  # fmt: skip
    if isinstance(cfg, FileSink):
        from mailwarden.export.sinks.file import JsonLinesSink

        return JsonLinesSink(
            cfg.name, cfg.path, max_bytes=cfg.max_bytes, max_age_seconds=cfg.max_age_seconds, keep=cfg.keep
        )
    return _network_sink(cfg)


def _network_sink(cfg: SinkConfig) -> Sink:
    if isinstance(cfg, NatsSink):
        from mailwarden.export.sinks.nats import JetStreamSink

        return JetStreamSink(
            cfg.name, cfg.servers, cfg.subject, stream=cfg.stream, create_stream=cfg.create_stream,
            user=cfg.user, password=cfg.password, token=cfg.token, ca_file=cfg.ca_file, timeout=cfg.timeout_seconds,
        )  # fmt: skip
    assert isinstance(cfg, WebhookSink)
    from mailwarden.export.sinks.webhook import WebhookSink as Webhook

    return Webhook(
        cfg.name, cfg.url, cfg.secret, ca_file=cfg.ca_file, timeout=cfg.timeout_seconds, max_batch=cfg.max_batch
    )


def wanted(cfg: SinkConfig, event: ExportEvent) -> bool:
    return (not cfg.classes or event.class_uid in cfg.classes) and event.severity_id >= cfg.min_severity


class Rendered:
    """Outbox rows rendered once for every sink (bounded)."""

    def __init__(self) -> None:
        self._kept: OrderedDict[int, list[ExportEvent]] = OrderedDict()

    def __call__(self, item: OutboxItem) -> list[ExportEvent]:
        found = self._kept.get(item.seq)
        if found is None:
            found = render(item.seq, item.uid, item.kind, item.at, item.payload)
            self._kept[item.seq] = found
            if len(self._kept) > RENDERED_KEPT:
                self._kept.popitem(last=False)
        return found


class Exporter:
    def __init__(
        self, db: Database, config: ExportConfig, *, sinks: Sequence[tuple[SinkConfig, Sink]] | None = None
    ) -> None:
        self.outbox = Outbox(db)
        self.config = config
        self.sinks = list(sinks) if sinks is not None else [(c, build_sink(c)) for c in config.sinks if c.enabled]
        self.rendered = Rendered()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for cfg, sink in self.sinks:
            self._tasks.append(asyncio.create_task(self._run(cfg, sink), name=f"export-{cfg.name}"))
        self._tasks.append(asyncio.create_task(self._housekeeping(), name="export-housekeeping"))

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for _, sink in self.sinks:
            try:
                await sink.close()
            except Exception as exc:  # closing is best effort; the cursor is what matters
                log.warning("export_sink_close_failed", sink=sink.name, error=str(exc))

    # ---- one sink --------------------------------------------------------------------------------------
    async def _run(self, cfg: SinkConfig, sink: Sink) -> None:
        start_at = 0 if cfg.start == "oldest" else await asyncio.to_thread(self.outbox.newest)
        cursor = await asyncio.to_thread(self.outbox.cursor, cfg.name, start_at=start_at)
        pause = 1.0
        while not self._stop.is_set():
            try:
                moved = await self.step(cfg, sink, cursor)
            except SinkError as exc:
                await self._failed(cfg, exc.reason, pause)
                pause = min(pause * 2, LONGEST_PAUSE)
                continue
            except Exception as exc:  # the database away, a rendering bug: logged, tried again
                await self._failed(cfg, f"{type(exc).__name__}: {exc}", pause)
                pause = min(pause * 2, LONGEST_PAUSE)
                continue
            pause = 1.0
            if moved is None:
                await self._nap(self.config.poll_seconds)
            else:
                cursor = moved

    async def step(self, cfg: SinkConfig, sink: Sink, cursor: int) -> int | None:
        """Send the next batch after `cursor`; the new cursor, or None when there was nothing to send."""
        items = await asyncio.to_thread(self.outbox.after, cursor, limit=cfg.batch_size)
        if not items:
            metrics.EXPORT_LAG.labels(cfg.name).set(0)
            return None
        events = [e for item in items for e in self.rendered(item) if wanted(cfg, e)]
        if events:
            await sink.send(events)
            metrics.EXPORT_SENT.labels(cfg.name).inc(len(events))
        last = items[-1].seq
        await asyncio.to_thread(self.outbox.advance, cfg.name, last)
        if len(items) < cfg.batch_size:
            metrics.EXPORT_LAG.labels(cfg.name).set(0)
        return last

    async def _failed(self, cfg: SinkConfig, reason: str, pause: float) -> None:
        metrics.EXPORT_FAILURES.labels(cfg.name).inc()
        log.error("export_sink_failed", sink=cfg.name, error=reason, retry_in_seconds=pause)
        try:
            await asyncio.to_thread(self.outbox.failed, cfg.name, reason)
        except Exception as exc:  # the database may be the reason; the log line above says enough
            log.debug("export_failure_not_recorded", sink=cfg.name, error=str(exc))
        await self._nap(pause)

    async def _nap(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    # ---- keeping the outbox bounded --------------------------------------------------------------------
    async def _housekeeping(self) -> None:
        while not self._stop.is_set():
            await self._nap(self.config.housekeeping_seconds)
            if self._stop.is_set():
                return
            try:
                await asyncio.to_thread(self.housekeep)
            except Exception as exc:
                log.error("export_housekeeping_failed", error=f"{type(exc).__name__}: {exc}")

    def housekeep(self, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> tuple[int, int]:
        """Prune rows every configured sink has passed (none configured: only by age) and trim to the bound.
        (pruned, dropped unsent)."""
        names = {cfg.name for cfg, _ in self.sinks}
        cursors = self.outbox.cursors()
        gone = sorted(set(cursors) - names)
        if gone:
            self.outbox.forget(gone)
        below = min((cursors[n][0] for n in names if n in cursors), default=0) if names else 0
        pruned = self.outbox.prune(below=below, older_than=now() - timedelta(hours=self.config.retention_hours))
        dropped = self.outbox.trim(self.config.max_backlog)
        if dropped:
            metrics.OUTBOX_DROPPED.inc(dropped)
            log.error("outbox_dropping_oldest", dropped=dropped, max_backlog=self.config.max_backlog,
                      then="those events were never sent: a sink is down or too slow")  # fmt: skip
        newest = self.outbox.newest()
        for n in names:
            if n in cursors:
                metrics.EXPORT_LAG.labels(n).set(max(0, newest - cursors[n][0]))
        metrics.OUTBOX_ROWS.set(self.outbox.count())
        return pruned, dropped
