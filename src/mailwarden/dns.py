"""Asynchronous DNS for the filters: dnspython underneath, answers cached for their TTL.

A look-up never raises for "no such name" or "no record": the answer is empty. A time-out or a
server failure raises `DnsError`, so a caller can tell "not listed" from "could not ask" — a DNS
failure must never block or lose mail, but neither may it count as a clean answer.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from dataclasses import dataclass
from typing import Protocol

import dns.asyncquery
import dns.asyncresolver
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.nameserver
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver
from pydantic import BaseModel, ConfigDict, Field, field_validator

from mailwarden.errors import MailwardenError

_MAX_CNAMES = 16  # aliases followed in one answer


class DnsConfig(BaseModel):
    """`[dns]`: where the filters' look-ups go (nameservers are IP addresses; none: the system resolver
    from /etc/resolv.conf)."""

    model_config = ConfigDict(extra="forbid")

    nameservers: list[str] = Field(default_factory=list)
    port: int = Field(53, ge=1, le=65535)
    timeout: float = Field(2.0, gt=0, le=30, description="seconds for one look-up, retries included")
    cache_size: int = Field(100_000, ge=0, description="answers kept; 0 turns the cache off")
    negative_ttl: int = Field(300, ge=0, le=86400, description="seconds an empty answer is cached")
    failure_ttl: float = Field(
        10.0, ge=0, le=600, description="seconds a failed look-up is remembered, so an outage costs one time-out"
    )

    @field_validator("nameservers")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        # checked here, not left to dnspython: a name would fail every look-up at run time instead
        for server in value:
            try:
                ipaddress.ip_address(server)
            except ValueError:
                raise ValueError(f"{server!r} is not an IP address") from None
        return value


class DnsError(MailwardenError):
    """The question could not be answered (time-out, SERVFAIL, refused)."""


@dataclass(frozen=True, slots=True)
class DnsAnswer:
    records: tuple[str, ...]  # presentation form: "127.0.0.2", TXT strings joined, "10 mx.example.com."
    ttl: int


class Resolver(Protocol):
    async def query(self, name: str, rdtype: str) -> DnsAnswer: ...


class DnsResolver:
    """The production resolver: dnspython's async resolver with a TTL cache in front."""

    def __init__(self, config: DnsConfig | None = None) -> None:
        self.config = config or DnsConfig()
        resolver = dns.asyncresolver.Resolver(configure=not self.config.nameservers)
        # the configured servers, else /etc/resolv.conf's
        servers: list[str | dns.nameserver.Nameserver] = [*self.config.nameservers] or [*resolver.nameservers]
        resolver.nameservers = servers
        resolver.port = self.config.port
        resolver.lifetime = self.config.timeout
        resolver.timeout = min(self.config.timeout, 1.0)
        self._resolver = resolver
        # plain addresses (always, when configured): asked by `_ask_udp`, without the resolver's machinery
        self._servers = [(s, self.config.port) for s in servers if isinstance(s, str) and _is_ip(s)]
        if len(self._servers) != len(servers):
            self._servers = []  # resolv.conf named something else (DNS over HTTPS, ...): dnspython asks
        self._cache: dict[tuple[str, str], tuple[float, DnsAnswer]] = {}
        self._failures: dict[tuple[str, str], tuple[float, DnsError]] = {}
        self._inflight: dict[tuple[str, str], asyncio.Future[DnsAnswer]] = {}
        self.queries = 0  # sent to a server (not answered from the cache)

    async def query(self, name: str, rdtype: str) -> DnsAnswer:
        key = (name.lower().rstrip("."), rdtype.upper())
        cached = self._cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        failed = self._failures.get(key)
        if failed is not None and failed[0] > time.monotonic():
            raise failed[1]
        pending = self._inflight.get(key)
        if pending is not None:  # the same question already on its way: share the answer
            return await asyncio.shield(pending)
        future: asyncio.Future[DnsAnswer] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            answer = await self._ask(*key)
        except DnsError as exc:
            if self.config.failure_ttl:
                if len(self._failures) >= 10_000:
                    self._failures.clear()
                self._failures[key] = (time.monotonic() + self.config.failure_ttl, exc)
            future.set_exception(exc)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        finally:
            self._inflight.pop(key, None)
        future.set_result(answer)
        if self.config.cache_size:
            if len(self._cache) >= self.config.cache_size:
                self._cache.clear()
            self._cache[key] = (time.monotonic() + answer.ttl, answer)
        return answer

    async def _ask(self, name: str, rdtype: str) -> DnsAnswer:
        self.queries += 1
        if self._servers:
            return await self._ask_udp(name, rdtype)
        try:
            result = await self._resolver.resolve(name, rdtype, raise_on_no_answer=False, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoNameservers) as exc:
            if isinstance(exc, dns.resolver.NXDOMAIN):
                return DnsAnswer((), self.config.negative_ttl)
            raise DnsError(f"{name} {rdtype}: no server answered ({exc})") from None
        except dns.exception.Timeout:
            raise DnsError(f"{name} {rdtype}: timed out after {self.config.timeout:g} s") from None
        except dns.exception.DNSException as exc:
            raise DnsError(f"{name} {rdtype}: {exc}") from None
        if result.rrset is None:
            return DnsAnswer((), self.config.negative_ttl)
        records = tuple(_text(rdata) for rdata in result.rrset)
        return DnsAnswer(records, int(result.rrset.ttl))

    async def _ask_udp(self, name: str, rdtype: str) -> DnsAnswer:
        """The question to each server in turn, as dnspython's resolver asks it (no EDNS, recursion
        desired, the same retries, TCP for a truncated answer), for a fifth less CPU (decisions.md): a server
        that answers with an error is not asked again; after a round of time-outs, a short pause and
        another round, until `timeout` has passed."""
        try:
            request = dns.message.make_query(name, rdtype)
        except dns.exception.DNSException as exc:  # not a name (an empty or overlong label), no such type
            raise DnsError(f"{name} {rdtype}: {exc}") from None
        wire = request.to_wire()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.timeout
        servers = list(self._servers)
        failures: list[str] = []
        pause = 0.1
        while servers:
            for server in list(servers):
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise DnsError(f"{name} {rdtype}: timed out after {self.config.timeout:g} s")
                try:
                    response = await _exchange(request, wire, server, min(remaining, 1.0))
                    if response.flags & dns.flags.TC:
                        response = await dns.asyncquery.tcp(request, server[0], timeout=remaining, port=server[1])
                except TimeoutError:
                    continue
                except (OSError, dns.exception.DNSException) as exc:
                    servers.remove(server)
                    failures.append(f"{server[0]}: {exc.__class__.__name__}")
                    continue
                rcode = response.rcode()
                if rcode == dns.rcode.NXDOMAIN:
                    return DnsAnswer((), self.config.negative_ttl)
                if rcode == dns.rcode.NOERROR:
                    return self._answer(response, request.question[0].name, request.question[0].rdtype)
                servers.remove(server)  # SERVFAIL, REFUSED, ...: this server cannot answer this question
                failures.append(f"{server[0]} answered {dns.rcode.to_text(rcode)}")
            remaining = deadline - loop.time()
            if servers and remaining > 0:
                await asyncio.sleep(min(pause, remaining))
                pause *= 2
        raise DnsError(f"{name} {rdtype}: no server answered ({'; '.join(failures)})")

    def _answer(
        self, response: dns.message.Message, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType
    ) -> DnsAnswer:
        """The records of `rdtype` at the end of the answer's CNAME chain; none: an empty answer."""
        for _ in range(_MAX_CNAMES):
            rrset = response.get_rrset(response.answer, qname, dns.rdataclass.IN, rdtype)
            if rrset is not None:
                return DnsAnswer(tuple(_text(rdata) for rdata in rrset), int(rrset.ttl))
            alias = response.get_rrset(response.answer, qname, dns.rdataclass.IN, dns.rdatatype.CNAME)
            if alias is None:
                break
            qname = alias[0].target
        return DnsAnswer((), self.config.negative_ttl)


async def _exchange(
    request: dns.message.Message,
    wire: bytes,
    server: tuple[str, int],
    timeout: float,  # noqa: ASYNC109
) -> dns.message.Message:
    """One question over UDP from a new socket (a new source port per question, as dnspython does),
    connected to the server so that the kernel drops datagrams from anyone else; replies that are not
    the answer to this question (another ID, garbage) are ignored while the time lasts."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.connect(server)
        await loop.sock_sendall(sock, wire)
        async with asyncio.timeout(timeout):
            while True:
                data = await loop.sock_recv(sock, 65535)
                try:
                    response = dns.message.from_wire(data)
                except dns.exception.DNSException:
                    continue
                if request.is_response(response):
                    return response


def _text(rdata: object) -> str:
    strings = getattr(rdata, "strings", None)
    if strings is not None:  # TXT: the character-strings joined, as SPF and DKIM read them
        return b"".join(strings).decode("utf-8", "replace")
    return str(rdata)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
