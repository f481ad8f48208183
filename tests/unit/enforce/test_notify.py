"""Malware notifications and incident reports: any language in templates, subjects and file names, one-line
subjects whatever a template or a decoded subject holds, and no sensitive value from the message."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default

from mailwarden.enforce.notify import incident_report, malware_notification, release_request_notice, restriction_notice
from mailwarden.model import (
    Action,
    Category,
    Direction,
    Disposition,
    Finding,
    Message,
    StageOutcome,
    StageResult,
    Verdict,
)
from mailwarden.model.policy import Policy
from tests.factories import build_message

RECEIVED = datetime(2025, 10, 14, 9, 15, tzinfo=UTC)
CARD = "4111 1111 1111 1111"


def parsed(raw: bytes) -> EmailMessage:
    assert raw.isascii()  # whatever the language: RFC 2047 subject, encoded body
    return email.message_from_bytes(raw, policy=default)  # type: ignore[return-value]


def malware_verdict(*detections: str) -> Verdict:
    return Verdict(Direction.INBOUND, Category.MALWARE, Disposition(Action.QUARANTINE), malware=detections)


def notify(subject: str, policy: Policy, *detections: str) -> EmailMessage:
    raw = malware_notification(
        to="secops@example.com",
        hostname="mw.example.com",
        message=Message(build_message(subject=subject)),
        recipients=("bob@example.com",),
        verdict=malware_verdict(*detections),
        message_id="01K7TESTID",
        received=RECEIVED,
        policy=policy,
    )
    return parsed(raw)


def test_a_japanese_template_subject_and_file_name_arrive_readable() -> None:
    policy = Policy.model_validate(
        {
            "malware": {
                "notification_subject": "マルウェア検出: {subject}",
                "notification_text": "件名: {subject}\n{malware}\n",
            }
        }
    )
    note = notify("請求書のご送付", policy, "YARA:EICAR in 請求書.exe")
    assert note["Subject"] == "マルウェア検出: 請求書のご送付"
    assert note.get_content().splitlines() == ["件名: 請求書のご送付", "YARA:EICAR in 請求書.exe"]


def test_a_line_break_in_the_subject_template_does_not_stop_the_notification() -> None:
    policy = Policy.model_validate({"malware": {"notification_subject": "Malware\r\nfound: {subject}\t!"}})
    assert notify("Invoice", policy)["Subject"] == "Malware found: Invoice !"


def test_card_numbers_in_the_subject_and_file_names_are_masked_in_the_notification() -> None:
    note = notify(f"Card {CARD}", Policy(), f"YARA:EICAR in card-{CARD.replace(' ', '')}.exe")
    text = str(note["Subject"]) + note.get_content()
    assert "4111 **** **** 1111" in text
    assert CARD not in text and CARD.replace(" ", "") not in text


def test_the_incident_report_never_carries_a_matched_value() -> None:
    finding = Finding("rules", "RULE_CARDS", 0.0, f"Cards (enforce): attachment 'cc-{CARD}.txt' has extension '.txt'")
    verdict = Verdict(
        Direction.INBOUND,
        Category.RULE,
        Disposition(Action.QUARANTINE),
        stages=(StageResult("rules", StageOutcome.DETECTED, (finding,)),),
        dlp_matches=({"type": "credit_card", "count": 1, "confidence": "medium", "samples": ["4111 **** **** 1111"]},),
    )
    raw = incident_report(
        to="secops@example.com",
        hostname="mw.example.com",
        message=Message(build_message(subject=f"カード番号 {CARD}")),
        sender="p@example.org",
        recipients=("bob@example.com",),
        verdict=verdict,
        rules=("Cards",),
        message_id="01K7TESTID",
        received=RECEIVED,
    )
    report = parsed(raw)
    assert report["Subject"] == "Incident report: Cards: カード番号 4111 **** **** 1111"
    body = report.get_content()
    assert "Subject:    カード番号 4111 **** **** 1111" in body
    assert "attachment 'cc-4111 **** **** 1111.txt'" in body
    assert "credit_card: 1 (medium confidence)" in body
    assert CARD.replace(" ", "") not in body and CARD not in body


def test_the_administrators_notices_speak_the_organisations_language() -> None:
    finding = Finding("rules", "RULE_CARDS", 0.0, "Cards (enforce): body matches a card number")
    verdict = Verdict(
        Direction.INBOUND,
        Category.RULE,
        Disposition(Action.QUARANTINE),
        stages=(StageResult("rules", StageOutcome.DETECTED, (finding,)),),
        dlp_matches=({"type": "credit_card", "count": 2, "confidence": "high", "samples": []},),
    )
    report = parsed(
        incident_report(
            to="secops@example.com",
            hostname="mw.example.com",
            message=Message(build_message(subject="")),
            sender="p@example.org",
            recipients=("bob@example.com",),
            verdict=verdict,
            rules=("Cards",),
            message_id="01K7TESTID",
            received=RECEIVED,
            language="ja",
        )
    )
    assert report["Subject"] == "インシデント レポート: Cards: (件名なし)"
    body = report.get_content()
    assert "組織のトランスポート ルールに一致したメッセージがあります。" in body
    assert "アクション: 検疫" in body and "クレジットカード番号: 2 件 (信頼度: high)" in body
    assert "Cards (enforce): body matches a card number" in body  # the rule's own reason, as written

    restricted = parsed(
        restriction_notice(
            "secops@example.com",
            "mw.example.com",
            sender="sales@example.com",
            organisation="acme",
            why="1000 messages in a day",
            until=None,
            at=RECEIVED,
            would_have=False,
            language="ja",
        )
    )
    assert restricted["Subject"] == "送信を制限された送信者: sales@example.com"
    assert "管理者が送信者を解除するまで制限されます。" in restricted.get_content()

    asked = parsed(
        release_request_notice(
            "secops@example.com",
            "mw.example.com",
            [("Q1", "bob@example.com", "p@example.org", "Invoice")],
            "https://mw.example.com/",
            RECEIVED,
            language="ja",
        )
    )
    assert asked["Subject"] == "リリースの要求: 検疫中のメッセージ 1 件"
    assert "承認または拒否: https://mw.example.com/quarantine/Q1" in asked.get_content()
