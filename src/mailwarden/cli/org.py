"""`mailwarden org list|mode|domain-mode|preview`: organisations, their domains, the monitor / enforce
switch of an organisation or of one domain, and what enforcing would have done (docs/policy-replay.md)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from mailwarden.cli.common import ConfigOption, DataTable, OrgOption, out, runtime
from mailwarden.errors import NotFoundError
from mailwarden.model.org import ConnectionMode
from mailwarden.store.preview import ENFORCED_ACTIONS, mode_preview

org_app = typer.Typer(help="Organisations and their monitor / enforce switch.", no_args_is_help=True)


@org_app.command("list")
def org_list(config: ConfigOption = None) -> None:
    """Organisations, their domains and modes."""
    with runtime(config) as rt:
        table = DataTable(header_style="bold")
        for column in ("organisation", "monitor only", "domain", "connection", "next hop"):
            table.add_column(column)
        for o in rt.policies.list_organisations():
            if not o.domains:
                table.add_row(o.name, "yes" if o.monitor_only else "no", "", "", "")
            for i, d in enumerate(o.domains):
                table.add_row(
                    o.name if i == 0 else "",
                    ("yes" if o.monitor_only else "no") if i == 0 else "",
                    d.name,
                    d.mode.value,
                    d.next_hop or "",
                )
        out.print(table)


@org_app.command("mode")
def org_mode(
    mode: Annotated[str, typer.Argument(help="monitor or enforce")],
    config: ConfigOption = None,
    org: OrgOption = None,
) -> None:
    """Switch an organisation between monitor and enforce mode."""
    if mode not in ("monitor", "enforce"):
        raise typer.BadParameter("mode must be 'monitor' or 'enforce'")
    with runtime(config) as rt:
        name = org or rt.config.organisation
        rt.policies.set_monitor_only(name, mode == "monitor", actor="cli")
        out.print(f"organisation {name!r} is now in {mode} mode")


@org_app.command("domain-mode")
def domain_mode(
    domain: Annotated[str, typer.Argument(help="One of the organisation's domains")],
    mode: Annotated[ConnectionMode, typer.Argument(help="journal (monitor), gateway or mailflow (enforce)")],
    next_hop: Annotated[
        str | None, typer.Option("--next-hop", help="host[:port] to deliver to (needed to enforce when unset)")
    ] = None,
    config: ConfigOption = None,
    org: OrgOption = None,
) -> None:
    """Switch one domain between monitor (journal) and enforce (gateway or mailflow); audited."""
    with runtime(config) as rt:
        name = org or rt.config.organisation
        d = rt.policies.set_domain_mode(name, domain, mode, next_hop=next_hop, actor="cli")
        hop = f", next hop {d.next_hop}" if d.next_hop else ""
        out.print(f"domain {d.name!r} of organisation {name!r} is now in {d.mode.value} mode{hop}")


@org_app.command("preview")
def preview(
    days: Annotated[int, typer.Option(min=1, max=366, help="How many days back.")] = 7,
    domain: Annotated[str | None, typer.Option(help="Only mail to or from this domain.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="As JSON.")] = False,
    config: ConfigOption = None,
    org: OrgOption = None,
) -> None:
    """What enforcing would have done over the last days: the would-have actions recorded in monitor mode."""
    with runtime(config) as rt:
        name = org or rt.config.organisation
        if domain is not None and rt.policies.get_organisation(name).domain(domain) is None:
            raise NotFoundError(f"organisation {name!r} has no domain {domain!r}")
        p = mode_preview(rt.db, name, datetime.now(UTC) - timedelta(days=days), domain=domain)
    if as_json:
        document = {
            "organisation": name,
            "domain": p.domain,
            "days": days,
            "monitored": p.monitored,
            "actions": {
                a.value: {
                    "messages": p.total(a.value),
                    "by_category": p.counts.get(a.value, {}),
                    "newest": [m.message_id for m in p.messages.get(a.value, [])],
                }
                for a in ENFORCED_ACTIONS
            },
        }
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        return
    scope = f"domain {p.domain!r} of organisation {name!r}" if p.domain else f"organisation {name!r}"
    out.print(f"{scope}, last {days} days: {p.monitored} messages recorded in monitor mode; enforcing would have")
    table = DataTable(header_style="bold")
    for column in ("action", "messages", "by category", "newest messages"):
        table.add_column(column)
    for a in ENFORCED_ACTIONS:
        counts = p.counts.get(a.value, {})
        table.add_row(
            a.value,
            str(p.total(a.value)),
            ", ".join(f"{c} {n}" for c, n in sorted(counts.items())),
            " ".join(m.message_id for m in p.messages.get(a.value, [])[:3]),
        )
    out.print(table)
