"""The Received chain as data: which host handed the message to which, and from what IP address.

Pure functions, no I/O; they never raise, whatever the header holds. Formats understood:

* Postfix      `from helo (rdns [192.0.2.1]) by mx.example (Postfix) with ESMTPS id ...`
* Sendmail     `from helo (rdns [192.0.2.1] (may be forged)) by mx.example (8.17.1/8.17.1) ...`
* Exchange     `from HELO (192.0.2.1) by EDGE.mail.protection.outlook.com (10.1.2.3) with Microsoft SMTP Server`
* Gmail        `from helo (rdns. [192.0.2.1]) by mx.google.com with ESMTPS id ...`
* Exim         `from [192.0.2.1] (port=53534 helo=[10.0.0.2]) by ...`, `from rdns ([192.0.2.1]:25 helo=x) by ...`
* qmail        `from unknown (HELO helo) (192.0.2.1) by ...`
* IPv6 literals `[IPv6:2001:db8::1]`, bare `(2001:db8::1)` and IPv4-mapped `::ffff:192.0.2.1`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Longer than any real Received header; bounds the work a hostile one can cause.
MAX_HEADER_CHARS = 4096

# Addresses that never belong to an external sender: the hop is inside some mail system.
INTERNAL_NETWORKS: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "::/128",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
    )
)

_WORD = re.compile(r"\S+")
# what `ipaddress.ip_address` can accept: hex digits, dots and colons, then an IPv6 zone (any text)
_IP_TEXT = re.compile(r"[0-9a-f:.]+(?:%.*)?", re.IGNORECASE | re.DOTALL)
_BRACKETED = re.compile(r"\[(?:ipv6:)?([0-9a-f:.]{2,45})(?:%[^\]\s]{0,32})?\]", re.IGNORECASE)
_BARE_IN_PARENS = re.compile(r"\(\s*(?:ipv6:)?([0-9a-f:.]{2,45})\s*\)", re.IGNORECASE)
_HELO_LITERAL = re.compile(r"^\[(?:ipv6:)?([0-9a-f:.]{2,45})\](?::\d{1,5})?$", re.IGNORECASE)
_HOSTNAME = re.compile(r"^[a-z0-9_][a-z0-9_.-]{0,252}$", re.IGNORECASE)
_EXIM_HELO = re.compile(r"helo=\S*$", re.IGNORECASE)
_QMAIL_HELO = re.compile(r"^\(HELO ([^\s()]{1,255})\)")
_EXIM_HELO_VALUE = re.compile(r"\bhelo=([^\s()]{1,255})", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ReceivedHop:
    """One Received header: the `from` side (HELO name, reverse-DNS name, IP) and the `by` host.

    `rdns` is the name the receiving server looked up itself (Postfix, Sendmail, Gmail record it);
    `helo` is the name the sender chose. `index` counts from the top (0 = the newest hop).
    """

    index: int
    helo: str | None = None
    rdns: str | None = None
    ip: str | None = None
    by: str | None = None

    @property
    def address(self) -> IPAddress | None:
        return parse_ip(self.ip) if self.ip else None


def parse_ip(text: str) -> IPAddress | None:
    """An IP address in its canonical form (IPv4-mapped IPv6 becomes IPv4); None if it is not one."""
    text = text.strip()
    if not _IP_TEXT.fullmatch(text):  # most words asked about are host names: no exception to pay for
        return None
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.scope_id:
            return ipaddress.IPv6Address(str(ip).split("%", 1)[0])
    return ip


def is_internal(ip: IPAddress) -> bool:
    """Private, loopback, link-local or unspecified: never the address of an external sender."""
    return any(ip.version == net.version and ip in net for net in INTERNAL_NETWORKS)


def parse_received(value: str, index: int = 0) -> ReceivedHop:
    """One Received header value (folded or not); fields it cannot find are None."""
    text = " ".join(str(value)[:MAX_HEADER_CHARS].split())
    text = text.rsplit(";", 1)[0]  # the date stamp follows the last semicolon
    from_part, by_part = _split_from_by(text)
    if from_part is None:
        return ReceivedHop(index, by=_first_word(by_part))
    words = from_part.split(None, 1)
    helo = words[0] if words else None
    rest = words[1] if len(words) > 1 else ""
    ip, rdns = _tcp_info(rest)
    if ip is None and helo is not None:
        literal = _HELO_LITERAL.match(helo)
        if literal:  # Exim names the connecting address first when it has no reverse-DNS name
            found = parse_ip(literal.group(1))
            ip = str(found) if found else None
    first = _clean_host(helo)
    qmail_helo = _QMAIL_HELO.search(rest)
    if qmail_helo:  # qmail: `from rdns (HELO name) (ip)`, `unknown` when the address has no name
        rdns = None if first == "unknown" else first
        return ReceivedHop(index, helo=_clean_host(qmail_helo.group(1)), rdns=rdns, ip=ip, by=_first_word(by_part))
    exim_helo = _EXIM_HELO_VALUE.search(rest)
    if exim_helo and first and not first.startswith("["):
        # Exim: `from rdns ([ip] helo=name)`, the first name is the one it looked up itself
        return ReceivedHop(index, helo=_clean_host(exim_helo.group(1)), rdns=first, ip=ip, by=_first_word(by_part))
    return ReceivedHop(index, helo=first, rdns=rdns, ip=ip, by=_first_word(by_part))


def parse_chain(values: Iterable[str]) -> tuple[ReceivedHop, ...]:
    """Every Received header, top (newest) first, as the message carries them."""
    return tuple(parse_received(v, i) for i, v in enumerate(values))


def first_external_hop(
    hops: Sequence[ReceivedHop],
    *,
    trusted_ip: Callable[[IPAddress], bool],
    trusted_hostnames: Sequence[str] = (),
) -> ReceivedHop | None:
    """The first hop, walking down from the newest, whose `from` side is outside the mail service.

    A hop is inside when its IP is internal (private, loopback), `trusted_ip` says so, or its host
    name ends in one of `trusted_hostnames` (the reverse-DNS name where the receiving server recorded
    one, else the HELO name). Hops without a `from` IP (`Received: by ...`) are passed over.
    """
    suffixes = tuple(s.lower().strip(".") for s in trusted_hostnames if s.strip("."))
    for hop in hops:
        ip = hop.address
        if ip is None:
            continue
        if is_internal(ip) or trusted_ip(ip):
            continue
        name = hop.rdns or hop.helo
        if name and suffixes and _matches_suffix(name.lower().rstrip("."), suffixes):
            continue
        return hop
    return None


def _matches_suffix(host: str, suffixes: tuple[str, ...]) -> bool:
    return any(host == s or host.endswith("." + s) for s in suffixes)


def _split_from_by(text: str) -> tuple[str | None, str]:
    """(`from` clause, text from `by` on); parentheses are comments and may hold the word `by`."""
    depth = 0
    from_start: int | None = None
    for match in _WORD.finditer(text):
        word = match.group()
        lowered = word.lower()
        if depth == 0 and lowered == "from" and from_start is None:
            from_start = match.end()
        elif depth == 0 and lowered == "by":
            by_text = text[match.end() :]
            return (text[from_start : match.start()] if from_start is not None else None), by_text
        depth = max(0, depth + word.count("(") - word.count(")"))
    return (text[from_start:] if from_start is not None else None), ""


def _tcp_info(rest: str) -> tuple[str | None, str | None]:
    """The connecting IP and reverse-DNS name from what follows the HELO name."""
    candidates: list[tuple[int, str]] = []
    for match in _BRACKETED.finditer(rest):
        if _EXIM_HELO.search(rest[max(0, match.start() - 64) : match.start()]):
            continue  # `helo=[10.0.0.2]` is what the client claimed, not where it connected from
        candidates.append((match.start(), match.group(1)))
    for match in _BARE_IN_PARENS.finditer(rest):
        candidates.append((match.start(), match.group(1)))
    for start, candidate in sorted(candidates):
        ip = parse_ip(candidate)
        if ip is None:
            continue
        return str(ip), _rdns_before(rest, start)
    return None, None


def _rdns_before(rest: str, ip_start: int) -> str | None:
    """The `rdns` of `(rdns [ip])`: the word right before the bracket, when it is a host name."""
    before = rest[max(0, ip_start - 260) : ip_start]
    if not before.endswith(" "):
        return None
    words = before.split()
    if not words:
        return None
    name = words[-1].lstrip("(").rstrip(".").lower()
    if name in ("unknown", "forged") or not _HOSTNAME.match(name) or parse_ip(name) is not None:
        return None
    return name if "." in name else None


def _first_word(text: str) -> str | None:
    words = text.split(None, 1)
    return _clean_host(words[0]) if words else None


def _clean_host(word: str | None) -> str | None:
    if not word:
        return None
    word = word.strip("()<>,").rstrip(".").lower()
    if _HELO_LITERAL.match(word) or parse_ip(word) is not None:
        return word
    return word if _HOSTNAME.match(word) else None
