"""Header heuristics: Date, Message-ID, the Received chain, From vs Reply-To/Return-Path, recipients."""

from __future__ import annotations

import email.utils
import re
from collections.abc import Iterator
from datetime import datetime, timedelta

from mailwarden.mail.received import parse_received
from mailwarden.model import Organisation
from mailwarden.pipeline.facts import ScanFacts
from mailwarden.pipeline.spam.heuristics.settings import HeuristicsSettings
from mailwarden.pipeline.spam.heuristics.view import View, domain_of, registered_domain

Hit = tuple[str, str]

FUTURE_SLACK = timedelta(days=1)
PAST_SLACK = timedelta(days=4)
# an older hop stamped this much later than the hop that received from it is not clock skew
DISORDER_SLACK = timedelta(hours=1)
MANY_RECIPIENTS = 15

_MID = re.compile(r"^<[^<>@\s]+@([^<>@\s]+)>$")
_EMAIL_IN_NAME = re.compile(r"[\w.+-]+@([\w-]+(?:\.[\w-]+)+)")
_DOTTED_QUAD = re.compile(r"\[(\d{1,3}(?:\.\d{1,3}){3})\]")
_IP_LITERAL = re.compile(r"^\[?[\d.]+\]?$|^\[?ipv6:", re.IGNORECASE)
# parse_received takes a hop's address only from `[...]`, `[IPv6:...]` or `(...)`; of those, a
# multicast, reserved or unspecified one starts 0.0.0.0 or with an octet from 224 on (IPv4), starts
# with ff (IPv6 multicast), holds ffff (IPv4-mapped) or is all zeros, colons and dots with :: or 0:0
# (unspecified). A hop with no such candidate is not parsed, which is most of the cost.
_IP_CANDIDATE = re.compile(r"[\[(]\s*(?:ipv6:)?([0-9a-f:.]{2,45})", re.IGNORECASE)
_BOGUS_SHAPE = re.compile(r"^(?:0\.0\.0\.0|2(?:2[4-9]|[3-9]\d)\.|ff|[0:.]*(?:::|0:0)[0:.]*$)|ffff")


def _may_name_bogus_ip(value: str) -> bool:
    return any(_BOGUS_SHAPE.search(c.lower()) for c in _IP_CANDIDATE.findall(value.rsplit(";", 1)[0]))


MAX_HOPS = 100  # Received headers looked at; a real chain has a dozen at most


def received_time(value: str) -> datetime | None:
    """The timestamp after the last `;` of a Received header, timezone-aware; None if absent or bad."""
    if ";" not in value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value.rsplit(";", 1)[1].strip())
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo is not None else None


def check(view: View, facts: ScanFacts, org: Organisation | None, s: HeuristicsSettings) -> Iterator[Hit]:
    msg = view.message
    received = msg.raw_headers("Received")[:MAX_HOPS]
    times = [received_time(r) for r in received]
    yield from _date(msg.header("Date"), msg.date, [t for t in times if t is not None])
    yield from _message_id(msg.message_id)
    yield from _received(received, times)
    yield from _addresses(view, s)
    yield from _recipients(view)
    yield from _from_domain(view)


def _date(raw: str | None, parsed: datetime | None, times: list[datetime]) -> Iterator[Hit]:
    if raw is None:
        yield "DATE_MISSING", ""
        return
    if parsed is None or parsed.tzinfo is None:
        yield "DATE_MALFORMED", raw[:80]
        return
    if not times:
        return
    newest = max(times)  # the hop that delivered it; judged against that, not against today
    if parsed - newest > FUTURE_SLACK:
        yield "DATE_IN_FUTURE", f"{parsed - newest} after delivery"
    elif newest - parsed > PAST_SLACK:
        yield "DATE_IN_PAST", f"{newest - parsed} before delivery"


def _message_id(value: str | None) -> Iterator[Hit]:
    if value is None:
        yield "MID_MISSING", ""
        return
    m = _MID.match(value.strip())
    if m is None:
        yield "MID_MALFORMED", value[:80]
        return
    right = m.group(1).lower()
    if _IP_LITERAL.match(right) or right.startswith("localhost") or "." not in right:
        yield "MID_BARE_IP_OR_LOCAL", right[:80]


def _received(values: list[str], times: list[datetime | None]) -> Iterator[Hit]:
    # values[0] is the newest hop: each older hop should be stamped no later than the one above it
    for i in range(1, len(times)):
        newer, older = times[i - 1], times[i]
        if newer is not None and older is not None and older - newer > DISORDER_SLACK:
            yield "RCVD_TIME_DISORDER", f"hop {i} stamped {older - newer} after hop {i - 1}"
            break
    for i, value in enumerate(values):
        quad = _DOTTED_QUAD.search(value.split(" by ", 1)[0])
        if quad and any(int(octet) > 255 for octet in quad.group(1).split(".")):
            yield "RCVD_BOGUS_IP", f"hop {i}: {quad.group(1)}"
            break
        if not _may_name_bogus_ip(value):
            continue  # parsing the hop cannot find an address that fails the checks below
        hop = parse_received(value, i)
        if hop.ip is None:
            continue
        address = hop.address
        # an address no host can send from: not an address at all, multicast, reserved, 0.0.0.0
        if (
            address is None
            or address.is_multicast
            or address.is_unspecified
            or (address.version == 4 and address.is_reserved)
        ):
            yield "RCVD_BOGUS_IP", f"hop {i}: {hop.ip}"
            break


def _addresses(view: View, s: HeuristicsSettings) -> Iterator[Hit]:
    msg = view.message
    from_org = view.from_org_domain
    reply_domain = domain_of(msg.reply_to)
    if from_org and reply_domain:
        reply_org = registered_domain(reply_domain)
        # a list post whose Reply-To is the list, or whose From the list rewrote to its own address and
        # kept the poster in Reply-To: list mechanics, not a sender hiding where replies go
        list_mechanics = bool(view.list_domains) and (view.from_list or reply_org in view.list_domains)
        if reply_org != from_org and not list_mechanics:
            # "Name via List": a list rewrote From for DMARC and kept the poster in Reply-To
            rewritten = " via " in msg.from_display_name.lower()
            if (reply_domain in s.freemail or reply_org in s.freemail) and not rewritten:
                yield "PHISH_REPLYTO_FREEMAIL", reply_domain
            else:
                yield "REPLYTO_DIFF_DOMAIN", reply_domain
    rp_domain = domain_of(msg.return_path)
    if from_org and rp_domain and registered_domain(rp_domain) != from_org:
        yield "RETURNPATH_MISMATCH", rp_domain
    name = msg.from_display_name
    m = _EMAIL_IN_NAME.search(name)
    if (
        m
        and msg.from_address
        and m.group(0).lower() != msg.from_address
        and registered_domain(m.group(1).lower()) != from_org
        and not view.from_list  # "'alice@example.net' via Group": the list named the poster
    ):
        yield "PHISH_DISPLAY_NAME_ADDRESS", m.group(0)[:80]


_HOSTNAME = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:[a-z]{2,63}|xn--[a-z0-9-]{2,59})$")


def _from_domain(view: View) -> Iterator[Hit]:
    raw = view.message.header("From") or ""
    address = view.message.from_address
    if address is None:
        if "@" in raw:
            yield "FROM_DOMAIN_INVALID", raw[-60:]
        return
    domain = view.from_domain
    if not _HOSTNAME.match(domain):
        yield "FROM_DOMAIN_INVALID", domain[:60]


def _recipients(view: View) -> Iterator[Hit]:
    msg = view.message
    to = (msg.header("To") or "").strip().lower()
    if not to or to.startswith(("undisclosed", "undisclosed-recipients", "recipient list not shown")):
        yield "RCPT_UNDISCLOSED", to[:40]
    count = len(msg.to_addresses) + len(msg.cc_addresses)
    if count > MANY_RECIPIENTS:
        yield "RCPT_MANY", str(count)
