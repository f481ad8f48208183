"""`mailwarden serve`: the SMTP listeners, the spool processor and the delivery agent in one process.

Start-up order: database migrated, spool opened (recovering what a crash left), processor and
delivery agent started (the spool backlog is worked off first), then the listeners accept mail.
SIGTERM / SIGINT drain in the reverse order: stop accepting and finish open SMTP sessions, finish
the messages in hand, let delivery attempts in flight end; whatever is left stays in the spool and
the queue for the next start.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Collection, Iterable
from datetime import UTC, datetime
from typing import Protocol

import structlog

from mailwarden import metrics
from mailwarden.deliver import DeliveryAgent, DeliveryEventType, DeliveryQueue, Relay
from mailwarden.enforce.notify import ALERT_MESSAGE_PREFIX
from mailwarden.enforce.pool import HIGH_RISK_POOL
from mailwarden.ids import new_id
from mailwarden.ingest import replies
from mailwarden.ingest.replies import Reply
from mailwarden.ingest.smtp import SessionInfo, SmtpServer
from mailwarden.ingest.spool import Spool
from mailwarden.model import ConnectionMode, ListenerRole
from mailwarden.model.trace import MessageRecord
from mailwarden.pipeline.connection import is_blocked
from mailwarden.pipeline.cpu import settle
from mailwarden.quarantine.digest import DIGEST_MESSAGE_PREFIX
from mailwarden.service.clawback import Clawback
from mailwarden.service.directory import OrgDirectory
from mailwarden.service.export import Exporter
from mailwarden.service.hunt_jobs import RetroHuntJobs
from mailwarden.service.operations import operations_for
from mailwarden.service.outbound import OutboundGuard, OutboundHousekeeping
from mailwarden.service.processor import Processor
from mailwarden.service.quarantine_jobs import QuarantineJobs, queue_dispatcher
from mailwarden.service.report_mail import ReportMailer
from mailwarden.service.restricted import SenderGate
from mailwarden.service.runtime import Runtime
from mailwarden.service.sender_activity import SenderActivityLookup
from mailwarden.service.verification import DomainVerifiers
from mailwarden.store.connections import BlockReason, ConnectionStats
from mailwarden.store.db import unavailable

log = structlog.get_logger(__name__)


class WebListener(Protocol):
    """The web application's listener (API and console), built by the command that serves."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class Server:
    def __init__(self, rt: Runtime, *, drain_timeout: float = 30.0, web: WebListener | None = None) -> None:
        self.rt = rt
        self.drain_timeout = drain_timeout
        self.web = web
        config = rt.config
        self.directory = OrgDirectory(rt.policies, refresh_seconds=config.processing.policy_refresh_seconds)
        self.spool: Spool | None = None
        self.smtp: SmtpServer | None = None
        self.processor: Processor | None = None
        self.agent: DeliveryAgent | None = None
        self.quarantine_jobs: QuarantineJobs | None = None
        self.report_mailer: ReportMailer | None = None
        self.clawback = Clawback(rt)
        self._clawback_task: asyncio.Task[None] | None = None
        self._clawback_stop = asyncio.Event()
        self._settled = False  # settle() ran after the first records
        self.exporter: Exporter | None = None
        self.senders = SenderGate(rt.db, self.directory)
        self.outbound = OutboundGuard(
            rt.db, self.directory.policy_of, self.directory.domains_of, redis_url=config.outbound.redis_url
        )
        self.sender_activity = SenderActivityLookup(rt.db, self.directory.domains_of)
        self.outbound_housekeeping = OutboundHousekeeping(rt.db, self.outbound)
        self.hunt_jobs: RetroHuntJobs | None = None
        self.operations = operations_for(rt)  # the operations views; retry and delete once the agent runs
        self.stopping = asyncio.Event()
        self.connection_stats = ConnectionStats(rt.db)
        self.verifiers = DomainVerifiers(
            secrets={name: value.get_secret_value() for name, value in config.secrets.items()},
            helo=config.delivery.ehlo_hostname(),
        )

    async def recipient_check(self, listener: str, rcpt: str, session: SessionInfo) -> Reply | None:
        """Inbound listeners take mail only for the organisations' domains that route through us, and
        only for the recipients the domain's verification knows (docs/recipients.md)."""
        found = self.directory.lookup(rcpt)
        if found is None or found[1].mode is ConnectionMode.JOURNAL:
            return replies.RELAY_DENIED
        tenant = found[0]
        # the IP block list is per organisation, so it is applied here, once the recipient names one;
        # a blocked message never reaches the spool or history, it is only counted
        if session.client_ip and is_blocked(tenant.policy, session.client_ip):
            try:
                await asyncio.to_thread(
                    self.connection_stats.count_blocked,
                    tenant.organisation.name,
                    session.client_ip,
                    BlockReason.IP_BLOCK_LIST,
                    datetime.now(UTC),
                )
            except Exception as exc:  # counting is best effort: the refusal must not depend on the database
                log.error("connection_count_failed", error=unavailable(exc) or f"{type(exc).__name__}: {exc}")
            return replies.IP_BLOCKED.filled(ip=session.client_ip)
        # in monitor mode too: a gateway that relays mail for unknown users makes the bounces all the same
        return await self.verifiers.check(found[1], rcpt)

    async def start(self) -> None:
        config = self.rt.config
        await asyncio.to_thread(self.rt.db.migrate)
        for directory in (config.paths.spool_dir, config.paths.queue_dir, config.paths.blob_dir):
            directory.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self.directory.refresh, force=True)
        self.spool = Spool(config.paths.spool_dir, fsync=config.processing.spool_fsync)
        spool = self.spool
        metrics.SPOOL_BACKLOG.set_function(lambda: spool.backlog)
        roles: dict[str, ListenerRole] = {listener.name: listener.role for listener in config.smtp.listeners}
        warn_without_high_risk_pool(roles.values(), config.delivery.pools)
        self.processor = Processor(self.rt, self.spool, self.directory, roles=roles)
        self.agent = DeliveryAgent(
            DeliveryQueue(config.paths.queue_dir),
            Relay(config.delivery),
            config.delivery,
            self._on_delivery_event,
            dsn_route=self.processor.outcomes.dsn_route,
        )
        self.processor.agent = self.agent
        self.processor.writer.on_recorded = self._recorded
        queue = self.agent.queue
        metrics.DELIVERY_QUEUE.set_function(queue.pending_count)
        await self.agent.start()
        self.operations.agent, self.operations.loop = self.agent, asyncio.get_running_loop()
        await self.processor.start()
        agent, processor = self.agent, self.processor
        dispatcher = queue_dispatcher(self.rt, agent.queue.enqueue, processor.outcomes.routes, agent.notify)
        self.outbound.hostname = config.delivery.ehlo_hostname()

        def send_alert(rcpts: list[str], raw: bytes) -> None:
            dispatcher(ALERT_MESSAGE_PREFIX + new_id(), "", rcpts, raw)

        self.outbound.send_alert = send_alert
        self.quarantine_jobs = QuarantineJobs(self.rt, dispatcher)
        await self.quarantine_jobs.start()
        self.report_mailer = ReportMailer(self.rt, dispatcher)
        await self.report_mailer.start()
        self._clawback_task = asyncio.create_task(self.clawback.serve(self._clawback_stop), name="clawback")
        self.exporter = Exporter(self.rt.db, config.export)
        await self.exporter.start()
        self.hunt_jobs = RetroHuntJobs(self.rt)
        await self.hunt_jobs.start()
        await self.outbound_housekeeping.start()
        self.smtp = SmtpServer(
            config.smtp, self.spool, self.recipient_check, resolver=self.rt.resolver, sender_check=self.senders.check
        )
        await self.smtp.start()
        if self.web is not None:
            await self.web.start()
        settle()  # what start-up loaded leaves the garbage collector's view (pipeline/cpu.py)
        log.info("mailwarden_ready", listeners=self.smtp.bound_ports(), backlog=self.spool.backlog)

    async def stop(self) -> None:
        log.info("mailwarden_stopping")
        if self.web is not None:
            await self.web.stop()
        if self.smtp is not None:
            await self.smtp.stop(drain_timeout=self.drain_timeout)
        await self.verifiers.close()
        if self.quarantine_jobs is not None:
            await self.quarantine_jobs.stop()
        if self.report_mailer is not None:
            await self.report_mailer.stop()
        if self.exporter is not None:
            await self.exporter.stop()
        if self._clawback_task is not None:
            self._clawback_stop.set()
            try:
                await asyncio.wait_for(self._clawback_task, self.drain_timeout)
            except TimeoutError:
                log.warning("clawback_stop_timeout", then="its leased recipients are taken again after the lease")
            await self.clawback.aclose()
        if self.hunt_jobs is not None:
            await self.hunt_jobs.stop()
        await self.outbound_housekeeping.stop()
        if self.processor is not None:
            await self.processor.stop(drain_timeout=self.drain_timeout)
        if self.agent is not None:
            await self.agent.stop(drain_timeout=self.drain_timeout)
        await self.rt.pipeline.close()
        if self.spool is not None:
            self.spool.close()
        log.info("mailwarden_stopped")

    def readiness(self) -> dict[str, bool]:
        """What `/readyz` checks besides the database: the spool is open and every listener listens."""
        spool = self.spool is not None and self.rt.config.paths.spool_dir.is_dir()
        listening = self.smtp is not None and len(self.smtp.bound_ports()) == len(self.rt.config.smtp.listeners)
        return {"spool": spool, "listeners": listening}

    async def _recorded(self, records: list[MessageRecord]) -> None:
        """Just recorded: outbound messages count against their senders' limits and add to their activity
        (docs/outbound.md), and the automatic clawback policy looks at each verdict (docs/clawback.md). One
        failing spares the others."""
        if not self._settled:  # the first records have loaded what recording loads lazily
            self._settled = True
            settle()
        try:
            await self.outbound.recorded(records)
        except Exception as exc:
            log.error("outbound_limits_failed", records=len(records), error=f"{type(exc).__name__}: {exc}")
        try:
            await self.sender_activity.recorded(records)
        except Exception as exc:
            log.error("sender_activity_failed", records=len(records), error=f"{type(exc).__name__}: {exc}")
        await asyncio.to_thread(self.clawback.auto, records, self.directory.policy_of)

    async def _on_delivery_event(
        self, message_id: str, kind: DeliveryEventType, recipient: str, detail: str, reply: str
    ) -> None:
        if message_id.startswith((DIGEST_MESSAGE_PREFIX, ALERT_MESSAGE_PREFIX)):  # no message history to trace in
            log.info("quarantine_digest_delivery", job=message_id, event_type=kind.value, recipient=recipient)
            return
        assert self.processor is not None
        await self.processor.writer.delivery_trace.on_event(message_id, kind, recipient, detail, reply)

    async def run(self) -> None:
        """Serve until SIGTERM or SIGINT, then drain."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        await self.start()
        try:
            await self.stopping.wait()
        finally:
            await self.stop()


def warn_without_high_risk_pool(roles: Iterable[ListenerRole], pools: Collection[str]) -> bool:
    """Say once at start-up when outbound mail is taken but `[delivery] pools` has no `high_risk`
    (each outbound spam message's trace says it too); True when it warned."""
    if ListenerRole.OUTBOUND not in set(roles) or HIGH_RISK_POOL in pools:
        return False
    log.warning(
        "high_risk_pool_missing",
        pools=sorted(pools),
        then="outbound spam leaves through the default pool; add high_risk to [delivery] pools",
    )
    return True
