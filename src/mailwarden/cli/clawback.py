"""`mailwarden clawback`, `campaign`, `clawbacks` and `connector ...`: response from the command line.

The CLI acts as an administrator named by `--by`. By default it works its job off itself, beside any
running server (the two never hold the same recipient), and prints every recipient's status at the end.
Secrets are read from a file or stdin, never from the command line (where `ps` would show them).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mailwarden.cli.common import ConfigOption, DataTable, OrgOption, out, runtime
from mailwarden.cli.trace import when
from mailwarden.errors import ConfigError
from mailwarden.model import Category
from mailwarden.model.accounts import Principal, Role
from mailwarden.model.clawback import ClawbackAction, JobView
from mailwarden.store import HistoryQuery

if TYPE_CHECKING:  # the services are imported by the commands that use them: every command starts sooner
    from mailwarden.service.clawback import Clawback

connector_app = typer.Typer(help="Mailbox connectors for clawback: add, list, test, remove.", no_args_is_help=True)

ByOption = Annotated[str, typer.Option("--by", help="Who acts (recorded in the timeline and audit log).")]
ActionOption = Annotated[
    ClawbackAction,
    typer.Option("--action", help="recoverable (default), trash, junk, delete (admins, for good) or restore."),
]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why (recorded in the timeline and audit log).")]
WaitOption = Annotated[bool, typer.Option("--wait/--no-wait", help="Work the job off now and show the result.")]


def _service(rt: Any) -> Clawback:
    from mailwarden.service.clawback import Clawback

    return Clawback(rt)


def _admin(name: str) -> Principal:
    return Principal(name, Role.ADMIN, None, None)


def clawback(
    messages: Annotated[
        list[str] | None, typer.Argument(help="History ids of the messages.", show_default=False)
    ] = None,
    recipient: Annotated[list[str] | None, typer.Option("--recipient", help="Only these recipients.")] = None,
    entry: Annotated[list[str] | None, typer.Option("--entry", help="Monitor-mode quarantine entry ids.")] = None,
    hunt: Annotated[str | None, typer.Option("--hunt", help="Every message a retro-hunt found.")] = None,
    action: ActionOption = ClawbackAction.RECOVERABLE,
    reason: ReasonOption = "",
    by: ByOption = "cli",
    wait: WaitOption = True,
    config: ConfigOption = None,
) -> None:
    """Claw back (or --action restore) delivered copies of messages from the recipients' mailboxes."""
    with runtime(config, migrate=True) as rt:
        service = _service(rt)
        who = _admin(by)
        if entry:
            job = service.quarantine(entry, who, action=action, reason=reason)
        elif hunt:
            from mailwarden.service.hunt import found_ids

            found = found_ids(rt.db, hunt.upper())
            job = service.messages(found, who, action=action, reason=reason or f"hunt {hunt}", query={"hunt": hunt})
        elif messages and len(messages) == 1:
            job = service.message(messages[0], who, action=action, recipients=recipient, reason=reason)
        elif messages:
            job = service.messages(messages, who, action=action, reason=reason, query={"messages": messages})
        else:
            raise typer.BadParameter("name a message id, --entry or --hunt")
        _follow(service, job, wait)


def campaign(
    since: Annotated[str | None, typer.Option(help="Start: an age (24h, 7d) or an ISO date.")] = None,
    until: Annotated[str | None, typer.Option(help="End: an age or an ISO date.")] = None,
    sender: Annotated[str | None, typer.Option(help="Sender address, or @domain.")] = None,
    subject: Annotated[str | None, typer.Option(help="Words that must all appear in the subject.")] = None,
    message_id: Annotated[str | None, typer.Option("--message-id", help="Internet Message-ID.")] = None,
    verdict: Annotated[Category | None, typer.Option(help="Verdict category.")] = None,
    org: OrgOption = None,
    action: ActionOption = ClawbackAction.RECOVERABLE,
    reason: ReasonOption = "",
    yes: Annotated[bool, typer.Option("--yes", help="Start without asking (after showing the count).")] = False,
    by: ByOption = "cli",
    wait: WaitOption = True,
    config: ConfigOption = None,
) -> None:
    """Claw back every message a trace search finds: the count and recipients are shown first.

    For a URL or an attachment SHA-256, search with `mailwarden hunt search` and claw back its results
    with `mailwarden clawback --hunt HUNT_ID`."""
    if not any((sender, subject, message_id, verdict)):
        raise typer.BadParameter("give at least one of --sender, --subject, --message-id, --verdict")

    def query() -> HistoryQuery:
        return HistoryQuery(
            start=when(since), end=when(until), sender=sender, subject=subject,
            internet_message_id=message_id, category=verdict, organisation=org,
        )  # fmt: skip

    with runtime(config, migrate=True) as rt:
        service = _service(rt)
        preview = service.preview(query(), _admin(by))
        out.print(f"{preview.messages} messages, {len(preview.recipients)} recipients:", markup=False)
        for address in preview.recipients[:50]:
            out.print(f"  {address}", markup=False)
        if len(preview.recipients) > 50:
            out.print(f"  ... and {len(preview.recipients) - 50} more", markup=False)
        if not preview.targets:
            return
        if not yes and not typer.confirm(f"{action.value} these copies?"):
            raise typer.Exit(1)
        job = service.campaign(query(), _admin(by), action=action, reason=reason, expect=preview.messages)
        _follow(service, job, wait)


def clawbacks(
    job: Annotated[str | None, typer.Argument(help="Show this job and every recipient's status.")] = None,
    org: OrgOption = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 30,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    config: ConfigOption = None,
) -> None:
    """Clawback jobs, newest first, or one job in detail."""
    with runtime(config, migrate=True) as rt:
        service = _service(rt)
        views = [service.jobs.job(job)] if job else service.jobs.jobs(organisation=org, limit=limit)
    for view in views:
        _show(view, as_json=as_json, items=job is not None)


def _follow(service: Clawback, job: JobView, wait: bool) -> None:
    out.print(f"clawback job {job.id}: {job.total} recipients", markup=False)
    if not wait:
        out.print(f"the server works it off; see `mailwarden clawbacks {job.id}`", markup=False)
        return

    def progress(view: JobView) -> None:
        if view.running and sys.stderr.isatty():
            sys.stderr.write(f"\r{view.done}/{view.total} done")
            sys.stderr.flush()

    async def work() -> JobView:
        try:
            return await service.until_done(job.id, progress)
        finally:
            await service.aclose()

    _show(asyncio.run(work()), as_json=False, items=True)


def _show(view: JobView, *, as_json: bool, items: bool) -> None:
    counts = {status.value: n for status, n in sorted(view.counts.items())}
    if as_json:
        row: dict[str, Any] = {
            "id": view.id, "organisation": view.organisation, "kind": view.kind.value, "action": view.action.value,
            "requested_by": view.requested_by, "reason": view.reason, "created_at": view.created_at.isoformat(),
            "finished_at": view.finished_at.isoformat() if view.finished_at else None, "counts": counts,
            "items": [{"message_id": i.message_id, "recipient": i.recipient, "status": i.status.value,
                       "detail": i.detail, "attempts": i.attempts} for i in view.items],
        }  # fmt: skip
        out.print(json.dumps(row, ensure_ascii=False), markup=False)
        return
    state = "running" if view.running else "finished"
    summary = ", ".join(f"{k} {v}" for k, v in counts.items())
    out.print(
        f"{view.id} {view.kind.value} {view.action.value} by {view.requested_by} ({state}): {summary}", markup=False
    )
    if items and view.items:
        table = DataTable("message", "recipient", "status", "detail")
        for i in view.items:
            table.add_row(i.message_id, i.recipient, i.status.value, i.detail)
        out.print(table)


# ---- connectors ------------------------------------------------------------------------------
def _read_mapping(path: Path, what: str) -> dict[str, Any]:
    text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(
            f"{path}: not valid {'TOML' if path.suffix == '.toml' else 'JSON'} ({exc})", field=what
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must hold an object", field=what)
    return data


def _pairs(values: list[str] | None) -> dict[str, Any]:
    out_: dict[str, Any] = {}
    for pair in values or []:
        key, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"{pair!r}: use key=value")
        try:
            out_[key.strip()] = json.loads(value)
        except ValueError:
            out_[key.strip()] = value
    return out_


@connector_app.command("add")
def add_connector(
    organisation: Annotated[str, typer.Argument(help="Organisation.")],
    name: Annotated[str, typer.Argument(help="A name for the connector (e.g. m365, workspace, dovecot).")],
    kind: Annotated[str, typer.Option("--kind", help="graph, gmail or imap.")],
    domain: Annotated[list[str] | None, typer.Option("--domain", help="Domains it serves (default: all).")] = None,
    settings_file: Annotated[Path | None, typer.Option("--settings-file", help="JSON or TOML settings.")] = None,
    setting: Annotated[list[str] | None, typer.Option("--set", help="One setting, key=value.")] = None,
    secret_file: Annotated[
        Path | None, typer.Option("--secret-file", help="JSON (or TOML) with the secret; '-' reads stdin.")
    ] = None,
    by: ByOption = "cli",
    config: ConfigOption = None,
) -> None:
    """Add or change a mailbox connector (docs/clawback.md has each provider's settings and secret)."""
    settings = _read_mapping(settings_file, "settings") if settings_file else {}
    settings |= _pairs(setting)
    secret = _read_mapping(secret_file, "secret") if secret_file else None
    with runtime(config, migrate=True) as rt:
        info = _service(rt).put_connector(
            organisation, name, kind=kind, domains=domain or [], settings=settings, secret=secret, actor=by
        )
    out.print(f"connector {info.name} ({info.kind}) for {', '.join(info.domains) or 'every domain'}", markup=False)


@connector_app.command("list")
def list_connectors(org: OrgOption = None, config: ConfigOption = None) -> None:
    """Connectors and their settings (never their secrets)."""
    with runtime(config, migrate=True) as rt:
        infos = _service(rt).list_connectors(org)
    table = DataTable("organisation", "name", "kind", "domains", "settings", "changed")
    for i in infos:
        table.add_row(
            i.organisation, i.name, i.kind, ", ".join(i.domains) or "(all)", json.dumps(i.settings),
            f"{i.updated_at:%Y-%m-%d %H:%M} by {i.updated_by}",
        )  # fmt: skip
    out.print(table)


@connector_app.command("test")
def test_connector(
    organisation: Annotated[str, typer.Argument()],
    name: Annotated[str, typer.Argument()],
    mailbox: Annotated[str, typer.Argument(help="A mailbox to search (nothing is changed).")],
    config: ConfigOption = None,
) -> None:
    """Sign in and search one mailbox: proves the credentials and permissions."""
    with runtime(config, migrate=True) as rt:
        out.print(asyncio.run(_service(rt).test_connector(organisation, name, mailbox)), markup=False)


@connector_app.command("remove")
def remove_connector(
    organisation: Annotated[str, typer.Argument()],
    name: Annotated[str, typer.Argument()],
    by: ByOption = "cli",
    config: ConfigOption = None,
) -> None:
    """Remove a connector (its sealed secret goes with it)."""
    with runtime(config, migrate=True) as rt:
        _service(rt).remove_connector(organisation, name, actor=by)
    out.print(f"connector {name} removed", markup=False)


@connector_app.command("new-key")
def make_key() -> None:
    """Print a new key for `[clawback] key` (sealing connector secrets)."""
    from mailwarden.clawback.secrets import new_key

    out.print(new_key(), markup=False)
