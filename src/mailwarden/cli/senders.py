"""`mailwarden sender list|restrict|release`: senders restricted from sending outbound mail (docs/outbound.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from mailwarden.cli.common import ConfigOption, DataTable, OrgOption, out, runtime
from mailwarden.model.outbound import RestrictedSender
from mailwarden.service.outbound import next_midnight_utc, release_sender
from mailwarden.store.restricted import RestrictedSenders

sender_app = typer.Typer(
    help="Senders restricted from sending outbound mail: list, restrict, release.", no_args_is_help=True
)
ByOption = Annotated[str, typer.Option("--by", help="Who acts (recorded in the audit log).")]


@sender_app.command("list")
def list_senders(org: OrgOption = None, config: ConfigOption = None) -> None:
    """Restricted senders, newest first, with why and until when."""
    with runtime(config, migrate=True) as rt:
        rows = RestrictedSenders(rt.db).list(org)
    table = DataTable("organisation", "sender", "since", "until", "reason")
    for r in rows:
        until = r.until.strftime("%Y-%m-%d %H:%M") if r.until else "released by an admin"
        table.add_row(r.organisation, r.sender + (" (would have: monitor mode)" if r.would_have else ""),
                      r.since.strftime("%Y-%m-%d %H:%M"), until, r.reason)  # fmt: skip
    out.print(table)


@sender_app.command("restrict")
def restrict(
    organisation: Annotated[str, typer.Argument()],
    sender: Annotated[str, typer.Argument(help="The sender's address.")],
    reason: Annotated[str, typer.Option("--reason")] = "restricted by an administrator",
    today: Annotated[bool, typer.Option("--today", help="Until the next midnight UTC (else until released).")] = False,
    by: ByOption = "cli",
    config: ConfigOption = None,
) -> None:
    """Restrict a sender by hand (the outbound listeners refuse it at MAIL FROM within seconds)."""
    now = datetime.now(UTC)
    with runtime(config, migrate=True) as rt:
        rt.policies.get_organisation(organisation)
        entry = RestrictedSender(organisation, sender, reason, now, next_midnight_utc(now) if today else None)
        RestrictedSenders(rt.db).restrict(entry, actor=by)
    out.print(f"{sender} restricted", markup=False)


@sender_app.command("release")
def release(
    organisation: Annotated[str, typer.Argument()],
    sender: Annotated[str, typer.Argument()],
    by: ByOption = "cli",
    config: ConfigOption = None,
) -> None:
    """Let a restricted sender send again (audited)."""
    with runtime(config, migrate=True) as rt:
        release_sender(rt.db, rt.config.outbound.redis_url, organisation, sender, actor=by)
    out.print(f"{sender} may send again", markup=False)
