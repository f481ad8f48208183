"""History records keep message text (subject, file names in findings, reasons and events) with card
numbers, national ids, keys and tokens redacted, as the trace's DLP samples are."""

from __future__ import annotations

import hashlib
import json

from mailwarden.enforce.record import message_record, monitor_record
from mailwarden.model import (
    Action,
    Category,
    Direction,
    Disposition,
    Envelope,
    Finding,
    Message,
    Mode,
    StageOutcome,
    StageResult,
    Verdict,
)
from mailwarden.model.trace import EventRecord, EventType, RecipientRecord
from tests.factories import build_message

CARD = "4111 1111 1111 1111"
FILE = "card-4111111111111111.exe"


def infected() -> Verdict:
    detection = f"YARA:EICAR in {FILE}"
    stage = StageResult("malware", StageOutcome.DETECTED, (Finding("malware", "MALWARE_EICAR", 100.0, detection),))
    disposition = Disposition(
        Action.REPLACE_ATTACHMENTS, reason=f"malware: {detection}", replace_attachments=(FILE,), alert_text="x"
    )
    return Verdict(Direction.INBOUND, Category.MALWARE, disposition, malware=(detection,), stages=(stage,))


def assert_masked(text: str) -> None:
    assert "4111 **** **** 1111" in text
    assert CARD not in text and "4111111111111111" not in text


def test_the_history_record_keeps_the_subject_and_the_verdict_masked() -> None:
    message = Message(build_message(subject=f"Payment {CARD} failed"))
    record = message_record(
        message_id="01K7TESTID00000000000000000",
        message=message,
        envelope=Envelope("p@example.org", ("bob@example.com",)),
        verdict=infected(),
        organisation="acme",
        mode=Mode.ENFORCE,
        source="smtp",
        applied=True,
        recipients=[RecipientRecord("bob@example.com")],
    )
    assert record.subject == "Payment 4111 **** **** 1111 failed"
    assert_masked(json.dumps(record.verdict.as_dict()))
    assert record.verdict.disposition.replace_attachments == ("card-4111 **** **** 1111.exe",)


def test_monitor_records_mask_their_events_too() -> None:
    message = Message(build_message(subject=f"Payment {CARD} failed"))
    record, events = monitor_record(
        message_id="01K7TESTID00000000000000000",
        message=message,
        envelope=Envelope("p@example.org", ("bob@example.com",)),
        verdict=infected(),
        organisation="acme",
        source="journal",
        extra_events=[EventRecord(EventType.RULE, f"transport rule Files (enforce): attachment {FILE!r}")],
    )
    assert_masked(record.subject)
    assert_masked(" | ".join(e.detail for e in events))


def test_the_record_carries_the_files_links_and_header_addresses_with_card_numbers_masked() -> None:
    links = "\n".join(f"https://example.net/p/{n}" for n in range(250))
    raw = build_message(
        to="Bob <bob@example.com>, carol@example.com",
        headers={"Cc": "dave@example.com"},
        text=f"pay here https://pay.example.net/?card=4111111111111111\n{links}\n",
        attachments=[(FILE, "application/octet-stream", b"MZ\x90\x00 not really a program")],
    )
    record = message_record(
        message_id="01K7TESTID00000000000000000",
        message=Message(raw),
        envelope=Envelope("p@example.org", ("bob@example.com",)),
        verdict=infected(),
        organisation="acme",
        mode=Mode.MONITOR,
        source="smtp",
        applied=False,
        recipients=[RecipientRecord("bob@example.com")],
    )
    artifacts = record.artifacts
    ((file,),) = [artifacts["attachments"]]
    assert file["name"] == "card-4111 **** **** 1111.exe"
    assert (file["declared_type"], file["real_type"]) == ("application/octet-stream", "application/x-dosexec")
    assert file["size"] == 25 and file["sha256"] == hashlib.sha256(b"MZ\x90\x00 not really a program").hexdigest()
    assert artifacts["urls"][0] == "https://pay.example.net/?card=4111 **** **** 1111"
    assert (len(artifacts["urls"]), artifacts["urls_total"]) == (200, 251)  # capped, and says so
    assert (artifacts["to"], artifacts["cc"]) == (["bob@example.com", "carol@example.com"], ["dave@example.com"])
    assert "4111111111111111" not in json.dumps(artifacts)
