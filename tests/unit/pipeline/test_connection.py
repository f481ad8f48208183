"""The connection filter: IP lists, DNS block lists through the real resolver, and which IP is judged."""

from __future__ import annotations

import gc
import ipaddress
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailwarden.dns import DnsConfig, DnsResolver
from mailwarden.errors import ConfigError
from mailwarden.model import (
    Action,
    Category,
    Direction,
    Domain,
    Envelope,
    Finding,
    Message,
    Organisation,
    Policy,
    StageOutcome,
)
from mailwarden.pipeline import Inspection, Pipeline, ScanContext, connection
from mailwarden.pipeline.connection import (
    ConnectionConfig,
    ConnectionFilter,
    DnsblZone,
    IpRanges,
    blocked_reply,
    compiled_lists,
    dnsbl_query_name,
    is_blocked,
)
from mailwarden.pipeline.facts import ConnectionFacts
from mailwarden.pipeline.services import StageServices
from tests.dnsserver import DnsServer
from tests.factories import build_message

ORG = Organisation("acme", (Domain("example.com"),))
ZEN = {"zone": "zen.example", "name": "ZEN", "weight": 3.0, "codes": {"127.0.0.2": "SBL", "127.0.0.4": "XBL"}}
SENDER_V4 = "203.0.113.5"
SENDER_V6 = "2001:db8:1::5"
# reversed octets / nibbles of the senders above
Q_V4 = "5.113.0.203"
Q_V6 = ".".join(reversed(ipaddress.IPv6Address(SENDER_V6).exploded.replace(":", "")))


def policy(allow: tuple[str, ...] = (), block: tuple[str, ...] = ()) -> Policy:
    return Policy.model_validate({"lists": {"ip_allow": list(allow), "ip_block": list(block)}})


def message(*received: str) -> Message:
    raw = build_message()
    head = b"".join(b"Received: " + r.encode() + b"\r\n" for r in received)
    return Message(head + raw)


def context(msg: Message | None = None, *, ip: str | None = SENDER_V4, pol: Policy | None = None) -> ScanContext:
    env = Envelope("partner@example.org", ("bob@example.com",), client_ip=ip)
    return ScanContext(msg or message(), env, Direction.INBOUND, pol or Policy(), ORG)


def stage(resolver: DnsResolver, **config: Any) -> ConnectionFilter:
    return ConnectionFilter(ConnectionConfig.model_validate(config), resolver)


def codes(findings: list[Finding] | Inspection) -> list[str]:
    items = findings.findings if isinstance(findings, Inspection) else findings
    return [f.code for f in items]


class Recorder:
    """Stands in for a later stage and notes that it ran."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen = 0

    async def inspect(self, ctx: ScanContext) -> list[Finding]:
        self.seen += 1
        return [Finding(self.name, "LATE_EVIDENCE", 8.0)]


class Spam(Recorder):
    name: ClassVar[str] = "spam"  # type: ignore[misc]
    spam_filter: ClassVar[bool] = True  # skipped when the spam filter is bypassed


# ---- IP allow / block lists -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("ip", "entry"),
    [
        ("198.51.100.7", "198.51.100.7"),
        ("198.51.100.200", "198.51.100.0/24"),
        ("2001:db8:1::5", "2001:db8:1::5"),
        ("2001:db8:1:ffff::9", "2001:db8:1::/48"),
    ],
)
async def test_allow_list(resolver: DnsResolver, ip: str, entry: str) -> None:
    ctx = context(ip=ip, pol=policy(allow=(entry,)))
    answer = await stage(resolver).inspect(ctx)
    assert isinstance(answer, Inspection)
    assert answer.outcome is StageOutcome.CLEAN
    assert [(f.code, f.score) for f in answer.findings] == [("IP_ALLOW", 0.0)]
    assert entry.split("/")[0] in answer.findings[0].detail
    assert ctx.bypass_spam == "ip_allow"
    assert ctx.reject is None
    assert ctx.facts.connection.ip_list == "allow"


@pytest.mark.parametrize(
    ("ip", "entry"),
    [
        ("198.51.100.7", "198.51.100.7/32"),
        ("198.51.100.5", "198.51.100.0/29"),
        ("2001:db8::1", "2001:db8::/32"),
    ],
)
async def test_block_list(resolver: DnsResolver, ip: str, entry: str) -> None:
    ctx = context(ip=ip, pol=policy(block=(entry,)))
    answer = await stage(resolver).inspect(ctx)
    assert isinstance(answer, Inspection)
    assert answer.outcome is StageOutcome.DETECTED
    assert codes(answer) == ["IP_BLOCKLIST"]
    assert ctx.reject == f"550 5.7.1 Service unavailable; client host [{ip}] blocked using IP block list"
    assert ctx.bypass_spam is None


async def test_neighbours_of_a_range_are_not_listed(resolver: DnsResolver) -> None:
    pol = policy(block=("198.51.100.8/29", "2001:db8::/64"))
    for ip in ("198.51.100.7", "198.51.100.16", "2001:db8:0:1::1", "203.0.113.5"):
        ctx = context(ip=ip, pol=pol)
        assert codes(await stage(resolver).inspect(ctx)) == [], ip
        assert ctx.reject is None


async def test_allow_wins_over_block(resolver: DnsResolver) -> None:
    pol = policy(allow=("198.51.100.7",), block=("198.51.100.0/24",))
    ctx = context(ip="198.51.100.7", pol=pol)
    assert codes(await stage(resolver).inspect(ctx)) == ["IP_ALLOW"]
    assert ctx.reject is None
    assert not is_blocked(pol, "198.51.100.7")
    assert is_blocked(pol, "198.51.100.8")


async def test_block_stops_filtering_and_the_verdict_is_reject(resolver: DnsResolver) -> None:
    malware, spam = Recorder("malware"), Spam("spam")
    pipeline = Pipeline({Direction.INBOUND: [stage(resolver), malware, spam]})
    env = Envelope("partner@example.org", ("bob@example.com",), client_ip="198.51.100.7")
    verdict = await pipeline.scan(message(), env, policy(block=("198.51.100.0/24",)), organisation=ORG)
    assert (malware.seen, spam.seen) == (0, 0)
    assert verdict.category is Category.BLOCKED
    assert verdict.disposition.action is Action.REJECT
    assert verdict.disposition.smtp_reply == blocked_reply("198.51.100.7")
    assert [s.stage for s in verdict.stages] == ["connection"]


async def test_allow_skips_spam_but_not_malware(resolver: DnsResolver) -> None:
    malware, spam = Recorder("malware"), Spam("spam")
    pipeline = Pipeline({Direction.INBOUND: [stage(resolver), malware, spam]})
    env = Envelope("partner@example.org", ("bob@example.com",), client_ip="198.51.100.7")
    verdict = await pipeline.scan(message(), env, policy(allow=("198.51.100.7",)), organisation=ORG)
    assert (malware.seen, spam.seen) == (1, 0)
    assert verdict.scl == -1
    assert verdict.stages[2].outcome is StageOutcome.SKIPPED


def test_smtp_time_helpers() -> None:
    pol = policy(block=("198.51.100.0/24", "2001:db8::/32"))
    assert is_blocked(pol, "198.51.100.1")
    assert is_blocked(pol, "2001:db8::7")
    assert is_blocked(pol, "::ffff:198.51.100.1")  # IPv4-mapped, as some sockets report it
    assert not is_blocked(pol, "203.0.113.1")
    assert not is_blocked(pol, None)
    assert not is_blocked(pol, "not-an-ip")
    assert not is_blocked(Policy(), "198.51.100.1")
    assert blocked_reply("198.51.100.1").startswith("550 5.7.1 ")


def test_ip_ranges_merge_and_find_thousands_quickly() -> None:
    entries = [f"10.{i // 256}.{i % 256}.0/24" for i in range(0, 4000, 2)]
    entries += [f"2001:db8:{i:x}::/48" for i in range(2000)]
    entries += ["10.0.0.0/16", "10.0.0.5", "bogus"]  # overlaps; a bad entry is skipped, never raised
    ranges = IpRanges(entries)
    assert ranges.match(ipaddress.ip_address("10.0.200.1")) == "10.0.0.0/16"
    assert ranges.match(ipaddress.ip_address("10.0.0.5")) == "10.0.0.0/16"  # the widest of three
    assert ranges.match(ipaddress.ip_address("10.1.2.3")) == "10.1.2.0/24"
    assert len(ranges) == 4002
    assert ipaddress.ip_address("10.3.4.9") in ranges  # 10.3.4.0/24: i = 772, even
    assert ipaddress.ip_address("10.3.5.9") not in ranges  # odd: not listed
    assert ipaddress.ip_address("2001:db8:7cf::1") in ranges
    assert ipaddress.ip_address("2001:db8:7d0::1") not in ranges
    assert ipaddress.ip_address("198.51.100.1") not in ranges
    probes = [ipaddress.ip_address(f"10.{i % 16}.{i % 256}.1") for i in range(20_000)]
    started = time.perf_counter()
    for ip in probes:
        _ = ip in ranges
    assert time.perf_counter() - started < 0.5  # bisection, not a scan of 4000 networks


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 255), st.integers(24, 32)), max_size=20),
    st.lists(st.integers(0, 255), min_size=1, max_size=20),
)
def test_ip_ranges_agree_with_a_plain_scan(networks: list[tuple[int, int]], hosts: list[int]) -> None:
    entries = [f"198.51.{third}.0/{prefix}" if prefix < 32 else f"198.51.{third}.1" for third, prefix in networks]
    entries += [f"198.51.{third}.0/22" for third, prefix in networks if prefix == 24]
    ranges = IpRanges(entries)
    nets = [ipaddress.ip_network(e, strict=False) for e in entries]
    for third in hosts:
        for last in (0, 1, 200):
            ip = ipaddress.IPv4Address(f"198.51.{third}.{last}")
            found = ranges.match(ip)
            assert (found is not None) == any(ip in n for n in nets)
            assert found is None or ip in ipaddress.ip_network(found)


def test_compiled_lists_are_built_once_per_policy_object() -> None:
    pol = policy(block=("198.51.100.0/24",))
    first = compiled_lists(pol.lists)
    assert compiled_lists(pol.lists) is first
    assert compiled_lists(policy(block=("198.51.100.0/24",)).lists) is first  # reloaded unchanged: shared
    other = policy(block=("203.0.113.0/24",))
    assert compiled_lists(other.lists) is not first
    assert ipaddress.ip_address("203.0.113.1") in compiled_lists(other.lists).block


def test_compiled_lists_do_not_outlive_their_policy() -> None:
    pol = policy(allow=("192.0.2.77",))
    compiled_lists(pol.lists)
    key = id(pol.lists)
    assert key in connection._by_object
    del pol
    gc.collect()
    assert key not in connection._by_object


# ---- DNS block lists --------------------------------------------------------------------------
def test_query_names() -> None:
    assert dnsbl_query_name(ipaddress.IPv4Address("127.0.0.2"), "zen.example") == "2.0.0.127.zen.example"
    name = dnsbl_query_name(ipaddress.IPv6Address("2001:db8::1"), "zen.example")
    assert name == "1.0.0.0." + "0." * 20 + "8.b.d.0.1.0.0.2.zen.example"
    assert dnsbl_query_name(ipaddress.IPv6Address(SENDER_V6), "z.example") == f"{Q_V6}.z.example"


async def test_dnsbl_hit(dns_server: DnsServer, resolver: DnsResolver) -> None:
    dns_server.add(f"{Q_V4}.zen.example", "A", "127.0.0.2")
    ctx = context()
    findings = await stage(resolver, dnsbl=[ZEN]).inspect(ctx)
    assert findings == [Finding("connection", "DNSBL_ZEN_SBL", 3.0, f"{SENDER_V4} listed in zen.example (127.0.0.2)")]
    assert ctx.facts.connection == ConnectionFacts(
        ip=SENDER_V4,
        ip_source="smtp",
        received_index=None,
        dnsbl=[{"zone": "zen.example", "name": "ZEN", "answers": ["127.0.0.2"], "labels": ["SBL"]}],
    )


async def test_dnsbl_hit_counts_in_the_verdict(dns_server: DnsServer, resolver: DnsResolver) -> None:
    dns_server.add(f"{Q_V4}.zen.example", "A", "127.0.0.2")
    dns_server.add(f"{Q_V4}.zen.example", "A", "127.0.0.4")
    pipeline = Pipeline({Direction.INBOUND: [stage(resolver, dnsbl=[ZEN])]})
    env = Envelope("partner@example.org", ("bob@example.com",), client_ip=SENDER_V4)
    verdict = await pipeline.scan(message(), env, Policy(), organisation=ORG)
    assert [f.code for f in verdict.findings] == ["DNSBL_ZEN_SBL", "DNSBL_ZEN_XBL"]
    assert verdict.score == 6.0
    assert verdict.category is Category.SPAM


async def test_dnsbl_without_codes_labels_the_answer(dns_server: DnsServer, resolver: DnsResolver) -> None:
    dns_server.add(f"{Q_V4}.bl.example", "A", "127.0.0.10")
    findings = await stage(resolver, dnsbl=[{"zone": "bl.example", "weight": 1.5}]).inspect(context())
    assert [(f.code, f.score) for f in findings] == [("DNSBL_BL_127_0_0_10", 1.5)]


async def test_dnsbl_ipv6_uses_nibbles(dns_server: DnsServer, resolver: DnsResolver) -> None:
    dns_server.add(f"{Q_V6}.zen.example", "A", "127.0.0.4")
    findings = await stage(resolver, dnsbl=[ZEN, {"zone": "v4only.example", "ipv6": False}]).inspect(
        context(ip=SENDER_V6)
    )
    assert codes(findings) == ["DNSBL_ZEN_XBL"]
    assert not any("v4only" in name for name, _ in dns_server.queries)


async def test_dnsbl_miss(dns_server: DnsServer, resolver: DnsResolver) -> None:
    ctx = context()
    assert await stage(resolver, dnsbl=[ZEN]).inspect(ctx) == []
    assert ctx.facts.connection.dnsbl == []
    assert dns_server.queries == [(f"{Q_V4}.zen.example", "A")]


async def test_dnsbl_refusal_is_ignored(dns_server: DnsServer, resolver: DnsResolver) -> None:
    dns_server.add(f"{Q_V4}.zen.example", "A", "127.255.255.254")
    dns_server.add(f"{Q_V4}.odd.example", "A", "192.0.2.1")  # a resolver that rewrites NXDOMAIN
    findings = await stage(resolver, dnsbl=[ZEN, {"zone": "odd.example"}]).inspect(context())
    assert [(f.code, f.score) for f in findings] == [("DNSBL_ERROR", 0.0), ("DNSBL_ERROR", 0.0)]
    assert "zen.example: query refused (127.255.255.254)" in findings[0].detail
    assert "odd.example: unexpected answer 192.0.2.1" in findings[1].detail


async def test_dnsbl_servfail_is_an_error_finding_not_a_hit(dns_server: DnsServer, resolver: DnsResolver) -> None:
    dns_server.fail(f"{Q_V4}.zen.example")
    ctx = context()
    findings = await stage(resolver, dnsbl=[ZEN]).inspect(ctx)
    assert codes(findings) == ["DNSBL_ERROR"]
    assert findings[0].score == 0.0
    assert findings[0].detail.startswith("zen.example: ")
    assert ctx.reject is None


async def test_dnsbl_time_out_is_short_and_other_lists_still_count(dns_server: DnsServer) -> None:
    resolver = DnsResolver(DnsConfig(nameservers=["127.0.0.1"], port=dns_server.port, timeout=5.0))
    dns_server.hang(f"{Q_V4}.slow.example")
    dns_server.add(f"{Q_V4}.zen.example", "A", "127.0.0.2")
    filt = stage(resolver, dnsbl=[{"zone": "slow.example"}, ZEN], dnsbl_timeout=0.3)
    started = time.perf_counter()
    findings = await filt.inspect(context())
    assert time.perf_counter() - started < 1.5  # asked in parallel, bounded by dnsbl_timeout
    assert [(f.code, f.score) for f in findings] == [("DNSBL_ERROR", 0.0), ("DNSBL_ZEN_SBL", 3.0)]
    assert "timed out after 0.3 s" in findings[0].detail


async def test_dnsbl_failure_in_the_pipeline_does_not_make_a_scan_error(dns_server: DnsServer) -> None:
    resolver = DnsResolver(DnsConfig(nameservers=["127.0.0.1"], port=dns_server.port, timeout=0.2))
    dns_server.hang(f"{Q_V4}.zen.example")
    pipeline = Pipeline({Direction.INBOUND: [stage(resolver, dnsbl=[ZEN])]})
    env = Envelope("partner@example.org", ("bob@example.com",), client_ip=SENDER_V4)
    verdict = await pipeline.scan(message(), env, Policy(), organisation=ORG)
    assert verdict.category is Category.CLEAN
    assert verdict.disposition.action is Action.DELIVER
    assert verdict.scan_errors == ()
    assert [f.code for f in verdict.findings] == ["DNSBL_ERROR"]


async def test_dnsbl_answers_are_cached_for_their_ttl(dns_server: DnsServer, resolver: DnsResolver) -> None:
    dns_server.add(f"{Q_V4}.zen.example", "A", "127.0.0.2")
    filt = stage(resolver, dnsbl=[ZEN, {"zone": "clean.example"}])
    first = await filt.inspect(context())
    second = await filt.inspect(context())
    assert first == second
    assert len(dns_server.queries) == 2  # one per zone; the second message was answered from the cache


async def test_internal_addresses_are_not_sent_to_block_lists(dns_server: DnsServer, resolver: DnsResolver) -> None:
    ctx = context(ip="10.1.2.3")
    assert await stage(resolver, dnsbl=[ZEN]).inspect(ctx) == []
    assert dns_server.queries == []
    assert ctx.facts.connection.ip == "10.1.2.3"


async def test_listed_ips_are_not_looked_up(dns_server: DnsServer, resolver: DnsResolver) -> None:
    await stage(resolver, dnsbl=[ZEN]).inspect(context(pol=policy(allow=(SENDER_V4,))))
    await stage(resolver, dnsbl=[ZEN]).inspect(context(pol=policy(block=(SENDER_V4,))))
    assert dns_server.queries == []


# ---- which IP ---------------------------------------------------------------------------------
M365_CHAIN = (
    "from SA1PR05MB8345.namprd05.prod.outlook.com (::1) by SJ0PR05MB7772.namprd05.prod.outlook.com with HTTPS;"
    " Tue, 14 Oct 2025 09:15:03 +0000",
    "from BN1PEPF00004681.namprd05.prod.outlook.com (2603:10b6:408:e5:cafe::4c) by"
    " BN9PR03CA0712.outlook.office365.com (2603:10b6:408:ef::27) with Microsoft SMTP Server"
    " (version=TLS1_3, cipher=TLS_AES_256_GCM_SHA384) id 15.20.8207.0 via Frontend Transport;"
    " Tue, 14 Oct 2025 09:15:02 +0000",
    f"from mail.sender.example ({SENDER_V4}) by BN1PEPF00004681.mail.protection.outlook.com (10.167.243.86)"
    " with Microsoft SMTP Server (version=TLS1_3, cipher=TLS_AES_256_GCM_SHA384) id 15.20.8207.0 via"
    " Frontend Transport; Tue, 14 Oct 2025 09:15:02 +0000",
    "from [192.168.10.4] (dsl-77.isp.example [198.51.100.77]) by mail.sender.example (Postfix) with ESMTPSA"
    " id 4Xk2; Tue, 14 Oct 2025 09:15:00 +0000",
)
M365_HOSTS = [".prod.outlook.com", "outlook.office365.com", "protection.outlook.com"]


async def test_journal_copy_uses_the_first_external_hop(dns_server: DnsServer, resolver: DnsResolver) -> None:
    dns_server.add(f"{Q_V4}.zen.example", "A", "127.0.0.2")
    ctx = context(message(*M365_CHAIN), ip=None)
    findings = await stage(resolver, dnsbl=[ZEN], trusted_hostnames=M365_HOSTS).inspect(ctx)
    assert codes(findings) == ["DNSBL_ZEN_SBL"]
    facts = ctx.facts.connection
    assert facts is not None and (facts.ip, facts.ip_source, facts.received_index) == (SENDER_V4, "received", 2)


async def test_journal_copy_block_list_applies_to_the_received_ip(resolver: DnsResolver) -> None:
    ctx = context(message(*M365_CHAIN), ip=None, pol=policy(block=(SENDER_V4,)))
    assert codes(await stage(resolver, trusted_hostnames=M365_HOSTS).inspect(ctx)) == ["IP_BLOCKLIST"]
    assert ctx.reject == blocked_reply(SENDER_V4)


async def test_journal_copy_with_trusted_ranges(resolver: DnsResolver) -> None:
    chain = (
        "from mx1.example.com (mx1.example.com [192.0.2.10]) by mbox.example.com (Postfix) with ESMTP id 1;"
        " Tue, 14 Oct 2025 09:15:03 +0000",
        "from out.partner.example (out.partner.example [198.51.100.20]) by mx1.example.com (Postfix)"
        " with ESMTPS id 2; Tue, 14 Oct 2025 09:15:02 +0000",
    )
    ctx = context(message(*chain), ip=None)
    await stage(resolver, mail_service_hosts=["192.0.2.0/28"]).inspect(ctx)
    assert (ctx.facts.connection.ip, ctx.facts.connection.received_index) == ("198.51.100.20", 1)
    untrusted = context(message(*chain), ip=None)
    await stage(resolver).inspect(untrusted)  # nothing configured: the org's own MX looks external
    assert untrusted.facts.connection.ip == "192.0.2.10"


async def test_a_journal_fact_overrides_the_smtp_client(resolver: DnsResolver) -> None:
    ctx = context(message(*M365_CHAIN), ip="192.0.2.99")
    ctx.facts.journal = True
    await stage(resolver, trusted_hostnames=M365_HOSTS).inspect(ctx)
    assert ctx.facts.connection.ip_source == "received"


async def test_inline_from_the_organisations_own_relay_looks_past_it(resolver: DnsResolver) -> None:
    chain = (
        "from out.partner.example (out.partner.example [198.51.100.20]) by relay.example.com (Postfix)"
        " with ESMTPS id 2; Tue, 14 Oct 2025 09:15:02 +0000",
    )
    ctx = context(message(*chain), ip="192.0.2.5")
    await stage(resolver, mail_service_hosts=["192.0.2.0/28"]).inspect(ctx)
    assert ctx.facts.connection.ip == "198.51.100.20"
    direct = context(message(*chain), ip="203.0.113.9")
    await stage(resolver, mail_service_hosts=["192.0.2.0/28"]).inspect(direct)
    assert (direct.facts.connection.ip, direct.facts.connection.ip_source) == ("203.0.113.9", "smtp")


async def test_no_ip_at_all(dns_server: DnsServer, resolver: DnsResolver) -> None:
    ctx = context(message("by mail-pl1.google.com with SMTP id d9443c; Tue, 14 Oct 2025 09:15:02 +0000"), ip=None)
    findings = await stage(resolver, dnsbl=[ZEN]).inspect(ctx)
    assert [(f.code, f.score) for f in findings] == [("NO_CLIENT_IP", 0.0)]
    assert ctx.facts.connection == ConnectionFacts(ip=None, ip_source="none", received_index=None)
    assert dns_server.queries == []


# ---- config -----------------------------------------------------------------------------------
def test_config_from_services(tmp_path: Path, resolver: DnsResolver) -> None:
    services = StageServices(
        resolver=resolver,
        data_dir=tmp_path,
        stage_config={"connection": {"dnsbl": [ZEN], "mail_service_hosts": ["192.0.2.1"]}},
    )
    filt = ConnectionFilter.from_services(services)
    assert filt.name == "connection"
    assert filt.config.dnsbl[0].codes == {"127.0.0.2": "SBL", "127.0.0.4": "XBL"}
    assert filt.config.mail_service_hosts == ("192.0.2.1/32",)
    assert ConnectionFilter.from_services(StageServices(resolver, tmp_path)).config.dnsbl == ()


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"dnsbl": [{"zone": "zen.example", "codes": {"10.0.0.2": "X"}}]}, "stages.connection.dnsbl.0.codes"),
        ({"dnsbl": [{"zone": "not a zone"}]}, "stages.connection.dnsbl.0.zone"),
        ({"dnsbl": [{"zone": "a.example", "name": "X"}, {"zone": "b.example", "name": "x"}]}, "stages.connection"),
        ({"mail_service_hosts": ["mx.example.com"]}, "stages.connection.mail_service_hosts"),
        ({"trusted_hostnames": ["bad host"]}, "stages.connection.trusted_hostnames"),
        ({"dnsbl_timeout": 0}, "stages.connection.dnsbl_timeout"),
        ({"dnsbl_zones": []}, "stages.connection.dnsbl_zones"),
    ],
)
def test_bad_config_names_the_field(tmp_path: Path, resolver: DnsResolver, section: dict[str, Any], field: str) -> None:
    services = StageServices(resolver, tmp_path, {"connection": section})
    with pytest.raises(ConfigError) as caught:
        ConnectionFilter.from_services(services)
    assert caught.value.field == field


def test_zone_names_become_symbols() -> None:
    assert DnsblZone(zone="b.barracudacentral.example").name == "B"
    assert DnsblZone(zone="bl.spamcop.example", name="spam-cop").name == "SPAM_COP"
    assert DnsblZone(zone="x.example", codes={"127.0.0.3": "css list"}).codes == {"127.0.0.3": "CSS_LIST"}
