"""`mailwarden policy export|import|check|replay`: an organisation's policy document as YAML, and what a
candidate would change over the kept messages (docs/policy-replay.md)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from mailwarden.cli.common import ConfigOption, DataTable, OrgOption, err, out, read_yaml, runtime
from mailwarden.cli.trace import when
from mailwarden.errors import PolicyError
from mailwarden.model.policy import parse_organisation_document
from mailwarden.service.replay import DEFAULT_LIMIT, MAX_LIMIT, PolicyReplay, ReplayReport, candidate_document

policy_app = typer.Typer(
    help="Export, import and check an organisation's policy document (YAML).", no_args_is_help=True
)


@policy_app.command("export")
def policy_export(
    config: ConfigOption = None,
    org: OrgOption = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")] = None,
) -> None:
    """Write the organisation, its domains and its policy as one YAML document."""
    with runtime(config) as rt:
        doc = rt.policies.export_document(org or rt.config.organisation)
        text = yaml.safe_dump(doc.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
        if output:
            output.write_text(text, encoding="utf-8")
            err.print(f"wrote {output}")
        else:
            sys.stdout.write(text)


def _load_document(path: Path) -> Any:
    data = read_yaml(path)
    try:
        return parse_organisation_document(data)
    except PolicyError as exc:
        raise PolicyError(f"{path}: " + "; ".join(exc.errors), errors=exc.errors) from None


@policy_app.command("import")
def policy_import(path: Path, config: ConfigOption = None) -> None:
    """Apply a YAML document whole: the organisation, its domains and policy change together or not at all."""
    doc = _load_document(path)
    with runtime(config, migrate=True) as rt:
        org = rt.policies.import_document(doc, actor="cli")
        out.print(f"imported organisation {org.name!r} ({len(org.domains)} domains)")
        for domain in org.domains:
            ldap = domain.recipient_verification.ldap
            if ldap is not None and ldap.bind_password_secret and ldap.bind_password_secret not in rt.config.secrets:
                # the server answers 451 for the domain until the secret is there: say so now, not in its log
                warning = f"warning: domain {domain.name}: secret {ldap.bind_password_secret!r} is not in [secrets]"
                err.print(warning, markup=False)


@policy_app.command("check")
def policy_check(path: Path) -> None:
    """Validate a YAML document without applying it."""
    doc = _load_document(path)
    out.print(f"{path}: valid (organisation {doc.name!r}, {len(doc.domains)} domains)")


@policy_app.command("replay")
def policy_replay(
    path: Annotated[Path, typer.Argument(help="The candidate: a whole document, a policy, or a list of rules (YAML).")],
    since: Annotated[str, typer.Option(help="Start of the window: an age (24h, 7d) or an ISO date.")] = "7d",
    until: Annotated[str | None, typer.Option(help="End of the window (default now).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=MAX_LIMIT, help="The newest messages replayed.")] = DEFAULT_LIMIT,
    as_json: Annotated[bool, typer.Option("--json", help="The report as JSON.")] = False,
    config: ConfigOption = None,
    org: OrgOption = None,
) -> None:
    """Run a candidate policy over the kept messages of a window and show what it would change (nothing saved)."""
    data = read_yaml(path)
    with runtime(config) as rt:
        named = data.get("name") if isinstance(data, dict) and "policy" in data else None
        name = org or (named if isinstance(named, str) else None) or rt.config.organisation
        try:
            candidate = candidate_document(rt.policies.export_document(name), data)
        except PolicyError as exc:
            raise PolicyError(f"{path}: " + "; ".join(exc.errors), errors=exc.errors) from None
        report = asyncio.run(PolicyReplay(rt).run(candidate, since=when(since), until=when(until), limit=limit))
    if as_json:
        sys.stdout.write(json.dumps(report.as_dict(), ensure_ascii=False, indent=2) + "\n")
        return
    _print_replay(report)


def _print_replay(report: ReplayReport) -> None:
    out.print(
        f"organisation {report.organisation!r}: {report.scanned} kept messages replayed "
        f"({report.in_window} in the window, {report.skipped} skipped), {len(report.changes)} would change"
    )
    if report.capped:
        out.print(f"capped: only the newest {report.limit} of the window (--limit, or a narrower window)")
    for before, after, n in report.transitions():
        out.print(f"  {before} → {after}: {n}")
    if not report.changes:
        return
    table = DataTable(header_style="bold")
    for column in ("message", "received", "sender", "subject", "now", "candidate", "rules now → candidate"):
        table.add_column(column)
    for c in report.changes:
        table.add_row(
            c.message_id,
            c.received_at.strftime("%Y-%m-%d %H:%M"),
            c.sender or "<>",
            c.subject,
            f"{c.category_before} / {c.action_before}",
            f"{c.category_after} / {c.action_after}",
            f"{', '.join(c.rules_before) or '-'} → {', '.join(c.rules_after) or '-'}",
        )
    out.print(table)
