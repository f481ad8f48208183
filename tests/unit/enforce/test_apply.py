from __future__ import annotations

import email
from email.policy import default

import pytest

from mailwarden.enforce.apply import ALERT_FILENAME, plan_delivery, replace_attachments
from mailwarden.model import Action, Category, Direction, Disposition, Verdict
from mailwarden.model.replies import MESSAGE_DELETED
from mailwarden.model.trace import EventType, RecipientStatus
from tests.factories import build_message

RCPTS = ("bob@example.com", "carol@example.com")


def verdict(action: Action, category: Category = Category.SPAM, **kw: object) -> Verdict:
    return Verdict(Direction.INBOUND, category, Disposition(action, reason=category.value, **kw), scl=6)  # type: ignore[arg-type]


def parsed(raw: bytes | None) -> email.message.EmailMessage:
    assert raw is not None
    return email.message_from_bytes(raw, policy=default)  # type: ignore[return-value]


def test_monitor_mode_relays_the_message_unchanged() -> None:
    raw = build_message()
    plan = plan_delivery(raw, verdict(Action.QUARANTINE), RCPTS, applied=False)
    assert plan.raw == raw and plan.deliver_to == RCPTS and not plan.quarantine


def test_junk_stamps_flags_that_sieve_rules_act_on() -> None:
    plan = plan_delivery(build_message(), verdict(Action.JUNK), RCPTS, applied=True)
    msg = parsed(plan.raw)
    assert msg["X-Spam-Flag"] == "YES"
    assert msg["X-Mailwarden-Antispam"].startswith("DIR:INB;SFV:SPM;SCL:6;")
    assert plan.event is EventType.JUNK and plan.deliver_to == RCPTS


@pytest.mark.parametrize(
    ("action", "kw"),
    [
        (Action.DELIVER, {}),
        (Action.ADD_HEADER, {"header": ("X-This-Is-Spam", "yes")}),
        (Action.PREPEND_SUBJECT, {"subject_prefix": "[SPAM] "}),
        (Action.REDIRECT, {"redirect_to": ("review@example.com",)}),
        (Action.REPLACE_ATTACHMENTS, {"replace_attachments": ("x.exe",)}),
    ],
)
def test_only_the_junk_action_carries_the_junk_signal(action: Action, kw: dict[str, object]) -> None:
    # EOP delivers tagged, prefixed and redirected spam to the Inbox: a Sieve or procmail rule keyed on
    # X-Spam-Flag / X-Spam-Status must not file it into Junk; the antispam report still says what it is
    msg = parsed(plan_delivery(build_message(), verdict(action, **kw), RCPTS, applied=True).raw)
    assert msg["X-Spam-Flag"] == "NO"
    assert msg["X-Spam-Status"].startswith("No, score=")
    assert msg["X-Mailwarden-Antispam"].startswith("DIR:INB;SFV:SPM;SCL:6;BCL:0;CAT:SPM;")
    junk = parsed(plan_delivery(build_message(), verdict(Action.JUNK), RCPTS, applied=True).raw)
    assert (junk["X-Spam-Flag"], junk["X-Spam-Status"][:4]) == ("YES", "Yes,")


def test_forged_verdict_headers_from_outside_are_replaced() -> None:
    raw = build_message(headers={"X-Spam-Flag": "NO", "X-Mailwarden-Antispam": "SCL:-1"})
    msg = parsed(plan_delivery(raw, verdict(Action.JUNK), RCPTS, applied=True).raw)
    assert msg.get_all("X-Spam-Flag") == ["YES"]
    assert msg.get_all("X-Mailwarden-Antispam")[0].startswith("DIR:INB")


def test_add_header_and_prepend_subject() -> None:
    added = plan_delivery(
        build_message(), verdict(Action.ADD_HEADER, header=("X-This-Is-Spam", "yes")), RCPTS, applied=True
    )
    assert parsed(added.raw)["X-This-Is-Spam"] == "yes"
    prefixed = plan_delivery(
        build_message(), verdict(Action.PREPEND_SUBJECT, subject_prefix="[SPAM] "), RCPTS, applied=True
    )
    assert parsed(prefixed.raw)["Subject"] == "[SPAM] Quarterly numbers"


def test_redirect_quarantine_reject_drop() -> None:
    redirect = plan_delivery(
        build_message(), verdict(Action.REDIRECT, redirect_to=("spam@example.com",)), RCPTS, applied=True
    )
    assert redirect.deliver_to == ("spam@example.com",) and redirect.status is RecipientStatus.REDIRECTED
    quarantine = plan_delivery(build_message(), verdict(Action.QUARANTINE), RCPTS, applied=True)
    assert quarantine.quarantine and quarantine.raw is None and quarantine.deliver_to == ()
    reject = plan_delivery(build_message(), verdict(Action.REJECT), RCPTS, applied=True)
    assert reject.bounce and reject.smtp_reply and reject.smtp_reply.startswith("550 5.7.1")
    drop = plan_delivery(build_message(), verdict(Action.DROP), RCPTS, applied=True)
    assert (drop.event, drop.smtp_reply, drop.bounce) == (EventType.DROP, MESSAGE_DELETED, False)


def test_infected_attachment_is_replaced_by_the_alert_text() -> None:
    raw = build_message(
        attachments=[
            ("invoice.exe", "application/octet-stream", b"MZ" + b"\0" * 100),
            ("notes.txt", "text/plain", b"ok"),
        ]
    )
    new, names = replace_attachments(raw, ["invoice.exe"], "Malware was removed.")
    assert names == ["invoice.exe"]
    msg = parsed(new)
    files = {p.get_filename(): p.get_content() for p in msg.iter_attachments()}
    assert files[ALERT_FILENAME].strip() == "Malware was removed."
    assert "invoice.exe" not in files and files["notes.txt"] == "ok"
    assert msg["Subject"] == "Quarterly numbers"
    assert replace_attachments(raw, ["other.bin"], "x") == (raw, [])


@pytest.mark.parametrize(
    "alert", ["添付ファイルを削除しました", "Entfernt: Schadsoftware gefunden.\nBitte IT fragen.", "x" * 1500]
)
def test_an_alert_text_in_any_language_or_length_is_sent_as_utf8_that_any_relay_carries(alert: str) -> None:
    raw = build_message(attachments=[("請求書.exe", "application/octet-stream", b"MZ" + b"\0" * 100)])
    new, names = replace_attachments(raw, ["請求書.exe"], alert)
    assert names == ["請求書.exe"]
    assert new.isascii() and max(len(line) for line in new.split(b"\r\n")) <= 998
    (part,) = parsed(new).iter_attachments()
    assert part.get_filename() == ALERT_FILENAME
    text = part.get_payload(decode=True).decode(part.get_content_charset())
    assert text.splitlines() == alert.splitlines()


def test_authentication_results_are_stamped_and_forged_copies_removed() -> None:
    raw = build_message(
        headers={
            "Authentication-Results": "gw.example.net; spf=pass smtp.mailfrom=evil.example",
        }
    ).replace(b"From:", b"Authentication-Results: mx.partner.example; dkim=pass header.d=partner.example\nFrom:", 1)
    v = Verdict(
        Direction.INBOUND,
        Category.CLEAN,
        Disposition(Action.DELIVER),
        auth={"authentication_results": "gw.example.net; spf=fail smtp.mailfrom=evil.example"},
    )
    msg = parsed(plan_delivery(raw, v, RCPTS, applied=True).raw)
    results = msg.get_all("Authentication-Results")
    assert results[0] == "gw.example.net; spf=fail smtp.mailfrom=evil.example"
    assert "gw.example.net; spf=pass smtp.mailfrom=evil.example" not in results  # forged: same authserv-id
    assert "mx.partner.example; dkim=pass header.d=partner.example" in results  # someone else's: kept


def test_the_filter_value_names_sender_lists_and_bypass() -> None:
    from mailwarden.enforce.headers import filter_value
    from mailwarden.model import Finding, StageOutcome, StageResult

    def with_codes(*codes: str, scl: int) -> Verdict:
        stage = StageResult("spam", StageOutcome.DETECTED, tuple(Finding("spam", c) for c in codes))
        category = Category.HIGH_CONFIDENCE_SPAM if scl >= 7 else Category.CLEAN
        return Verdict(Direction.INBOUND, category, Disposition(Action.DELIVER), scl=scl, stages=(stage,))

    assert filter_value(with_codes("SENDER_BLOCKED", scl=9)) == "SKB"
    assert filter_value(with_codes("SENDER_ALLOWED", scl=-1)) == "SKA"
    assert filter_value(with_codes("IP_ALLOW", scl=-1)) == "SKN"
    assert filter_value(with_codes("BAYES_SPAM_HIGH", scl=9)) == "SPM"
    assert filter_value(with_codes(scl=0)) == "NSPM"
