"""One SMTP connection: the command loop, AUTH and DATA; aiosmtpd parses the commands themselves.

The loop reads each command line itself (`commands.py`) so bare line endings and over-long lines
are refused before aiosmtpd sees them; DATA is read in blocks by `ingest/data.py` into the server's
in-flight budget, and the message is answered 250 only once the server has spooled it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, AnyStr

import structlog
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, TLSSetupException, syntax

from mailwarden.ids import new_id
from mailwarden.ingest import replies as r
from mailwarden.ingest.access import Client, certificate_names, unknown_user_hash, verify_password
from mailwarden.ingest.data import DataHold, DataLimits, read_data
from mailwarden.ingest.replies import Reply
from mailwarden.ingest.smtp.commands import parse_command, read_line
from mailwarden.ingest.smtp.listener import Listener, SessionInfo
from mailwarden.ingest.trace import HEADER_SCAN, confirmed_name, received_count, received_field
from mailwarden.model import Envelope, ListenerRole, TlsInfo
from mailwarden.model.envelope import normalise_address

if TYPE_CHECKING:
    from mailwarden.ingest.smtp.server import SmtpServer

log = structlog.get_logger(__name__)

_ALLOWED_BEFORE_TLS = frozenset({"EHLO", "HELO", "STARTTLS", "NOOP", "RSET", "QUIT"})
_READ_BUFFER = 64 * 1024
_SIMPLE_PATH = re.compile(r"<([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9.-]{1,255})>")
_ERROR_LIMIT = 10  # unknown commands, syntax errors and over-long lines before a 421
_TIMER_SLACK = 1.0  # re-arm the DATA timeout at most once a second, not on every line
_AUTH_FAILURES_PER_SESSION = 3  # then 421 and the connection is closed, as Postfix does at its error limit
# RFC 2920: the commands that may stand anywhere in a pipelined group; their replies may wait for the next
# reply when the client's next command is already here (DATA, EHLO, QUIT, STARTTLS, AUTH are answered at once)
_HOLDABLE = frozenset({"MAIL", "RCPT", "RSET"})


class SmtpSession(SMTP):
    """One SMTP connection. Owns the command loop and DATA; aiosmtpd parses the commands."""

    def __init__(self, listener: Listener) -> None:
        config = listener.server.config
        # +1 for the transparency dot of RFC 5321 4.5.2
        self._max_line = config.max_line_length + 1
        # aiosmtpd sizes its stream reader by this, and the reader stops reading the socket at twice
        # it: with a 1 KB limit every message over 2 KB stalls and resumes the socket over and over.
        # Line lengths are checked by `read_line` instead.
        self.line_length_limit = max(self._max_line, _READ_BUFFER)
        self._listener = listener
        self._server: SmtpServer = listener.server
        self._in_data = False
        self._auth_failures = 0
        self._held: list[bytes] = []  # replies waiting to go out with the next one (see `push`)
        self._may_hold = False
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
        refusal = self._server.admit(self)
        if refusal is not None:
            log.warning(
                "smtp.connection_refused", listener=self._listener.name, client=self.client_ip, reply=str(refusal)
            )
            await self._reply_and_close(refusal)
            return
        try:
            await self.push(r.GREETING.format(hostname=self.hostname))
            await self._command_loop()
        finally:
            self._server.release(self)

    async def _command_loop(self) -> None:
        errors = 0
        while self.transport is not None:
            if self._server.draining and not self.in_transaction:
                await self._reply_and_close(r.SHUTTING_DOWN)
                return
            try:
                line, bare, too_long = await read_line(self._reader, self._max_line)
                if bare:
                    log.warning(
                        "smtp.bare_line_ending", listener=self._listener.name, client=self.client_ip, where="command"
                    )
                    await self._reply_and_close(r.BARE_LINE_ENDING_IN_COMMAND)
                    return
                reply = r.LINE_TOO_LONG if too_long else None
                command, arg = "", None
                if reply is None:
                    command, arg, reply = parse_command(line)
                if reply is None:
                    if self._listener.config.require_tls and not self.secure and command not in _ALLOWED_BEFORE_TLS:
                        await self.push(str(r.MUST_STARTTLS))
                        continue
                    method = self._smtp_methods.get(command)
                    if method is not None:
                        self._reset_timeout()
                        self._may_hold = command in _HOLDABLE
                        try:
                            await method(arg)
                        finally:
                            self._may_hold = False
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

    async def push(self, status: AnyStr) -> None:
        """Send a reply. A reply to MAIL, RCPT or RSET, or the 250 ending a message, waits while the
        client's next command is already here (it pipelined them, RFC 2920) and goes out in one write with
        the reply to that one: MAIL, RCPT and DATA are answered with one segment instead of three, and on
        loopback each write cost about as much CPU as reading the message. The lines of a multi-line reply
        (EHLO's) go out together with its last. A held reply never waits past this turn of the event loop,
        and anything else sent or closing sends it first."""
        if isinstance(status, str):
            response = status.encode("utf-8" if self.enable_SMTPUTF8 else "ascii") + b"\r\n"
        else:
            response = bytes(status) + b"\r\n"
        transport = self.transport
        continued = response[3:4] == b"-"  # a line of a multi-line reply (EHLO): the last line sends them all
        holding = continued or (self._may_hold and _line_waiting(self._reader))
        if holding and transport is not None and not transport.is_closing():
            if not self._held:
                self.loop.call_soon(self._send_held)
            self._held.append(response)
            return
        self._writer.write(self._take_held() + response)
        await self._writer.drain()

    def _take_held(self) -> bytes:
        if not self._held:
            return b""
        held = b"".join(self._held)
        self._held.clear()
        return held

    def _send_held(self) -> None:
        transport = self.transport
        if self._held and transport is not None and not transport.is_closing():
            self._writer.write(self._take_held())

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
        self._may_hold = False  # the connection ends: nothing waits
        try:
            await self.push(str(reply))
        finally:
            transport.close()

    def _timeout_cb(self) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            log.info("smtp.timeout", listener=self._listener.name, client=self.client_ip, in_data=self._in_data)
            self._writer.write(self._take_held() + f"{r.TIMEOUT}\r\n".encode())
            transport.close()

    def drain(self) -> None:
        """The server stops: an idle session ends now with 421; one in a transaction finishes it first."""
        transport = self.transport
        if not self.in_transaction and transport is not None and not transport.is_closing():
            self._writer.write(self._take_held() + f"{r.SHUTTING_DOWN}\r\n".encode())
            transport.close()

    def abort(self) -> None:
        self._send_held()
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
        if self._listener.role is ListenerRole.JOURNAL:
            return None
        limit = self._server.config.max_hops
        return r.TOO_MANY_HOPS if received_count(hold.head(HEADER_SCAN), stop_at=limit) >= limit else None

    def _look_up_client_name(self) -> asyncio.Task[str | None] | None:
        """The client's confirmed reverse-DNS name for the trace field, looked up while the data arrives."""
        resolver = self._server.resolver
        if self._listener.role is ListenerRole.JOURNAL or resolver is None or self.client_ip is None:
            return None
        if self._client_name_known:
            return None
        return asyncio.ensure_future(confirmed_name(resolver, self.client_ip))

    async def _trace_field(
        self, envelope: Envelope, entry_id: str, utf8: bool, lookup: asyncio.Task[str | None] | None
    ) -> bytes:
        """Our `Received:` field for mail that may be relayed; nothing for journal copies."""
        if self._listener.role is ListenerRole.JOURNAL:
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
            entry = await self._server.commit(self._listener.name, envelope, raw, entry_id)
        except Exception:
            log.exception("smtp.spool_failed", listener=self._listener.name, client=self.client_ip)
            await self.push(str(r.SPOOL_FAILED))
            return
        self._may_hold = True  # the client may have sent its next MAIL already
        try:
            await self.push(r.QUEUED.format(id=entry.id))
        finally:
            self._may_hold = False

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


def _line_waiting(reader: asyncio.StreamReader) -> bool:
    """Whether a whole line from the client is already read and waiting (asyncio keeps no public view of
    its buffer; `_buffer` is the bytearray every StreamReader reads into)."""
    buffer: bytearray | None = getattr(reader, "_buffer", None)
    return buffer is not None and b"\n" in buffer
