"""SPF (RFC 7208) evaluated over mailwarden's asynchronous resolver.

Written here rather than wrapping pyspf because pyspf resolves synchronously on its own; this evaluator
asks `Resolver.query`, so look-ups share the TTL cache, the configured servers and the time-outs.

Deliberate limits: `ptr` counts as a DNS-mechanism term but never matches (RFC 7208 §5.5 says it
SHOULD NOT be published; evaluating it costs a reverse look-up plus forward look-ups for little worth);
`exp=` is ignored (we never send the explanation in an SMTP reply); `%{p}` expands to "unknown".
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from dataclasses import dataclass
from enum import StrEnum

from mailwarden.dns import DnsError, Resolver

LOOKUP_LIMIT = 10  # DNS-mechanism terms per check (§4.6.4)
VOID_LOOKUP_LIMIT = 2  # look-ups answered with no record (§4.6.4)
MX_ADDRESS_LIMIT = 10  # MX hosts looked up per `mx` term (§4.6.4)

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class SpfResult(StrEnum):
    PASS = "pass"  # noqa: S105 - a result word, not a password
    FAIL = "fail"
    SOFTFAIL = "softfail"
    NEUTRAL = "neutral"
    NONE = "none"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


QUALIFIERS = {"+": SpfResult.PASS, "-": SpfResult.FAIL, "~": SpfResult.SOFTFAIL, "?": SpfResult.NEUTRAL}


@dataclass(frozen=True, slots=True)
class SpfOutcome:
    """The result for one identity; `domain` is the domain checked (MAIL FROM's, or HELO's)."""

    result: SpfResult
    identity: str  # "mailfrom" or "helo"
    domain: str | None
    sender: str
    reason: str = ""
    mechanism: str = ""


class _Stop(Exception):
    """Ends the evaluation with a result (temperror, permerror) from deep inside the recursion."""

    def __init__(self, result: SpfResult, reason: str) -> None:
        super().__init__(reason)
        self.result = result
        self.reason = reason


@dataclass
class _Budget:
    lookups: int = 0
    voids: int = 0

    def spend(self) -> None:
        self.lookups += 1
        if self.lookups > LOOKUP_LIMIT:
            raise _Stop(SpfResult.PERMERROR, f"more than {LOOKUP_LIMIT} DNS-mechanism look-ups")

    def void(self) -> None:
        self.voids += 1
        if self.voids > VOID_LOOKUP_LIMIT:
            raise _Stop(SpfResult.PERMERROR, f"more than {VOID_LOOKUP_LIMIT} void look-ups")


@dataclass(frozen=True, slots=True)
class _Term:
    qualifier: str
    name: str  # mechanism or modifier name, lower-case
    arg: str | None  # domain-spec (unexpanded) or ip network text
    cidr4: int
    cidr6: int
    modifier: bool = False


_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9\-_.]*$")
_CIDR = re.compile(r"^(?P<spec>.*?)(?:/(?P<c4>\d+))?(?://(?P<c6>\d+))?$")
_MECHANISMS = {"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"}


def parse_record(record: str) -> list[_Term]:
    """The terms of a `v=spf1` record; a syntax error raises `_Stop(permerror)` (§4.6)."""
    terms: list[_Term] = []
    seen_modifiers: set[str] = set()
    for word in record.split()[1:]:
        modifier = re.match(r"^([A-Za-z][A-Za-z0-9\-_.]*)=(.*)$", word)
        if modifier:
            name = modifier.group(1).lower()
            if name in ("redirect", "exp"):
                if name in seen_modifiers:
                    raise _Stop(SpfResult.PERMERROR, f"{name}= appears twice")
                seen_modifiers.add(name)
                _check_macros(modifier.group(2))
                if not modifier.group(2):
                    raise _Stop(SpfResult.PERMERROR, f"empty {name}=")
            terms.append(_Term("+", name, modifier.group(2), 32, 128, modifier=True))
            continue
        qualifier = "+"
        if word[0] in QUALIFIERS:
            qualifier, word = word[0], word[1:]
        name, sep, rest = word.partition(":")
        arg: str | None = rest if sep else None
        if not sep and "/" in name:
            name, _, tail = name.partition("/")
            rest = "/" + tail
        name = name.lower()
        if name not in _MECHANISMS:
            raise _Stop(SpfResult.PERMERROR, f"unknown mechanism {word!r}")
        terms.append(_mechanism(qualifier, name, arg, rest if not sep else "", word))
    return terms


def _mechanism(qualifier: str, name: str, arg: str | None, bare_cidr: str, word: str) -> _Term:
    bad = _Stop(SpfResult.PERMERROR, f"syntax error in {word!r}")
    if name == "all":
        if arg is not None or bare_cidr:
            raise bad
        return _Term(qualifier, name, None, 32, 128)
    if name in ("ip4", "ip6"):
        if not arg:
            raise bad
        try:
            net = ipaddress.ip_network(arg, strict=False)
        except ValueError:
            raise bad from None
        if (name == "ip4") != (net.version == 4) or ("/" in arg and not arg.rsplit("/", 1)[1].isdigit()):
            raise bad
        return _Term(qualifier, name, str(net), net.prefixlen, net.prefixlen)
    if name in ("a", "mx"):
        text = arg if arg is not None else bare_cidr
        m = _CIDR.match(text or "")
        if m is None:
            raise bad
        spec = m.group("spec")
        c4 = int(m.group("c4")) if m.group("c4") else 32
        c6 = int(m.group("c6")) if m.group("c6") else 128
        if c4 > 32 or c6 > 128 or (arg is not None and not spec):
            raise bad
        if spec:
            _check_macros(spec)
        return _Term(qualifier, name, spec or None, c4, c6)
    if bare_cidr:
        raise bad
    if name in ("include", "exists") and not arg:
        raise bad
    if arg:
        _check_macros(arg)
    return _Term(qualifier, name, arg, 32, 128)


_MACRO = re.compile(r"%\{([slodiphcrtvSLODIPHCRTV])(\d*)(r?)([.\-+,/_=]*)\}|%%|%_|%-|%", re.IGNORECASE)


def _check_macros(spec: str) -> None:
    for m in _MACRO.finditer(spec):
        if m.group(0) == "%":
            raise _Stop(SpfResult.PERMERROR, f"bad macro in {spec!r}")


@dataclass(frozen=True, slots=True)
class _MacroContext:
    ip: IpAddress
    sender: str
    domain: str
    helo: str


def expand(spec: str, mc: _MacroContext) -> str:
    """Expand the macros of a domain-spec (§7): s l o d i p v h, transformers and delimiters."""
    local, _, sender_domain = mc.sender.rpartition("@")

    def one(m: re.Match[str]) -> str:
        macro = m.group(0)
        if macro == "%%":
            return "%"
        if macro == "%_":
            return " "
        if macro == "%-":
            return "%20"
        if macro == "%":
            raise _Stop(SpfResult.PERMERROR, f"bad macro in {spec!r}")
        letter = m.group(1)
        key = letter.lower()
        if key == "s":
            value = mc.sender
        elif key == "l":
            value = local or "postmaster"
        elif key == "o":
            value = sender_domain
        elif key == "d":
            value = mc.domain
        elif key == "i":
            value = _dotted(mc.ip)
        elif key == "v":
            value = "in-addr" if mc.ip.version == 4 else "ip6"
        elif key == "h":
            value = mc.helo
        elif key == "p":
            value = "unknown"
        else:  # c, r, t are for exp= only (§7.2)
            raise _Stop(SpfResult.PERMERROR, f"macro %{{{letter}}} outside exp=")
        delimiters = m.group(4) or "."
        parts = re.split("[" + re.escape(delimiters) + "]", value)
        if m.group(3):
            parts.reverse()
        if m.group(2):
            keep = int(m.group(2))
            if keep == 0:
                raise _Stop(SpfResult.PERMERROR, f"zero digits in macro in {spec!r}")
            parts = parts[-keep:]
        out = ".".join(parts)
        return urllib.parse.quote(out, safe="") if letter.isupper() else out

    expanded = _MACRO.sub(one, spec)
    return _truncate(expanded)


def _dotted(ip: IpAddress) -> str:
    if ip.version == 4:
        return str(ip)
    return ".".join(ip.exploded.replace(":", ""))


def _truncate(domain: str) -> str:
    domain = domain.rstrip(".")
    while len(domain) > 253 and "." in domain:
        domain = domain.split(".", 1)[1]
    return domain


def _valid_domain(domain: str) -> bool:
    labels = domain.rstrip(".").split(".")
    return len(labels) >= 2 and all(0 < len(label) <= 63 for label in labels) and len(domain) <= 253


def client_address(text: str) -> IpAddress:
    """The client IP; an IPv4-mapped IPv6 address counts as IPv4 (§5)."""
    ip = ipaddress.ip_address(text.strip().strip("[]"))
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class SpfChecker:
    """`check_host()` over a `Resolver`. One instance serves any number of messages."""

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver

    async def check(self, ip: str, mail_from: str, helo: str | None) -> SpfOutcome:
        """Check MAIL FROM, or the HELO identity when the reverse-path is null (§2.4)."""
        helo = (helo or "").strip().strip("[]").lower()
        if mail_from:
            identity = "mailfrom"
            local, _, domain = mail_from.strip("<>").rpartition("@")
            sender = f"{local or 'postmaster'}@{domain.lower()}"
        else:
            identity = "helo"
            domain = helo
            sender = f"postmaster@{helo}"
        domain = domain.lower().rstrip(".")
        if not domain or not _valid_domain(domain):
            return SpfOutcome(SpfResult.NONE, identity, domain or None, sender, f"no valid domain in {identity}")
        try:
            address = client_address(ip)
        except ValueError:
            return SpfOutcome(SpfResult.NONE, identity, domain, sender, f"client IP {ip!r} is not an address")
        mc = _MacroContext(address, sender, domain, helo or "unknown")
        try:
            result, mechanism = await self._check_host(mc, domain, _Budget())
        except _Stop as stop:
            return SpfOutcome(stop.result, identity, domain, sender, stop.reason)
        reason = f"{address} matched {mechanism}" if mechanism else f"{address}: no mechanism matched"
        if result is SpfResult.NONE:
            reason = f"{domain} publishes no SPF record"
        return SpfOutcome(result, identity, domain, sender, reason, mechanism)

    async def _check_host(self, mc: _MacroContext, domain: str, budget: _Budget) -> tuple[SpfResult, str]:
        if not _valid_domain(domain):
            return SpfResult.NONE, ""
        record = await self._record(domain)
        if record is None:
            return SpfResult.NONE, ""
        terms = parse_record(record)
        here = _MacroContext(mc.ip, mc.sender, domain, mc.helo)
        redirect: str | None = None
        for term in terms:
            if term.modifier:
                if term.name == "redirect":
                    redirect = term.arg
                continue
            if await self._matches(term, here, budget):
                label = term.name + (f":{term.arg}" if term.arg else "")
                return QUALIFIERS[term.qualifier], (term.qualifier if term.qualifier != "+" else "") + label
        if redirect is not None:
            budget.spend()
            target = expand(redirect, here)
            result, mechanism = await self._check_host(mc, target, budget)
            if result is SpfResult.NONE:
                raise _Stop(SpfResult.PERMERROR, f"redirect={target} has no SPF record")
            return result, mechanism
        return SpfResult.NEUTRAL, ""

    async def _record(self, domain: str) -> str | None:
        answer = await self._ask(domain, "TXT")
        records = [r for r in answer if r.lower() == "v=spf1" or r.lower().startswith("v=spf1 ")]
        if len(records) > 1:
            raise _Stop(SpfResult.PERMERROR, f"{domain} publishes {len(records)} SPF records")
        return records[0] if records else None

    async def _ask(self, name: str, rdtype: str) -> tuple[str, ...]:
        try:
            return (await self.resolver.query(name, rdtype)).records
        except DnsError as exc:
            raise _Stop(SpfResult.TEMPERROR, str(exc)) from None

    async def _addresses(self, name: str, version: int, budget: _Budget | None) -> list[IpAddress]:
        records = await self._ask(name, "A" if version == 4 else "AAAA")
        if not records and budget is not None:
            budget.void()
        out: list[IpAddress] = []
        for r in records:
            try:
                out.append(ipaddress.ip_address(r))
            except ValueError:
                continue
        return out

    async def _matches(self, term: _Term, mc: _MacroContext, budget: _Budget) -> bool:
        name = term.name
        if name == "all":
            return True
        if name in ("ip4", "ip6"):
            assert term.arg is not None
            net = ipaddress.ip_network(term.arg)
            return net.version == mc.ip.version and mc.ip in net
        budget.spend()
        target = expand(term.arg, mc) if term.arg else mc.domain
        if name == "include":
            result, _ = await self._check_host(mc, target, budget)
            if result is SpfResult.PASS:
                return True
            if result in (SpfResult.FAIL, SpfResult.SOFTFAIL, SpfResult.NEUTRAL):
                return False
            raise _Stop(SpfResult.PERMERROR, f"include:{target} has no SPF record")  # none (§5.2)
        if name == "exists":
            return bool(await self._addresses(target, 4, budget))
        if name == "ptr":
            return False  # documented: never matches
        prefix = term.cidr4 if mc.ip.version == 4 else term.cidr6
        if name == "a":
            hosts = [target]
        else:  # mx
            answer = await self._ask(target, "MX")
            if not answer:
                budget.void()
            hosts = [r.split()[-1].rstrip(".") for r in answer if r.split()]
            if len(hosts) > MX_ADDRESS_LIMIT:
                raise _Stop(SpfResult.PERMERROR, f"{target} has more than {MX_ADDRESS_LIMIT} MX hosts")
        for host in hosts:
            if not host:
                continue
            for address in await self._addresses(host, mc.ip.version, budget if name == "a" else None):
                if mc.ip in ipaddress.ip_network(f"{address}/{prefix}", strict=False):
                    return True
        return False
