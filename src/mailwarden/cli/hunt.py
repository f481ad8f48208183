"""`mailwarden hunt rescan|search|list|show|cancel`: retro-hunt over the messages kept for it.

`rescan` and `search` run the hunt in this process, on the CPU live scanning leaves idle, with a progress
bar; the progress goes to the database as it runs, so the console and the API show it too. The CLI acts
as an administrator (`--by` names who, for the hunt's record).
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from mailwarden.cli.common import ConfigOption, DataTable, err, out, runtime
from mailwarden.cli.trace import when as _when
from mailwarden.errors import MailwardenError
from mailwarden.store.hunts import Hunt, HuntKind, HuntResult, HuntState, HuntStore

if TYPE_CHECKING:  # the services are imported by the commands that use them: every command starts sooner
    from mailwarden.service.indicators import Indicators

hunt_app = typer.Typer(
    help="Retro-hunt: rescan kept messages with today's rules, or search them.", no_args_is_help=True
)

SinceOption = Annotated[str, typer.Option(help="Start of the window: an age (24h, 7d) or an ISO date.")]
UntilOption = Annotated[str | None, typer.Option(help="End of the window: an age or an ISO date (default now).")]
HuntOrgOption = Annotated[str | None, typer.Option("--org", help="Only this organisation's messages.")]
ByOption = Annotated[str, typer.Option("--by", help="Who hunts (kept with the hunt).")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]


@hunt_app.command("rescan")
def rescan(
    since: SinceOption = "7d",
    until: UntilOption = None,
    org: HuntOrgOption = None,
    by: ByOption = "cli",
    quiet: QuietOption = False,
    config: ConfigOption = None,
) -> None:
    """Scan the kept messages of a window again with today's rules; list those whose verdict changed."""
    _hunt(HuntKind.RESCAN, None, since=since, until=until, org=org, by=by, quiet=quiet, config=config)


@hunt_app.command("search")
def search(
    url: Annotated[list[str] | None, typer.Option("--url", help="Text a URL in the message contains.")] = None,
    sha256: Annotated[list[str] | None, typer.Option("--sha256", help="SHA-256 of an attachment.")] = None,
    sender: Annotated[list[str] | None, typer.Option("--sender", help="Sender address (envelope or From).")] = None,
    domain: Annotated[list[str] | None, typer.Option("--domain", help="Sender domain (and its subdomains).")] = None,
    subject: Annotated[str | None, typer.Option("--subject", help="RE2 pattern for the subject.")] = None,
    since: SinceOption = "7d",
    until: UntilOption = None,
    org: HuntOrgOption = None,
    by: ByOption = "cli",
    quiet: QuietOption = False,
    config: ConfigOption = None,
) -> None:
    """Find the kept messages of a window that carry any of the indicators."""
    from mailwarden.service.indicators import Indicators

    indicators = Indicators(
        senders=tuple(sender or ()),
        domains=tuple(domain or ()),
        urls=tuple(url or ()),
        sha256=tuple(sha256 or ()),
        subject=subject,
    )
    _hunt(HuntKind.SEARCH, indicators, since=since, until=until, org=org, by=by, quiet=quiet, config=config)


@hunt_app.command("list")
def list_hunts(
    org: HuntOrgOption = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    config: ConfigOption = None,
) -> None:
    """Hunts, newest first."""
    with runtime(config, migrate=True) as rt:
        hunts = HuntStore(rt.db).newest(organisation=org, limit=limit)
    if as_json:
        for h in hunts:
            out.print(json.dumps(hunt_document(h), ensure_ascii=False), markup=False)
        return
    table = DataTable("id", "created", "by", "kind", "organisation", "state", "done", "found")
    for h in hunts:
        table.add_row(
            h.id,
            h.created_at.strftime("%Y-%m-%d %H:%M"),
            h.created_by,
            h.kind.value,
            h.organisation or "(all)",
            h.state.value,
            f"{h.done}/{h.total}",
            str(h.matched),
        )
    out.print(table)


@hunt_app.command("show")
def show(
    hunt_id: Annotated[str, typer.Argument(help="The hunt's id (`mailwarden hunt list`).")],
    as_json: Annotated[bool, typer.Option("--json", help="The hunt and its results as one JSON document.")] = False,
    config: ConfigOption = None,
) -> None:
    """A hunt's state and the messages it found."""
    with runtime(config, migrate=True) as rt:
        store = HuntStore(rt.db)
        hunt = store.get(hunt_id.upper())
        results = store.results(hunt.id)
    if as_json:
        doc = hunt_document(hunt)
        doc["results"] = [
            {
                "message_id": r.message_id,
                "before": {"category": r.before_category, "action": r.before_action},
                "after": None if r.after_category is None else {"category": r.after_category, "action": r.after_action},
                "matched": r.matched,
            }
            for r in results
        ]
        out.print(json.dumps(doc, ensure_ascii=False), markup=False)
        return
    _print_hunt(hunt)
    out.print(_results_table(results))


@hunt_app.command("cancel")
def cancel(
    hunt_id: Annotated[str, typer.Argument(help="The hunt's id.")],
    config: ConfigOption = None,
) -> None:
    """Stop a queued or running hunt (a running one stops after its current round)."""
    with runtime(config, migrate=True) as rt:
        hunt = HuntStore(rt.db).cancel(hunt_id.upper())
    out.print(f"hunt {hunt.id}: {hunt.state.value}")


def _hunt(
    kind: HuntKind,
    indicators: Indicators | None,
    *,
    since: str,
    until: str | None,
    org: str | None,
    by: str,
    quiet: bool,
    config: ConfigOption,
) -> None:
    from mailwarden.service.hunt import Hunter, lower_priority, new_hunt

    with runtime(config, migrate=True) as rt:
        hunt = new_hunt(
            rt.db,
            kind,
            created_by=by,
            organisation=org,
            since=_when(since),
            until=_when(until),
            indicators=indicators,
            running=True,
        )
        lower_priority()
        progress = Progress(
            TextColumn(f"{kind.value} {hunt.id}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[found]} found"),
            TimeRemainingColumn(),
            console=err,
            disable=quiet,
        )
        task = progress.add_task(kind.value, total=None, found=0)

        def moved(h: Hunt) -> None:
            progress.update(task, total=h.total, completed=h.done, found=h.matched)

        with progress:
            final = asyncio.run(Hunter(rt).run(hunt, moved))
            results = HuntStore(rt.db).results(final.id)
    _print_hunt(final)
    if results:
        out.print(_results_table(results))
    if final.state is HuntState.FAILED:
        raise MailwardenError(f"hunt {final.id} failed: {final.error}")


def _results_table(results: list[HuntResult]) -> DataTable:
    table = DataTable("message", "then", "now", "what")
    for r in results:
        now = "" if r.after_category is None else f"{r.after_category} / {r.after_action}"
        table.add_row(r.message_id, f"{r.before_category} / {r.before_action}", now, r.matched)
    return table


def _print_hunt(h: Hunt) -> None:
    found = "changed" if h.kind is HuntKind.RESCAN else "matched"
    out.print(
        f"hunt {h.id} ({h.kind.value}, {h.organisation or 'every organisation'}): {h.state.value}, "
        f"{h.done} of {h.total} kept messages, {h.matched} {found}",
        markup=False,
    )


def hunt_document(h: Hunt) -> dict[str, object]:
    return {
        "id": h.id,
        "kind": h.kind.value,
        "organisation": h.organisation,
        "created_by": h.created_by,
        "created_at": h.created_at.isoformat(),
        "query": h.query,
        "since": h.since.isoformat() if h.since else None,
        "until": h.until.isoformat() if h.until else None,
        "state": h.state.value,
        "total": h.total,
        "done": h.done,
        "matched": h.matched,
        "error": h.error,
    }
