"""ARC chains built here with dkimpy's arc_sign, and journal copies carrying the provider's results."""

from __future__ import annotations

from collections.abc import Callable

import dkim
import pytest
from cryptography.hazmat.primitives import serialization

from mailwarden.dns import DnsResolver
from mailwarden.enforce.dkim_sign import DkimSigner
from mailwarden.model import Finding
from mailwarden.pipeline.auth import AuthenticationStage
from mailwarden.pipeline.auth.arc import ArcResult, verify
from tests.dnsserver import DnsServer
from tests.factories import build_message
from tests.unit.pipeline.auth.helpers import context

Stage = Callable[..., AuthenticationStage]


def codes(findings: list[Finding]) -> dict[str, float]:
    return {f.code: f.score for f in findings}


@pytest.fixture
def forwarded(dns_server: DnsServer, rsa_pem: bytes, publish_signer: Callable[..., DkimSigner]) -> bytes:
    """example.org signs; lists.example rewrites the subject (breaking DKIM) and seals an ARC set."""
    dns_server.add("example.org", "TXT", "v=spf1 ip4:192.0.2.0/24 -all")
    dns_server.add("_dmarc.example.org", "TXT", "v=DMARC1; p=reject")
    signed = publish_signer(("example.org", "s1"), ("lists.example", "arc1")).sign(build_message(), "example.org")
    received = (
        b"Authentication-Results: lists.example; dkim=pass header.d=example.org header.s=s1;"
        b" spf=pass smtp.mailfrom=alice@example.org; dmarc=pass header.from=example.org\r\n" + signed
    )
    modified = received.replace(b"Subject: Quarterly numbers", b"Subject: [team] Quarterly numbers")
    key = serialization.load_pem_private_key(rsa_pem, password=None).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    arc_set = dkim.arc_sign(modified, b"arc1", b"lists.example", key, b"lists.example")
    assert len(arc_set) == 3
    return b"".join(arc_set) + modified


async def test_valid_one_hop_chain_passes(forwarded: bytes, resolver: DnsResolver) -> None:
    outcome = await verify(forwarded, resolver)
    assert outcome.result is ArcResult.PASS, outcome.reason
    assert (outcome.instances, outcome.sealer) == (1, "lists.example")
    assert outcome.claims == {"dkim": "pass", "spf": "pass", "dmarc": "pass"}


async def test_tampered_chain_fails(forwarded: bytes, resolver: DnsResolver) -> None:
    tampered = forwarded.replace(b"the numbers are attached", b"the numbers are at evil.example")
    assert (await verify(tampered, resolver)).result is ArcResult.FAIL


async def test_key_lookup_failure_is_temperror(
    forwarded: bytes, dns_server: DnsServer, fast_resolver: DnsResolver
) -> None:
    dns_server.fail("arc1._domainkey.lists.example")
    assert (await verify(forwarded, fast_resolver)).result is ArcResult.TEMPERROR


async def test_missing_key_is_permerror_and_costs_nothing(
    forwarded: bytes, dns_server: DnsServer, make_stage: Stage
) -> None:
    # the archive case: the forwarder's key is gone (or DNS answers "no such name" for everything)
    del dns_server.records["arc1._domainkey.lists.example"]
    outcome = await verify(forwarded, make_stage().resolver)
    assert outcome.result is ArcResult.PERMERROR
    assert "no key at arc1._domainkey.lists.example" in outcome.reason
    findings = codes(await make_stage().inspect(context(forwarded, mail_from="x@lists.example", ip="203.0.113.5")))
    assert findings["ARC_PERMERROR"] == 0.0 and "ARC_FAIL" not in findings


async def test_tampered_chain_fails_even_with_a_missing_older_key(
    forwarded: bytes, dns_server: DnsServer, resolver: DnsResolver
) -> None:
    # the key of the original DKIM signature is not one ARC needs: a changed body is still a failure
    del dns_server.records["s1._domainkey.example.org"]
    tampered = forwarded.replace(b"the numbers are attached", b"the numbers are at evil.example")
    assert (await verify(tampered, resolver)).result is ArcResult.FAIL


async def test_unreadable_key_is_permerror(forwarded: bytes, dns_server: DnsServer, resolver: DnsResolver) -> None:
    dns_server.records["arc1._domainkey.lists.example"]["TXT"] = ["v=DKIM1; k=rsa; p=bm90IGEga2V5"]
    outcome = await verify(forwarded, resolver)
    assert outcome.result is ArcResult.PERMERROR and "unusable key" in outcome.reason


async def test_trusted_sealer_vouches_for_the_original_dmarc(forwarded: bytes, make_stage: Stage) -> None:
    ctx = context(forwarded, mail_from="team-bounces@lists.example", ip="203.0.113.5")
    findings = codes(await make_stage(trusted_arc_sealers=["lists.example"]).inspect(ctx))
    assert findings["DMARC_ARC_OVERRIDE"] == 0.0
    assert "DMARC_POLICY_REJECT" not in findings and "DKIM_INVALID" in findings  # our own check is still shown
    auth = ctx.facts.auth
    assert (auth["dmarc"], auth["dmarc_policy"], auth["dmarc_local"]) == ("pass", "none", "fail")
    assert "ARC i=1 sealed by lists.example: dmarc=pass" in auth["dmarc_vouched_by"]
    assert "dmarc=pass (p=reject" in auth["authentication_results"]


async def test_sealer_trust_covers_subdomains_only(forwarded: bytes, make_stage: Stage) -> None:
    ctx = context(forwarded, mail_from="team-bounces@lists.example", ip="203.0.113.5")
    findings = codes(await make_stage(trusted_arc_sealers=["sts.example"]).inspect(ctx))
    assert "DMARC_POLICY_REJECT" in findings and "DMARC_ARC_OVERRIDE" not in findings
    ctx = context(forwarded, mail_from="team-bounces@lists.example", ip="203.0.113.5")
    assert "DMARC_ARC_OVERRIDE" in codes(await make_stage(trusted_arc_sealers=["example"]).inspect(ctx))


@pytest.mark.parametrize(
    ("aar", "vouched"),
    [
        (b"dkim=pass header.d=example.org header.s=s1", True),  # no dmarc= written: an aligned DKIM pass
        (b"spf=pass smtp.mailfrom=alice@mail.example.org", True),  # relaxed SPF alignment
        (b"dkim=pass header.d=other.example; spf=pass smtp.mailfrom=a@other.example", False),  # not aligned
        (b"dkim=pass header.d=example.org; dmarc=fail header.from=example.org", False),  # it said fail
    ],
)
async def test_what_a_trusted_hop_reported_decides(
    aar: bytes, vouched: bool, dns_server: DnsServer, rsa_pem: bytes, make_stage: Stage
) -> None:
    dns_server.add("_dmarc.example.org", "TXT", "v=DMARC1; p=reject")
    dns_server.add("arc1._domainkey.lists.example", "TXT", _public_record(rsa_pem))
    received = b"Authentication-Results: lists.example; " + aar + b"\r\n" + build_message()
    arc_set = dkim.arc_sign(received, b"arc1", b"lists.example", _traditional(rsa_pem), b"lists.example")
    ctx = context(b"".join(arc_set) + received, mail_from="team-bounces@lists.example", ip="203.0.113.5")
    findings = codes(await make_stage(trusted_arc_sealers=["lists.example"]).inspect(ctx))
    assert ("DMARC_ARC_OVERRIDE" in findings) is vouched
    assert ("DMARC_POLICY_REJECT" in findings) is not vouched


def _traditional(pem: bytes) -> bytes:
    return serialization.load_pem_private_key(pem, password=None).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )


def _public_record(pem: bytes) -> str:
    from mailwarden.enforce.dkim_sign import DkimKey, DkimSigner

    records = DkimSigner([DkimKey("lists.example", "arc1", "rsa-sha256", pem)]).public_records()  # type: ignore[arg-type]
    return next(iter(records.values()))


async def test_dmarc_fails_but_arc_pass_is_exposed(forwarded: bytes, make_stage: Stage) -> None:
    ctx = context(forwarded, mail_from="team-bounces@lists.example", ip="203.0.113.5")
    findings = codes(await make_stage().inspect(ctx))
    assert "DKIM_INVALID" in findings and "DMARC_POLICY_REJECT" in findings and "ARC_PASS" in findings
    auth = ctx.facts.auth
    assert (auth["arc"], auth["arc_sealer"], auth["arc_aar_dmarc"], auth["arc_aar_authserv_id"]) == (
        "pass",
        "lists.example",
        "pass",
        "lists.example",
    )


# ---- journal mode -----------------------------------------------------------------------------------

EXCHANGE_AR = (
    b"Authentication-Results: spf=fail (sender IP is 198.51.100.7)\r\n smtp.mailfrom=example.org; dkim=none"
    b" (message not signed)\r\n header.d=none;dmarc=fail action=none header.from=example.org;compauth=fail"
    b" reason=001\r\n"
)


@pytest.fixture
def vendor(dns_server: DnsServer) -> DnsServer:
    # the journal client (the provider's server, 192.0.2.10 in these tests) would pass this SPF record
    dns_server.add("example.org", "TXT", "v=spf1 ip4:192.0.2.0/24 -all")
    dns_server.add("_dmarc.example.org", "TXT", "v=DMARC1; p=reject")
    return dns_server


async def test_exchange_copy_trusts_the_first_header(vendor: DnsServer, make_stage: Stage) -> None:
    ctx = context(EXCHANGE_AR + build_message(), journal=True)
    findings = codes(await make_stage(trust_first_authentication_results=True).inspect(ctx))
    assert "AUTH_PROVIDER_RESULTS" in findings
    assert "SPF_FAIL" in findings  # the provider's word, not our check against the journal IP
    assert "DMARC_POLICY_REJECT" in findings
    auth = ctx.facts.auth
    assert (auth["source"], auth["provider_compauth"], auth["provider_dmarc"]) == (
        "provider",
        "fail reason=001",
        "fail",
    )
    assert vendor.queries.count(("example.org", "TXT")) == 0


async def test_trusted_authserv_id_and_ignored_untrusted_one(vendor: DnsServer, make_stage: Stage) -> None:
    trusted = b"Authentication-Results: mx.google.com; spf=pass smtp.mailfrom=alice@example.org\r\n"
    forged = b"Authentication-Results: mx.evil.example; spf=pass smtp.mailfrom=alice@example.org\r\n"
    stage = make_stage(trusted_authserv_ids=["mx.google.com"])

    ctx = context(trusted + build_message(), journal=True)
    findings = codes(await stage.inspect(ctx))
    assert {"AUTH_PROVIDER_RESULTS", "SPF_PASS", "DMARC_PASS"} <= set(findings)
    assert ctx.facts.auth["provider_authserv_id"] == "mx.google.com"

    ctx = context(forged + build_message(), journal=True)
    findings = codes(await stage.inspect(ctx))
    assert {"AUTH_PROVIDER_MISSING", "SPF_NONE", "DMARC_NONE"} <= set(findings)  # DMARC not judged blind
    assert ctx.facts.auth["source"] == "local"


async def test_journal_copy_verifies_dkim_locally(
    vendor: DnsServer, make_stage: Stage, publish_signer: Callable[..., DkimSigner]
) -> None:
    signed = publish_signer(("example.org", "s1")).sign(build_message(), "example.org")
    ctx = context(EXCHANGE_AR + signed, journal=True)
    findings = codes(await make_stage(trust_first_authentication_results=True).inspect(ctx))
    assert {"SPF_FAIL", "DKIM_VALID", "DMARC_PASS"} <= set(findings)  # local DKIM beats the provider's none


async def test_provider_dkim_pass_survives_a_journal_altered_copy(vendor: DnsServer, make_stage: Stage) -> None:
    header = (
        b"Authentication-Results: mx.google.com; spf=softfail smtp.mailfrom=alice@example.org;"
        b" dkim=pass header.i=@example.org header.s=s1\r\n"
    )
    ctx = context(header + build_message(), journal=True)
    findings = codes(await make_stage(trusted_authserv_ids=["mx.google.com"]).inspect(ctx))
    assert {"SPF_SOFTFAIL", "DKIM_VALID", "DMARC_PASS"} <= set(findings)


async def test_provider_dmarc_pass_stands_over_a_local_failure(vendor: DnsServer, make_stage: Stage) -> None:
    # e.g. the provider let a trusted ARC chain override the failure, or saw the original intact
    header = (
        b"Authentication-Results: mx.google.com; spf=fail smtp.mailfrom=alice@example.org;"
        b" dmarc=pass header.from=example.org\r\n"
    )
    ctx = context(header + build_message(), journal=True)
    findings = codes(await make_stage(trusted_authserv_ids=["mx.google.com"]).inspect(ctx))
    assert findings["DMARC_PASS"] < 0 and "DMARC_POLICY_REJECT" not in findings
    assert (ctx.facts.auth["dmarc"], ctx.facts.auth["dmarc_local"]) == ("pass", "fail")


async def test_provider_dmarc_pass_stands_when_our_lookup_fails(vendor: DnsServer, make_stage: Stage) -> None:
    vendor.fail("_dmarc.example.org")
    header = b"Authentication-Results: mx.google.com; spf=pass smtp.mailfrom=alice@example.org; dmarc=pass\r\n"
    ctx = context(header + build_message(), journal=True)
    await make_stage(trusted_authserv_ids=["mx.google.com"]).inspect(ctx)
    assert (ctx.facts.auth["dmarc"], ctx.facts.auth["dmarc_local"]) == ("pass", "temperror")


async def test_gmail_copy_with_only_an_arc_authentication_results(vendor: DnsServer, make_stage: Stage) -> None:
    aar = (
        b"ARC-Authentication-Results: i=1; mx.google.com; spf=fail smtp.mailfrom=example.org;\r\n"
        b"       dmarc=fail (p=NONE) header.from=example.org\r\n"
    )
    ctx = context(aar + build_message(), journal=True)
    findings = codes(await make_stage(trusted_authserv_ids=["mx.google.com"]).inspect(ctx))
    assert {"AUTH_PROVIDER_RESULTS", "SPF_FAIL", "DMARC_POLICY_REJECT", "ARC_NONE"} <= set(findings)
