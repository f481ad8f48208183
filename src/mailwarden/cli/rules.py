"""`mailwarden rules check RULES.yaml` and `mailwarden rules test RULES.yaml MESSAGE.eml`.

RULES.yaml is either a whole organisation document (name, domains, policy.rules) or a short file with
`rules:` and optionally `domains:` (the organisation's domains, which decide the direction) and `dlp:`
(custom sensitive information types).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from mailwarden.cli.common import DataTable, out, read_yaml
from mailwarden.errors import PolicyError
from mailwarden.model import Direction, Domain, Message, Organisation, Policy, Verdict
from mailwarden.model.policy import parse_organisation_document, validation_messages
from mailwarden.model.verdict import ModificationKind
from mailwarden.pipeline.rules.compiled import compile_rules
from mailwarden.service.ruletest import RuleTestResult, rule_test_envelope, run_rule_test

rules_app = typer.Typer(
    help="Transport (mail flow) rules: check a rule file, test it on a message.", no_args_is_help=True
)


def load_rules(path: Path) -> tuple[Policy, Organisation]:
    """The rules (as a policy) and the organisation (its domains) from a YAML file; PolicyError when bad."""
    data = read_yaml(path)
    if isinstance(data, dict) and "policy" in data:
        try:
            doc = parse_organisation_document(data)
        except PolicyError as exc:
            raise PolicyError(f"{path}: " + "; ".join(exc.errors), errors=exc.errors) from None
        return doc.policy, doc.to_organisation()
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise PolicyError(f"{path}: expected a mapping with a 'rules' list (or an organisation document)")
    try:
        policy = Policy.model_validate({key: data[key] for key in ("rules", "dlp") if key in data})
    except ValidationError as exc:
        messages = validation_messages(exc)
        raise PolicyError(f"{path}: " + "; ".join(messages), errors=messages) from None
    domains = tuple(Domain(str(d).strip().lower()) for d in data.get("domains") or ())
    return policy, Organisation("rules-file", domains)


@rules_app.command("check")
def check(path: Path) -> None:
    """Validate a rule file (patterns compiled with RE2) without applying it."""
    policy, _ = load_rules(path)
    compiled = compile_rules(policy.rules)
    counts = {d.value: len(compiled.rules[d]) for d in (Direction.INBOUND, Direction.OUTBOUND)}
    disabled = sum(1 for r in policy.rules if not r.enabled)
    out.print(
        f"{path}: valid, {len(policy.rules)} rules ({counts['inbound']} inbound, {counts['outbound']} outbound, "
        f"{disabled} disabled)"
    )


@rules_app.command("test")
def test(
    rules: Path,
    message: Path,
    sender: Annotated[str | None, typer.Option(help="Envelope sender (default: Return-Path or From).")] = None,
    recipient: Annotated[
        list[str] | None, typer.Option(help="Envelope recipient (repeatable; default To, Cc).")
    ] = None,
    direction: Annotated[
        Direction | None, typer.Option(help="inbound or outbound (default: from the domains).")
    ] = None,
    ip: Annotated[str | None, typer.Option(help="Sending IP, for sender_ip_in conditions.")] = None,
) -> None:
    """Which rules match a message and why, and what would happen to it (rules only; no other filter runs)."""
    policy, org = load_rules(rules)
    try:
        msg = Message(message.read_bytes())
    except OSError as exc:
        raise PolicyError(f"{message}: {exc.strerror}") from None
    envelope = rule_test_envelope(msg, sender=sender, recipients=tuple(recipient or ()), client_ip=ip)
    result = asyncio.run(run_rule_test(msg, envelope, policy, org, direction=direction))
    if result.verdict is None:
        for note in result.notes:
            out.print(note)
        return
    out.print(
        f"{result.direction.value} message from {envelope.mail_from or '<>'} to {', '.join(envelope.rcpt_to) or '-'}"
    )
    _print_matches(result, len(policy.rules))
    _print_outcome(result.verdict, result.notes)


def _print_matches(result: RuleTestResult, rule_count: int) -> None:
    if not result.matches:
        out.print(f"no rule matched ({rule_count} rules)")
        return
    table = DataTable(header_style="bold")
    for column in ("rule", "mode", "why"):
        table.add_column(column)
    for match in result.matches:
        table.add_row(match.rule, match.mode, "\n".join(match.reasons))
    out.print(table)


def _print_outcome(verdict: Verdict, notes: tuple[str, ...]) -> None:
    d = verdict.disposition
    line = f"would happen: {d.action.value}"
    if d.reason:
        line += f" ({d.reason})"
    if d.smtp_reply:
        line += f", reply {d.smtp_reply!r}"
    if d.redirect_to:
        line += f", to {', '.join(d.redirect_to)}"
    out.print(line)
    for note in notes:
        out.print(f"  {note}")
    for mod in d.modifications:
        if mod.kind is ModificationKind.INCIDENT_REPORT:
            out.print(f"  rule {mod.rule!r}: incident report to {mod.value}")
    if verdict.dlp_matches:
        out.print(
            "sensitive information: "
            + ", ".join(f"{m['type']} x{m['count']} ({m['confidence']})" for m in verdict.dlp_matches)
        )
