"""Outbound spam through the high-risk delivery pool, end to end in `mailwarden serve`.

Two aiosmtpd sinks: the default pool's smart host and the smart host of pool `high_risk`. A transport
rule sets SCL 6 on one subject (a spam verdict, as in test_spam_actions.py); the organisation sends
through the outbound listener. Spam arrives at the high-risk sink stamped `DI:SO`, clean mail at the
default sink; in monitor mode everything leaves through the default pool and the trace only records.
"""

from __future__ import annotations

import email
import smtplib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import pytest

from mailwarden.model.trace import EventType
from mailwarden.store import MessageDetail
from tests.dnsserver import DnsServer
from tests.factories import build_message
from tests.integration.harness import Mailwarden, Sink, eventually, free_port, organisation

pytestmark = pytest.mark.integration

SENDER = "alice@example.com"
SPAM_WORD = "watches"


@dataclass
class Site:
    mw: Mailwarden
    default: Sink  # the default pool's smart host
    high_risk: Sink  # pool high_risk's smart host

    def use(self, *, monitor_only: bool) -> None:
        document = organisation(
            monitor_only=monitor_only,
            domains=[{"name": "example.com", "mode": "gateway", "next_hop": f"127.0.0.1:{self.default.port}"}],
        )
        spammy = {"name": "Spammy", "conditions": {"subject_contains": [SPAM_WORD]}, "actions": {"set_scl": 6}}
        document["policy"] = {"rules": [spammy]}
        self.mw.import_organisation(document)
        time.sleep(1.0)  # [processing] policy_refresh_seconds = 0.5

    def send(self, subject: str) -> None:
        raw = build_message(sender=SENDER, to="bob@partner.example", subject=subject)
        raw = raw.replace(b"<test-1@example.org>", b"<" + subject.replace(" ", "-").encode() + b"@example.com>")
        with smtplib.SMTP("127.0.0.1", self.mw.listeners["outbound"], timeout=30) as client:
            assert client.sendmail(SENDER, ["bob@partner.example"], raw) == {}

    def recorded(self, subject: str) -> MessageDetail:
        def check() -> MessageDetail:
            matches = self.mw.messages(subject=subject)
            assert len(matches) == 1, matches
            found = matches[0]
            assert any(e.type is EventType.DELIVER for e in found.events)
            return found

        return eventually(check, timeout=30)  # type: ignore[no-any-return]


def got(sink: Sink, subject: str) -> list[EmailMessage]:
    out = []
    for _, _, raw in sink.received:
        msg = email.message_from_bytes(raw, policy=default)
        assert isinstance(msg, EmailMessage)
        if subject in str(msg["Subject"] or ""):
            out.append(msg)
    return out


def arrived(sink: Sink, subject: str) -> EmailMessage:
    def check() -> EmailMessage:
        found = got(sink, subject)
        assert len(found) == 1, found
        return found[0]

    return eventually(check, timeout=30)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    dns = DnsServer().start()
    sinks = [Sink(), Sink()]
    for s in sinks:
        s.controller.start()
    default_sink, high_risk = sinks
    mw = Mailwarden(Path(tmp_path_factory.mktemp("pool")), dns_port=dns.port)
    mw.listeners = {"inbound": free_port(), "outbound": free_port()}
    mw.write_config(smart_host=f"127.0.0.1:{default_sink.port}")
    config = mw.config_path.read_text()
    config = config.replace(
        f'pools = {{ default = "127.0.0.1:{default_sink.port}" }}',
        f'pools = {{ default = "127.0.0.1:{default_sink.port}", high_risk = "127.0.0.1:{high_risk.port}" }}',
    ).replace("[processing]\n", "[processing]\nscan_processes = 0\n")
    mw.config_path.write_text(config)
    result = Site(mw, default_sink, high_risk)
    result.use(monitor_only=False)
    mw.start()
    try:
        yield result
    finally:
        mw.kill()
        for s in sinks:
            s.controller.stop()
        dns.stop()


def test_outbound_spam_leaves_through_the_high_risk_pool_and_clean_mail_through_the_default(site: Site) -> None:
    site.use(monitor_only=False)
    site.send(f"Cheap {SPAM_WORD} today")
    site.send("Minutes of Tuesday")
    spam = arrived(site.high_risk, f"Cheap {SPAM_WORD} today")
    assert "CAT:SPM" in spam["X-Mailwarden-Antispam"] and spam["X-Mailwarden-Antispam"].endswith(";DI:SO")
    clean = arrived(site.default, "Minutes of Tuesday")
    assert "DI:" not in clean["X-Mailwarden-Antispam"]
    assert got(site.default, f"Cheap {SPAM_WORD} today") == [] and got(site.high_risk, "Minutes of Tuesday") == []
    detail = site.recorded(f"Cheap {SPAM_WORD} today")
    assert "pool high_risk: outbound spam (DI=SO)" in [e.detail for e in detail.events if e.type is EventType.SCAN]
    assert site.recorded("Minutes of Tuesday").summary.category.value == "clean"
    assert "high_risk_pool_missing" not in site.mw.log()


def test_monitor_mode_sends_spam_through_the_default_pool_and_records_the_pool_it_would_have_used(site: Site) -> None:
    site.use(monitor_only=True)
    site.send(f"Discount {SPAM_WORD} monitor")
    msg = arrived(site.default, f"Discount {SPAM_WORD} monitor")
    assert msg["X-Mailwarden-Antispam"] is None  # relayed unchanged
    assert got(site.high_risk, f"Discount {SPAM_WORD} monitor") == []
    detail = site.recorded(f"Discount {SPAM_WORD} monitor")
    records = [e.detail for e in detail.events if e.type is EventType.RECORD]
    assert "would have left through pool high_risk: outbound spam (DI=SO)" in records
