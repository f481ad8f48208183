from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.message import Message

import pytest

from mailwarden.deliver import RecipientFailure, build_dsn
from tests.unit.deliver.helpers import MESSAGE

WHEN = datetime(2025, 6, 2, 10, 5, tzinfo=UTC)


def _parse(raw: bytes) -> Message:
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def _structure(raw: bytes) -> tuple[Message, list[Message], bytes]:
    """Check the RFC 3464 shape; return the top, the per-message + per-recipient field groups, the headers part."""
    assert b"\n" not in raw.replace(b"\r\n", b""), "bare LF in a DSN"
    top = _parse(raw)
    assert top.get_content_type() == "multipart/report"
    assert top.get_param("report-type") == "delivery-status"
    parts = top.get_payload()
    assert isinstance(parts, list)
    assert [p.get_content_type() for p in parts] == ["text/plain", "message/delivery-status", "text/rfc822-headers"]
    groups = parts[1].get_payload()
    assert isinstance(groups, list)
    headers = parts[2].get_payload(decode=True)
    assert isinstance(headers, bytes)
    return top, groups, headers


def test_failure_report_names_each_recipient_with_status_and_diagnostic() -> None:
    failures = [
        RecipientFailure(
            "bob@example.com", "5.1.1", "550 5.1.1 <bob@example.com>: user unknown", "mx.example.com", WHEN
        ),
        RecipientFailure("carol@example.com", "4.4.7", "451 4.7.1 try later", "mx.example.com", WHEN),
    ]
    raw = build_dsn(MESSAGE, "alice@example.org", failures, "gw.mailwarden.test", arrival_date=WHEN, now=WHEN)
    top, groups, headers = _structure(raw)
    assert top["To"] == "<alice@example.org>"
    assert top["From"] == "Mail Delivery System <MAILER-DAEMON@gw.mailwarden.test>"
    assert top["Auto-Submitted"] == "auto-replied"
    assert top["In-Reply-To"] == "<q1@example.org>"
    per_message, bob, carol = groups
    assert per_message["Reporting-MTA"] == "dns; gw.mailwarden.test"
    assert per_message["Arrival-Date"] == "Mon, 02 Jun 2025 10:05:00 +0000"
    assert bob["Final-Recipient"] == "rfc822; bob@example.com"
    assert bob["Action"] == "failed"
    assert bob["Status"] == "5.1.1"
    assert bob["Remote-MTA"] == "dns; mx.example.com"
    assert bob["Diagnostic-Code"] == "smtp; 550 5.1.1 <bob@example.com>: user unknown"
    assert carol["Status"] == "4.4.7"
    assert headers.startswith(b"From: Alice <alice@example.org>\r\n")
    assert b"Subject: quarterly figures" in headers
    assert b"figures attached" not in raw, "the body of the original is not returned"
    human = top.get_payload()[0].get_payload()
    assert "bob@example.com" in human
    assert "user unknown" in human


def test_delay_warning_says_delayed() -> None:
    raw = build_dsn(
        MESSAGE, "alice@example.org", [RecipientFailure("bob@example.com", "4.4.1")], "gw.test", delayed=True
    )
    top, groups, _ = _structure(raw)
    assert groups[1]["Action"] == "delayed"
    assert groups[1]["Status"] == "4.4.1"
    assert "Delayed" in top["Subject"]


def test_no_dsn_to_the_null_sender() -> None:
    with pytest.raises(ValueError, match="null sender"):
        build_dsn(MESSAGE, "", [RecipientFailure("bob@example.com", "5.1.1")], "gw.test")


def test_replies_cannot_inject_fields_and_bad_status_is_replaced() -> None:
    failure = RecipientFailure(
        "bob@example.com",
        "9.9.9",
        "550 no\r\nFinal-Recipient: rfc822; eve@evil.test",
        "mx.example.com",
        reason="local",
    )
    _, groups, _ = _structure(build_dsn(MESSAGE, "alice@example.org", [failure], "gw.test"))
    assert len(groups) == 2
    assert groups[1]["Status"] == "5.0.0"
    assert groups[1]["Final-Recipient"] == "rfc822; bob@example.com"


def test_original_with_lf_line_ends_and_8bit_header_is_copied_with_crlf() -> None:
    original = "Subject: Grüße\nFrom: a@example.org\n\nbody\n".encode()
    _, _, headers = _structure(
        build_dsn(original, "a@example.org", [RecipientFailure("b@example.com", "5.0.0")], "gw.test")
    )
    assert headers == "Subject: Grüße\r\nFrom: a@example.org\r\n".encode()


def test_local_reason_is_an_x_diagnostic() -> None:
    failure = RecipientFailure(
        "bob@example.com", "4.4.1", "connect to 192.0.2.1:25 failed: refused", diagnostic_type="X-mailwarden"
    )
    _, groups, _ = _structure(build_dsn(MESSAGE, "alice@example.org", [failure], "gw.test"))
    assert groups[1]["Diagnostic-Code"] == "X-mailwarden; connect to 192.0.2.1:25 failed: refused"
    assert groups[1]["Remote-MTA"] is None
