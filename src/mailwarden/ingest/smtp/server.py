"""`SmtpServer`: every configured listener, who is admitted, and the spool commit behind each 250.

The server holds what the sessions share: the per-address connection counts, the in-flight DATA
budget, the AUTH throttle and its CPU slots, and the commits still being written when it stops.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import Counter
from collections.abc import Callable

import structlog

from mailwarden.dns import Resolver
from mailwarden.errors import ConfigError
from mailwarden.ingest import replies as r
from mailwarden.ingest.access import client_certificate_context
from mailwarden.ingest.config import SmtpConfig
from mailwarden.ingest.data import DataBudget
from mailwarden.ingest.replies import Reply
from mailwarden.ingest.smtp.listener import Listener, RecipientCheck, SenderCheck
from mailwarden.ingest.smtp.session import SmtpSession
from mailwarden.ingest.spool import Spool, SpoolEntry
from mailwarden.ingest.tls import server_context
from mailwarden.model import Envelope
from mailwarden.throttle import SignInThrottle

log = structlog.get_logger(__name__)

_AUTH_CONCURRENCY = 2  # password hashing is deliberately expensive: bound the CPU and memory it takes


class SmtpServer:
    """Runs every configured listener; a message is answered 250 only after the spool committed it."""

    def __init__(
        self,
        config: SmtpConfig,
        spool: Spool,
        recipient_check: RecipientCheck,
        *,
        on_spooled: Callable[[SpoolEntry], None] | None = None,
        auth_throttle: SignInThrottle | None = None,
        resolver: Resolver | None = None,
        sender_check: SenderCheck | None = None,
    ) -> None:
        self.config = config
        self.spool = spool
        self.recipient_check = recipient_check
        self.sender_check = sender_check  # outbound listeners: restricted senders (docs/outbound.md)
        self.resolver = resolver  # for the client's name in our Received field; none: `unknown`
        self.data_budget = DataBudget(config.max_data_in_flight)
        self.hostname = config.hostname or socket.getfqdn()
        self.draining = False
        self._on_spooled = on_spooled
        self._servers: dict[str, asyncio.Server] = {}
        self._sessions: set[SmtpSession] = set()
        self._per_ip: Counter[str] = Counter()
        self._commits: set[asyncio.Task[SpoolEntry]] = set()
        self._all_closed: asyncio.Event | None = None
        self.auth_slots = asyncio.Semaphore(_AUTH_CONCURRENCY)
        self.auth_throttle = auth_throttle or SignInThrottle()

    async def start(self) -> None:
        """Open every listener; a listener that cannot bind or load its client CA stops start-up, field named."""
        self.draining = False
        self._all_closed = asyncio.Event()
        tls_context = await asyncio.to_thread(
            server_context, self.config.tls_cert, self.config.tls_key, hostname=self.hostname
        )
        if self.config.tls_cert is None:
            log.warning("smtp.self_signed_certificate", hostname=self.hostname)
        # every context first: a client CA that cannot be loaded stops start-up before anything listens
        listeners = [
            Listener(listener_config, self, await self._tls_context(index, tls_context))
            for index, listener_config in enumerate(self.config.listeners)
        ]
        for index, listener in enumerate(listeners):
            await self._listen(index, listener)

    async def _listen(self, index: int, listener: Listener) -> None:
        """Open one listener's socket; a port that cannot be bound closes the others and stops start-up."""
        listener_config = listener.config
        if listener_config.allow_any_source:
            log.warning("smtp.journal_open_to_any_source", listener=listener.name)
        try:
            server = await asyncio.get_running_loop().create_server(
                lambda: SmtpSession(listener),
                listener_config.host,
                listener_config.port,
                ssl=listener.tls_context if listener_config.implicit_tls else None,
                reuse_address=True,
            )
        except OSError as exc:
            await self._close_listeners()
            raise ConfigError(
                f"cannot listen on {listener_config.host}:{listener_config.port}: {exc.strerror}",
                field=f"smtp.listeners.{index}",
            ) from None
        self._servers[listener.name] = server
        log.info(
            "smtp.listening",
            listener=listener.name,
            role=listener.role,
            address=f"{listener_config.host}:{self.bound_ports()[listener.name]}",
            implicit_tls=listener_config.implicit_tls,
        )

    async def _tls_context(self, index: int, shared: ssl.SSLContext) -> ssl.SSLContext:
        """The listener's own context when it verifies client certificates; the shared one otherwise."""
        listener = self.config.listeners[index]
        if listener.tls_client_ca is None:
            return shared
        return await asyncio.to_thread(
            client_certificate_context,
            self.config.tls_cert,
            self.config.tls_key,
            hostname=self.hostname,
            client_ca=listener.tls_client_ca,
            field=f"smtp.listeners.{index}.tls_client_ca",
        )

    def bound_ports(self) -> dict[str, int]:
        """Listener name → the port it really listens on (tests configure port 0)."""
        return {name: server.sockets[0].getsockname()[1] for name, server in self._servers.items() if server.sockets}

    async def stop(self, *, drain_timeout: float = 30) -> None:
        """Stop accepting; let sessions in a transaction finish (up to `drain_timeout`); end the rest."""
        self.draining = True
        await self._close_listeners()
        for session in list(self._sessions):
            session.drain()
        if self._sessions and self._all_closed is not None:
            try:
                await asyncio.wait_for(self._all_closed.wait(), drain_timeout)
            except TimeoutError:
                log.warning("smtp.drain_timeout", sessions=len(self._sessions))
        for session in list(self._sessions):
            session.abort()
        if self._commits:
            # a commit whose client went away still finishes: the spool stays consistent
            await asyncio.gather(*self._commits, return_exceptions=True)

    async def _close_listeners(self) -> None:
        servers, self._servers = list(self._servers.values()), {}
        for server in servers:
            server.close()
        for server in servers:
            await server.wait_closed()

    # ---- used by sessions ----------------------------------------------------------------------
    def admit(self, session: SmtpSession) -> Reply | None:
        """Count a new connection in; the reply that turns it away (shutting down, too many from its address)."""
        if self.draining:
            return r.SHUTTING_DOWN
        ip = session.client_ip or ""
        if self._per_ip[ip] >= self.config.max_connections_per_ip:
            return r.TOO_MANY_CONNECTIONS
        self._per_ip[ip] += 1
        self._sessions.add(session)
        if self._all_closed is not None:
            self._all_closed.clear()
        return None

    def release(self, session: SmtpSession) -> None:
        """Count an admitted connection out when it ends."""
        if session not in self._sessions:
            return
        self._sessions.discard(session)
        ip = session.client_ip or ""
        self._per_ip[ip] -= 1
        if self._per_ip[ip] <= 0:
            del self._per_ip[ip]
        if not self._sessions and self._all_closed is not None:
            self._all_closed.set()

    async def commit(self, listener: str, envelope: Envelope, raw: bytes, entry_id: str) -> SpoolEntry:
        """Write the message to the spool; the write finishes even when the client hangs up meanwhile."""
        task = asyncio.ensure_future(self._put(listener, envelope, raw, entry_id))
        self._commits.add(task)
        task.add_done_callback(self._commits.discard)
        return await asyncio.shield(task)

    async def _put(self, listener: str, envelope: Envelope, raw: bytes, entry_id: str) -> SpoolEntry:
        entry = await self.spool.put_async(listener, envelope, raw, entry_id=entry_id)
        if self._on_spooled is not None:
            try:
                self._on_spooled(entry)
            except Exception:
                log.exception("smtp.on_spooled_failed", entry=entry.id)
        return entry
