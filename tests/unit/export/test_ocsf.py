"""Outbox rows rendered as OCSF 1.3.0 events, each validated against the OCSF JSON schema of its class and
profiles (the ocsf-json-schema package ships the schema; nothing is downloaded). The message rows come
from real history records: messages scanned by the real processor and stages (tests/unit/export/scanned.py)."""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

from mailwarden.export.event import ExportEvent
from mailwarden.export.ocsf import render
from mailwarden.model.trace import EventRecord, EventType, MessageRecord
from mailwarden.service.processor import Processor
from tests.factories import build_message
from tests.unit.export.scanned import event_payload, message_payload, scan, scanner
from tests.unit.pipeline.malware.builders import EICAR

__all__ = ["scanner"]  # the module fixture, used by name

AT = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
CARD = "4111 1111 1111 1111"
PHISH_HTML = (
    "<html><body><p>Dear customer, your PayPal account has been suspended. Verify your account password "
    "immediately or it will be closed within 24 hours.</p>"
    '<a href="http://192.0.2.5/paypal/login">https://www.paypal.com/signin</a>'
    '<form action="http://paypal-secure.top/x" method="post"><input type="password" name="pw"></form>'
    "</body></html>"
)


@functools.cache
def _schemas() -> OcsfJsonSchemaEmbedded:
    return OcsfJsonSchemaEmbedded(get_ocsf_schema("1.3.0"))


@functools.cache
def _validator(class_uid: int, profiles: tuple[str, ...]) -> Draft202012Validator:
    schemas = _schemas()
    return Draft202012Validator(schemas.get_class_schema(schemas.lookup_class_name_from_uid(class_uid), list(profiles)))


def valid(event: ExportEvent) -> dict[str, Any]:
    """The event's body after checking it against its class's schema with the profiles it declares."""
    body = event.body
    profiles = tuple(body["metadata"].get("profiles", ()))
    errors = sorted(_validator(event.class_uid, profiles).iter_errors(body), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message[:300]}" for e in errors)
    assert body["class_uid"] == event.class_uid and body["severity_id"] == event.severity_id
    assert body["type_uid"] == body["class_uid"] * 100 + body["activity_id"]
    assert body["metadata"]["uid"] == event.uid and body["metadata"]["version"] == "1.3.0"
    json.dumps(body)  # JSON-ready
    return body


def of_class(events: list[ExportEvent], class_uid: int) -> list[dict[str, Any]]:
    return [valid(e) for e in events if e.class_uid == class_uid]


def rendered(record: MessageRecord, events: list[EventRecord], seq: int = 7) -> list[ExportEvent]:
    return render(seq, "01KROW0000000000000000000A", "message", AT, message_payload(record, events))


@pytest.fixture(scope="module")
def eicar(scanner: Processor) -> list[ExportEvent]:
    raw = build_message(
        to="Bob <bob@example.com>",
        headers={"Cc": "carol@example.com"},
        attachments=[("eicar.com", "application/octet-stream", EICAR), ("notes.pdf", "application/pdf", b"%PDF-1.4")],
    )
    return rendered(*scan(scanner, raw, to="bob@example.com"))


@pytest.fixture(scope="module")
def phish(scanner: Processor) -> list[ExportEvent]:
    raw = build_message(
        sender="PayPal Service <service@paypal-account-verify.top>",
        subject="PayPal: your account is suspended",
        to="bob@watch.example.com",
        text=None,
        html=PHISH_HTML,
    )
    return rendered(*scan(scanner, raw, to="bob@watch.example.com"))


@pytest.fixture(scope="module")
def cards(scanner: Processor) -> list[ExportEvent]:
    raw = build_message(
        subject=f"card {CARD}",
        text=f"the card: {CARD}\npay at https://pay.example.net/?card=4111111111111111\n",
        attachments=[("card 4111111111111111.txt", "text/plain", b"hello")],
    )
    return rendered(*scan(scanner, raw, to="bob@example.com"))


def test_email_activity_of_an_enforced_malware_message(eicar: list[ExportEvent]) -> None:
    (activity,) = of_class(eicar, 4009)
    assert eicar[0].body is activity  # the message's own event comes first
    email = activity["email"]
    assert (email["from"], email["to"], email["cc"]) == (
        "alice@example.org",
        ["bob@example.com"],
        ["carol@example.com"],
    )
    assert (email["smtp_from"], email["smtp_to"]) == ("partner@example.org", ["bob@example.com"])
    assert email["message_uid"] == "<test-1@example.org>" and email["uid"] == activity["metadata"]["correlation_uid"]
    assert activity["src_endpoint"] == {"ip": "192.0.2.1"}
    assert (activity["activity_name"], activity["direction_id"]) == ("Scan", 1)
    assert (activity["disposition"], activity["action"]) == ("Quarantined", "Denied")
    assert activity["severity"] == "High"
    unmapped = activity["unmapped"]
    assert (unmapped["category"], unmapped["mode"], unmapped["applied"]) == ("malware", "enforce", True)
    assert {"scl", "bcl", "phish"} <= unmapped.keys() and "would_have" not in unmapped
    assert unmapped["timeline"][:2] == ["receive", "scan"] and "quarantine" in unmapped["timeline"]
    assert activity["metadata"]["product"]["name"] == "mailwarden"


def test_monitor_mode_shows_both_what_happened_and_what_would_have(phish: list[ExportEvent]) -> None:
    (activity,) = of_class(phish, 4009)
    # the mail service delivered it; mailwarden detected high-confidence phish and would have quarantined it
    assert (activity["disposition"], activity["action"]) == ("Detected", "Allowed")
    would = activity["unmapped"]["would_have"]
    assert (would["action"], would["disposition"], would["action_id"]) == ("quarantine", "Quarantined", 2)
    assert activity["unmapped"]["phish"] == "high_confidence" and activity["unmapped"]["mode"] == "monitor"
    assert "would have quarantine" in activity["message"]


def test_a_journal_copy_carries_its_artifacts_and_renders_as_monitor_mode(scanner: Processor) -> None:
    raw = build_message(
        to="bob@watch.example.com",
        text="see https://files.example.net/q3",
        attachments=[("q3.xlsx", "application/octet-stream", b"PK\x03\x04xl/workbook.xml")],
    )
    record, events = scan(scanner, raw, to="bob@watch.example.com", listener="journal")
    assert (record.source, record.artifacts["urls"]) == ("journal", ["https://files.example.net/q3"])
    out = rendered(record, events)
    assert [e.class_uid for e in out] == [4009, 4011, 4012]
    (activity,), (file,) = of_class(out, 4009), of_class(out, 4011)
    assert (activity["unmapped"]["source"], activity["unmapped"]["mode"]) == ("journal", "monitor")
    assert file["file"]["mime_type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    valid(out[2])


def test_email_file_activity_per_attachment(eicar: list[ExportEvent]) -> None:
    files = {f["file"]["name"]: f for f in of_class(eicar, 4011)}
    assert set(files) == {"eicar.com", "notes.pdf"}
    bad, good = files["eicar.com"], files["notes.pdf"]
    assert bad["file"]["mime_type"] == "text/plain"  # the real type: EICAR is text, whatever the name says
    assert bad["file"]["hashes"][0]["algorithm"] == "SHA-256" and len(bad["file"]["hashes"][0]["value"]) == 64
    assert bad["unmapped"]["verdict"] == "malware" and bad["severity_id"] == 4
    assert any("MW_EICAR" in m["name"] for m in bad["malware"])
    assert good["unmapped"]["verdict"] == "clean" and good["file"]["mime_type"] == "application/pdf"
    assert {f["email_uid"] for f in files.values()} == {eicar[0].body["email"]["uid"]}


def test_email_url_activity_per_link(phish: list[ExportEvent]) -> None:
    urls = of_class(phish, 4012)
    by_string = {u["url"]["url_string"]: u["url"] for u in urls}
    assert "http://192.0.2.5/paypal/login" in by_string and "https://www.paypal.com/signin" in by_string
    assert by_string["https://www.paypal.com/signin"]["hostname"] == "www.paypal.com"
    assert all(u["unmapped"]["would_have"]["action"] == "quarantine" for u in urls)


def test_detection_findings_for_malware_phish_and_dlp(
    eicar: list[ExportEvent], phish: list[ExportEvent], cards: list[ExportEvent]
) -> None:
    malware = of_class(eicar, 2004)
    assert {m["finding_info"]["analytic"]["name"] for m in malware} >= {"YARA:MW_EICAR_Test_File"}
    yara = next(m for m in malware if m["finding_info"]["analytic"]["name"].startswith("YARA"))
    assert yara["evidences"][0]["file"]["name"] == "eicar.com" and yara["confidence"] == "High"
    phished = of_class(phish, 2004)
    assert {"PHISH_HTML_PASSWORD_FORM", "PHISH_BRAND_DISPLAY_NAME"} <= {
        p["finding_info"]["analytic"]["name"] for p in phished
    }
    assert all(p["severity"] == "High" and p["disposition"] == "Detected" for p in phished)
    (dlp,) = of_class(cards, 2004)
    assert (dlp["finding_info"]["title"], dlp["confidence"]) == ("DLP: credit_card", "Medium")
    assert dlp["finding_info"]["related_analytics"][0]["name"] == "Cards"
    assert dlp["unmapped"]["samples"] == ["4111 **** **** 1111"]
    assert len({f["finding_info"]["uid"] for f in malware + phished + [dlp]}) == len(malware + phished) + 1


def test_no_full_card_number_leaves_in_any_event(cards: list[ExportEvent]) -> None:
    text = json.dumps([valid(e) for e in cards])
    assert "4111111111111111" not in text and CARD not in text
    assert "4111 **** **** 1111" in text  # the subject, the link, the file name and the sample, redacted
    assert {e.class_uid for e in cards} == {4009, 4011, 4012, 2004}


def test_timeline_events_after_the_record(eicar: list[ExportEvent], scanner: Processor) -> None:
    record, _ = scan(scanner, build_message(), to="bob@example.com")
    job = "[imap; clawback by ann, job 01KJOB00000000000000000000 — phish campaign]"
    cases = {
        EventType.DELIVER: (4009, "Send", "Success"),
        EventType.DEFER: (4009, "Send", "Failure"),
        EventType.FAIL: (4009, "Send", "Failure"),
        EventType.CLAWBACK: (7001, "Isolate", "Success"),
        EventType.CLAWBACK_FAILED: (7001, "Isolate", "Failure"),
        EventType.RESTORE: (7001, "Restore", "Success"),
        EventType.RELEASE: (7001, "Restore", "Success"),
        EventType.EXPIRE: (7001, "Evict", "Success"),
        EventType.RESCAN: (2004, "Create", "New"),
        EventType.JOURNAL_UNWRAP: (4009, "Receive", None),
        EventType.NOTIFY: (4009, "Notify", None),
    }
    for n, (kind, (class_uid, activity, status)) in enumerate(cases.items()):
        detail = f"moved to Junk {job}" if kind in (EventType.CLAWBACK, EventType.CLAWBACK_FAILED) else "done"
        event = EventRecord(kind, detail, recipient="bob@example.com", smtp_reply="250 2.0.0 queued as 1", at=AT)
        (out,) = render(100 + n, f"01KEVENT{n:018d}", "event", AT, event_payload(record, event))
        body = valid(out)
        assert (out.class_uid, body["activity_name"]) == (class_uid, activity), kind
        assert status is None or body["status"] == status, kind
        assert body["metadata"]["event_code"] == kind.value and body["metadata"]["correlation_uid"] == record.id
    deleted = EventRecord(
        EventType.CLAWBACK, f"deleted: deleted for good (1 copies) {job}", recipient="bob@example.com"
    )
    (out,) = render(200, "01KEVENTDEL", "event", AT, event_payload(record, deleted))
    assert (valid(out)["activity_name"], out.body["command_uid"]) == ("Evict", "01KJOB00000000000000000000")


def test_an_admin_change_is_entity_management() -> None:
    before = {"name": "acme", "policy": {"spam_action": "junk"}}
    after = {"name": "acme", "policy": {"spam_action": "quarantine"}}
    payload = {"id": 41, "at": AT.isoformat(), "actor": "ann", "action": "policy.update", "object": "organisation:acme"}
    (out,) = render(9, "01KAUDIT", "audit", AT, payload | {"before": before, "after": after})
    body = valid(out)
    assert (out.class_uid, body["activity_name"], body["actor"]["user"]["name"]) == (3004, "Update", "ann")
    assert (body["entity"]["data"], body["entity_result"]["data"]) == (before, after)
    assert body["entity"]["type"] == "organisation" and body["metadata"]["event_code"] == "policy.update"
    (other,) = render(10, "01KAUDIT2", "audit", AT, payload | {"action": "quarantine.release", "before": None})
    assert (valid(other)["activity_id"], other.body["activity_name"]) == (99, "quarantine.release")


def test_uids_are_unique_and_the_same_on_every_render(scanner: Processor) -> None:
    raw = build_message(
        text="see https://a.example.net/1 and https://b.example.net/2", attachments=[("a.txt", "text/plain", b"x")]
    )
    record, events = scan(scanner, raw, to="bob@example.com")
    first, second = rendered(record, events), rendered(record, events)
    assert (
        [e.uid for e in first]
        == [e.uid for e in second]
        == [f"01KROW0000000000000000000A.{n}" for n in range(len(first))]
    )
    assert [e.body for e in first] == [e.body for e in second]
    assert [e.class_uid for e in first] == [4009, 4011, 4012, 4012]
    assert {e.seq for e in first} == {7}


def test_values_ocsf_types_refuse_move_to_unmapped_and_the_event_stays_valid(scanner: Processor) -> None:
    raw = build_message(
        sender="Ops <root@localhost>",
        text="http://[::1/broken http://host.example.net:99999/x https://exämple.net/p\n",
    ).replace(b"To: bob@example.com", "To: ünïcode@example.com, bob@example.com".encode())
    record, events = scan(scanner, raw, to="bob@example.com", sender="")
    payload = message_payload(record, events)
    payload["message"]["client_ip"] = "not-an-ip"
    out = render(1, "01KODD", "message", AT, payload)
    activity = valid(out[0])
    assert activity["email"]["from"] == "unknown@unknown.invalid"
    assert "smtp_from" not in activity["email"] and "src_endpoint" not in activity
    refused = activity["unmapped"]["invalid_addresses"]
    assert refused["from"] == ["root@localhost"] and refused["to"][0].endswith("code@example.com")
    assert activity["email"]["to"] == ["bob@example.com"]
    for event in out[1:]:
        valid(event)


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown kind 'nonsense'"):
        render(1, "01KX", "nonsense", AT, {})


def test_what_the_outbox_really_holds_renders_valid(scanner: Processor) -> None:
    """Not a payload shaped by hand: the rows history writes when it records a message and adds an event."""
    from mailwarden.store import History
    from mailwarden.store.outbox import Outbox

    raw = build_message(subject=f"card {CARD}", attachments=[("eicar.com", "application/octet-stream", EICAR)])
    record, events = scan(scanner, raw, to="bob@example.com")
    db = scanner.rt.db
    History(db).record(record, events)
    History(db).add_event(record.id, EventRecord(EventType.DELIVER, "250 2.0.0 queued", recipient="bob@example.com"))
    rows = [r for r in Outbox(db).after(0, limit=10_000) if r.payload.get("message", {}).get("id") == record.id]
    assert [r.kind for r in rows] == ["message", "event"]
    out = [e for r in rows for e in render(r.seq, r.uid, r.kind, r.at, r.payload)]
    assert {e.class_uid for e in out} >= {4009, 4011, 2004}
    for e in out:
        valid(e)
    assert "4111111111111111" not in json.dumps([e.body for e in out])
