"""Transport rules and DLP inside `mailwarden serve`, over real SMTP, with what the next hops received.

One server for the module (inbound, outbound and journal listeners); each test imports the
organisation document with its own rules. Three aiosmtpd sinks stand for the organisation's mail
server (example.com's next hop), the internet (the default delivery pool's smart host) and a second
delivery pool `secure`.
"""

from __future__ import annotations

import email
import json
import smtplib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import pytest

from mailwarden.model.trace import EventType, RecipientStatus
from mailwarden.store import MessageDetail
from tests.dnsserver import DnsServer
from tests.factories import build_message
from tests.integration.harness import Mailwarden, Sink, eventually, free_port, organisation
from tests.unit.pipeline.rules.test_rules import docx_of

pytestmark = pytest.mark.integration

CARD = "4111 1111 1111 1111"
DELETED = "550 4.3.2 QUEUE.TransportAgent; message deleted by transport agent"


@dataclass
class Site:
    mw: Mailwarden
    org: Sink  # example.com's mail server
    internet: Sink  # the default pool's smart host
    secure: Sink  # the smart host of delivery pool "secure"

    def use(self, *rules: dict[str, Any], custom_types: tuple[dict[str, Any], ...] = ()) -> None:
        """Import the organisation with these rules and wait until the server has reloaded it."""
        document = organisation(
            monitor_only=False,
            domains=[{"name": "example.com", "mode": "gateway", "next_hop": f"127.0.0.1:{self.org.port}"}],
        )
        document["policy"] = {"rules": list(rules), "dlp": {"custom_types": list(custom_types)}}
        self.mw.import_organisation(document)
        time.sleep(1.0)  # [processing] policy_refresh_seconds = 0.5

    def inbound(self, raw: bytes, *, sender: str = "partner@example.org", rcpts: tuple[str, ...] = ()) -> None:
        _send(self.mw.listeners["inbound"], sender, list(rcpts or ("alice@example.com",)), raw)

    def outbound(self, raw: bytes, *, rcpts: tuple[str, ...] = ("bob@partner.example",)) -> None:
        _send(self.mw.listeners["outbound"], "alice@example.com", list(rcpts), raw)

    def journal(self, raw: bytes) -> None:
        _send(self.mw.listeners["journal"], "partner@example.org", [self.mw.journal_address], raw)

    def recorded(self, subject: str, *, settled: bool = True) -> MessageDetail:
        """The message's history once it is there (and, with `settled`, no recipient is pending)."""

        def check() -> MessageDetail:
            found = self.mw.messages(subject=subject)
            assert len(found) == 1, found
            detail = found[0]
            if settled:
                assert all(r.status is not RecipientStatus.PENDING for r in detail.recipients)
            return detail

        return eventually(check, timeout=30)  # type: ignore[no-any-return]


def _send(port: int, sender: str, rcpts: list[str], raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        refused = client.sendmail(sender, rcpts, raw)
        assert refused == {}


def message(subject: str, **kw: Any) -> bytes:
    """A message with its own Message-ID, so journal copies of different tests are never merged."""
    token = subject.replace(" ", "-").encode()
    return build_message(subject=subject, **kw).replace(b"<test-1@example.org>", b"<" + token + b"@example.org>")


def got(sink: Sink, subject: str) -> list[tuple[str, list[str], EmailMessage]]:
    """What a sink received whose Subject contains `subject`: (MAIL FROM, RCPT TO, parsed message)."""
    out = []
    for mail_from, rcpts, raw in sink.received:
        msg = email.message_from_bytes(raw, policy=default)
        assert isinstance(msg, EmailMessage)
        if subject in str(msg["Subject"] or ""):
            out.append((mail_from, rcpts, msg))
    return out


def ndrs(sink: Sink, subject: str) -> list[tuple[str, list[str], EmailMessage]]:
    """NDRs a sink received about the message with this subject (their last part holds its header)."""

    def check() -> list[tuple[str, list[str], EmailMessage]]:
        found = [m for m in got(sink, "Undelivered Mail Returned to Sender") if subject in m[2].as_string()]
        assert found
        return found

    return eventually(check, timeout=30)  # type: ignore[no-any-return]


def arrived(sink: Sink, subject: str) -> list[tuple[str, list[str], EmailMessage]]:
    def check() -> list[tuple[str, list[str], EmailMessage]]:
        found = got(sink, subject)
        assert found
        return found

    return eventually(check, timeout=30)  # type: ignore[no-any-return]


def rule(name: str, conditions: dict[str, Any], actions: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {"name": name, "conditions": conditions, "actions": actions, **kw}


def events(detail: MessageDetail, kind: EventType) -> list[str]:
    return [e.detail for e in detail.events if e.type is kind]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    dns = DnsServer().start()
    sinks = [Sink(), Sink(), Sink()]
    for s in sinks:
        s.controller.start()
    org, internet, secure = sinks
    mw = Mailwarden(Path(tmp_path_factory.mktemp("rules")), dns_port=dns.port)
    mw.listeners = {"inbound": free_port(), "outbound": free_port(), "journal": free_port()}
    mw.write_config(smart_host=f"127.0.0.1:{internet.port}")
    config = mw.config_path.read_text()
    config = config.replace(
        f'pools = {{ default = "127.0.0.1:{internet.port}" }}',
        f'pools = {{ default = "127.0.0.1:{internet.port}", secure = "127.0.0.1:{secure.port}" }}',
    ).replace("[processing]\n", "[processing]\nscan_processes = 0\n")  # one runtime: less CPU for a few messages
    mw.config_path.write_text(config)
    result = Site(mw, org, internet, secure)
    result.use()
    mw.start()
    try:
        yield result
    finally:
        mw.kill()
        for s in sinks:
            s.controller.stop()
        dns.stop()


def test_a_rule_reject_bounces_to_the_sender_with_the_rules_status(site: Site) -> None:
    site.use(
        rule(
            "No invoices from outside",
            {"subject_contains": ["invoice"], "sender_location": "outside"},
            {"reject": {"status": "5.7.901", "text": "Invoices go through the supplier portal"}},
        )
    )
    # the message is accepted (250 after the spool commit), filtered, then refused with an NDR
    site.inbound(message("Invoice 2211 attached"))
    detail = site.recorded("Invoice 2211")
    assert (detail.summary.category.value, detail.summary.action.value) == ("rule", "reject")
    assert detail.recipients[0].status is RecipientStatus.REJECTED
    (reject,) = [e for e in detail.events if e.type is EventType.REJECT]
    assert reject.smtp_reply == "550 5.7.901 Invoices go through the supplier portal"
    assert events(detail, EventType.DSN) == ["NDR to partner@example.org"]
    # the NDR goes out through the internet route (the sender is outside) with a null sender
    ((mail_from, rcpts, ndr),) = ndrs(site.internet, "Invoice 2211")
    assert (mail_from, rcpts) == ("<>", ["partner@example.org"])
    assert "5.7.901" in ndr.as_string() and "Invoices go through the supplier portal" in ndr.as_string()
    assert got(site.org, "Invoice 2211") == []


def test_delete_drops_without_an_ndr(site: Site) -> None:
    site.use(rule("Drop newsletters", {"header_exists": ["List-Unsubscribe"]}, {"delete": True}))
    site.inbound(message("Weekly digest", headers={"List-Unsubscribe": "<mailto:leave@example.org>"}))
    detail = site.recorded("Weekly digest")
    assert detail.summary.action.value == "drop" and detail.recipients[0].status is RecipientStatus.DROPPED
    (drop,) = [e for e in detail.events if e.type is EventType.DROP]
    assert drop.smtp_reply == DELETED
    assert events(detail, EventType.DSN) == []  # no NDR was queued with the record
    assert got(site.org, "Weekly digest") == [] and got(site.internet, "Weekly digest") == []


def test_redirect_and_added_recipients_decide_who_receives_it(site: Site) -> None:
    site.use(
        rule("Legal hold", {"subject_contains": ["subpoena"]}, {"redirect_to": ["legal@example.com"]}),
        rule(
            "Copy audits",
            {"subject_contains": ["audit"]},
            {"add_cc": ["auditor@example.com"], "add_bcc": ["archive@example.com"]},
        ),
    )
    site.inbound(message("Subpoena for records"))
    site.inbound(message("Audit schedule"))
    ((_, rcpts, _),) = arrived(site.org, "Subpoena for records")
    assert rcpts == ["legal@example.com"]  # alice never gets it
    ((_, rcpts, copy),) = arrived(site.org, "Audit schedule")
    assert sorted(rcpts) == ["alice@example.com", "archive@example.com", "auditor@example.com"]
    assert copy["Cc"] == "auditor@example.com" and "archive@example.com" not in copy.as_string()

    redirected = site.recorded("Subpoena for records")
    fields = {r.address: (r.field, r.status) for r in redirected.recipients}
    assert fields == {
        "alice@example.com": ("envelope", RecipientStatus.REDIRECTED),
        "legal@example.com": ("redirect", RecipientStatus.DELIVERED),
    }
    copied = site.recorded("Audit schedule")
    fields = {r.address: (r.field, r.status) for r in copied.recipients}
    assert fields == {
        "alice@example.com": ("envelope", RecipientStatus.DELIVERED),
        "auditor@example.com": ("cc", RecipientStatus.DELIVERED),
        "archive@example.com": ("bcc", RecipientStatus.DELIVERED),
    }
    assert "rule 'Copy audits': archive@example.com added as Bcc recipient" in events(copied, EventType.RULE)


def test_header_subject_and_disclaimer_changes_reach_the_mailbox(site: Site) -> None:
    site.use(
        rule(
            "External banner",
            {"sender_location": "outside"},
            {
                "add_header": [{"name": "X-External", "value": "yes"}],
                "set_header": [{"name": "X-Priority", "value": "3"}],
                "remove_header": ["X-Internal-Only"],
                "prepend_subject": "[EXT] ",
                "append_disclaimer": {"text": "Sent from outside acme.", "html": "<p><i>Sent from outside</i></p>"},
            },
        )
    )
    raw = message(
        "Lunch plans",
        text="Pizza on Friday?\n",
        html="<html><body><p>Pizza on Friday?</p></body></html>",
        headers={"X-Internal-Only": "secret routing", "X-Priority": "1"},
    )
    site.inbound(raw)
    ((_, _, msg),) = arrived(site.org, "Lunch plans")
    assert msg["Subject"] == "[EXT] Lunch plans"
    assert msg["X-External"] == "yes" and msg.get_all("X-Priority") == ["3"] and msg["X-Internal-Only"] is None
    plain = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert plain is not None and html is not None
    assert plain.get_content().rstrip().endswith("Sent from outside acme.")
    assert "<p><i>Sent from outside</i></p></body>" in html.get_content()
    detail = site.recorded("Lunch plans")
    notes = events(detail, EventType.RULE)
    assert "rule 'External banner': disclaimer appended to 2 body part(s)" in notes
    assert "rule 'External banner': header X-External added" in notes


def test_set_scl_minus_one_skips_the_spam_filter(site: Site) -> None:
    site.use(rule("Partner bypass", {"sender_domain": ["partner.example"]}, {"set_scl": -1}))
    site.inbound(message("FREE MONEY click now", sender="news@partner.example"), sender="news@partner.example")
    ((_, _, msg),) = arrived(site.org, "FREE MONEY")
    assert "SFV:SKN;SCL:-1;" in str(msg["X-Mailwarden-Antispam"])
    detail = site.recorded("FREE MONEY")
    assert detail.summary.scl == -1
    (spam,) = [s for s in detail.verdict["stages"] if s["stage"] == "spam"]
    assert spam["outcome"] == "skipped"


def test_outbound_rule_routes_through_a_named_delivery_pool(site: Site) -> None:
    site.use(
        rule(
            "Board mail",
            {"subject_contains": ["board"]},
            {"delivery_pool": "secure"},
            direction="outbound",
        )
    )
    site.outbound(message("Board minutes", sender="alice@example.com", to="bob@partner.example"))
    site.outbound(message("Plain update", sender="alice@example.com", to="bob@partner.example"))
    ((_, rcpts, _),) = arrived(site.secure, "Board minutes")
    assert rcpts == ["bob@partner.example"]
    arrived(site.internet, "Plain update")
    assert got(site.internet, "Board minutes") == [] and got(site.secure, "Plain update") == []
    detail = site.recorded("Board minutes")
    assert "rule 'Board mail': leaves through delivery pool 'secure'" in events(detail, EventType.RULE)


def test_dlp_in_attachments_rejects_reports_and_keeps_only_redacted_values(site: Site) -> None:
    site.use(
        rule(
            "Cards and staff ids out",
            {"sensitive_info": [{"type": "credit_card"}, {"type": "employee_id", "min_count": 2}]},
            {
                "reject": {"status": "5.7.902", "text": "Sensitive information may not leave by mail"},
                "incident_report_to": ["secops@example.com"],
            },
            direction="outbound",
        ),
        custom_types=({"name": "employee_id", "pattern": r"\bEMP-\d{6}\b", "keywords": ["employee"]},),
    )
    site.outbound(
        message(
            "Expense claim",
            sender="alice@example.com",
            text="Claim attached.\n",
            attachments=[("claim.docx", "application/octet-stream", docx_of(f"Card number: {CARD}, exp 12/29"))],
        )
    )
    staff = b"Employee list\nEMP-000101\nEMP-000102\n"
    site.outbound(message("Team roster", sender="alice@example.com", attachments=[("team.txt", "text/plain", staff)]))

    claim = site.recorded("Expense claim")
    assert (claim.summary.category.value, claim.summary.action.value) == ("rule", "reject")
    assert claim.verdict["rule_hits"] == ["Cards and staff ids out"]
    trace = site.mw.cli("trace", "--id", claim.summary.id, "--json").stdout
    data = json.loads(trace)
    assert [m["samples"] for m in data["verdict"]["dlp_matches"] if m["type"] == "credit_card"] == [
        ["4111 **** **** 1111"]
    ]
    assert CARD not in trace and CARD.replace(" ", "") not in trace
    assert events(claim, EventType.NOTIFY) == ["incident report to secops@example.com"]
    # the incident report and the NDR to alice both go to the organisation's mail server
    ((mail_from, rcpts, report),) = arrived(site.org, "Incident report: Cards and staff ids out: Expense claim")
    assert (mail_from, rcpts) == ("<>", ["secops@example.com"])
    body = report.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "credit_card: 1 (high confidence)" in text and claim.summary.id in text
    assert CARD not in report.as_string() and "1111" not in text
    ((mail_from, rcpts, ndr),) = ndrs(site.org, "Expense claim")
    assert (mail_from, rcpts) == ("<>", ["alice@example.com"])
    assert "5.7.902 Sensitive information may not leave by mail" in ndr.as_string()
    assert got(site.internet, "Expense claim") == []

    roster = site.recorded("Team roster")
    assert roster.summary.action.value == "reject"
    (found,) = [m for m in roster.verdict["dlp_matches"] if m["type"] == "employee_id"]
    assert found["count"] == 2 and "EMP-000101" not in str(roster.verdict)


def test_audit_rule_records_what_it_would_have_done(site: Site) -> None:
    site.use(
        rule(
            "Trial: block zip",
            {"attachment_extension": ["zip"]},
            {"reject": {"status": "5.7.1", "text": "no zips"}, "incident_report_to": ["secops@example.com"]},
            mode="audit",
        )
    )
    site.inbound(message("Photos", attachments=[("photos.zip", "application/zip", b"PK\x05\x06" + b"\0" * 18)]))
    arrived(site.org, "Photos")  # delivered as if the rule were not there
    detail = site.recorded("Photos")
    assert detail.summary.action.value != "reject" and detail.summary.applied is True
    assert detail.verdict["rule_hits"] == ["Trial: block zip (audit)"]
    (record,) = [d for d in events(detail, EventType.RECORD) if "Trial: block zip" in d]
    assert "(audit: would have)" in record
    assert events(detail, EventType.DSN) == [] and events(detail, EventType.NOTIFY) == []
    assert got(site.org, "Trial: block zip") == []  # no incident report either


def test_monitor_mode_journal_copy_records_would_have_only(site: Site) -> None:
    site.use(
        rule(
            "Quarantine passwords",
            {"subject_or_body_contains": ["password"]},
            {"quarantine": True, "prepend_subject": "[PW] ", "incident_report_to": ["secops@example.com"]},
        )
    )
    site.journal(message("Your password reset", sender="partner@example.org", to="alice@example.com"))
    detail = site.recorded("Your password reset", settled=False)
    assert detail.summary.applied is False and detail.summary.mode.value == "monitor"
    assert detail.summary.action.value == "quarantine"  # what would have happened
    assert detail.verdict["rule_hits"] == ["Quarantine passwords"]
    assert all(r.status is RecipientStatus.RECORDED for r in detail.recipients)
    records = events(detail, EventType.RECORD)
    assert any(r.startswith("would have: quarantine") for r in records)
    assert any(r.startswith("transport rule Quarantine passwords (enforce): subject_or_body_contains") for r in records)
    assert events(detail, EventType.RULE) == [] and events(detail, EventType.NOTIFY) == []
    assert not list((site.mw.root / "var" / "blobs").rglob(f"quarantine-{detail.summary.id}*"))
    assert got(site.org, "password reset") == []


def test_every_incident_report_target_gets_its_own_report(site: Site) -> None:
    targets = [f"secops{n}@example.com" for n in range(1, 5)]
    site.use(rule("Report zips", {"attachment_extension": ["zip"]}, {"incident_report_to": targets}))
    site.inbound(message("Zip for four", attachments=[("a.zip", "application/zip", b"PK\x05\x06" + b"\0" * 18)]))
    detail = site.recorded("Zip for four")
    assert events(detail, EventType.NOTIFY) == ["incident report to " + ", ".join(targets)]

    def reports() -> list[str]:
        found = sorted(r for _, rcpts, _ in got(site.org, "Incident report: Report zips: Zip for four") for r in rcpts)
        assert found == targets
        return found

    eventually(reports, timeout=30)
