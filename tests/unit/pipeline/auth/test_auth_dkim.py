"""DKIM verification: messages signed here, keys in the loopback DNS server."""

from __future__ import annotations

from collections.abc import Callable

import dkim

from mailwarden.dns import DnsResolver
from mailwarden.enforce.dkim_sign import DkimSigner
from mailwarden.pipeline.auth.dkim import DkimResult, prefetch_keys, summary, verify
from tests.dnsserver import DnsServer
from tests.factories import build_message


async def test_valid_signature_passes(publish_signer: Callable[..., DkimSigner], resolver: DnsResolver) -> None:
    signer = publish_signer(("example.org", "s1"))
    raw = signer.sign(build_message(), "example.org")
    [res] = await verify(raw, resolver)
    assert res.result is DkimResult.PASS
    assert (res.domain, res.selector, res.algorithm) == ("example.org", "s1", "rsa-sha256")
    assert len(res.b) == 8


async def test_modified_body_fails(publish_signer: Callable[..., DkimSigner], resolver: DnsResolver) -> None:
    raw = publish_signer(("example.org", "s1")).sign(build_message(), "example.org")
    [res] = await verify(raw.replace(b"numbers are attached", b"numbers are ATTACHED"), resolver)
    assert res.result is DkimResult.FAIL
    assert "body hash" in res.reason


async def test_modified_signed_header_fails(publish_signer: Callable[..., DkimSigner], resolver: DnsResolver) -> None:
    raw = publish_signer(("example.org", "s1")).sign(build_message(), "example.org")
    [res] = await verify(raw.replace(b"Subject: Quarterly numbers", b"Subject: Urgent payment"), resolver)
    assert res.result is DkimResult.FAIL


async def test_missing_key_is_permerror(
    publish_signer: Callable[..., DkimSigner], dns_server: DnsServer, resolver: DnsResolver
) -> None:
    raw = publish_signer(("example.org", "s1")).sign(build_message(), "example.org")
    dns_server.records.pop("s1._domainkey.example.org")
    [res] = await verify(raw, resolver)
    assert res.result is DkimResult.PERMERROR
    assert "no key" in res.reason


async def test_revoked_key_is_permerror(
    publish_signer: Callable[..., DkimSigner], dns_server: DnsServer, resolver: DnsResolver
) -> None:
    raw = publish_signer(("example.org", "s1")).sign(build_message(), "example.org")
    dns_server.records["s1._domainkey.example.org"]["TXT"] = ["v=DKIM1; k=rsa; p="]
    assert (await verify(raw, resolver))[0].result is DkimResult.PERMERROR


async def test_dns_failure_and_timeout_are_temperror(
    publish_signer: Callable[..., DkimSigner], dns_server: DnsServer, fast_resolver: DnsResolver
) -> None:
    signer = publish_signer(("example.org", "s1"), ("example.net", "s2"))
    raw = signer.sign(signer.sign(build_message(), "example.org"), "example.net")
    dns_server.fail("s1._domainkey.example.org")
    dns_server.hang("s2._domainkey.example.net")
    results = await verify(raw, fast_resolver)
    assert [r.result for r in results] == [DkimResult.TEMPERROR, DkimResult.TEMPERROR]
    assert summary(results) is DkimResult.TEMPERROR


async def test_unsigned_is_none_and_unreadable_is_neutral(resolver: DnsResolver) -> None:
    assert [r.result for r in await verify(build_message(), resolver)] == [DkimResult.NONE]
    broken = b"DKIM-Signature: v=1; a=rsa-sha256; d=example.org\r\n" + build_message()
    [res] = await verify(broken, resolver)
    assert res.result is DkimResult.NEUTRAL


async def test_one_pass_among_several_is_pass(
    publish_signer: Callable[..., DkimSigner], dns_server: DnsServer, resolver: DnsResolver
) -> None:
    signer = publish_signer(("example.org", "s1"), ("lists.example", "s2"))
    raw = signer.sign(signer.sign(build_message(), "example.org"), "lists.example")
    dns_server.records.pop("s1._domainkey.example.org")
    results = await verify(raw, resolver)
    assert [r.result for r in results] == [DkimResult.PASS, DkimResult.PERMERROR]
    assert summary(results) is DkimResult.PASS


async def test_ed25519_signature_passes(
    publish_signer: Callable[..., DkimSigner], ed25519_pem: bytes, resolver: DnsResolver
) -> None:
    raw = publish_signer(("example.org", "ed"), pem=ed25519_pem, algorithm="ed25519-sha256").sign(
        build_message(), "example.org"
    )
    [res] = await verify(raw, resolver)
    assert (res.result, res.algorithm) == (DkimResult.PASS, "ed25519-sha256")


async def test_dkimpy_never_asks_the_network(
    publish_signer: Callable[..., DkimSigner], dns_server: DnsServer, resolver: DnsResolver
) -> None:
    raw = publish_signer(("example.org", "s1")).sign(build_message(), "example.org")
    keys = await prefetch_keys(resolver, ["s1._domainkey.example.org"])
    dns_server.queries.clear()
    assert dkim.DKIM(raw).verify(dnsfunc=lambda name, timeout=5: keys[name.decode().rstrip(".")][0].encode())
    assert dns_server.queries == []
