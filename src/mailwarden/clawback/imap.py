"""Clawback over IMAP (Dovecot, Cyrus, Exchange on-premises, any IMAP4rev1 server), with imapclient.

One login per mailbox per call — and per batch: `find_many` / `move_many` / `delete_many` log in once per
mailbox and do all of that mailbox's work on that connection, at most `max_connections` mailboxes at a
time. The login is a master user's (`user*master` on Dovecot) or the mailbox's own password. imapclient is
synchronous, so each mailbox's work runs in a worker thread. IMAP has no Retry-After: a broken
connection, a BYE or a timeout is a retryable ConnectorError and the job engine comes back later.
"""

from __future__ import annotations

import asyncio
import imaplib
import ssl
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Literal, TypeVar

import structlog
from imapclient import IMAPClient  # type: ignore[import-untyped]
from imapclient.exceptions import CapabilityError, LoginError  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from mailwarden.clawback.connector import BaseConnector, ConnectorError, Folder, Found, MailboxNotFound
from mailwarden.clawback.imap_session import Session, close_client

KIND = "imap"

log = structlog.get_logger(__name__)

T = TypeVar("T")

# Response codes (RFC 5530) that say "later", not "never"
TRANSIENT_CODES = ("[UNAVAILABLE]", "[INUSE]", "[LIMIT]", "[SERVERBUG]")


class Settings(BaseModel):
    """The IMAP server and how mailwarden logs in to each mailbox on it."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(description="IMAP server host name (the name its certificate carries)")
    port: int = Field(993, ge=1, le=65535, description="IMAP port: 993 for implicit TLS, 143 for STARTTLS")
    security: Literal["tls", "starttls", "none"] = Field(
        "tls", description='"tls" (implicit TLS), "starttls", or "none": plain text, only where the config says so'
    )
    ca_file: Path | None = Field(None, description="PEM file of a CA to trust in addition to the system's")
    login: Literal["master", "mailbox"] = Field(
        "master", description='"master": the master user logs in as each mailbox; "mailbox": per-mailbox passwords'
    )
    master_user: str | None = Field(None, description="The master user's name (login = master)")
    master_separator: str = Field(
        "*", min_length=1, description="Between mailbox and master user in the login name (Dovecot: user*master)"
    )
    timeout_seconds: float = Field(30.0, gt=0, description="Connect and read timeout of each IMAP connection")
    trash_folder: str | None = Field(None, description="Trash folder name; default: \\Trash, then Trash etc.")
    junk_folder: str | None = Field(None, description="Junk folder name; default: \\Junk, then Junk etc.")
    max_connections: int = Field(8, ge=1, le=256, description="Mailboxes worked on at once (one connection each)")
    use_move: bool = Field(
        True,
        description="Use UID MOVE where the server offers it; false: always COPY + \\Deleted + UID EXPUNGE",
    )


class Secret(BaseModel):
    """The master user's password, and/or each mailbox's own (login = mailbox)."""

    model_config = ConfigDict(extra="forbid")

    password: SecretStr | None = Field(None, description="The master user's password")
    passwords: dict[str, SecretStr] = Field(default_factory=dict, description="Mailbox address -> its password")


def connect(settings: Settings, secret: Secret) -> ImapConnector:
    """The connector; nothing is opened until the first call."""
    return ImapConnector(settings, secret)


class ImapConnector(BaseConnector):
    """`MailboxConnector` over IMAP; Folder.RECOVERABLE is the Trash, restore is a move to INBOX."""

    kind = KIND

    def __init__(self, settings: Settings, secret: Secret) -> None:
        self.settings = settings
        self._secret = secret
        self.concurrency = settings.max_connections
        self._gate = asyncio.Semaphore(settings.max_connections)
        self._overrides = {
            role: name
            for role, name in ((Folder.TRASH, settings.trash_folder), (Folder.JUNK, settings.junk_folder))
            if name
        }

    def __repr__(self) -> str:
        return f"ImapConnector({self.settings.host}:{self.settings.port})"

    async def find(self, mailbox: str, internet_message_id: str) -> list[Found]:
        return _raise((await self.find_many([(mailbox, internet_message_id)]))[0])

    async def move(self, found: Found, to: Folder) -> Found:
        return _raise((await self.move_many([(found, to)]))[0])

    async def delete(self, found: Found) -> None:
        error = (await self.delete_many([found]))[0]
        if error is not None:
            raise error

    async def find_many(self, pairs: Sequence[tuple[str, str]]) -> list[list[Found] | ConnectorError]:
        return await self._per_mailbox([m for m, _ in pairs], [_finder(i) for _, i in pairs])

    async def move_many(self, items: Sequence[tuple[Found, Folder]]) -> list[Found | ConnectorError]:
        results: list[Found | ConnectorError | None] = []
        work: list[int] = []
        for index, (found, to) in enumerate(items):
            if _same_place(found.folder, to):
                results.append(found)  # already there: no call
            else:
                results.append(None)
                work.append(index)
        done = await self._per_mailbox([items[i][0].mailbox for i in work], [_mover(*items[i]) for i in work])
        for index, result in zip(work, done, strict=True):
            results[index] = result
        return [r for r in results if r is not None]

    async def delete_many(self, items: Sequence[Found]) -> list[ConnectorError | None]:
        done = await self._per_mailbox([f.mailbox for f in items], [_deleter(f) for f in items])
        return [r if isinstance(r, ConnectorError) else None for r in done]

    async def _per_mailbox(
        self, mailboxes: Sequence[str], ops: Sequence[Callable[[Session], T]]
    ) -> list[T | ConnectorError]:
        """Run `ops[i]` on a session of `mailboxes[i]`: one session per mailbox, in order within it."""
        groups: dict[str, list[int]] = {}
        for index, mailbox in enumerate(mailboxes):
            groups.setdefault(mailbox, []).append(index)
        results: dict[int, T | ConnectorError] = {}

        async def one_mailbox(mailbox: str, indices: list[int]) -> None:
            async with self._gate:
                done = await asyncio.to_thread(self._run, mailbox, [ops[i] for i in indices])
            results.update(zip(indices, done, strict=True))

        await asyncio.gather(*(one_mailbox(m, i) for m, i in groups.items()))
        return [results[i] for i in range(len(mailboxes))]

    def _run(self, mailbox: str, ops: Sequence[Callable[[Session], T]]) -> list[T | ConnectorError]:
        """In a worker thread: log in (again after a broken connection), run each op, log out."""
        done: list[T | ConnectorError] = []
        session: Session | None = None
        try:
            for op in ops:
                try:
                    if session is None:
                        session = self._translated(mailbox, partial(self._login, mailbox))
                    done.append(self._translated(mailbox, partial(op, session)))
                except ConnectorError as exc:
                    done.append(exc)
                    if session is None and not exc.retryable:
                        done.extend([exc] * (len(ops) - len(done)))  # the login will not work for the rest
                        break
                    if exc.retryable and session is not None:
                        session.close()
                        session = None
        finally:
            if session is not None:
                session.close()
        return done

    def _login(self, mailbox: str) -> Session:
        username, password = self._credentials(mailbox)
        client = self._open()
        try:
            client.login(username, password)
        except BaseException:
            close_client(client)
            raise
        log.debug("clawback.imap.login", mailbox=mailbox, host=self.settings.host)
        return Session(mailbox, client, self._overrides, self.settings.use_move)

    def _credentials(self, mailbox: str) -> tuple[str, str]:
        if self.settings.login == "mailbox":
            own = self._secret.passwords.get(mailbox)
            if own is None:
                raise MailboxNotFound(mailbox, f"no IMAP password configured for {mailbox}")
            return mailbox, own.get_secret_value()
        if not self.settings.master_user or self._secret.password is None:
            raise ConnectorError("IMAP login = master needs master_user and the master password", retryable=False)
        return f"{mailbox}{self.settings.master_separator}{self.settings.master_user}", (
            self._secret.password.get_secret_value()
        )

    def _open(self) -> IMAPClient:
        """Connected (and, for STARTTLS, encrypted) but not logged in."""
        s = self.settings
        context = _tls_context(s.ca_file) if s.security != "none" else None
        client = IMAPClient(
            s.host, port=s.port, ssl=s.security == "tls", ssl_context=context, timeout=s.timeout_seconds
        )
        if s.security == "starttls":
            try:
                client.starttls(context)
            except BaseException:
                close_client(client)
                raise
        return client

    def _translated(self, mailbox: str, call: Callable[[], T]) -> T:
        """`call()`, its failures as ConnectorError (server text quoted, passwords scrubbed)."""
        try:
            return call()
        except ConnectorError:
            raise
        except LoginError as exc:
            raise self._login_refused(mailbox, exc) from None
        except CapabilityError as exc:
            raise ConnectorError(f"IMAP {self._where()}: {self._scrub(exc)}", retryable=False) from None
        except imaplib.IMAP4.abort as exc:  # BYE, connection lost, protocol confusion
            raise ConnectorError(f"IMAP {self._where()} broke off: {self._scrub(exc)}", retryable=True) from None
        except imaplib.IMAP4.error as exc:  # a NO or BAD answer
            text = self._scrub(exc)
            raise ConnectorError(
                f"IMAP {self._where()} refused for {mailbox}: {text}",
                retryable=any(code in text.upper() for code in TRANSIENT_CODES),
            ) from None
        except OSError as exc:
            raise self._network_error(exc) from None

    def _login_refused(self, mailbox: str, exc: LoginError) -> ConnectorError:
        text = self._scrub(exc)
        log.warning("clawback.imap.login_refused", mailbox=mailbox, host=self.settings.host, reason=text)
        if "[AUTHORIZATIONFAILED]" in text.upper() and self.settings.login == "master":
            # the master user's password was right; the server has no such user to act as
            return MailboxNotFound(mailbox, f"IMAP {self._where()} does not know {mailbox}: {text}")
        who = self.settings.master_user if self.settings.login == "master" else mailbox
        return ConnectorError(
            f"IMAP {self._where()} refused the login of {who} for {mailbox}: {text}",
            retryable=any(code in text.upper() for code in TRANSIENT_CODES),
        )

    def _network_error(self, exc: OSError) -> ConnectorError:
        where = self._where()
        if isinstance(exc, ssl.SSLCertVerificationError):
            return ConnectorError(f"IMAP {where}: certificate not trusted: {exc.verify_message}", retryable=False)
        if isinstance(exc, ssl.SSLError) and not isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
            hint = " (a plain-text port? security is tls)" if self.settings.security == "tls" else ""
            return ConnectorError(f"IMAP {where}: TLS handshake failed{hint}: {exc.reason}", retryable=False)
        if isinstance(exc, TimeoutError):
            return ConnectorError(f"IMAP {where}: no answer within {self.settings.timeout_seconds:g} s", retryable=True)
        return ConnectorError(f"IMAP {where}: {type(exc).__name__}: {self._scrub(exc)}", retryable=True)

    def _where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def _scrub(self, exc: BaseException) -> str:
        """The server's text, never a password (a server could echo what it was sent)."""
        text = str(exc)
        secrets = [self._secret.password, *self._secret.passwords.values()]
        for secret in secrets:
            if secret is not None and secret.get_secret_value():
                text = text.replace(secret.get_secret_value(), "**********")
        return text

    async def aclose(self) -> None:
        """Nothing stays open between calls."""
        return None


def _tls_context(ca_file: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    return context


def _same_place(where: Folder, to: Folder) -> bool:
    """Already in the destination (Trash is also where RECOVERABLE goes)."""

    def canonical(f: Folder) -> Folder:
        return Folder.TRASH if f is Folder.RECOVERABLE else f

    return canonical(where) is canonical(to)


def _check_message_id(message_id: str) -> None:
    if not message_id.isascii() or not message_id.isprintable() or not message_id.strip():
        raise ConnectorError(f"not a Message-ID: {message_id[:80]!r}", retryable=False)


def _finder(message_id: str) -> Callable[[Session], list[Found]]:
    def find(session: Session) -> list[Found]:
        _check_message_id(message_id)
        return session.find(message_id)

    return find


def _mover(found: Found, to: Folder) -> Callable[[Session], Found]:
    return lambda session: session.move(found, to)


def _deleter(found: Found) -> Callable[[Session], None]:
    return lambda session: session.delete(found)


def _raise(result: T | ConnectorError) -> T:
    if isinstance(result, ConnectorError):
        raise result
    return result
