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


async def test_gmail_copy_with_only_an_arc_authentication_results(vendor: DnsServer, make_stage: Stage) -> None:
    aar = (
        b"ARC-Authentication-Results: i=1; mx.google.com; spf=fail smtp.mailfrom=example.org;\r\n"
        b"       dmarc=fail (p=NONE) header.from=example.org\r\n"
    )
    ctx = context(aar + build_message(), journal=True)
    findings = codes(await make_stage(trusted_authserv_ids=["mx.google.com"]).inspect(ctx))
    assert {"AUTH_PROVIDER_RESULTS", "SPF_FAIL", "DMARC_POLICY_REJECT", "ARC_NONE"} <= set(findings)
