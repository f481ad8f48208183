"""`mailwarden org list|mode`: organisations, their domains and the monitor / enforce switch."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from mailwarden.cli.common import ConfigOption, OrgOption, out, runtime

org_app = typer.Typer(help="Organisations and their monitor / enforce switch.", no_args_is_help=True)


@org_app.command("list")
def org_list(config: ConfigOption = None) -> None:
    """Organisations, their domains and modes."""
    with runtime(config) as rt:
        table = Table(header_style="bold")
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
