"""DMARC's pure parts: records, organisational domains, alignment, the From domain."""

from __future__ import annotations

from pathlib import Path

from mailwarden.dns import DnsConfig, DnsResolver
from mailwarden.model import Direction, Envelope, Message, Policy
from mailwarden.pipeline import Pipeline
from mailwarden.pipeline.auth import AuthenticationStage
from mailwarden.pipeline.auth.dmarc import (
    DmarcPolicy,
    DmarcRecord,
    aligned,
    from_domain,
    organisational_domain,
    parse_record,
)
from mailwarden.pipeline.services import StageServices
from tests.dnsserver import DnsServer
from tests.factories import build_message


def test_records() -> None:
    assert parse_record("v=DMARC1; p=reject; sp=none; pct=50; adkim=s") == DmarcRecord(
        DmarcPolicy.REJECT, DmarcPolicy.NONE, 50, "s", "r"
    )
    assert parse_record("v=DMARC1;p=Quarantine") == DmarcRecord(DmarcPolicy.QUARANTINE)
    assert parse_record("p=reject; v=DMARC1") is None  # v= must come first
    assert parse_record("v=DMARC1; p=bogus") is None
    assert parse_record("v=DMARC1; p=bogus; rua=mailto:r@example.org") == DmarcRecord(DmarcPolicy.NONE)
    assert parse_record("v=DMARC1; p=reject; pct=250").pct == 100  # type: ignore[union-attr]


def test_organisational_domain_and_alignment() -> None:
    assert organisational_domain("a.b.example.co.uk") == "example.co.uk"
    assert organisational_domain("mail.example.org.") == "example.org"
    assert aligned("bounce.example.org", "example.org", "r")
    assert not aligned("bounce.example.org", "example.org", "s")
    assert aligned("Example.ORG", "example.org", "s")
    assert not aligned("example.co.uk", "other.co.uk", "r")


def test_from_domain() -> None:
    assert from_domain(["Alice <alice@Example.ORG>"]) == ("example.org", "")
    assert from_domain([])[0] is None
    assert from_domain(["a@example.org", "b@example.org"])[1] == "2 From header fields"
    assert from_domain(["a@example.org, b@example.net"])[1] == "From holds 2 addresses"


async def test_through_the_pipeline(dns_server: DnsServer, tmp_path: Path) -> None:
    dns_server.add("example.org", "TXT", "v=spf1 -all")
    dns_server.add("_dmarc.example.org", "TXT", "v=DMARC1; p=reject")
    resolver = DnsResolver(DnsConfig(nameservers=["127.0.0.1"], port=dns_server.port, timeout=1.0))
    services = StageServices(resolver, tmp_path, {"auth": {"authserv_id": "mw.example.com"}})
    pipeline = Pipeline({Direction.INBOUND: [AuthenticationStage.from_services(services)]})
    env = Envelope("alice@example.org", ("bob@example.com",), client_ip="198.51.100.7")
    verdict = await pipeline.scan(Message(build_message()), env, Policy(), direction=Direction.INBOUND)
    assert verdict.auth["dmarc_policy"] == "reject"
    assert verdict.auth["authentication_results"].startswith("mw.example.com; spf=fail")
    assert verdict.scl >= 5
