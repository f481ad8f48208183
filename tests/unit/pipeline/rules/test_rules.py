"""Transport rules through the whole pipeline: conditions, actions, precedence, audit and monitor mode."""

from __future__ import annotations

import asyncio
import email
import io
import time
import zipfile
from email.policy import default
from typing import Any, ClassVar

import pytest

from mailwarden.enforce.apply import plan_delivery
from mailwarden.enforce.record import would_have
from mailwarden.errors import PolicyError
from mailwarden.model import Action, Category, Direction, Domain, Envelope, Finding, Message, Organisation
from mailwarden.model.policy import Policy, parse_organisation_document
from mailwarden.model.trace import RecipientStatus
from mailwarden.pipeline import Pipeline, ScanContext
from mailwarden.pipeline.rules.stage import TransportRules
from tests.factories import build_message

ORG = Organisation("acme", (Domain("example.com"),))
INBOUND = Envelope("partner@example.org", ("bob@example.com",), client_ip="198.51.100.7")
OUTBOUND = Envelope("bob@example.com", ("partner@example.org",), client_ip="10.0.0.5")


class Spammy:
    """A stand-in for the spam filter: scores every message as spam (SCL 6)."""

    name: ClassVar[str] = "spam"
    spam_filter: ClassVar[bool] = True  # skipped when the spam filter is bypassed

    async def inspect(self, ctx: ScanContext) -> list[Finding]:
        return [Finding(self.name, "SPAM_TEST", 7.0)]


def policy(*rules: dict[str, Any], **extra: Any) -> Policy:
    return Policy.model_validate({"rules": list(rules), **extra})


def rule(
    name: str, conditions: dict[str, Any] | None = None, actions: dict[str, Any] | None = None, **kw: Any
) -> dict[str, Any]:
    return {"name": name, "conditions": conditions or {}, "actions": actions or {"quarantine": True}, **kw}


def scan(raw: bytes, pol: Policy, env: Envelope = INBOUND, *, spam: bool = False) -> Any:
    stages: list[Any] = [TransportRules()]
    if spam:
        stages.append(Spammy())
    pipe = Pipeline({Direction.INBOUND: stages, Direction.OUTBOUND: [TransportRules()]})
    direction = Direction.OUTBOUND if env is OUTBOUND else Direction.INBOUND  # as a submission door would say
    return asyncio.run(pipe.scan(Message(raw), env, pol, organisation=ORG, direction=direction))


def hits(raw: bytes, conditions: dict[str, Any], env: Envelope = INBOUND) -> bool:
    verdict = scan(raw, policy(rule("r", conditions)), env)
    return bool(verdict.rule_hits == ("r",))


def docx_of(text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr(
            "word/document.xml",
            '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>'
            f"<w:p><w:r><w:t>{text}</w:t></w:r></w:p></w:body></w:document>",
        )
    return buf.getvalue()


# ---- conditions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("conditions", "matches", "misses"),
    [
        ({"sender_address": ["partner@example.org"]}, {}, {"sender": "x@other.org"}),
        ({"sender_domain": ["example.org"]}, {}, {"sender": "x@other.org"}),
        ({"sender_matches": [r"^partner@"]}, {}, {"sender": "x@other.org"}),
        ({"header_exists": ["X-Project"]}, {"headers": {"X-Project": "apollo"}}, {}),
        (
            {"header_contains": {"name": "X-Project", "words": ["Apollo"]}},
            {"headers": {"X-Project": "apollo 11"}},
            {"headers": {"X-Project": "gemini"}},
        ),
        (
            {"header_matches": {"name": "X-Project", "patterns": [r"^ap+ollo\s\d+$"]}},
            {"headers": {"X-Project": "apollo 11"}},
            {"headers": {"X-Project": "apollo"}},
        ),
        ({"subject_contains": ["invoice"]}, {"subject": "Your INVOICE is ready"}, {"subject": "invoices"}),
        ({"subject_matches": [r"inv-\d{4}"]}, {"subject": "re: INV-2025"}, {"subject": "inv-12"}),
        ({"body_contains": ["wire transfer"]}, {"text": "please do a Wire  Transfer today"}, {"text": "transfer wire"}),
        ({"body_matches": [r"acct\s*#\d+"]}, {"html": "<p>acct #123</p>", "text": None}, {"text": "account"}),
        ({"subject_or_body_contains": ["urgent"]}, {"text": "this is urgent"}, {"text": "calm"}),
        (
            {"attachment_name_matches": [r"^payroll.*\.xlsx$"]},
            {"attachments": [("Payroll-2025.xlsx", "application/octet-stream", b"x")]},
            {},
        ),
        (
            {"attachment_extension": [".EXE"]},
            {"attachments": [("setup.exe", "application/octet-stream", b"x")]},
            {"attachments": [("a.txt", "text/plain", b"x")]},
        ),
        (
            {"attachment_type": ["zip"]},
            {"attachments": [("data.bin", "application/octet-stream", b"PK\x03\x04" + bytes(40))]},
            {"attachments": [("a.zip", "application/zip", b"plain")]},
        ),
        (
            {"attachment_size_over": 1000},
            {"attachments": [("big.bin", "application/octet-stream", b"x" * 2000)]},
            {"attachments": [("s.bin", "application/octet-stream", b"x")]},
        ),
        (
            {"attachment_contains": ["project apollo"]},
            {
                "attachments": [
                    (
                        "plan.docx",
                        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                        docx_of("Project Apollo budget"),
                    )
                ]
            },
            {"attachments": [("plan.docx", "application/octet-stream", docx_of("gemini"))]},
        ),
        (
            {"attachment_matches": [r"budget:\s*\d+"]},
            {"attachments": [("b.csv", "text/csv", b"item,Budget: 500\n")]},
            {"attachments": [("b.csv", "text/csv", b"none\n")]},
        ),
        ({"message_size_over": 5000}, {"text": "x" * 6000}, {}),
    ],
)
def test_each_condition_matches_and_misses(
    conditions: dict[str, Any], matches: dict[str, Any], misses: dict[str, Any]
) -> None:
    assert hits(build_message(**matches), conditions)
    # the sender conditions look at the envelope sender and the From address alike
    env = Envelope(misses.get("sender", INBOUND.mail_from), INBOUND.rcpt_to, client_ip=INBOUND.client_ip)
    assert not hits(build_message(**misses), conditions, env)


def test_recipient_conditions_and_locations() -> None:
    raw = build_message()
    assert hits(raw, {"recipient_address": ["BOB@example.com"]})
    assert hits(raw, {"recipient_domain": ["example.com"]})
    assert hits(raw, {"recipient_matches": [r"^bob@"]})
    assert hits(raw, {"sender_location": "outside", "recipient_location": "inside"})
    assert not hits(raw, {"sender_location": "inside"})
    assert hits(raw, {"sender_location": "inside", "recipient_location": "outside"}, OUTBOUND)


def test_sender_ip_in_ranges() -> None:
    raw = build_message()
    assert hits(raw, {"sender_ip_in": ["198.51.100.0/24"]})
    assert not hits(raw, {"sender_ip_in": ["203.0.113.0/24", "2001:db8::/32"]})


def test_scl_condition_sees_the_scl_an_earlier_rule_set() -> None:
    pol = policy(
        rule("mark", {"subject_contains": ["lottery"]}, {"set_scl": 6}),
        rule("junk-high", {"scl_at_least": 5}, {"add_header": [{"name": "X-High", "value": "yes"}]}, priority=1),
    )
    assert scan(build_message(subject="lottery win"), pol).rule_hits == ("mark", "junk-high")
    assert scan(build_message(subject="hello"), pol).rule_hits == ()


def test_japanese_and_full_width_text_match() -> None:
    pol = policy(rule("jp", {"subject_or_body_contains": ["社外秘", "confidential"]}))
    assert scan(build_message(subject="【社外秘】売上資料"), pol).rule_hits == ("jp",)  # no spaces in Japanese
    assert scan(build_message(subject="ＣＯＮＦＩＤＥＮＴＩＡＬ：資料"), pol).rule_hits == ("jp",)  # full-width
    assert scan(build_message(subject="hi", text="これはConfidentialです"), pol).rule_hits == ("jp",)
    assert scan(build_message(subject="nonconfidential"), pol).rule_hits == ()
    half = policy(rule("kana", {"subject_contains": ["ｶﾞｲﾌﾞ"]}))  # half-width katakana in the rule
    assert scan(build_message(subject="ガイブ向け"), half).rule_hits == ("kana",)


def test_exceptions_skip_the_rule() -> None:
    pol = policy(rule("r", {"subject_contains": ["invoice"]}, exceptions={"sender_domain": ["example.org"]}))
    assert scan(build_message(subject="invoice"), pol).rule_hits == ()
    other = Envelope("x@other.org", ("bob@example.com",))
    assert scan(build_message(subject="invoice", sender="x@other.org"), pol, other).rule_hits == ("r",)


def test_direction_scope() -> None:
    pol = policy(rule("out", {"body_contains": ["hello"]}, direction="outbound"))
    assert scan(build_message(text="hello"), pol).rule_hits == ()
    assert scan(build_message(text="hello"), pol, OUTBOUND).rule_hits == ("out",)


# ---- priority, stop processing, audit ------------------------------------------------------------


def test_priority_order_and_stop_processing() -> None:
    pol = policy(
        rule("second", {}, {"add_header": [{"name": "X-B", "value": "2"}]}, priority=2),
        rule("first", {}, {"add_header": [{"name": "X-A", "value": "1"}]}, priority=1, stop_processing=True),
    )
    verdict = scan(build_message(), pol)
    assert verdict.rule_hits == ("first",)
    assert [m.name for m in verdict.disposition.modifications] == ["X-A"]


def test_disabled_rules_never_match() -> None:
    assert scan(build_message(), policy(rule("off", {}, enabled=False))).rule_hits == ()


def test_audit_rule_records_without_acting() -> None:
    pol = policy(
        rule("watch", {"subject_contains": ["secret"]}, {"reject": {}}, mode="audit", stop_processing=True),
        rule("tag", {}, {"prepend_subject": "[EXT] "}, priority=1),
    )
    verdict = scan(build_message(subject="secret plans"), pol)
    assert verdict.rule_hits == ("watch (audit)", "tag")  # an audit rule does not stop later rules
    assert verdict.disposition.action is Action.DELIVER
    assert verdict.category is Category.CLEAN
    assert any("watch (audit: would have)" in f.detail for f in verdict.findings)


def test_monitor_mode_turns_every_action_into_would_have() -> None:
    raw = build_message(subject="secret")
    verdict = scan(raw, policy(rule("q", {"subject_contains": ["secret"]})))
    plan = plan_delivery(raw, verdict, INBOUND.rcpt_to, applied=False)
    assert plan.raw == raw and plan.deliver_to == INBOUND.rcpt_to  # relayed unchanged
    assert would_have(verdict) == "would have: quarantine (transport rule 'q')"


# ---- actions -----------------------------------------------------------------------------------


def test_reject_with_enhanced_status_and_ndr() -> None:
    raw = build_message(subject="payroll")
    pol = policy(
        rule(
            "no",
            {"subject_contains": ["payroll"]},
            {"reject": {"status": "5.7.901", "text": "Payroll by mail is not allowed"}},
        )
    )
    verdict = scan(raw, pol)
    assert verdict.category is Category.RULE
    plan = plan_delivery(raw, verdict, INBOUND.rcpt_to, applied=True)
    assert plan.bounce and plan.raw is None
    assert plan.smtp_reply == "550 5.7.901 Payroll by mail is not allowed"


def test_delete_drops_silently() -> None:
    raw = build_message()
    plan = plan_delivery(raw, scan(raw, policy(rule("del", {}, {"delete": True}))), INBOUND.rcpt_to, applied=True)
    assert plan.status is RecipientStatus.DROPPED and not plan.bounce
    assert plan.smtp_reply == "550 4.3.2 QUEUE.TransportAgent; message deleted by transport agent"


def test_quarantine_and_redirect() -> None:
    raw = build_message()
    q = plan_delivery(raw, scan(raw, policy(rule("q", {}))), INBOUND.rcpt_to, applied=True)
    assert q.quarantine and q.raw is None
    verdict = scan(raw, policy(rule("r", {}, {"redirect_to": ["legal@example.com"]})))
    r = plan_delivery(raw, verdict, INBOUND.rcpt_to, applied=True)
    assert r.deliver_to == ("legal@example.com",) and r.status is RecipientStatus.REDIRECTED


def test_header_recipient_subject_changes_at_delivery() -> None:
    raw = build_message(headers={"X-Remove-Me": "1", "X-Set-Me": "old"})
    actions = {
        "add_header": [{"name": "X-Rule", "value": "tagged"}],
        "set_header": [{"name": "X-Set-Me", "value": "new"}],
        "remove_header": ["X-Remove-Me"],
        "add_to": ["manager@example.com"],
        "add_cc": ["audit@example.com"],
        "add_bcc": ["archive@example.com"],
        "prepend_subject": "[EXTERNAL] ",
    }
    verdict = scan(raw, policy(rule("mods", {}, actions)))
    plan = plan_delivery(raw, verdict, INBOUND.rcpt_to, applied=True)
    assert plan.deliver_to == ("bob@example.com", "manager@example.com", "audit@example.com", "archive@example.com")
    msg = email.message_from_bytes(plan.raw or b"", policy=default)
    assert msg["X-Rule"] == "tagged" and msg.get_all("X-Set-Me") == ["new"] and msg["X-Remove-Me"] is None
    assert msg["Subject"] == "[EXTERNAL] Quarterly numbers"
    assert "manager@example.com" in msg["To"] and msg["Cc"] == "audit@example.com"
    assert b"archive@example.com" not in (plan.raw or b"")  # Bcc stays out of the headers
    assert any("header X-Rule added" in n for n in plan.notes)


def test_disclaimer_in_text_and_html_noting_a_broken_dkim_signature() -> None:
    raw = build_message(
        text="Hello",
        html="<html><body><p>Hello</p></body></html>",
        headers={"DKIM-Signature": "v=1; d=example.org; b=x"},
    )
    pol = policy(rule("disc", {}, {"append_disclaimer": {"text": "社外秘: do not forward"}}, direction="both"))
    plan = plan_delivery(raw, scan(raw, pol), INBOUND.rcpt_to, applied=True)
    out = Message(plan.raw or b"")
    assert out.text_parts[0].rstrip().endswith("社外秘: do not forward")
    assert "<p>社外秘: do not forward</p></body>" in out.html_parts[0]
    assert any("breaks the sender's DKIM signature" in n for n in plan.notes)


def test_signed_message_gets_no_disclaimer() -> None:
    raw = (
        b"From: a@example.org\r\nTo: b@example.com\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nsigned text\r\n--b\r\n"
        b"Content-Type: application/pkcs7-signature\r\n\r\nAAAA\r\n--b--\r\n"
    )
    plan = plan_delivery(
        raw, scan(raw, policy(rule("d", {}, {"append_disclaimer": {"text": "x"}}))), ("b@example.com",), applied=True
    )
    assert b"signed text\r\n--b" in (plan.raw or b"")
    assert any("signed or encrypted" in n for n in plan.notes)


def test_delivery_pool_and_incident_report_are_carried() -> None:
    raw = build_message()
    pol = policy(
        rule(
            "pool",
            {},
            {"delivery_pool": "high_risk", "incident_report_to": ["secops@example.com"]},
            direction="outbound",
        )
    )
    verdict = scan(raw, pol, OUTBOUND)
    plan = plan_delivery(raw, verdict, OUTBOUND.rcpt_to, applied=True)
    assert plan.pool == "high_risk"
    assert [(m.kind.value, m.value) for m in verdict.disposition.modifications] == [
        ("delivery_pool", "high_risk"),
        ("incident_report", "secops@example.com"),
    ]


def test_set_scl_minus_one_bypasses_the_spam_filter() -> None:
    raw = build_message()
    assert scan(raw, policy(), spam=True).category is Category.SPAM
    verdict = scan(raw, policy(rule("trusted", {"sender_domain": ["example.org"]}, {"set_scl": -1})), spam=True)
    assert verdict.scl == -1 and verdict.category is Category.CLEAN
    assert [s.outcome.value for s in verdict.stages] == ["detected", "skipped"]


def test_precedence_rule_reject_beats_spam_junk_and_hcp_beats_rule_redirect() -> None:
    raw = build_message()
    verdict = scan(raw, policy(rule("no", {}, {"reject": {}})), spam=True)
    assert verdict.disposition.action is Action.REJECT and verdict.category is Category.RULE
    redirect = policy(rule("r", {}, {"redirect_to": ["x@example.com"]}), spam={"actions": {"spam": "quarantine"}})
    verdict = scan(raw, redirect, spam=True)
    assert verdict.disposition.action is Action.QUARANTINE and verdict.category is Category.SPAM


# ---- validation and safety ---------------------------------------------------------------------


def test_bad_rules_are_refused_naming_rule_field_and_reason() -> None:
    doc = {
        "name": "acme",
        "policy": {
            "rules": [
                {"name": "ok", "actions": {"quarantine": True}},
                {
                    "name": "broken",
                    "conditions": {"subject_matches": ["(unclosed"]},
                    "actions": {"quarantine": True, "delete": True},
                },
            ]
        },
    }
    with pytest.raises(PolicyError) as info:
        parse_organisation_document(doc)
    text = str(info.value)
    assert "rule 'broken'" in text and "conditions.subject_matches" in text and "missing )" in text
    assert "delete and quarantine exclude each other" in text
    dupes = {"name": "acme", "policy": {"rules": [{"name": "a", "actions": {"delete": True}}] * 2}}
    with pytest.raises(PolicyError, match="rule name used twice: a"):
        parse_organisation_document(dupes)


def test_backreferences_and_lookarounds_are_refused() -> None:
    for pattern in (r"(a)\1", r"foo(?=bar)"):
        with pytest.raises(PolicyError, match="refused"):
            parse_organisation_document({"name": "acme", "policy": {"rules": [rule("p", {"body_matches": [pattern]})]}})


def test_catastrophic_pattern_runs_in_linear_time() -> None:
    pol = policy(rule("evil", {"body_matches": [r"(a+)+$", r"(x+x+)+y"]}))
    raw = build_message(text="a" * 50_000 + "!" + "x" * 50_000)
    started = time.process_time()
    verdict = scan(raw, pol)
    assert time.process_time() - started < 2.0  # a backtracking engine takes hours on this input
    assert verdict.rule_hits == ()


# ---- DLP ---------------------------------------------------------------------------------------


def test_sensitive_information_condition_and_redaction_in_the_verdict() -> None:
    text = "card number 4111 1111 1111 1111 and 5555 5555 5555 4444, カード番号"
    pol = policy(
        rule("cards", {"sensitive_info": [{"type": "credit_card", "min_count": 2, "min_confidence": "medium"}]})
    )
    verdict = scan(build_message(text=text), pol)
    assert verdict.rule_hits == ("cards",)
    stored = str(verdict.as_dict())
    assert "4111 1111 1111 1111" not in stored and "4111111111111111" not in stored
    assert any(m["type"] == "credit_card" and m["count"] == 2 for m in verdict.dlp_matches)
    assert scan(build_message(text="card number 4111 1111 1111 1112"), pol).rule_hits == ()  # Luhn fails
