"""Custom sensitive information types from policy (`policy.dlp.custom_types`), unknown types refused on
save, and the recipients a rule adds."""

from __future__ import annotations

from typing import Any

import pytest

from mailwarden.enforce.apply import plan_delivery
from mailwarden.errors import PolicyError
from mailwarden.model.policy import Policy, parse_organisation_document
from mailwarden.model.rules import DLP_BUILTIN_TYPES
from mailwarden.pipeline.dlp import BUILTIN_NAMES
from tests.factories import build_message
from tests.unit.pipeline.rules.test_rules import INBOUND, docx_of, rule, scan

EMPLOYEE = {"name": "employee_id", "pattern": r"\bEMP-(\d{6})\b", "keywords": ["employee", "社員番号"]}


def document(policy: dict[str, Any]) -> dict[str, Any]:
    return {"name": "acme", "domains": [{"name": "example.com"}], "policy": policy}


def refused(policy: dict[str, Any]) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        parse_organisation_document(document(policy))
    return caught.value.errors


def employee_rule(**condition: Any) -> dict[str, Any]:
    return rule("staff ids", {"sensitive_info": [{"type": "employee_id", **condition}]})


def test_the_model_knows_every_built_in_type_of_the_scanner() -> None:
    assert DLP_BUILTIN_TYPES == BUILTIN_NAMES


def test_a_custom_type_from_policy_is_a_rule_condition_with_keywords_and_redaction() -> None:
    pol = Policy.model_validate({"dlp": {"custom_types": [EMPLOYEE]}, "rules": [employee_rule()]})
    near = scan(build_message(text="Employee record: EMP-123456 joined today."), pol)
    assert near.rule_hits == ("staff ids",)
    (found,) = [m for m in near.dlp_matches if m["type"] == "employee_id"]
    assert found["count"] == 1 and found["confidence"] == "medium"
    assert "123456" not in str(near.as_dict())  # only the redacted value is kept
    # no keyword within 300 characters: the match does not count
    far = scan(build_message(text="Ticket EMP-123456 closed." + " filler" * 100), pol)
    assert far.rule_hits == ()


def test_a_custom_type_is_found_in_an_attachment_in_japanese_text() -> None:
    pol = Policy.model_validate({"dlp": {"custom_types": [EMPLOYEE]}, "rules": [employee_rule(min_count=2)]})
    raw = build_message(
        text="添付をご確認ください。",
        attachments=[("名簿.docx", "application/octet-stream", docx_of("社員番号 EMP-000001, EMP-000002"))],
    )
    assert scan(raw, pol).rule_hits == ("staff ids",)
    one = build_message(attachments=[("a.docx", "application/octet-stream", docx_of("社員番号 EMP-000001"))])
    assert scan(one, pol).rule_hits == ()  # min_count 2


def test_a_custom_type_without_keywords_counts_every_match_at_its_confidence() -> None:
    bare = {"name": "project", "pattern": r"PRJ-[A-Z]{4}", "confidence": "high"}
    condition = {"type": "project", "min_confidence": "high"}
    pol = Policy.model_validate(
        {"dlp": {"custom_types": [bare]}, "rules": [rule("projects", {"sensitive_info": [condition]})]}
    )
    assert scan(build_message(text="see PRJ-ABCD"), pol).rule_hits == ("projects",)
    assert scan(build_message(text="see PRJ-abcd"), pol).rule_hits == ()  # custom patterns are case-sensitive


def test_unknown_sensitive_type_is_refused_naming_the_rule_and_field() -> None:
    (error,) = refused({"rules": [rule("ok", {}), employee_rule()]})
    assert error.startswith("policy: rules.1: rule 'staff ids': conditions.sensitive_info.0.type: ")
    assert "unknown sensitive information type 'employee_id'" in error
    exception = rule("cards", {}, exceptions={"sensitive_info": [{"type": "credit_crad"}]})
    (error,) = refused({"rules": [exception]})
    assert "rule 'cards': exceptions.sensitive_info.0.type: unknown sensitive information type 'credit_crad'" in error
    # the same rule is accepted once the type is defined, and a built-in type needs no definition
    parse_organisation_document(document({"dlp": {"custom_types": [EMPLOYEE]}, "rules": [employee_rule()]}))
    parse_organisation_document(document({"rules": [rule("c", {"sensitive_info": [{"type": "iban"}]})]}))


@pytest.mark.parametrize(
    ("custom", "expected"),
    [
        ({"name": "x1", "pattern": "(a"}, "custom type 'x1': pattern: pattern '(a' refused: missing )"),
        (
            {"name": "x2", "pattern": r"(\d)\1"},
            r"custom type 'x2': pattern: pattern '(\\d)\\1' refused: invalid escape",
        ),
        ({"name": "x3", "pattern": "a*"}, "custom type 'x3': pattern: pattern 'a*' refused: it matches the empty"),
        ({"name": "iban", "pattern": "a+"}, "custom type 'iban': name: 'iban' is a built-in type"),
        ({"name": "x4", "pattern": "a+", "confidence": "sure"}, "custom type 'x4': confidence: Input should be"),
        ({"name": "x5", "pattern": "a+", "colour": "red"}, "custom type 'x5': colour: Extra inputs"),
    ],
)
def test_bad_custom_types_are_refused_naming_the_field(custom: dict[str, Any], expected: str) -> None:
    (error,) = refused({"dlp": {"custom_types": [custom]}})
    assert error.startswith("policy.dlp.custom_types.0: " + expected), error


def test_custom_type_names_are_distinct() -> None:
    (error,) = refused({"dlp": {"custom_types": [EMPLOYEE, EMPLOYEE]}})
    assert error == "policy.dlp.custom_types: custom type name used twice: employee_id"


def test_added_recipients_keep_their_field_and_are_not_redirect_targets() -> None:
    raw = build_message()
    actions = {"add_cc": ["audit@example.com"], "add_bcc": ["archive@example.com", "bob@example.com"]}
    pol = Policy.model_validate({"rules": [rule("copies", {}, actions)]})
    plan = plan_delivery(raw, scan(raw, pol), INBOUND.rcpt_to, applied=True)
    assert plan.deliver_to == ("bob@example.com", "audit@example.com", "archive@example.com")
    # an original recipient added again is not "added"
    assert plan.added == (("audit@example.com", "Cc"), ("archive@example.com", "Bcc"))
