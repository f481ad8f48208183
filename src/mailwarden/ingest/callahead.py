"""Call-ahead recipient verification: ask the domain's next hop with `RCPT TO` whether an address exists.

A probe is an SMTP session to the next hop (aiosmtplib): EHLO, STARTTLS when offered, `MAIL FROM:<>`,
then one `RCPT TO` per address, and QUIT; no DATA is ever sent. An open probe is kept for the next
addresses, so a burst of recipients costs one connection: up to `checks_per_connection` RCPTs (Postfix
slows a client down after 10 refused recipients) and for `idle_seconds` after its last use. Replies:

* 2xx → Known;
* 550, 551, 553 with no enhanced status or a 5.1.x one (bad mailbox, RFC 3463) → Unknown;
* any other refusal, a 4xx, a lost connection or a time-out → Unavailable (the listener answers 451:
  a policy refusal of the probe is not an answer about the mailbox).

When the next hop cannot be reached at all, the following addresses are answered Unavailable at once for
a few seconds instead of each waiting for its own time-out.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiosmtplib
import structlog

from mailwarden.ingest.recipients import Known, Unavailable, Unknown, Verification

log = structlog.get_logger(__name__)

_UNKNOWN_CODES = frozenset({550, 551, 553})
_DOWN_SECONDS = 5.0  # after a failed connection, answer Unavailable this long without trying again


def classify_rcpt_reply(code: int, message: str) -> Verification:
    """What a next hop's reply to `RCPT TO` says about the mailbox."""
    text = " ".join(message.split())
    reply = f"{code} {text}".strip()
    if 200 <= code < 300:
        return Known(reply)
    status = text.split(" ", 1)[0]
    has_status = status.count(".") == 2 and status.replace(".", "").isdigit()
    if code in _UNKNOWN_CODES and (not has_status or status.startswith("5.1.")):
        return Unknown(reply)
    return Unavailable(f"next hop answered {reply}")


class _ProbeFailed(Exception):
    """The probe's session failed; `reachable` is False when the next hop could not be talked to at all."""

    def __init__(self, reason: str, *, reachable: bool = True) -> None:
        self.reachable = reachable
        super().__init__(reason)


@dataclass(slots=True, eq=False)
class _Probe:
    smtp: aiosmtplib.SMTP
    checks: int = 0
    last_used: float = 0.0


class CallAheadVerifier:
    """Verifies a domain's recipients at its next hop (`host`:`port`), at most `max_connections` at a time."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        helo: str,
        timeout: float,
        require_tls: bool = False,
        max_connections: int = 4,
        checks_per_connection: int = 10,
        idle_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._host, self._port = host, port
        self._where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._helo = helo
        self._timeout = timeout
        self._require_tls = require_tls
        self._checks_per_connection = checks_per_connection
        self._idle_seconds = idle_seconds
        self._clock = clock
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: list[_Probe] = []
        self._quitting: set[asyncio.Task[None]] = set()
        self._down_until = float("-inf")
        self._down_reason = ""

    async def verify(self, address: str) -> Verification:
        if self._clock() < self._down_until:
            return Unavailable(self._down_reason)
        async with self._slots:
            probe = self._take_idle()
            if probe is not None:
                try:
                    return await self._ask(probe, address)
                except _ProbeFailed:
                    pass  # the next hop may have closed a connection we kept: once more on a new one
            try:
                return await self._ask(await self._open(), address)
            except _ProbeFailed as exc:
                if not exc.reachable:
                    self._down_until = self._clock() + _DOWN_SECONDS
                    self._down_reason = str(exc)
                log.warning("recipients.call_ahead_failed", next_hop=self._where, reason=str(exc))
                return Unavailable(str(exc))

    async def close(self) -> None:
        """QUIT every kept probe."""
        for probe in self._idle:
            self._retire(probe)
        self._idle.clear()
        if self._quitting:
            await asyncio.gather(*self._quitting, return_exceptions=True)

    # ---- one address on one probe ----------------------------------------------------------------
    async def _ask(self, probe: _Probe, address: str) -> Verification:
        try:
            reply = await probe.smtp.execute_command(b"RCPT", f"TO:<{address}>".encode())
        except (aiosmtplib.SMTPException, OSError) as exc:
            probe.smtp.close()
            raise _ProbeFailed(f"lost connection with {self._where}: {_reason(exc)}") from None
        probe.checks += 1
        probe.last_used = self._clock()
        if reply.code == 421:  # the next hop is closing this connection
            probe.smtp.close()
            raise _ProbeFailed(f"{self._where} closed the connection: {reply.code} {reply.message}")
        self._keep(probe)
        return classify_rcpt_reply(reply.code, reply.message)

    # ---- kept probes -----------------------------------------------------------------------------
    def _take_idle(self) -> _Probe | None:
        now = self._clock()
        while self._idle:
            probe = self._idle.pop()
            if now - probe.last_used < self._idle_seconds and probe.smtp.is_connected:
                return probe
            self._retire(probe)
        return None

    def _keep(self, probe: _Probe) -> None:
        if probe.checks >= self._checks_per_connection:
            self._retire(probe)
            return
        self._idle.append(probe)
        asyncio.get_running_loop().call_later(self._idle_seconds, self._retire_idle)

    def _retire_idle(self) -> None:
        now = self._clock()
        expired = [p for p in self._idle if now - p.last_used >= self._idle_seconds]
        self._idle = [p for p in self._idle if p not in expired]
        for probe in expired:
            self._retire(probe)

    def _retire(self, probe: _Probe) -> None:
        task = asyncio.get_running_loop().create_task(self._quit(probe.smtp))
        self._quitting.add(task)
        task.add_done_callback(self._quitting.discard)

    async def _quit(self, smtp: aiosmtplib.SMTP) -> None:
        if not smtp.is_connected:
            return
        try:
            await smtp.quit(timeout=min(self._timeout, 5.0))
        except (aiosmtplib.SMTPException, OSError):
            smtp.close()

    # ---- opening a probe -------------------------------------------------------------------------
    async def _open(self) -> _Probe:
        try:
            return await self._session(use_tls=True)
        except _TlsFailed as exc:
            if self._require_tls:
                raise _ProbeFailed(str(exc)) from None
            # opportunistic TLS that fails to negotiate: ask in clear text, as the relay then delivers
            return await self._session(use_tls=False)

    async def _session(self, *, use_tls: bool) -> _Probe:
        smtp = aiosmtplib.SMTP(
            hostname=self._host,
            port=self._port,
            local_hostname=self._helo,
            timeout=self._timeout,
            start_tls=False,
            validate_certs=False,
        )
        try:
            await self._handshake(smtp, use_tls)
            reply = await smtp.execute_command(b"MAIL", b"FROM:<>")
        except _ProbeFailed:
            smtp.close()
            raise
        except (aiosmtplib.SMTPException, OSError) as exc:
            smtp.close()
            raise _ProbeFailed(f"{self._where} failed: {_reason(exc)}", reachable=False) from None
        if reply.code != 250:
            await self._quit(smtp)
            raise _ProbeFailed(f"{self._where} refused MAIL FROM:<>: {reply.code} {' '.join(reply.message.split())}")
        return _Probe(smtp, last_used=self._clock())

    async def _handshake(self, smtp: aiosmtplib.SMTP, use_tls: bool) -> None:
        try:
            await smtp.connect(timeout=self._timeout)
        except aiosmtplib.SMTPConnectResponseError as exc:
            raise _ProbeFailed(f"{self._where} answered {exc.code} {exc.message}", reachable=False) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise _ProbeFailed(f"connect to {self._where} failed: {_reason(exc)}", reachable=False) from None
        await smtp.ehlo()
        if use_tls and smtp.supports_extension("starttls"):
            try:
                await smtp.starttls(tls_context=_unverified_context(), server_hostname=self._host)
            except (aiosmtplib.SMTPException, ssl.SSLError, OSError) as exc:
                smtp.close()
                raise _TlsFailed(f"TLS with {self._where} failed: {_reason(exc)}") from None
            await smtp.ehlo()
        elif self._require_tls:
            raise _ProbeFailed(f"TLS is required, but {self._where} does not offer STARTTLS")


class _TlsFailed(Exception):
    """STARTTLS was offered but could not be negotiated."""


def _unverified_context() -> ssl.SSLContext:
    # as the relay's default: encryption against passive listeners; next hops rarely have a public certificate
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())
