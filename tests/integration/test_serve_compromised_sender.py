"""The compromised-account signals end to end in `mailwarden serve` (with its scanning processes): an
account that sent a handful of messages a day for a week bounces back ten delivery reports, then sends one
message to sixty people it never wrote to. The outbound spam filter says so in three findings, the message
is spam and leaves through the high-risk pool; the same account's usual mail stays clean."""

from __future__ import annotations

import email
import smtplib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.policy import default
from pathlib import Path

import pytest

from mailwarden.store.sender_activity import SenderActivity
from tests.dnsserver import DnsServer
from tests.factories import build_message
from tests.integration.harness import Mailwarden, Sink, eventually, free_port, organisation

pytestmark = pytest.mark.integration
ALICE = "alice@example.com"
PARTNERS = [f"partner{i}@partner.example" for i in range(3)]
STRANGERS = [f"lead{i}@elsewhere.example" for i in range(60)]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Mailwarden, Sink, Sink]]:
    dns = DnsServer().start()
    internet, risky = Sink(), Sink()
    for sink in (internet, risky):
        sink.controller.start()
    mw = Mailwarden(tmp_path, dns_port=dns.port)
    mw.listeners = {"inbound": free_port(), "outbound": free_port()}
    mw.write_config(smart_host=f"127.0.0.1:{internet.port}")
    mw.config_path.write_text(
        mw.config_path.read_text().replace(
            f'pools = {{ default = "127.0.0.1:{internet.port}" }}',
            f'pools = {{ default = "127.0.0.1:{internet.port}", high_risk = "127.0.0.1:{risky.port}" }}',
        )
    )
    mw.import_organisation(
        organisation(monitor_only=False, domains=[{"name": "example.com", "mode": "gateway",
                                                   "next_hop": f"127.0.0.1:{internet.port}"}])
    )  # fmt: skip
    rt = mw.runtime()
    try:  # a week of ordinary mail: three partners a day
        activity, now = SenderActivity(rt.db), datetime.now(UTC)
        for day in range(1, 8):
            activity.note_sent("acme", ALICE, now - timedelta(days=day), len(PARTNERS), PARTNERS)
    finally:
        rt.close()
    mw.start()
    try:
        yield mw, internet, risky
    finally:
        mw.stop()
        for sink in (internet, risky):
            sink.controller.stop()
        dns.stop()


def findings(mw: Mailwarden, subject: str) -> dict[str, str]:
    def check() -> dict[str, str]:
        details = mw.messages(subject=subject)
        assert len(details) == 1
        return {f["code"]: f["detail"] for stage in details[0].verdict["stages"] for f in stage["findings"]}

    return eventually(check, timeout=30)  # type: ignore[no-any-return]


def test_bounces_and_a_burst_to_strangers_make_outbound_spam(site: tuple[Mailwarden, Sink, Sink]) -> None:
    mw, _internet, risky = site
    with smtplib.SMTP("127.0.0.1", mw.listeners["outbound"], timeout=30) as client:
        raw = build_message(sender=ALICE, to=PARTNERS[0], subject="Minutes of Tuesday")
        assert client.sendmail(ALICE, PARTNERS, raw) == {}
    assert not {"OUTBOUND_VOLUME_SPIKE", "OUTBOUND_MANY_NEW_RECIPIENTS"} & set(findings(mw, "Minutes of Tuesday"))

    with smtplib.SMTP("127.0.0.1", mw.listeners["inbound"], timeout=30) as client:
        for i in range(10):
            report = build_message(sender="mailer-daemon@elsewhere.example", to=ALICE, subject=f"Undeliverable {i}")
            assert client.sendmail("", [ALICE], report) == {}
    eventually(lambda: len(mw.messages(subject="Undeliverable")) == 10, timeout=30)

    with smtplib.SMTP("127.0.0.1", mw.listeners["outbound"], timeout=30) as client:
        raw = build_message(sender=ALICE, to=STRANGERS[0], subject="Investment opportunity")
        assert client.sendmail(ALICE, STRANGERS, raw) == {}
    found = findings(mw, "Investment opportunity")
    assert found["OUTBOUND_MANY_NDRS"] == "10 delivery reports came back to the sender in the last 2 hours"
    assert "63 recipients in the last 2 hours" in found["OUTBOUND_VOLUME_SPIKE"]
    assert found["OUTBOUND_MANY_NEW_RECIPIENTS"].startswith("60 external recipients written to for the first time")
    [detail] = mw.messages(subject="Investment opportunity")
    assert detail.summary.category.value in ("spam", "high_confidence_spam")

    def left_risky() -> bool:
        return any("Investment opportunity" in str(email.message_from_bytes(c, policy=default)["Subject"])
                   for _, _, c in risky.received)  # fmt: skip

    eventually(left_risky, timeout=30)
