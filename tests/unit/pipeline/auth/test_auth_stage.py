"""The authentication stage end to end: SPF + DKIM + DMARC + ARC over the loopback DNS server."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mailwarden.enforce.dkim_sign import DkimSigner
from mailwarden.errors import ConfigError
from mailwarden.mail.authresults import parse
from mailwarden.model import Finding
from mailwarden.pipeline.auth import DEFAULT_WEIGHTS, AuthenticationStage
from mailwarden.pipeline.facts import ConnectionFacts
from tests.dnsserver import DnsServer
from tests.factories import build_message
from tests.unit.pipeline.auth.helpers import context

Stage = Callable[..., AuthenticationStage]


def codes(findings: list[Finding]) -> dict[str, float]:
    return {f.code: f.score for f in findings}


@pytest.fixture
def org(dns_server: DnsServer) -> DnsServer:
    """example.org: SPF for 192.0.2.0/24, DMARC p=reject."""
    dns_server.add("example.org", "TXT", "v=spf1 ip4:192.0.2.0/24 -all")
    dns_server.add("_dmarc.example.org", "TXT", "v=DMARC1; p=reject; rua=mailto:d@example.org")
    return dns_server


async def test_all_pass(org: DnsServer, make_stage: Stage, publish_signer: Callable[..., DkimSigner]) -> None:
    raw = publish_signer(("example.org", "s1")).sign(build_message(), "example.org")
    ctx = context(raw)
    findings = await make_stage().inspect(ctx)
    assert codes(findings) == {
        "SPF_PASS": -0.2,
        "DKIM_VALID": -0.2,
        "DMARC_PASS": -0.5,
        "ARC_NONE": 0.0,
    }
    auth = ctx.facts.auth
    assert {k: auth[k] for k in ("spf", "dkim", "dmarc", "dmarc_policy", "arc", "from_domain")} == {
        "spf": "pass",
        "dkim": "pass",
        "dmarc": "pass",
        "dmarc_policy": "none",
        "arc": "none",
        "from_domain": "example.org",
    }
    assert all(isinstance(v, str) for v in auth.values())
    header = parse(auth["authentication_results"])
    assert header.authserv_id == "mw.example.com"
    assert [(r.method, r.result) for r in header.results] == [
        ("spf", "pass"),
        ("dkim", "pass"),
        ("dmarc", "pass"),
        ("arc", "none"),
    ]
    assert header.first("dkim").get("header.d") == "example.org"  # type: ignore[union-attr]
    assert header.first("spf").get("smtp.mailfrom") == "alice@example.org"  # type: ignore[union-attr]


async def test_dmarc_reject_when_nothing_aligns(org: DnsServer, make_stage: Stage) -> None:
    ctx = context(ip="198.51.100.66")
    findings = codes(await make_stage().inspect(ctx))
    assert findings["SPF_FAIL"] == 1.0
    assert findings["DMARC_POLICY_REJECT"] == DEFAULT_WEIGHTS["DMARC_POLICY_REJECT"] >= 5
    assert (ctx.facts.auth["dmarc"], ctx.facts.auth["dmarc_policy"]) == ("fail", "reject")


async def test_spf_pass_on_an_unaligned_domain_is_dmarc_fail(org: DnsServer, make_stage: Stage) -> None:
    org.add("bounce.esp.example", "TXT", "v=spf1 ip4:192.0.2.0/24 -all")
    ctx = context(mail_from="b-123@bounce.esp.example")
    findings = codes(await make_stage().inspect(ctx))
    assert "SPF_PASS" in findings and "DMARC_POLICY_REJECT" in findings


async def test_quarantine_and_none(dns_server: DnsServer, make_stage: Stage) -> None:
    dns_server.add("_dmarc.example.org", "TXT", "v=DMARC1; p=quarantine")
    ctx = context(ip=None)
    findings = codes(await make_stage().inspect(ctx))
    assert findings["DMARC_POLICY_QUARANTINE"] == DEFAULT_WEIGHTS["DMARC_POLICY_QUARANTINE"]
    assert findings["SPF_NONE"] == 0.0
    assert ctx.facts.auth["spf"] == "none"

    dns_server.records["_dmarc.example.org"]["TXT"] = ["v=DMARC1; p=none"]
    ctx = context(ip=None)
    assert "DMARC_POLICY_SOFTFAIL" in codes(await make_stage().inspect(ctx))
    assert ctx.facts.auth["dmarc_policy"] == "none"

    dns_server.records.pop("_dmarc.example.org")
    assert "DMARC_NONE" in codes(await make_stage().inspect(context(ip=None)))


async def test_relaxed_and_strict_alignment(
    dns_server: DnsServer, make_stage: Stage, publish_signer: Callable[..., DkimSigner]
) -> None:
    # MAIL FROM and DKIM both on a subdomain of the From domain
    dns_server.add("mail.example.org", "TXT", "v=spf1 ip4:192.0.2.0/24 -all")
    signer = publish_signer(("mail.example.org", "s1"))
    raw = signer.sign(build_message(), "mail.example.org")
    dns_server.add("_dmarc.example.org", "TXT", "v=DMARC1; p=reject")
    ctx = context(raw, mail_from="bounces@mail.example.org")
    assert "DMARC_PASS" in codes(await make_stage().inspect(ctx))

    dns_server.records["_dmarc.example.org"]["TXT"] = ["v=DMARC1; p=reject; adkim=s; aspf=s"]
    stage = make_stage()
    ctx = context(raw, mail_from="bounces@mail.example.org")
    assert "DMARC_POLICY_REJECT" in codes(await stage.inspect(ctx))

    dns_server.records["_dmarc.example.org"]["TXT"] = ["v=DMARC1; p=reject; adkim=r; aspf=s"]
    ctx = context(raw, mail_from="bounces@mail.example.org")
    findings = codes(await stage.inspect(ctx))
    assert "DMARC_PASS" in findings  # DKIM relaxed-aligned is enough


async def test_subdomain_uses_the_organisational_policy_and_sp(dns_server: DnsServer, make_stage: Stage) -> None:
    dns_server.add("_dmarc.example.org", "TXT", "v=DMARC1; p=reject; sp=quarantine")
    ctx = context(sender="Billing <billing@invoices.example.org>", ip=None)
    findings = codes(await make_stage().inspect(ctx))
    assert "DMARC_POLICY_QUARANTINE" in findings
    assert ctx.facts.auth["from_domain"] == "invoices.example.org"
    assert ctx.facts.auth["dmarc_published"] == "quarantine"

    dns_server.add("_dmarc.invoices.example.org", "TXT", "v=DMARC1; p=none")
    ctx = context(sender="billing@invoices.example.org", ip=None)
    assert "DMARC_POLICY_SOFTFAIL" in codes(await make_stage().inspect(ctx))  # own record wins

    dns_server.add("_dmarc.example.co.uk", "TXT", "v=DMARC1; p=reject")
    ctx = context(sender="x@shop.example.co.uk", mail_from="x@shop.example.co.uk", ip=None)
    assert "DMARC_POLICY_REJECT" in codes(await make_stage().inspect(ctx))  # org domain across a 2-label suffix


async def test_pct_samples_out_deterministically(dns_server: DnsServer, make_stage: Stage) -> None:
    dns_server.add("_dmarc.example.org", "TXT", "v=DMARC1; p=reject; pct=0")
    ctx = context(ip=None)
    assert "DMARC_POLICY_QUARANTINE" in codes(await make_stage().inspect(ctx))  # one step milder


@pytest.mark.parametrize("sender", ["Alice <alice@example.org>, Mallory <m@evil.example>", "undisclosed-recipients:;"])
async def test_from_with_zero_or_several_addresses_is_permerror(org: DnsServer, make_stage: Stage, sender: str) -> None:
    ctx = context(sender=sender)
    assert "DMARC_PERMERROR" in codes(await make_stage().inspect(ctx))
    assert ctx.facts.auth["dmarc"] == "permerror"


async def test_dns_failures_are_temperror_and_weightless(
    dns_server: DnsServer, make_stage: Stage, publish_signer: Callable[..., DkimSigner]
) -> None:
    raw = publish_signer(("example.org", "s1")).sign(build_message(), "example.org")
    for name in ("example.org", "s1._domainkey.example.org", "_dmarc.example.org"):
        dns_server.fail(name)
    ctx = context(raw)
    findings = await make_stage().inspect(ctx)
    assert codes(findings) == {"SPF_TEMPERROR": 0.0, "DKIM_TEMPERROR": 0.0, "DMARC_TEMPERROR": 0.0, "ARC_NONE": 0.0}
    assert {ctx.facts.auth[k] for k in ("spf", "dkim", "dmarc")} == {"temperror"}


async def test_an_aligned_check_that_could_not_be_made_is_no_dmarc_failure(
    org: DnsServer, make_stage: Stage, publish_signer: Callable[..., DkimSigner]
) -> None:
    # the policy is known (p=reject), but the From domain's DKIM key could not be fetched: the message
    # might have passed, so DMARC says temperror and no policy applies (SPF still fails on its own)
    raw = publish_signer(("example.org", "s1")).sign(build_message(), "example.org")
    org.fail("s1._domainkey.example.org")
    ctx = context(raw, ip="198.51.100.66")
    findings = codes(await make_stage().inspect(ctx))
    assert findings["DMARC_TEMPERROR"] == 0.0 and findings["DKIM_TEMPERROR"] == 0.0
    assert not any(code.startswith("DMARC_POLICY") for code in findings)
    assert (ctx.facts.auth["dmarc"], ctx.facts.auth["dmarc_policy"]) == ("temperror", "none")


async def test_spf_temperror_on_the_aligned_domain_is_dmarc_temperror(org: DnsServer, make_stage: Stage) -> None:
    org.fail("example.org")
    ctx = context(ip="198.51.100.66")  # unsigned: SPF is the only way it could pass
    findings = codes(await make_stage().inspect(ctx))
    assert {"SPF_TEMPERROR", "DMARC_TEMPERROR"} <= set(findings) and "DMARC_POLICY_REJECT" not in findings


async def test_an_unaligned_temperror_does_not_excuse_a_failure(org: DnsServer, make_stage: Stage) -> None:
    org.fail("bounces.other.example")
    ctx = context(mail_from="x@bounces.other.example", ip="198.51.100.66")
    assert "DMARC_POLICY_REJECT" in codes(await make_stage().inspect(ctx))


async def test_connection_fact_ip_wins(org: DnsServer, make_stage: Stage) -> None:
    ctx = context(ip="198.51.100.66")
    ctx.facts.connection = ConnectionFacts(ip="192.0.2.99")
    assert "SPF_PASS" in codes(await make_stage().inspect(ctx))


async def test_weights_from_config(org: DnsServer, make_stage: Stage) -> None:
    stage = make_stage(weights={"SPF_FAIL": 2.5, "DMARC_POLICY_REJECT": 12})
    findings = codes(await stage.inspect(context(ip="198.51.100.66")))
    assert (findings["SPF_FAIL"], findings["DMARC_POLICY_REJECT"]) == (2.5, 12)
    with pytest.raises(ConfigError, match=r"stages\.auth\.weights.*SPF_FIAL"):
        make_stage(weights={"SPF_FIAL": 1})
