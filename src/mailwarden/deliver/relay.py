"""The SMTP client that hands a queued message to its next hop (aiosmtplib), one transaction per next hop.

TLS follows Postfix's levels: STARTTLS is used whenever the next hop offers it, without checking the
certificate (`may`, opportunistic: better than clear text, and an unverifiable certificate is the norm
between MTAs); a route with `require_tls` never sends in clear text (`encrypt`), and with
`tls_verify` on it also checks the certificate and name (`secure`).
"""

from __future__ import annotations

import asyncio
import random
import re
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import aiosmtplib
import structlog

from mailwarden.deliver.config import DeliveryConfig
from mailwarden.deliver.queue import DeliveryJob, Route, parse_next_hop

log = structlog.get_logger(__name__)

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?:\s+|$)")

# Enhanced status codes (RFC 3463) for failures no server replied to.
STATUS_NO_ANSWER = "4.4.1"  # connection refused or timed out
STATUS_BAD_CONNECTION = "4.4.2"  # connection lost or a reply timed out
STATUS_DNS_TEMPORARY = "4.4.3"  # DNS server failure
STATUS_NO_SUCH_DOMAIN = "5.1.2"  # the recipient's domain does not exist
STATUS_NULL_MX = "5.1.10"  # RFC 7505: the domain accepts no mail
STATUS_ROUTING = "4.3.5"  # our own configuration does not allow delivery (unknown pool)
STATUS_TLS_NOT_OFFERED = "4.7.4"  # security features not supported
STATUS_TLS_FAILED = "4.7.5"  # cryptographic failure
STATUS_SMTPUTF8 = "5.6.7"  # RFC 6531: non-ASCII address and the next hop lacks SMTPUTF8


class Outcome(StrEnum):
    DELIVERED = "delivered"
    TEMPORARY = "temporary"
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class RecipientResult:
    """What happened to one recipient in one attempt.

    `code` is the next hop's SMTP reply code, or None when no server answered (connection failed, TLS
    required but not offered, DNS failure); `status` the enhanced status code; `text` the reply text
    without the enhanced code, or our reason when no server answered; `remote_mta` the host we talked to.
    """

    recipient: str
    outcome: Outcome
    status: str
    text: str
    code: int | None = None
    remote_mta: str | None = None

    @property
    def reply(self) -> str:
        """The next hop's reply as one line ("451 4.7.1 try later"), or "" when no server replied."""
        if self.code is None:
            return ""
        return f"{self.code} {self.status} {self.text}".rstrip()

    @property
    def description(self) -> str:
        return self.reply or self.text


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """Per-recipient results of one delivery attempt of one job, in the job's recipient order."""

    recipients: tuple[RecipientResult, ...]

    def with_outcome(self, outcome: Outcome) -> list[RecipientResult]:
        return [r for r in self.recipients if r.outcome is outcome]


class MxLookupError(Exception):
    """The MX hosts of a domain could not be found; `permanent` says whether trying again can help."""

    def __init__(self, message: str, *, permanent: bool, status: str) -> None:
        self.permanent = permanent
        self.status = status
        super().__init__(message)


MxResolver = Callable[[str], Awaitable[list[str]]]


class Sender(Protocol):
    """What the agent needs from a relay (tests pass scripted ones)."""

    async def send(self, job: DeliveryJob) -> DeliveryResult: ...


def outcome_of(code: int) -> Outcome:
    if 200 <= code < 300:
        return Outcome.DELIVERED
    if 500 <= code < 600:
        return Outcome.PERMANENT
    return Outcome.TEMPORARY  # 4xx, and anything a broken server might say instead


def split_reply(code: int, message: str) -> tuple[str, str]:
    """The enhanced status code and the text of a reply; the status is made up from the code when absent.

    A status whose class contradicts the reply code ("550 4.0.0") is not trusted: the code decides.
    """
    text = " ".join(message.split())
    match = _ENHANCED.match(text)
    klass = str(code)[0] if str(code)[0] in "245" else "4"
    if match and match.group(1) == klass:
        return f"{match.group(1)}.{match.group(2)}.{match.group(3)}", text[match.end() :]
    return f"{klass}.0.0", text


def _from_reply(recipient: str, code: int, message: str, host: str) -> RecipientResult:
    status, text = split_reply(code, message)
    return RecipientResult(recipient, outcome_of(code), status, text, code=code, remote_mta=host)


def _local(recipient: str, status: str, text: str, host: str | None = None) -> RecipientResult:
    outcome = Outcome.PERMANENT if status.startswith("5") else Outcome.TEMPORARY
    return RecipientResult(recipient, outcome, status, text, code=None, remote_mta=host)


async def resolve_mx(domain: str) -> list[str]:
    """MX hosts of `domain` in preference order (equal preferences shuffled), with dnspython.

    No MX record means the domain itself (the implicit MX of RFC 5321 §5.1); a null MX (RFC 7505) and a
    domain that does not exist are permanent failures; a DNS server failure or time-out is temporary.
    """
    import dns.asyncresolver
    import dns.exception
    import dns.rdtypes.ANY.MX
    import dns.resolver

    try:
        answer = await dns.asyncresolver.resolve(domain, "MX")
    except dns.resolver.NXDOMAIN:
        raise MxLookupError(f"domain {domain} does not exist", permanent=True, status=STATUS_NO_SUCH_DOMAIN) from None
    except dns.resolver.NoAnswer:
        return [domain]
    except dns.exception.DNSException as exc:  # server failure, time-out, or anything else dnspython raises
        raise MxLookupError(
            f"MX lookup of {domain} failed: {exc}", permanent=False, status=STATUS_DNS_TEMPORARY
        ) from None
    records = [r for r in answer if isinstance(r, dns.rdtypes.ANY.MX.MX)]
    hosts = [(r.preference, random.random(), r.exchange.to_text(omit_final_dot=True)) for r in records]
    if len(hosts) == 1 and hosts[0][2] in ("", "."):
        raise MxLookupError(f"domain {domain} accepts no mail (null MX)", permanent=True, status=STATUS_NULL_MX)
    return [host for _, _, host in sorted(hosts) if host not in ("", ".")]


class _SessionFailed(Exception):
    """The session failed before MAIL FROM: the next host (MX) may do better. Carries the result for all."""

    def __init__(self, status: str, text: str, code: int | None = None) -> None:
        self.status = status
        self.text = text
        self.code = code
        super().__init__(text)


class Relay:
    """Sends jobs to their next hop. `resolver` and `mx_port` replace DNS and port 25 (tests)."""

    def __init__(self, config: DeliveryConfig, *, resolver: MxResolver | None = None, mx_port: int = 25) -> None:
        self.config = config
        self.hostname = config.ehlo_hostname()
        self._resolver = resolver or resolve_mx
        self._mx_port = mx_port
        self._quitting: set[asyncio.Task[None]] = set()

    async def send(self, job: DeliveryJob) -> DeliveryResult:
        """One attempt to deliver `job` to every recipient; never raises for anything the network does."""
        results: dict[str, RecipientResult] = {}
        for hosts, require_tls, recipients in await self._plan(job, results):
            results.update(await self._deliver(job, hosts, require_tls, recipients))
        return DeliveryResult(tuple(results[r] for r in job.recipients))

    async def _plan(
        self, job: DeliveryJob, results: dict[str, RecipientResult]
    ) -> list[tuple[list[tuple[str, int]], bool, list[str]]]:
        """Which hosts to try for which recipients; recipients that cannot be routed get a result here."""
        route = job.route
        if route.host:
            return [([(route.host, route.port)], route.require_tls, list(job.recipients))]
        if route.pool not in self.config.pools:
            for rcpt in job.recipients:
                results[rcpt] = _local(rcpt, STATUS_ROUTING, f"delivery pool {route.pool!r} is not configured")
            return []
        smart_host = self.config.pools[route.pool]
        if smart_host:
            hop: Route = parse_next_hop(smart_host)
            return [([(hop.host, hop.port)], route.require_tls, list(job.recipients))]
        by_domain: dict[str, list[str]] = {}
        for rcpt in job.recipients:
            by_domain.setdefault(rcpt.rpartition("@")[2].lower(), []).append(rcpt)
        plan = []
        for domain, recipients in by_domain.items():
            try:
                hosts = await self._resolver(domain)
            except MxLookupError as exc:
                for rcpt in recipients:
                    results[rcpt] = _local(rcpt, exc.status, str(exc))
                continue
            plan.append(([(host, self._mx_port) for host in hosts], route.require_tls, recipients))
        return plan

    async def _deliver(
        self, job: DeliveryJob, hosts: list[tuple[str, int]], require_tls: bool, recipients: list[str]
    ) -> dict[str, RecipientResult]:
        """Try the hosts in order until one holds a transaction; the last failure stands if none does."""
        failure = _SessionFailed(STATUS_NO_ANSWER, "no next hop to try")
        host = ""
        for host, port in hosts:
            try:
                return await self._transaction(job, host, port, require_tls, recipients, use_tls=True)
            except _SessionFailed as exc:
                failure = exc
                if exc.status == STATUS_TLS_FAILED and not require_tls:
                    # opportunistic TLS that fails to negotiate: the message goes in clear text, as Postfix does
                    log.info("delivery_tls_fallback", host=host, port=port, reason=exc.text)
                    try:
                        return await self._transaction(job, host, port, require_tls, recipients, use_tls=False)
                    except _SessionFailed as again:
                        failure = again
                log.info("delivery_host_failed", host=host, port=port, status=failure.status, reason=failure.text)
        out = {}
        for rcpt in recipients:
            if failure.code is not None:
                out[rcpt] = _from_reply(rcpt, failure.code, f"{failure.status} {failure.text}", host)
            else:
                out[rcpt] = _local(rcpt, failure.status, failure.text, host or None)
        return out

    def _tls_context(self, require_tls: bool) -> ssl.SSLContext:
        if require_tls and self.config.tls_verify:
            cafile = str(self.config.tls_ca_file) if self.config.tls_ca_file else None
            return ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context

    async def _transaction(
        self, job: DeliveryJob, host: str, port: int, require_tls: bool, recipients: list[str], *, use_tls: bool
    ) -> dict[str, RecipientResult]:
        """One SMTP session. Raises _SessionFailed when it fails before MAIL FROM."""
        source = self.config.source_addresses.get(job.route.pool)
        smtp = aiosmtplib.SMTP(
            hostname=host,
            port=port,
            local_hostname=self.hostname,
            source_address=(source, 0) if source else None,
            timeout=self.config.command_timeout,
            start_tls=False,
            validate_certs=False,
        )
        where = f"{host}:{port}"
        try:
            await self._open(smtp, host, where, require_tls, use_tls)
        except _SessionFailed:
            smtp.close()
            raise
        out: dict[str, RecipientResult] = {}
        try:
            await self._mail(smtp, job, host, recipients, out)
        except aiosmtplib.SMTPResponseException as exc:
            for rcpt in recipients:
                out.setdefault(rcpt, _from_reply(rcpt, exc.code, exc.message, host))
        except (aiosmtplib.SMTPException, OSError) as exc:
            text = f"lost connection with {where}: {_reason(exc)}"
            for rcpt in recipients:
                out.setdefault(rcpt, _local(rcpt, STATUS_BAD_CONNECTION, text, host))
        finally:
            if smtp.is_connected:
                # QUIT after the result is back with the agent: the time between the next hop's 250 and
                # the agent's record of it is when a crash delivers the message twice, so keep it short
                task = asyncio.create_task(self._quit(smtp))
                self._quitting.add(task)
                task.add_done_callback(self._quitting.discard)
        return out

    async def _quit(self, smtp: aiosmtplib.SMTP) -> None:
        try:
            await smtp.quit(timeout=min(self.config.command_timeout, 10.0))
        except (aiosmtplib.SMTPException, OSError):
            smtp.close()

    async def _open(self, smtp: aiosmtplib.SMTP, host: str, where: str, require_tls: bool, use_tls: bool) -> None:
        try:
            await smtp.connect(timeout=self.config.connect_timeout)
        except aiosmtplib.SMTPConnectResponseError as exc:
            status, text = split_reply(exc.code, exc.message)
            raise _SessionFailed(status, text, exc.code) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise _SessionFailed(STATUS_NO_ANSWER, f"connect to {where} failed: {_reason(exc)}") from None
        try:
            try:
                await smtp.ehlo()
            except aiosmtplib.SMTPHeloError as exc:
                if require_tls or exc.code < 500:
                    raise
                await smtp.helo()  # a server that predates ESMTP
            if use_tls and smtp.supports_extension("starttls"):
                try:
                    await smtp.starttls(tls_context=self._tls_context(require_tls), server_hostname=host)
                    await smtp.ehlo()
                except (aiosmtplib.SMTPException, ssl.SSLError, OSError) as exc:
                    raise _SessionFailed(STATUS_TLS_FAILED, f"TLS with {where} failed: {_reason(exc)}") from None
            elif require_tls:
                raise _SessionFailed(
                    STATUS_TLS_NOT_OFFERED, f"TLS is required, but {where} does not offer STARTTLS; nothing was sent"
                )
        except aiosmtplib.SMTPResponseException as exc:
            status, text = split_reply(exc.code, exc.message)
            raise _SessionFailed(status, text, exc.code) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise _SessionFailed(STATUS_BAD_CONNECTION, f"lost connection with {where}: {_reason(exc)}") from None

    async def _mail(
        self,
        smtp: aiosmtplib.SMTP,
        job: DeliveryJob,
        host: str,
        recipients: list[str],
        out: dict[str, RecipientResult],
    ) -> None:
        """MAIL, RCPT per recipient, DATA; fills `out` with a result for every recipient it got to."""
        options: list[bytes] = []
        if smtp.supports_extension("size"):
            options.append(f"SIZE={len(job.message)}".encode("ascii"))
        if smtp.supports_extension("8bitmime") and not job.message.isascii():
            options.append(b"BODY=8BITMIME")
        addresses = [job.mail_from, *recipients]
        if not all(a.isascii() for a in addresses):
            if not smtp.supports_extension("smtputf8"):
                for rcpt in recipients:
                    out[rcpt] = _local(
                        rcpt, STATUS_SMTPUTF8, f"{host} does not support SMTPUTF8, needed for a non-ASCII address", host
                    )
                return
            options.append(b"SMTPUTF8")
        reply = await smtp.execute_command(b"MAIL", f"FROM:<{job.mail_from}>".encode(), *options)
        if reply.code != 250:
            for rcpt in recipients:
                out[rcpt] = _from_reply(rcpt, reply.code, reply.message, host)
            return
        accepted = []
        for rcpt in recipients:
            reply = await smtp.execute_command(b"RCPT", f"TO:<{rcpt}>".encode())
            if reply.code in (250, 251):
                accepted.append(rcpt)
            else:
                out[rcpt] = _from_reply(rcpt, reply.code, reply.message, host)
        if not accepted:
            return
        try:
            reply = await smtp.data(job.message, timeout=self.config.data_timeout)
        except aiosmtplib.SMTPDataError as exc:
            reply = aiosmtplib.SMTPResponse(exc.code, exc.message)
        for rcpt in accepted:
            out[rcpt] = _from_reply(rcpt, reply.code, reply.message, host)


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())
