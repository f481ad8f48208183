"""The connection filter: IP allow list, IP block list and DNS block lists for the sending IP.

The sending IP is the SMTP client for inline mail, and for journal copies (no SMTP client of ours)
the first hop into the organisation's mail service found in the Received chain. Allow wins over
block (EOP). An allowed IP skips the spam filter (SCL -1) but not the malware filter; a blocked IP
stops filtering and the message is refused. In enforce mode the block is applied at RCPT time by
`is_blocked` / `blocked_reply` (the organisation, whose lists apply, is known from the recipient).

A DNS block list that cannot be asked (time-out, SERVFAIL, a refusal answer) never blocks or
loses mail: it gives a zero-score `DNSBL_ERROR` finding naming the zone.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import ipaddress
import re
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from mailwarden.dns import DnsError, Resolver
from mailwarden.mail.received import IPAddress, first_external_hop, is_internal, parse_chain, parse_ip
from mailwarden.model import Finding, Policy, StageOutcome
from mailwarden.model.policy import SenderLists, normalise_networks
from mailwarden.pipeline.facts import ConnectionFacts
from mailwarden.pipeline.services import StageServices
from mailwarden.pipeline.stage import Inspection, ScanContext

log = structlog.get_logger(__name__)

STAGE = "connection"

IP_ALLOW = "IP_ALLOW"
IP_BLOCKLIST = "IP_BLOCKLIST"
DNSBL_ERROR = "DNSBL_ERROR"
NO_CLIENT_IP = "NO_CLIENT_IP"

# The reply EOP gives for its IP block list (550 5.7.1, the address in brackets).
BLOCKED_REPLY = "550 5.7.1 Service unavailable; client host [{ip}] blocked using IP block list"

# DNSBL answers in 127.255.255.0/24 mean "query refused" (Spamhaus: public resolver, over quota,
# typo'd zone), not "listed".
_REFUSAL = ipaddress.ip_network("127.255.255.0/24")
_LISTED = ipaddress.ip_network("127.0.0.0/8")
_SYMBOL = re.compile(r"[^A-Z0-9]+")


class IpSource(StrEnum):
    """Where the checked IP came from."""

    SMTP = "smtp"  # the client of our own SMTP session
    RECEIVED = "received"  # the first external hop of the Received chain (journal copies)
    NONE = "none"


# ---- config ----------------------------------------------------------------------------------
class DnsblZone(BaseModel):
    """One DNS block list: `{ zone = "zen.example", name = "ZEN", weight = 3.0, codes = {...} }`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    zone: str = Field(pattern=r"^([A-Za-z0-9_-]{1,63}\.)+[A-Za-z0-9-]{2,63}\.?$", max_length=253)
    name: str = Field(
        "", max_length=40, validate_default=True, description="symbol part of the finding code; default from the zone"
    )
    weight: float = Field(1.0, ge=0, le=100, description="spam score of each listing code")
    codes: dict[str, str] = Field(default_factory=dict, description="answer address → label (SBL, XBL, ...)")
    ipv6: bool = Field(True, description="ask this zone about IPv6 addresses too")

    @field_validator("zone")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower().rstrip(".")

    @field_validator("codes")
    @classmethod
    def _codes(cls, value: dict[str, str]) -> dict[str, str]:
        out = {}
        for answer, label in value.items():
            ip = parse_ip(answer)
            if ip is None or ip.version != 4 or ip not in _LISTED:
                raise ValueError(f"code {answer!r} is not an address in 127.0.0.0/8")
            symbol = _symbol(label)
            if not symbol:
                raise ValueError(f"label of code {answer} must have letters or digits")
            out[str(ip)] = symbol
        return out

    @field_validator("name")
    @classmethod
    def _name(cls, value: str, info: ValidationInfo) -> str:
        zone = info.data.get("zone") or ""
        symbol = _symbol(value or zone.split(".", 1)[0])
        if not symbol:
            raise ValueError("name must have letters or digits")
        return symbol


class ConnectionConfig(BaseModel):
    """`[stages.connection]`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dnsbl: tuple[DnsblZone, ...] = ()
    dnsbl_timeout: float = Field(1.5, gt=0, le=10, description="seconds to wait for all block lists")
    mail_service_hosts: tuple[str, ...] = Field(
        (), description="CIDRs of the organisation's own mail servers and providers, skipped in Received"
    )
    trusted_hostnames: tuple[str, ...] = Field(
        (), description="host name suffixes of the mail service (.protection.outlook.com), skipped in Received"
    )

    @field_validator("mail_service_hosts")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return normalise_networks(value)

    @field_validator("trusted_hostnames")
    @classmethod
    def _suffixes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        out = []
        for entry in value:
            suffix = entry.strip().lower().strip(".")
            if not re.fullmatch(r"([a-z0-9_-]{1,63}\.)*[a-z0-9-]{1,63}", suffix):
                raise ValueError(f"{entry!r} is not a host name suffix")
            out.append(suffix)
        return tuple(out)

    @model_validator(mode="after")
    def _unique_names(self) -> ConnectionConfig:
        names = [z.name for z in self.dnsbl]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"two block lists share the name {', '.join(dupes)}; give each a distinct name")
        return self


# ---- IP sets ---------------------------------------------------------------------------------
class IpRanges:
    """A set of IP addresses and CIDR ranges as integer ranges per family, found by bisection.

    Ranges are sorted by start; alongside each, the furthest end of any range up to it and the entry
    that reaches there. For an address, the last range starting at or below it is found by bisection;
    the address is covered when that running furthest end reaches it, and that entry covers it.
    """

    __slots__ = ("_covers", "_reach", "_starts")

    def __init__(self, entries: Iterable[str]) -> None:
        ranges: dict[int, list[tuple[int, int, str]]] = {4: [], 6: []}
        for entry in entries:
            try:
                net = ipaddress.ip_network(entry, strict=False)
            except ValueError:
                continue  # policies and config validate their entries; never fail a message on one
            ranges[net.version].append((int(net.network_address), -int(net.broadcast_address), str(net)))
        self._starts: dict[int, list[int]] = {}
        self._reach: dict[int, list[int]] = {}
        self._covers: dict[int, list[str]] = {}
        for version, items in ranges.items():
            starts: list[int] = []
            reach: list[int] = []
            covers: list[str] = []
            for start, negative_end, name in sorted(items):  # the widest range first at equal starts
                end = -negative_end
                starts.append(start)
                if reach and reach[-1] >= end:
                    reach.append(reach[-1])
                    covers.append(covers[-1])
                else:
                    reach.append(end)
                    covers.append(name)
            self._starts[version], self._reach[version], self._covers[version] = starts, reach, covers

    def match(self, ip: IPAddress) -> str | None:
        """The list entry that covers `ip`, or None."""
        value = int(ip)
        i = bisect.bisect_right(self._starts[ip.version], value) - 1
        if i >= 0 and value <= self._reach[ip.version][i]:
            return self._covers[ip.version][i]
        return None

    def __contains__(self, ip: IPAddress) -> bool:
        return self.match(ip) is not None

    def __len__(self) -> int:
        return sum(len(s) for s in self._starts.values())


@dataclass(frozen=True, slots=True)
class CompiledLists:
    allow: IpRanges
    block: IpRanges


# id(lists) → (weak reference to the lists, compiled): one look-up per message, no hashing of the
# lists; an entry goes when its policy object does.
_by_object: dict[int, tuple[weakref.ref[SenderLists], CompiledLists]] = {}


def compiled_lists(lists: SenderLists) -> CompiledLists:
    """The policy's IP lists ready for look-ups, built once per policy object."""
    key = id(lists)
    cached = _by_object.get(key)
    if cached is not None and cached[0]() is lists:
        return cached[1]
    result = _compile(lists.ip_allow, lists.ip_block)
    _by_object[key] = (weakref.ref(lists, lambda _ref: _by_object.pop(key, None)), result)
    return result


@functools.lru_cache(maxsize=1024)
def _compile(ip_allow: tuple[str, ...], ip_block: tuple[str, ...]) -> CompiledLists:
    # keyed by content: a policy reloaded unchanged (the directory re-reads every few seconds) reuses it
    return CompiledLists(IpRanges(ip_allow), IpRanges(ip_block))


def is_blocked(policy: Policy, ip: str | None) -> bool:
    """True when the organisation's IP block list covers `ip` and its allow list does not."""
    address = parse_ip(ip) if ip else None
    if address is None:
        return False
    lists = compiled_lists(policy.lists)
    return address not in lists.allow and address in lists.block


def blocked_reply(ip: str) -> str:
    """The SMTP reply for a client on the IP block list."""
    return BLOCKED_REPLY.format(ip=ip)


def dnsbl_query_name(ip: IPAddress, zone: str) -> str:
    """`2.0.0.127.zen.example` for 127.0.0.2; reversed nibbles for IPv6."""
    pointer = ip.reverse_pointer  # "2.0.0.127.in-addr.arpa" / "b.a.9....ip6.arpa"
    return pointer.rsplit(".", 2)[0] + "." + zone


async def listing_codes(resolver: Resolver, query: str, wait: float) -> tuple[str, ...] | str:
    """Ask a DNS block list (IP or URI list) about `query`: its listing codes in 127.0.0.0/8 (empty: not
    listed), or the reason the answer cannot be used (time-out, error, refusal code, odd address)."""
    try:
        reply = await asyncio.wait_for(resolver.query(query, "A"), wait)
    except TimeoutError:
        return f"timed out after {wait:g} s"
    except DnsError as exc:
        return str(exc)
    codes = []
    for record in reply.records:
        address = parse_ip(record)
        if address is None or address.version != 4 or address not in _LISTED:
            return f"unexpected answer {record} (not 127.0.0.0/8): ignored"
        if address in _REFUSAL:
            return f"query refused ({record}): ignored"
        codes.append(str(address))
    return tuple(sorted(set(codes), key=lambda c: int(ipaddress.IPv4Address(c))))


def _symbol(text: str) -> str:
    return _SYMBOL.sub("_", text.upper()).strip("_")


# ---- the stage -------------------------------------------------------------------------------
class ConnectionFilter:
    """IP allow / block lists and DNS block lists for the message's sending IP."""

    name: ClassVar[str] = STAGE

    def __init__(self, config: ConnectionConfig, resolver: Resolver) -> None:
        self.config = config
        self.resolver = resolver
        self.mail_service = IpRanges(config.mail_service_hosts)

    @classmethod
    def from_services(cls, services: StageServices) -> ConnectionFilter:
        return cls(services.config_for(STAGE, ConnectionConfig), services.resolver)

    async def inspect(self, ctx: ScanContext) -> list[Finding] | Inspection:
        ip, source, index = self.sending_ip(ctx)
        facts = ConnectionFacts(str(ip) if ip else None, source.value, index)
        ctx.facts.connection = facts
        if ip is None:
            return [Finding(STAGE, NO_CLIENT_IP, 0.0, "no sending IP: IP lists and DNS block lists not checked")]

        lists = compiled_lists(ctx.policy.lists)
        allowed = lists.allow.match(ip)
        if allowed is not None:
            facts.ip_list = "allow"
            ctx.bypass_spam = "ip_allow"
            finding = Finding(STAGE, IP_ALLOW, 0.0, f"{ip} on IP allow list ({allowed})")
            return Inspection(StageOutcome.CLEAN, (finding,))
        blocked = lists.block.match(ip)
        if blocked is not None:
            facts.ip_list = "block"
            ctx.reject = blocked_reply(str(ip))
            finding = Finding(STAGE, IP_BLOCKLIST, 0.0, f"{ip} on IP block list ({blocked})")
            return Inspection(StageOutcome.DETECTED, (finding,))

        findings, hits = await self._dnsbl(ip)
        facts.dnsbl = hits
        return findings

    def sending_ip(self, ctx: ScanContext) -> tuple[IPAddress | None, IpSource, int | None]:
        """The IP to judge: the SMTP client, else the first external hop of the Received chain.

        An SMTP client that is one of the organisation's own mail servers (a connector in front of
        us) is looked past as well, as EOP's enhanced filtering for connectors does.
        """
        client = parse_ip(ctx.envelope.client_ip) if ctx.envelope.client_ip else None
        journal = ctx.facts.journal
        if client is not None and not journal and client not in self.mail_service:
            return client, IpSource.SMTP, None
        hops = parse_chain(ctx.message.raw_headers("Received"))
        hop = first_external_hop(
            hops, trusted_ip=self.mail_service.__contains__, trusted_hostnames=self.config.trusted_hostnames
        )
        if hop is None or hop.address is None:
            return None, IpSource.NONE, None
        return hop.address, IpSource.RECEIVED, hop.index

    async def _dnsbl(self, ip: IPAddress) -> tuple[list[Finding], list[dict[str, Any]]]:
        zones = [z for z in self.config.dnsbl if ip.version == 4 or z.ipv6]
        if not zones or is_internal(ip):
            return [], []
        answers = await asyncio.gather(*(self._ask(ip, zone) for zone in zones))
        findings: list[Finding] = []
        hits: list[dict[str, Any]] = []
        for zone, answer in zip(zones, answers, strict=True):
            if isinstance(answer, str):
                log.warning("dnsbl_error", stage=STAGE, zone=zone.zone, ip=str(ip), error=answer)
                findings.append(Finding(STAGE, DNSBL_ERROR, 0.0, f"{zone.zone}: {answer}"))
                continue
            labels = []
            for code in answer:
                label = zone.codes.get(code) or _symbol(code)
                labels.append(label)
                findings.append(
                    Finding(STAGE, f"DNSBL_{zone.name}_{label}", zone.weight, f"{ip} listed in {zone.zone} ({code})")
                )
            if answer:
                hits.append({"zone": zone.zone, "name": zone.name, "answers": list(answer), "labels": labels})
        return findings, hits

    async def _ask(self, ip: IPAddress, zone: DnsblZone) -> tuple[str, ...] | str:
        return await listing_codes(self.resolver, dnsbl_query_name(ip, zone.zone), self.config.dnsbl_timeout)
