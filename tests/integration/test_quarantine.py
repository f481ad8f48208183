"""The quarantine end to end through `mailwarden serve`: hold, release with the CLI, digests and links.

An SMTP sink (aiosmtpd) is the organisations' next hop. High-confidence spam (a blocked sender) is
quarantined in the enforce organisation and recorded as would-have in the monitor one.
"""

from __future__ import annotations

import email
import re
import smtplib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP, default
from email.utils import formatdate, make_msgid
from typing import Any

import pytest

from mailwarden.model.quarantine import Entry, Status
from mailwarden.model.trace import EventType
from mailwarden.quarantine.digest import LinkError
from mailwarden.service.quarantine_jobs import digests_for, quarantine_for
from mailwarden.store.quarantine import QuarantineQuery
from tests.dnsserver import DnsServer
from tests.integration.harness import Mailwarden, Sink, eventually, free_port, relayed_as_sent
from tests.integration.test_spam_actions import import_org

pytestmark = pytest.mark.integration

BLOCKED = "offers@spam.example"
ENFORCED, MONITORED = "held.example", "watched.example"
WAIT = 60.0


@dataclass
class Gateway:
    mw: Mailwarden
    sink: Sink

    def to_sink(self, subject: str) -> list[tuple[str, list[str], bytes]]:
        return [m for m in self.sink.received if f"Subject: {subject}".encode() in m[2]]

    def entries(self, subject: str) -> list[Entry]:
        rt = self.mw.runtime()
        try:
            return [e for e in quarantine_for(rt).list(QuarantineQuery(subject=subject)).items if e.subject == subject]
        finally:
            rt.close()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    dns = DnsServer().start()
    sink = Sink()
    sink.controller.start()
    mw = Mailwarden(tmp_path_factory.mktemp("quarantine"), dns_port=dns.port)
    mw.extra_config = (
        "[quarantine]\nrelease_interval_seconds = 0.3\ndigest_interval_seconds = 0.5\n"
        '[console]\npublic_url = "https://console.test"\n'
    )
    try:
        mw.listeners = {"inbound": free_port()}
        mw.write_config(smart_host=f"127.0.0.1:{sink.port}")
        for domain, monitor in ((ENFORCED, False), (MONITORED, True)):
            document: dict[str, Any] = {
                "name": domain.split(".")[0],
                "monitor_only": monitor,
                "domains": [{"name": domain, "mode": "gateway", "next_hop": f"127.0.0.1:{sink.port}"}],
                "policy": {
                    "spam": {"actions": {"high_confidence_spam": "quarantine"}},
                    "lists": {"blocked_senders": [BLOCKED]},
                },
            }
            import_org(mw, document)
        mw.start()
        yield Gateway(mw, sink)
    finally:
        if mw.process is not None:
            mw.kill()
        sink.controller.stop()
        dns.stop()


def send_spam(gw: Gateway, subject: str, rcpts: list[str]) -> bytes:
    msg = EmailMessage()
    msg["From"] = BLOCKED
    msg["To"] = ", ".join(rcpts)
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="spam.example")
    msg.set_content("Exclusive offer for you.\nReply today to claim your discount.\n")
    raw = msg.as_bytes(policy=SMTP)
    with smtplib.SMTP("127.0.0.1", gw.mw.listeners["inbound"], timeout=30) as client:
        client.sendmail(BLOCKED, rcpts, raw)
    return raw


def test_quarantined_spam_released_with_the_cli_arrives_unchanged(gateway: Gateway) -> None:
    subject = "Offer to release"
    raw = send_spam(gateway, subject, [f"alice@{ENFORCED}", f"bob@{ENFORCED}"])
    entries = eventually(lambda: len(gateway.entries(subject)) == 2 and gateway.entries(subject), timeout=WAIT)
    assert {e.status for e in entries} == {Status.HELD}
    assert gateway.to_sink(subject) == []

    alice = next(e for e in entries if e.recipient == f"alice@{ENFORCED}")
    result = gateway.mw.cli("quarantine", "release", alice.id, "--to", f"alice@{ENFORCED}", "--by", "admin@held")
    assert "released" in result.stdout

    ((mail_from, rcpts, body),) = eventually(lambda: gateway.to_sink(subject), timeout=WAIT)
    assert (mail_from, rcpts) == (BLOCKED, [f"alice@{ENFORCED}"])
    assert relayed_as_sent(body, raw)  # delivered as it came (with our Received field), not filtered again
    statuses = {e.recipient: e.status for e in gateway.entries(subject)}
    assert statuses == {f"alice@{ENFORCED}": Status.RELEASED, f"bob@{ENFORCED}": Status.HELD}

    def traced() -> bool:
        (detail,) = [d for d in gateway.mw.messages(subject=subject) if d.summary.subject == subject]
        kinds = [(e.type, e.recipient) for e in detail.events]
        return (EventType.RELEASE, f"alice@{ENFORCED}") in kinds and (EventType.DELIVER, f"alice@{ENFORCED}") in kinds

    eventually(traced, timeout=WAIT)
    listed = gateway.mw.cli("quarantine", "list", "--status", "held", "--json").stdout
    assert f"bob@{ENFORCED}" in listed and f'"id": "{alice.id}"' not in listed


def test_monitor_mode_lists_would_have_entries_and_offers_no_release(gateway: Gateway) -> None:
    subject = "Offer while watched"
    send_spam(gateway, subject, [f"carol@{MONITORED}"])
    (entry,) = eventually(lambda: gateway.entries(subject), timeout=WAIT)
    assert entry.would_have and entry.blob_key is None
    eventually(lambda: gateway.to_sink(subject), timeout=WAIT)  # monitor mode: delivered unchanged

    refused = gateway.mw.cli("quarantine", "release", entry.id, check=False)
    assert refused.returncode != 0
    assert "monitor mode, the message was delivered" in " ".join(refused.stderr.split())


def test_digest_link_releases_once_and_expires(gateway: Gateway) -> None:
    subject = "Offer for the digest"
    send_spam(gateway, subject, [f"dave@{ENFORCED}"])
    (entry,) = eventually(lambda: gateway.entries(subject), timeout=WAIT)

    def digest() -> bytes:
        found = [m[2] for m in gateway.sink.received if m[1] == [f"dave@{ENFORCED}"] and b"quarantine/link/" in m[2]]
        assert len(found) <= 1  # one digest, not one per round of the job
        return found[0]

    raw = eventually(digest, timeout=WAIT)
    # the digest's delivery is logged as such, not as a failure to trace it
    eventually(lambda: "quarantine_digest_delivery" in gateway.mw.log(), timeout=WAIT)
    assert "delivery_event_callback_failed" not in gateway.mw.log()
    text = email.message_from_bytes(raw, policy=default).get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert subject in text
    release = re.search(r"Release: https://console\.test/quarantine/link/(\S+)", text)
    preview = re.search(r"Preview: https://console\.test/quarantine/link/(\S+)", text)
    assert release and preview

    rt = gateway.mw.runtime()
    try:
        digests = digests_for(rt)
        result = digests.redeem(release.group(1))
        assert result.entry.id == entry.id and result.entry.status is Status.RELEASED
        with pytest.raises(LinkError) as again:
            digests.redeem(release.group(1))
        assert again.value.reason == "used"
        with pytest.raises(LinkError) as late:
            digests.redeem(preview.group(1), datetime.now(UTC) + timedelta(hours=73))
        assert late.value.reason == "expired"
    finally:
        rt.close()

    ((_, rcpts, _),) = eventually(lambda: gateway.to_sink(subject), timeout=WAIT)
    assert rcpts == [f"dave@{ENFORCED}"]
