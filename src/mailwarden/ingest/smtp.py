"""The SMTP ingress: aiosmtpd listeners that commit each message to the spool before saying 250.

One `SmtpServer` runs every configured listener. A listener has a role:

* journal  — accepts the journal mailboxes only (plus-addressing too), from the clients its rule admits;
* inbound  — accepts recipients the `recipient_check` accepts (the organisation's domains);
* outbound — accepts the clients its rule admits, never anybody else.

The rule of a journal or outbound listener (`ingest/access.py`): `allowed_networks`, AUTH PLAIN or
LOGIN over TLS against `auth_users`, and/or a TLS client certificate verified against `tls_client_ca`.
Failed AUTH is throttled by client address and by account (`mailwarden.throttle`), and a session is
cut after three failures.

What this module adds to aiosmtpd 1.4.6 (see docs/ingress.md):

* its own command loop and DATA reader, which refuse a bare LF or bare CR anywhere (commands:
  500 and disconnect; DATA: the message is read to its real `<CR><LF>.<CR><LF>` end and refused
  with 550 5.5.2), so no SMTP smuggling (end-of-data variants, a second message hidden in DATA);
* SIZE announced and enforced with 552 5.3.4, recipient and per-address connection limits, a
  timeout inside DATA, STARTTLS-required with 530 5.7.0, a 421 on idle timeout and on shutdown;
* the envelope (HELO name, TLS version and cipher, authenticated user) recorded with each message.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
import re
import socket
import ssl
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, TLSSetupException, syntax

from mailwarden.dns import Resolver
from mailwarden.errors import ConfigError
from mailwarden.ids import new_id
from mailwarden.ingest import replies as r
from mailwarden.ingest.access import (
    Client,
    ClientAccess,
    certificate_names,
    client_certificate_context,
    unknown_user_hash,
    verify_password,
)
from mailwarden.ingest.config import SmtpConfig, SmtpListenerConfig
from mailwarden.ingest.data import DataBudget, DataHold, DataLimits, read_data
from mailwarden.ingest.replies import Reply
from mailwarden.ingest.spool import Spool, SpoolEntry
from mailwarden.ingest.tls import server_context
from mailwarden.ingest.trace import HEADER_SCAN, confirmed_name, received_count, received_field
from mailwarden.model import Envelope, TlsInfo
from mailwarden.model.envelope import normalise_address
from mailwarden.throttle import SignInThrottle

log = structlog.get_logger(__name__)

_ALLOWED_BEFORE_TLS = frozenset({"EHLO", "HELO", "STARTTLS", "NOOP", "RSET", "QUIT"})
_READ_BUFFER = 64 * 1024
_SIMPLE_PATH = re.compile(r"<([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9.-]{1,255})>")
_ERROR_LIMIT = 10  # unknown commands, syntax errors and over-long lines before a 421
_TIMER_SLACK = 1.0  # re-arm the DATA timeout at most once a second, not on every line
_AUTH_CONCURRENCY = 2  # password hashing is deliberately expensive: bound the CPU and memory it takes
_AUTH_FAILURES_PER_SESSION = 3  # then 421 and the connection is closed, as Postfix does at its error limit


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """What is known about the client when a recipient is checked."""

    listener: str
    role: str
    client_ip: str | None
    helo: str | None
    tls: TlsInfo | None
    authenticated_as: str | None
    mail_from: str


RecipientCheck = Callable[[str, str, SessionInfo], Awaitable[Reply | None]]
"""(listener name, recipient address, session) → None to accept, or the Reply that refuses it."""


# ---- one listener ------------------------------------------------------------------------------
class _Listener:
    """A configured listener, resolved once at start: its policy and the hooks aiosmtpd calls."""

    def __init__(self, config: SmtpListenerConfig, server: SmtpServer, tls_context: ssl.SSLContext) -> None:
        self.config = config
        self.name = config.name
        self.role = config.role
        self.server = server
        self.tls_context = tls_context
        self.access = ClientAccess(config)
        self.offers_auth = self.access.offers_auth
        self.users = dict(config.auth_users)
        self.journal = frozenset(config.journal_addresses)
        self.hooks = _Hooks(self)

    def is_journal_mailbox(self, address: str) -> bool:
        if address in self.journal:
            return True
        local, _, domain = address.rpartition("@")
        base = local.split("+", 1)[0]
        return base != local and f"{base}@{domain}" in self.journal


class _Hooks:
    """aiosmtpd handler hooks of one listener: EHLO keywords, sender and recipient policy."""

    def __init__(self, listener: _Listener) -> None:
        self.listener = listener

    async def handle_EHLO(
        self, server: _Session, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname  # aiosmtpd leaves this to a hook that replaces the reply
        keywords = [f"250-SIZE {self.listener.server.config.max_message_size}", "250-PIPELINING"]
        for line in responses[1:]:
            if line.startswith("250-AUTH") and not self.listener.offers_auth:
                continue
            keywords.append(line)
        return [responses[0], *keywords]

    async def handle_MAIL(self, server: _Session, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        for option in options:
            if option.startswith("SIZE="):
                value = option[5:]
                if not value.isdigit():
                    return str(r.SIZE_SYNTAX)
                if int(value) > self.listener.server.config.max_message_size:
                    return str(r.MESSAGE_TOO_BIG)
        client = server.client()
        refusal = self.listener.access.refusal(client)
        if refusal is not None:
            log.info(
                "smtp.client_refused",
                listener=self.listener.name,
                role=self.listener.role,
                client=client.ip,
                certificate=sorted(client.certificate),
                reply=str(refusal),
            )
            return str(refusal)
        smtp = self.listener.server
        if smtp.spool.backlog >= smtp.config.max_backlog:
            # scanning is that far behind: the sender keeps the message and retries (nothing is lost)
            log.warning("smtp.spool_full", listener=self.listener.name, backlog=smtp.spool.backlog)
            return str(r.SPOOL_FULL)
        envelope.mail_from = address  # "<>" for the null sender: aiosmtpd needs a true value here
        envelope.mail_options.extend(options)
        return str(r.SENDER_OK)

    async def handle_RCPT(self, server: _Session, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        listener = self.listener
        if len(envelope.rcpt_tos) >= listener.server.config.max_recipients:
            return str(r.TOO_MANY_RECIPIENTS)
        rcpt = normalise_address(address)
        refusal: Reply | None = None
        if listener.role == "journal":
            refusal = None if listener.is_journal_mailbox(rcpt) else r.NOT_A_JOURNAL_MAILBOX
        elif listener.role == "inbound":
            refusal = await listener.server.recipient_check(listener.name, rcpt, server.info())
        if refusal is not None:
            log.info("smtp.recipient_refused", listener=listener.name, client=server.client_ip, rcpt=rcpt)
            return str(refusal)
        envelope.rcpt_tos.append(rcpt)
        envelope.rcpt_options.extend(options)
        return str(r.RECIPIENT_OK)


class _Session(SMTP):
    """One SMTP connection. Owns the command loop and DATA; aiosmtpd parses the commands."""

    def __init__(self, listener: _Listener) -> None:
        config = listener.server.config
        # +1 for the transparency dot of RFC 5321 4.5.2
        self._max_line = config.max_line_length + 1
        # aiosmtpd sizes its stream reader by this, and the reader stops reading the socket at twice
        # it: with a 1 KB limit every message over 2 KB stalls and resumes the socket over and over.
        # Line lengths are checked in _read_line instead.
        self.line_length_limit = max(self._max_line, _READ_BUFFER)
        self._listener = listener
        self._server = listener.server
        self._in_data = False
        self._admitted = False
        self._auth_failures = 0
        self.client_ip: str | None = None
        self._client_name: str | None = None  # confirmed reverse-DNS name, for our Received field
        self._client_name_known = False
        implicit = listener.config.implicit_tls
        super().__init__(
            listener.hooks,
            data_size_limit=None,  # SIZE is announced by the EHLO hook and enforced here
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=self._server.hostname,
            tls_context=None if implicit else listener.tls_context,
            timeout=config.command_timeout,
            auth_require_tls=not implicit,
            auth_exclude_mechanism=() if listener.offers_auth else ("PLAIN", "LOGIN"),
            loop=asyncio.get_running_loop(),
        )

    # ---- facts ------------------------------------------------------------------------------
    @property
    def secure(self) -> bool:
        return self._listener.config.implicit_tls or self._tls_protocol is not None

    @property
    def in_transaction(self) -> bool:
        return self._in_data or bool(self.envelope is not None and self.envelope.mail_from)

    def tls_info(self) -> TlsInfo | None:
        ssl_object = self.transport.get_extra_info("ssl_object") if self.transport is not None else None
        if ssl_object is None:
            return None
        cipher = ssl_object.cipher()
        return TlsInfo(version=ssl_object.version() or "", cipher=cipher[0] if cipher else "")

    def client(self) -> Client:
        """The client as the listener's access rule sees it."""
        ssl_object = self.transport.get_extra_info("ssl_object") if self.transport is not None else None
        certificate = certificate_names(ssl_object.getpeercert() if ssl_object is not None else None)
        authenticated = self.session is not None and bool(self.session.authenticated)
        return Client(ip=self.client_ip, authenticated=authenticated, certificate=certificate)

    def info(self) -> SessionInfo:
        session, envelope = self.session, self.envelope
        mail_from = envelope.mail_from if envelope is not None and envelope.mail_from else ""
        return SessionInfo(
            listener=self._listener.name,
            role=self._listener.role,
            client_ip=self.client_ip,
            helo=session.host_name if session is not None else None,
            tls=self.tls_info(),
            authenticated_as=self._authenticated_as(),
            mail_from="" if mail_from == "<>" else normalise_address(mail_from),
        )

    def _authenticated_as(self) -> str | None:
        session = self.session
        if session is None or not session.authenticated:
            return None
        return str(session.auth_data)

    # ---- connection and command loop ---------------------------------------------------------
    async def _handle_client(self) -> None:
        assert self.session is not None
        peer = self.session.peer
        self.client_ip = peer[0] if isinstance(peer, tuple) and peer else None
        refusal = self._server._admit(self)
        if refusal is not None:
            log.warning(
                "smtp.connection_refused", listener=self._listener.name, client=self.client_ip, reply=str(refusal)
            )
            await self._reply_and_close(refusal)
            return
        self._admitted = True
        try:
            await self.push(r.GREETING.format(hostname=self.hostname))
            await self._command_loop()
        finally:
            self._server._release(self)

    async def _command_loop(self) -> None:
        errors = 0
        while self.transport is not None:
            if self._server.draining and not self.in_transaction:
                await self._reply_and_close(r.SHUTTING_DOWN)
                return
            try:
                line, bare, too_long = await self._read_line()
                if bare:
                    log.warning(
                        "smtp.bare_line_ending", listener=self._listener.name, client=self.client_ip, where="command"
                    )
                    await self._reply_and_close(r.BARE_LINE_ENDING_IN_COMMAND)
                    return
                reply = r.LINE_TOO_LONG if too_long else None
                command, arg = "", None
                if reply is None:
                    command, arg, reply = _parse_command(line)
                if reply is None:
                    if self._listener.config.require_tls and not self.secure and command not in _ALLOWED_BEFORE_TLS:
                        await self.push(str(r.MUST_STARTTLS))
                        continue
                    method = self._smtp_methods.get(command)
                    if method is not None:
                        self._reset_timeout()
                        await method(arg)
                        continue
                    reply = r.UNRECOGNISED_COMMAND
                errors += 1
                if errors >= _ERROR_LIMIT:
                    await self._reply_and_close(r.TOO_MANY_ERRORS)
                    return
                await self.push(str(reply))
            except TLSSetupException:
                log.info("smtp.starttls_failed", listener=self._listener.name, client=self.client_ip)
                if self.transport is not None:
                    self.transport.close()
                return
            except asyncio.IncompleteReadError:
                self._writer.close()
                return
            except (asyncio.CancelledError, ConnectionError):
                self._writer.close()
                raise
            except Exception:
                log.exception("smtp.session_error", listener=self._listener.name, client=self.client_ip)
                await self.push(str(r.SPOOL_FAILED))

    async def _read_line(self) -> tuple[bytes, bool, bool]:
        """The next line with its LF; whether a bare LF ended it or a bare CR is in it; whether it was too long.

        An over-long line is read to its end and thrown away; only its last two bytes are kept, so
        the caller still knows whether it ended in CRLF.
        """
        reader = self._reader
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError as exc:
            consumed = exc.consumed
        else:
            if len(line) > self._max_line:
                return line[-2:], line[-2:-1] != b"\r", True
            return line, line[-2:-1] != b"\r" or b"\r" in line[:-2], False
        tail = b""
        while True:
            tail = (tail + await reader.readexactly(consumed))[-2:]
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.LimitOverrunError as exc:
                consumed = exc.consumed
                continue
            tail = (tail + line)[-2:]
            return tail, tail != b"\r\n", True

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        # the common `<local@domain>` without the cost of the RFC 5322 parser; anything else goes to it
        match = _SIMPLE_PATH.match(arg)
        if match is None:
            return super()._getaddr(arg)
        return match.group(1), arg[match.end() :].strip()

    async def _reply_and_close(self, reply: Reply) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        try:
            await self.push(str(reply))
        finally:
            transport.close()

    def _timeout_cb(self) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            log.info("smtp.timeout", listener=self._listener.name, client=self.client_ip, in_data=self._in_data)
            self._writer.write(f"{r.TIMEOUT}\r\n".encode())
            transport.close()

    def drain(self) -> None:
        """The server stops: an idle session ends now with 421; one in a transaction finishes it first."""
        transport = self.transport
        if not self.in_transaction and transport is not None and not transport.is_closing():
            self._writer.write(f"{r.SHUTTING_DOWN}\r\n".encode())
            transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # ---- AUTH ---------------------------------------------------------------------------------
    @syntax("AUTH <mechanism>")
    async def smtp_AUTH(self, arg: str) -> None:
        if not self._listener.offers_auth:
            await self.push(str(r.AUTH_NOT_AVAILABLE))
            return
        if not self.secure:
            await self.push(str(r.AUTH_NEEDS_TLS))
            return
        await super().smtp_AUTH(arg)
        if self._auth_failures >= _AUTH_FAILURES_PER_SESSION:
            log.warning("smtp.auth_session_cut", listener=self._listener.name, client=self.client_ip)
            await self._reply_and_close(r.TOO_MANY_AUTH_FAILURES)

    async def auth_PLAIN(self, _: object, args: list[str]) -> AuthResult:
        blob = await self._initial_response(args)
        if blob is None:
            return AuthResult(success=False, handled=True)
        parts = blob.split(b"\0")
        if len(parts) != 3:
            await self.push(str(r.AUTH_MALFORMED))
            return AuthResult(success=False, handled=True)
        return await self._check_password(parts[1], parts[2])

    async def auth_LOGIN(self, _: object, args: list[str]) -> AuthResult:
        login = await self._initial_response(args, challenge=self.AuthLoginUsernameChallenge)
        if login is None:
            return AuthResult(success=False, handled=True)
        password = await self.challenge_auth(self.AuthLoginPasswordChallenge)
        if password is MISSING:
            return AuthResult(success=False, handled=True)
        assert isinstance(password, bytes)
        return await self._check_password(login, password)

    async def _initial_response(self, args: list[str], *, challenge: str = "") -> bytes | None:
        if len(args) == 1:
            blob = await self.challenge_auth(challenge)
            return blob if isinstance(blob, bytes) else None  # challenge_auth replied already
        try:
            return base64.b64decode(args[1], validate=True)
        except (binascii.Error, ValueError):
            await self.push(str(r.AUTH_MALFORMED))
            return None

    async def _check_password(self, login: bytes, password: bytes) -> AuthResult:
        """Check a password unless the client address or the account must wait (then 454, unchecked)."""
        user = login.decode("utf-8", "replace")
        account, address = f"{self._listener.name}/{user}", self.client_ip or ""
        throttle = self._server.auth_throttle
        hashed = self._listener.users.get(user)
        async with self._server.auth_slots:
            # admitted inside the slot, so parallel sessions see each other's attempts
            wait = throttle.admit(account, address)
            ok = wait == 0 and await asyncio.to_thread(verify_password, password, hashed or unknown_user_hash())
        if ok and hashed is not None:
            throttle.succeeded(account, address)
            log.info("smtp.auth_ok", listener=self._listener.name, client=self.client_ip, user=user)
            return AuthResult(success=True, auth_data=user, message=str(r.AUTH_OK))
        self._auth_failures += 1
        where = {"listener": self._listener.name, "client": self.client_ip, "user": user}
        if wait:
            log.warning("smtp.auth_throttled", **where, wait=wait)
            refusal = r.AUTH_THROTTLED.format(seconds=str(math.ceil(wait)))
            return AuthResult(success=False, handled=False, message=refusal)
        log.warning("smtp.auth_failed", **where)
        return AuthResult(success=False, handled=False, message=str(r.AUTH_INVALID))

    # ---- DATA ---------------------------------------------------------------------------------
    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        assert self.session is not None and self.envelope is not None
        if not self.session.host_name:
            await self.push(str(r.NEED_HELO))
            return
        if arg:
            await self.push(str(r.DATA_SYNTAX))
            return
        if not self.envelope.rcpt_tos:
            await self.push(str(r.NEED_RECIPIENT))
            return
        await self.push(str(r.START_DATA))
        utf8 = bool(self.envelope.smtp_utf8)
        lookup = self._look_up_client_name()
        hold = self._server.data_budget.hold()
        try:
            problem = await self._read_data(hold)
            if problem is None:
                problem = self._hop_refusal(hold)
            if problem is not None:
                log.info("smtp.data_refused", listener=self._listener.name, client=self.client_ip, reply=str(problem))
                self.envelope = self._create_envelope()
                await self.push(str(problem))
                return
            envelope = self._make_envelope()
            self.envelope = self._create_envelope()
            entry_id = new_id(envelope.received_at)
            raw = await hold.take(await self._trace_field(envelope, entry_id, utf8, lookup))
            await self._commit(envelope, raw, entry_id)
        finally:
            hold.release()
            if lookup is not None:
                lookup.cancel()

    async def _read_data(self, hold: DataHold) -> Reply | None:
        """Read DATA into `hold` with the DATA timeout armed; the reply refusing the message, or None."""
        config = self._server.config
        clock = self.loop.time
        armed = clock()

        def progress() -> None:
            nonlocal armed
            now = clock()
            if now - armed > _TIMER_SLACK:
                self._reset_timeout(config.data_timeout)
                armed = now

        self._in_data = True
        self._reset_timeout(config.data_timeout)
        try:
            return await read_data(self._reader, hold, DataLimits(config.max_message_size, self._max_line), progress)
        finally:
            self._in_data = False
            self._reset_timeout()

    def _hop_refusal(self, hold: DataHold) -> Reply | None:
        """Mail that already passed `max_hops` relays is looping; journal copies are never relayed."""
        if self._listener.role == "journal":
            return None
        limit = self._server.config.max_hops
        return r.TOO_MANY_HOPS if received_count(hold.head(HEADER_SCAN), stop_at=limit) >= limit else None

    def _look_up_client_name(self) -> asyncio.Task[str | None] | None:
        """The client's confirmed reverse-DNS name for the trace field, looked up while the data arrives."""
        resolver = self._server.resolver
        if self._listener.role == "journal" or resolver is None or self.client_ip is None:
            return None
        if self._client_name_known:
            return None
        return asyncio.ensure_future(confirmed_name(resolver, self.client_ip))

    async def _trace_field(
        self, envelope: Envelope, entry_id: str, utf8: bool, lookup: asyncio.Task[str | None] | None
    ) -> bytes:
        """Our `Received:` field for mail that may be relayed; nothing for journal copies."""
        if self._listener.role == "journal":
            return b""
        if lookup is not None:
            self._client_name, self._client_name_known = await lookup, True
        assert self.session is not None
        return received_field(
            envelope,
            entry_id=entry_id,
            by=self._server.hostname,
            client_name=self._client_name,
            extended=self.session.extended_smtp,
            utf8=utf8,
        )

    async def _commit(self, envelope: Envelope, raw: bytes, entry_id: str) -> None:
        """Spool the message, then answer 250 with its id (451 when the spool failed)."""
        try:
            entry = await self._server._commit(self._listener.name, envelope, raw, entry_id)
        except Exception:
            log.exception("smtp.spool_failed", listener=self._listener.name, client=self.client_ip)
            await self.push(str(r.SPOOL_FAILED))
            return
        await self.push(r.QUEUED.format(id=entry.id))

    def _make_envelope(self) -> Envelope:
        assert self.envelope is not None and self.session is not None
        mail_from = self.envelope.mail_from or ""
        return Envelope(
            mail_from="" if mail_from == "<>" else normalise_address(mail_from),
            rcpt_to=tuple(dict.fromkeys(self.envelope.rcpt_tos)),
            client_ip=self.client_ip,
            helo=self.session.host_name,
            tls=self.tls_info(),
            received_at=datetime.now(UTC),
            authenticated_as=self._authenticated_as(),
        )


def _parse_command(line: bytes) -> tuple[str, str | None, Reply | None]:
    """(COMMAND, argument, None) from a command line ending in CRLF, or a reply refusing it."""
    line = line[:-2]
    command_bytes, _, arg_bytes = line.partition(b" ")
    try:
        command = command_bytes.decode("ascii").upper()
    except UnicodeDecodeError:
        return "", None, r.BAD_SYNTAX
    if not command:
        return "", None, r.BAD_SYNTAX
    # SMTPUTF8 addresses arrive as UTF-8; surrogateescape keeps any other byte for aiosmtpd's parser
    arg = arg_bytes.strip().decode("utf-8", "surrogateescape") or None
    return command, arg, None


# ---- the server --------------------------------------------------------------------------------
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
    ) -> None:
        self.config = config
        self.spool = spool
        self.recipient_check = recipient_check
        self.resolver = resolver  # for the client's name in our Received field; none: `unknown`
        self.data_budget = DataBudget(config.max_data_in_flight)
        self.hostname = config.hostname or socket.getfqdn()
        self.draining = False
        self._on_spooled = on_spooled
        self._servers: dict[str, asyncio.Server] = {}
        self._sessions: set[_Session] = set()
        self._per_ip: Counter[str] = Counter()
        self._commits: set[asyncio.Task[SpoolEntry]] = set()
        self._all_closed: asyncio.Event | None = None
        self.auth_slots = asyncio.Semaphore(_AUTH_CONCURRENCY)
        self.auth_throttle = auth_throttle or SignInThrottle()

    async def start(self) -> None:
        """Open every listener; a listener that cannot bind or load its client CA stops start-up, field named."""
        loop = asyncio.get_running_loop()
        self.draining = False
        self._all_closed = asyncio.Event()
        tls_context = await asyncio.to_thread(
            server_context, self.config.tls_cert, self.config.tls_key, hostname=self.hostname
        )
        if self.config.tls_cert is None:
            log.warning("smtp.self_signed_certificate", hostname=self.hostname)
        # every context first: a client CA that cannot be loaded stops start-up before anything listens
        listeners = [
            _Listener(listener_config, self, await self._tls_context(index, tls_context))
            for index, listener_config in enumerate(self.config.listeners)
        ]
        for index, listener in enumerate(listeners):
            listener_config = listener.config
            if listener_config.allow_any_source:
                log.warning("smtp.journal_open_to_any_source", listener=listener.name)
            try:
                server = await loop.create_server(
                    lambda listener=listener: _Session(listener),
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
    def _admit(self, session: _Session) -> Reply | None:
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

    def _release(self, session: _Session) -> None:
        if session not in self._sessions:
            return
        self._sessions.discard(session)
        ip = session.client_ip or ""
        self._per_ip[ip] -= 1
        if self._per_ip[ip] <= 0:
            del self._per_ip[ip]
        if not self._sessions and self._all_closed is not None:
            self._all_closed.set()

    async def _commit(self, listener: str, envelope: Envelope, raw: bytes, entry_id: str) -> SpoolEntry:
        # shielded: a client that hangs up mid-commit does not cancel the write
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
