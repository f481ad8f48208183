"""SPF against the loopback DNS server."""

from __future__ import annotations

import ipaddress
import itertools

import pytest

from mailwarden.dns import DnsResolver
from mailwarden.pipeline.auth.spf import SpfChecker, SpfResult, _MacroContext, client_address, expand
from tests.dnsserver import DnsServer


async def check(resolver: DnsResolver, ip: str, mail_from: str = "alice@example.org", helo: str = "mx.example.org"):
    return await SpfChecker(resolver).check(ip, mail_from, helo)


@pytest.mark.parametrize(
    ("all_term", "expected"),
    [("-all", SpfResult.FAIL), ("~all", SpfResult.SOFTFAIL), ("?all", SpfResult.NEUTRAL), ("", SpfResult.NEUTRAL)],
)
async def test_pass_and_the_all_qualifiers(
    dns_server: DnsServer, resolver: DnsResolver, all_term: str, expected: SpfResult
) -> None:
    dns_server.add("example.org", "TXT", f"v=spf1 ip4:192.0.2.0/24 {all_term}".strip())
    assert (await check(resolver, "192.0.2.10")).result is SpfResult.PASS
    outcome = await check(resolver, "198.51.100.1")
    assert outcome.result is expected
    assert outcome.domain == "example.org"
    assert outcome.identity == "mailfrom"


async def test_no_record_is_none_and_unrelated_txt_is_ignored(dns_server: DnsServer, resolver: DnsResolver) -> None:
    dns_server.add("example.org", "TXT", "google-site-verification=abc")
    assert (await check(resolver, "192.0.2.10")).result is SpfResult.NONE
    assert (await check(resolver, "192.0.2.10", "bob@nowhere.example")).result is SpfResult.NONE


async def test_include_redirect_a_mx(dns_server: DnsServer, resolver: DnsResolver) -> None:
    dns_server.add("example.org", "TXT", "v=spf1 include:_spf.provider.example a mx -all")
    dns_server.add("_spf.provider.example", "TXT", "v=spf1 ip4:203.0.113.0/25 -all")
    dns_server.add("example.org", "A", "192.0.2.1")
    dns_server.add("example.org", "MX", "10 mx1.example.org.")
    dns_server.add("mx1.example.org", "A", "192.0.2.25")
    assert (await check(resolver, "203.0.113.7")).mechanism == "include:_spf.provider.example"
    assert (await check(resolver, "192.0.2.1")).mechanism == "a"
    outcome = await check(resolver, "192.0.2.25")
    assert (outcome.result, outcome.mechanism) == (SpfResult.PASS, "mx")
    assert (await check(resolver, "203.0.113.200")).result is SpfResult.FAIL  # include's -all: no match here

    dns_server.add("sub.example.org", "TXT", "v=spf1 redirect=example.org")
    assert (await check(resolver, "192.0.2.25", "x@sub.example.org")).result is SpfResult.PASS
    assert (await check(resolver, "198.51.100.9", "x@sub.example.org")).result is SpfResult.FAIL


async def test_a_with_cidr_and_ip6(dns_server: DnsServer, resolver: DnsResolver) -> None:
    dns_server.add("example.org", "TXT", "v=spf1 a:hosts.example.org/28//64 ip6:2001:db8:1::/48 -all")
    dns_server.add("hosts.example.org", "A", "192.0.2.64")
    dns_server.add("hosts.example.org", "AAAA", "2001:db8:99::1")
    assert (await check(resolver, "192.0.2.70")).result is SpfResult.PASS
    assert (await check(resolver, "192.0.2.80")).result is SpfResult.FAIL
    assert (await check(resolver, "2001:db8:1:2::5")).result is SpfResult.PASS
    assert (await check(resolver, "2001:db8:99::ffff")).result is SpfResult.PASS  # //64 of the AAAA
    assert (await check(resolver, "2001:db8:2::1")).result is SpfResult.FAIL
    assert (await check(resolver, "::ffff:192.0.2.70")).result is SpfResult.PASS  # IPv4-mapped counts as v4


async def test_exists_with_macros(dns_server: DnsServer, resolver: DnsResolver) -> None:
    dns_server.add("example.org", "TXT", "v=spf1 exists:%{ir}.%{l1r+-}._spf.%{d} -all")
    dns_server.add("10.2.0.192.alice._spf.example.org", "A", "127.0.0.2")
    assert (await check(resolver, "192.0.2.10")).result is SpfResult.PASS
    assert (await check(resolver, "192.0.2.11")).result is SpfResult.FAIL


def test_macro_expansion() -> None:
    mc = _MacroContext(ipaddress.ip_address("192.0.2.3"), "strong-bad@email.example.com", "email.example.com", "h.x")
    assert expand("%{s}", mc) == "strong-bad@email.example.com"
    assert expand("%{o}", mc) == "email.example.com"
    assert expand("%{d4}", mc) == "email.example.com"
    assert expand("%{d2}", mc) == "example.com"
    assert expand("%{dr}", mc) == "com.example.email"
    assert expand("%{l-}", mc) == "strong.bad"
    assert expand("%{lr-}", mc) == "bad.strong"
    assert expand("%{ir}.%{v}._spf.%{d2}", mc) == "3.2.0.192.in-addr._spf.example.com"
    assert expand("%{h}.%%.%_", mc) == "h.x.%. "
    v6 = _MacroContext(ipaddress.ip_address("2001:db8::cb01"), "a@b.example", "b.example", "h")
    assert expand("%{ir}.%{v}", v6).startswith("1.0.b.c.0.0.0.0") and expand("%{v}", v6) == "ip6"


def test_client_address() -> None:
    assert str(client_address("[::ffff:192.0.2.1]")) == "192.0.2.1"


async def test_helo_is_checked_for_the_null_sender(dns_server: DnsServer, resolver: DnsResolver) -> None:
    dns_server.add("mx.example.org", "TXT", "v=spf1 ip4:192.0.2.10 -all")
    outcome = await check(resolver, "192.0.2.10", mail_from="", helo="mx.example.org")
    assert (outcome.result, outcome.identity, outcome.domain) == (SpfResult.PASS, "helo", "mx.example.org")


@pytest.mark.parametrize(
    "record",
    [
        "v=spf1 ip4:192.0.2.300 -all",
        "v=spf1 foo:bar -all",
        "v=spf1 ip4:192.0.2.0/33 -all",
        "v=spf1 redirect=a.example redirect=b.example",
        "v=spf1 exists:%{x}.example -all",
        "v=spf1 -all:foo",
    ],
)
async def test_syntax_errors_are_permerror(dns_server: DnsServer, resolver: DnsResolver, record: str) -> None:
    dns_server.add("example.org", "TXT", record)
    assert (await check(resolver, "192.0.2.10")).result is SpfResult.PERMERROR


async def test_two_records_is_permerror(dns_server: DnsServer, resolver: DnsResolver) -> None:
    dns_server.add("example.org", "TXT", "v=spf1 -all")
    dns_server.add("example.org", "TXT", "v=spf1 +all")
    assert (await check(resolver, "192.0.2.10")).result is SpfResult.PERMERROR


async def test_more_than_ten_lookups_is_permerror(dns_server: DnsServer, resolver: DnsResolver) -> None:
    chain = [f"l{i}.example.org" for i in range(12)]
    dns_server.add("example.org", "TXT", f"v=spf1 include:{chain[0]} -all")
    for here, nxt in itertools.pairwise(chain):
        dns_server.add(here, "TXT", f"v=spf1 a:{here} include:{nxt} -all")
        dns_server.add(here, "A", "198.51.100.1")
    outcome = await check(resolver, "192.0.2.10")
    assert outcome.result is SpfResult.PERMERROR
    assert "more than 10" in outcome.reason


async def test_ten_lookups_are_allowed(dns_server: DnsServer, resolver: DnsResolver) -> None:
    terms = " ".join(f"a:h{i}.example.org" for i in range(9))
    dns_server.add("example.org", "TXT", f"v=spf1 {terms} a:ok.example.org -all")
    for i in range(9):
        dns_server.add(f"h{i}.example.org", "A", "198.51.100.1")
    dns_server.add("ok.example.org", "A", "192.0.2.10")
    assert (await check(resolver, "192.0.2.10")).result is SpfResult.PASS


async def test_more_than_two_void_lookups_is_permerror(dns_server: DnsServer, resolver: DnsResolver) -> None:
    dns_server.add("example.org", "TXT", "v=spf1 a:v1.example.org a:v2.example.org a:v3.example.org ~all")
    outcome = await check(resolver, "192.0.2.10")
    assert outcome.result is SpfResult.PERMERROR
    assert "void" in outcome.reason


async def test_include_of_a_domain_without_spf_is_permerror(dns_server: DnsServer, resolver: DnsResolver) -> None:
    dns_server.add("example.org", "TXT", "v=spf1 include:nospf.example -all")
    dns_server.add("nospf.example", "A", "192.0.2.1")
    assert (await check(resolver, "192.0.2.10")).result is SpfResult.PERMERROR


async def test_ptr_never_matches(dns_server: DnsServer, resolver: DnsResolver) -> None:
    dns_server.add("example.org", "TXT", "v=spf1 ptr ?all")
    assert (await check(resolver, "192.0.2.10")).result is SpfResult.NEUTRAL


async def test_servfail_and_timeout_are_temperror(dns_server: DnsServer, fast_resolver: DnsResolver) -> None:
    dns_server.fail("example.org")
    assert (await check(fast_resolver, "192.0.2.10")).result is SpfResult.TEMPERROR
    dns_server.add("example.net", "TXT", "v=spf1 include:slow.example -all")
    dns_server.hang("slow.example")
    outcome = await check(fast_resolver, "192.0.2.10", "x@example.net")
    assert outcome.result is SpfResult.TEMPERROR
    assert "timed out" in outcome.reason


async def test_unusable_identities_are_none(resolver: DnsResolver) -> None:
    assert (await check(resolver, "192.0.2.10", mail_from="", helo="localhost")).result is SpfResult.NONE
    assert (await check(resolver, "not-an-ip")).result is SpfResult.NONE
