"""`mailwarden rules check RULES.yaml` and `mailwarden rules test RULES.yaml MESSAGE.eml`.

RULES.yaml is either a whole organisation document (name, domains, policy.rules) or a short file with
`rules:` and optionally `domains:` (the organisation's domains, which decide the direction) and `dlp:`
(custom sensitive information types).
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from mailwarden.enforce.apply import plan_delivery
from mailwarden.errors import PolicyError
from mailwarden.model import Direction, Domain, Message, Organisation, Policy
from mailwarden.model.direction import assumed_direction
from mailwarden.model.policy import parse_organisation_document, validation_messages
from mailwarden.pipeline.engine import Pipeline
from mailwarden.pipeline.rules.compiled import compile_rules
from mailwarden.pipeline.rules.stage import TransportRules
from mailwarden.service.runtime import offline_envelope

app = typer.Typer(help="Transport (mail flow) rules: check a rule file, test it on a message.", no_args_is_help=True)
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)


def load_rules(path: Path) -> tuple[Policy, Organisation]:
    """The rules (as a policy) and the organisation (its domains) from a YAML file; PolicyError when bad."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(f"{path}: {exc.strerror}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}") from None
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


@app.command("check")
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


@app.command("test")
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
    env = offline_envelope(msg)
    if sender is not None:
        env = replace(env, mail_from=sender.strip().lower())
    if recipient:
        env = replace(env, rcpt_to=tuple(r.strip().lower() for r in recipient))
    if ip:
        env = replace(env, client_ip=ip)
    if direction is None:
        direction = assumed_direction(env.mail_from, env.rcpt_to, org.domain_names)
        if direction is Direction.INTERNAL:
            out.print("internal mail (every address in the organisation's domains): not scanned, no rule runs")
            return
    pipe = Pipeline({Direction.INBOUND: [TransportRules()], Direction.OUTBOUND: [TransportRules()]})
    verdict = asyncio.run(pipe.scan(msg, env, policy, organisation=org, direction=direction))
    out.print(f"{direction.value} message from {env.mail_from or '<>'} to {', '.join(env.rcpt_to) or '-'}")
    rows = [f for f in verdict.findings if f.stage == "rules"]
    if not rows:
        out.print(f"no rule matched ({len(policy.rules)} rules)")
    else:
        table = Table(header_style="bold")
        for column in ("rule", "mode", "why"):
            table.add_column(column)
        for f in rows:
            name, _, rest = f.detail.partition(" (")
            mode, _, why = rest.partition("): ")
            table.add_row(name, mode, why.replace("; ", "\n"))
        out.print(table)
    d = verdict.disposition
    line = f"would happen: {d.action.value}"
    if d.reason:
        line += f" ({d.reason})"
    if d.smtp_reply:
        line += f", reply {d.smtp_reply!r}"
    if d.redirect_to:
        line += f", to {', '.join(d.redirect_to)}"
    out.print(line)
    plan = plan_delivery(msg.raw, verdict, env.rcpt_to, applied=True)
    for note in plan.notes:
        out.print(f"  {note}")
    for mod in d.modifications:
        if mod.kind.value == "incident_report":
            out.print(f"  rule {mod.rule!r}: incident report to {mod.value}")
    if verdict.dlp_matches:
        out.print(
            "sensitive information: "
            + ", ".join(f"{m['type']} x{m['count']} ({m['confidence']})" for m in verdict.dlp_matches)
        )
