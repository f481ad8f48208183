from __future__ import annotations

import pytest

from mailwarden.dns import DnsConfig, DnsError, DnsResolver
from tests.dnsserver import DnsServer


async def test_answers_and_empty_answers(dns_server: DnsServer, resolver: DnsResolver) -> None:
    dns_server.add("example.com", "TXT", "v=spf1 ip4:192.0.2.0/24 -all")
    dns_server.add("2.0.0.127.zen.example", "A", "127.0.0.2")
    assert (await resolver.query("example.com", "TXT")).records == ("v=spf1 ip4:192.0.2.0/24 -all",)
    assert (await resolver.query("2.0.0.127.zen.example", "A")).records == ("127.0.0.2",)
    assert (await resolver.query("example.com", "MX")).records == ()  # name exists, no such record
    assert (await resolver.query("nowhere.example", "A")).records == ()  # NXDOMAIN


async def test_long_txt_records_survive(dns_server: DnsServer, resolver: DnsResolver) -> None:
    key = "v=DKIM1; k=rsa; p=" + "A" * 700
    dns_server.add("sel._domainkey.example.com", "TXT", key)
    assert (await resolver.query("sel._domainkey.example.com", "TXT")).records == (key,)


async def test_an_answer_too_long_for_udp_is_asked_again_over_tcp(dns_server: DnsServer, resolver: DnsResolver) -> None:
    key = "v=DKIM1; k=rsa; p=" + "B" * 900  # past 512 bytes: the server truncates the UDP answer
    dns_server.add("long._domainkey.example.com", "TXT", key)
    assert (await resolver.query("long._domainkey.example.com", "TXT")).records == (key,)
    assert dns_server.queries.count(("long._domainkey.example.com", "TXT")) == 2  # UDP, then TCP


async def test_answers_are_cached_for_their_ttl(dns_server: DnsServer, resolver: DnsResolver) -> None:
    dns_server.add("example.com", "A", "192.0.2.1")
    for _ in range(3):
        await resolver.query("example.com", "A")
    assert dns_server.queries.count(("example.com", "A")) == 1


async def test_failures_raise_instead_of_looking_clean(dns_server: DnsServer) -> None:
    dns_server.fail("broken.example")
    dns_server.hang("slow.example")
    resolver = DnsResolver(DnsConfig(nameservers=["127.0.0.1"], port=dns_server.port, timeout=0.3))
    with pytest.raises(DnsError, match=r"broken\.example"):
        await resolver.query("broken.example", "A")
    with pytest.raises(DnsError, match="timed out"):
        await resolver.query("slow.example", "A")


async def test_a_failure_is_remembered_briefly_so_an_outage_costs_one_time_out(dns_server: DnsServer) -> None:
    dns_server.hang("slow.example")
    resolver = DnsResolver(DnsConfig(nameservers=["127.0.0.1"], port=dns_server.port, timeout=0.3, failure_ttl=30))
    for _ in range(3):
        with pytest.raises(DnsError, match="timed out"):
            await resolver.query("slow.example", "A")
    assert resolver.queries == 1


async def test_an_alias_is_followed_to_its_records(dns_server: DnsServer, resolver: DnsResolver) -> None:
    dns_server.add("_dmarc.shop.example", "CNAME", "_dmarc.provider.example.")
    dns_server.add("_dmarc.provider.example", "TXT", "v=DMARC1; p=reject")
    assert (await resolver.query("_dmarc.shop.example", "TXT")).records == ("v=DMARC1; p=reject",)
    dns_server.add("dangling.example", "CNAME", "nowhere.example.")
    assert (await resolver.query("dangling.example", "TXT")).records == ()


async def test_a_server_that_fails_the_question_is_passed_over_for_the_next(dns_server: DnsServer) -> None:
    dns_server.add("example.com", "TXT", "v=spf1 -all")
    broken = DnsServer().start()
    try:
        broken.fail("example.com")
        resolver = DnsResolver(DnsConfig(nameservers=["127.0.0.1"], timeout=1))
        # the broken server first; both on loopback, so told apart by port (the config has one port for all)
        resolver._servers = [("127.0.0.1", broken.port), ("127.0.0.1", dns_server.port)]
        assert (await resolver.query("example.com", "TXT")).records == ("v=spf1 -all",)
        assert broken.queries == [("example.com", "TXT")]
    finally:
        broken.stop()


async def test_a_reply_that_is_not_the_answer_is_ignored(dns_server: DnsServer, resolver: DnsResolver) -> None:
    """A datagram with another ID (a spoofing attempt, a late reply) is dropped and the real answer taken."""
    dns_server.add("example.com", "A", "192.0.2.1")
    dns_server.decoy_first = True
    assert (await resolver.query("example.com", "A")).records == ("192.0.2.1",)
    assert dns_server.queries == [("example.com", "A")]
