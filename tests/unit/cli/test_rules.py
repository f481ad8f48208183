"""`mailwarden rules check` and `mailwarden rules test`."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from mailwarden.cli import app
from tests.factories import build_message

RULES = """
domains: [example.com]
rules:
  - name: Confidential outbound
    direction: outbound
    conditions: {subject_or_body_contains: [社外秘]}
    actions: {append_disclaimer: {text: "This message is confidential."}, incident_report_to: [secops@example.com]}
  - name: Cards
    priority: 1
    conditions: {sensitive_info: [{type: credit_card}]}
    actions: {reject: {status: 5.7.901, text: "Card numbers may not be sent by mail"}}
"""


def test_rules_test_shows_matches_reasons_and_the_outcome(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
    raw = build_message(
        sender="bob@example.com", to="x@partner.org", subject="【社外秘】plan", text="card number 4111 1111 1111 1111"
    )
    (tmp_path / "m.eml").write_bytes(raw)
    result = CliRunner().invoke(app, ["rules", "test", str(tmp_path / "rules.yaml"), str(tmp_path / "m.eml")])
    assert result.exit_code == 0, result.output
    assert "outbound message from bob@example.com" in result.output
    assert "subject_or_body_contains '社外秘'" in result.output
    assert "would happen: reject (transport rule 'Cards'), reply '550 5.7.901 Card numbers" in result.output
    assert "incident report to secops@example.com" in result.output
    assert "4111" not in result.output


def test_rules_check_refuses_a_bad_rule_naming_it(tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text(RULES, encoding="utf-8")
    ok = CliRunner().invoke(app, ["rules", "check", str(tmp_path / "ok.yaml")])
    assert ok.exit_code == 0 and "valid, 2 rules (1 inbound, 2 outbound, 0 disabled)" in ok.output
    bad = "rules:\n  - name: bad one\n    conditions: {body_matches: ['(?<=x)y']}\n    actions: {quarantine: true}\n"
    (tmp_path / "bad.yaml").write_text(bad, encoding="utf-8")
    result = CliRunner().invoke(app, ["rules", "check", str(tmp_path / "bad.yaml")])
    assert result.exit_code != 0
    assert "rule 'bad one'" in str(result.exception) and "body_matches" in str(result.exception)
