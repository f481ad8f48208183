"""Recipient verification at RCPT time: is this address a mailbox of the domain? (docs/recipients.md)

An inbound listener that accepts every address of a domain and relays it on makes the next hop refuse the
typos and guesses, and then it is us who bounce them, to senders that are mostly forged: backscatter.
Like Exchange's recipient lookup on an Edge server, a domain can have its recipients verified before the
250: from a list in the policy document, a directory search (LDAP) or a call-ahead to the next hop
(`callahead.py`). Every verifier has one method, `async verify(address) -> Known | Unknown | Unavailable`;
the remote ones are wrapped in a cache of their answers. A verifier that cannot answer says Unavailable,
which the listener turns into a 451: neither a guess that bounces later nor a refusal of a real user.

Network clients are passed in (`LdapDirectory`), so the logic here is tested without sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import structlog

from mailwarden.ingest import replies as r
from mailwarden.ingest.replies import Reply
from mailwarden.model.recipients import LdapLookup

if TYPE_CHECKING:
    import ldap3

log = structlog.get_logger(__name__)

_MAX_CACHED = 50_000  # addresses per domain: a dictionary attack fills it with misses, so it is bounded


@dataclass(frozen=True, slots=True)
class Known:
    """The address is a recipient of the domain."""

    detail: str = ""


@dataclass(frozen=True, slots=True)
class Unknown:
    """The domain has no such recipient: refuse it permanently."""

    detail: str = ""


@dataclass(frozen=True, slots=True)
class Unavailable:
    """The verifier could not tell (directory or next hop down, timed out, misconfigured)."""

    detail: str


Verification = Known | Unknown | Unavailable


class RecipientVerifier(Protocol):
    """Answers for one domain. `address` is normalised (lower case, no angle brackets)."""

    async def verify(self, address: str) -> Verification: ...

    async def close(self) -> None: ...


def refusal(verification: Verification, address: str) -> Reply | None:
    """The RCPT reply for a verification: None to accept, 550 5.1.1 for unknown, 451 4.4.3 when unavailable."""
    match verification:
        case Known():
            return None
        case Unknown():
            return r.RECIPIENT_UNKNOWN.filled(address=address)
        case Unavailable():
            return r.RECIPIENT_NOT_VERIFIED.filled(address=address)


def lookup_candidates(address: str, delimiter: str) -> tuple[str, ...]:
    """The address, then its base address when it carries a `local+detail` extension (as Postfix looks up)."""
    local, _, domain = address.rpartition("@")
    if delimiter and delimiter in local[1:]:
        return address, f"{local[: local.index(delimiter, 1)]}@{domain}"
    return (address,)


def is_postmaster(address: str) -> bool:
    """RFC 5321 §4.5.1: every domain that receives mail must accept `postmaster` (any case)."""
    return address.rpartition("@")[0].lower() == "postmaster"


# ---- a list in the policy document -------------------------------------------------------------
class RecipientList:
    """The domain's recipients listed in the policy: pure, in memory, never unavailable."""

    def __init__(self, addresses: tuple[str, ...], *, delimiter: str = "+") -> None:
        self._addresses = frozenset(a.lower() for a in addresses)
        self._delimiter = delimiter

    async def verify(self, address: str) -> Verification:
        if is_postmaster(address) or any(c in self._addresses for c in lookup_candidates(address, self._delimiter)):
            return Known("listed")
        return Unknown("not in the domain's recipient list")

    async def close(self) -> None:
        return None


# ---- LDAP ---------------------------------------------------------------------------------------
class DirectoryError(Exception):
    """The directory could not be asked (connection, bind or search failed)."""


class LdapDirectory(Protocol):
    """A directory client (blocking; called from one worker thread at a time)."""

    def exists(self, search_filter: str) -> bool:
        """True when the search finds at least one entry; DirectoryError when it cannot be made."""
        ...

    def close(self) -> None: ...


def escape_filter_value(value: str) -> str:
    """A value safe inside an LDAP search filter (RFC 4515 §3): `* ( ) \\ NUL` as hex escapes."""
    out = value.replace("\\", "\\5c")
    for char, escaped in (("*", "\\2a"), ("(", "\\28"), (")", "\\29"), ("\0", "\\00")):
        out = out.replace(char, escaped)
    return out


def ldap_filter(template: str, address: str) -> str:
    """The configured filter with {address}, {local} and {domain} filled in, each value escaped."""
    local, _, domain = address.rpartition("@")
    return template.format(
        address=escape_filter_value(address), local=escape_filter_value(local), domain=escape_filter_value(domain)
    )


class LdapVerifier:
    """A directory search per address (and per base address of `local+detail`); any entry found is Known.

    The directory client is blocking (ldap3), so it runs on a thread of its own: one search at a time per
    domain, and a slow directory never holds up the threads the rest of the server shares.
    """

    def __init__(self, lookup: LdapLookup, directory: LdapDirectory, *, delimiter: str, timeout: float) -> None:
        self._filter = lookup.filter
        self._server = lookup.url
        self._directory = directory
        self._delimiter = delimiter
        self._timeout = timeout
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ldap")

    async def verify(self, address: str) -> Verification:
        if is_postmaster(address):
            return Known("postmaster")
        loop = asyncio.get_running_loop()
        for candidate in lookup_candidates(address, self._delimiter):
            search = ldap_filter(self._filter, candidate)
            try:
                found = await asyncio.wait_for(
                    loop.run_in_executor(self._thread, self._directory.exists, search), self._timeout
                )
            except TimeoutError:
                return Unavailable(f"LDAP server {self._server} did not answer within {self._timeout:g} s")
            except DirectoryError as exc:
                return Unavailable(f"LDAP server {self._server}: {exc}")
            if found:
                return Known(f"found in {self._server}")
        return Unknown(f"not found in {self._server}")

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._directory.close)
        self._thread.shutdown(wait=False)


# ---- the cache in front of a remote verifier -----------------------------------------------------
class CachedVerifier:
    """Keeps a remote verifier's Known and Unknown answers for their own times; Unavailable is never kept.

    Known answers live longer than Unknown ones: a new mailbox should not wait long to get its first mail,
    and an address that once existed costs at most one late bounce when it goes.
    """

    def __init__(
        self,
        inner: RecipientVerifier,
        *,
        known_seconds: float,
        unknown_seconds: float,
        max_entries: int = _MAX_CACHED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner
        self._known_seconds = known_seconds
        self._unknown_seconds = unknown_seconds
        self._max_entries = max_entries
        self._clock = clock
        self._answers: OrderedDict[str, tuple[float, Verification]] = OrderedDict()

    async def verify(self, address: str) -> Verification:
        now = self._clock()
        cached = self._answers.get(address)
        if cached is not None and cached[0] > now:
            self._answers.move_to_end(address)
            return cached[1]
        answer = await self._inner.verify(address)
        lifetime = self._lifetime(answer)
        if lifetime > 0:
            self._answers[address] = (self._clock() + lifetime, answer)
            self._answers.move_to_end(address)
            while len(self._answers) > self._max_entries:
                self._answers.popitem(last=False)
        else:
            self._answers.pop(address, None)
        return answer

    def _lifetime(self, answer: Verification) -> float:
        match answer:
            case Known():
                return self._known_seconds
            case Unknown():
                return self._unknown_seconds
            case Unavailable():
                return 0.0

    async def close(self) -> None:
        await self._inner.close()


class Ldap3Directory:
    """The LDAP client (ldap3): one connection, opened and bound on first use and reopened when it fails."""

    def __init__(self, lookup: LdapLookup, password: str | None, *, timeout: float) -> None:
        import ldap3  # here: only a server with a domain verified by LDAP loads it

        tls = ldap3.Tls(validate=ssl.CERT_REQUIRED if lookup.tls_verify else ssl.CERT_NONE)
        self._server = ldap3.Server(lookup.url, connect_timeout=timeout, get_info=ldap3.NONE, tls=tls)
        self._lookup = lookup
        self._password = password
        self._timeout = timeout
        self._connection: ldap3.Connection | None = None

    def exists(self, search_filter: str) -> bool:
        from ldap3.core.exceptions import LDAPException

        if self._connection is not None:
            try:
                return self._search(self._connection, search_filter)
            except LDAPException:
                self.close()  # the server may have closed an idle connection: once more on a new one
        try:
            return self._search(self._open(), search_filter)
        except LDAPException as exc:
            self.close()
            raise DirectoryError(_ldap_reason(exc)) from None

    def _search(self, connection: ldap3.Connection, search_filter: str) -> bool:
        import ldap3

        base = self._lookup.base
        connection.search(base, search_filter, search_scope=ldap3.SUBTREE, attributes=["1.1"], size_limit=1)
        if connection.result.get("result") not in (_LDAP_SUCCESS, _LDAP_SIZE_LIMIT_EXCEEDED):
            raise DirectoryError(f"search under {base} failed: {connection.result.get('description')}")
        return any(entry.get("type") == "searchResEntry" for entry in connection.response or ())

    def _open(self) -> ldap3.Connection:
        import ldap3

        self._connection = ldap3.Connection(
            self._server,
            user=self._lookup.bind_dn,
            password=self._password,
            auto_bind=ldap3.AUTO_BIND_NO_TLS,
            receive_timeout=math.ceil(self._timeout),  # ldap3 packs it into SO_RCVTIMEO: whole seconds
            read_only=True,
            auto_referrals=False,
        )
        return self._connection

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):  # closing a connection that already failed
                connection.unbind()


_LDAP_SUCCESS, _LDAP_SIZE_LIMIT_EXCEEDED = 0, 4  # RFC 4511 result codes: one entry or more was found


def _ldap_reason(exc: BaseException) -> str:
    return " ".join((str(exc) or type(exc).__name__).split())
