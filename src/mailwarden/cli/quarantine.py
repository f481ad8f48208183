"""`mailwarden quarantine list|release|delete|expire|digest`: the quarantine from the command line.

The CLI acts as an administrator. It owns no delivery queue (the server does): a release is recorded
here and the running server queues it within `[quarantine] release_interval_seconds`.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Annotated

import typer

from mailwarden.cli.common import ConfigOption, DataTable, out, runtime
from mailwarden.model.quarantine import Reason, Status
from mailwarden.service.quarantine_jobs import digests_for, quarantine_for
from mailwarden.store.quarantine import QuarantineQuery

quarantine_app = typer.Typer(help="The quarantine: list, release, delete, expire, digests.", no_args_is_help=True)

ActorOption = Annotated[str, typer.Option("--by", help="Who acts (recorded in the trace and audit log).")]


@quarantine_app.command("list")
def list_entries(
    status: Annotated[Status | None, typer.Option(help="Only entries in this state.")] = None,
    reason: Annotated[Reason | None, typer.Option(help="Only entries held for this reason.")] = None,
    recipient: Annotated[str | None, typer.Option(help="Only entries for this recipient.")] = None,
    sender: Annotated[str | None, typer.Option(help="Sender address, or @domain.")] = None,
    subject: Annotated[str | None, typer.Option(help="Words the subject contains.")] = None,
    org: Annotated[str | None, typer.Option("--org", help="Only this organisation.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    config: ConfigOption = None,
) -> None:
    """Quarantine entries, newest first."""
    with runtime(config, migrate=True) as rt:
        query = QuarantineQuery(
            organisation=org,
            recipient=recipient,
            reason=reason,
            status=status,
            sender=sender,
            subject=subject,
            limit=limit,
        )
        page = quarantine_for(rt).list(query)
    if as_json:
        for e in page.items:
            row = {
                "id": e.id,
                "message_id": e.message_id,
                "recipient": e.recipient,
                "reason": e.reason.value,
                "status": e.status.value,
                "would_have": e.would_have,
                "sender": e.sender,
                "subject": e.subject,
                "received_at": e.received_at.isoformat(),
                "expires_at": e.expires_at.isoformat(),
            }
            out.print(json.dumps(row, ensure_ascii=False), markup=False)
        return
    table = DataTable("id", "received", "recipient", "reason", "status", "sender", "subject")
    for e in page.items:
        status_text = e.status.value + (" (would have)" if e.would_have else "")
        table.add_row(
            e.id,
            f"{e.received_at:%Y-%m-%d %H:%M}",
            e.recipient,
            e.reason.value,
            status_text,
            e.sender or "<>",
            e.subject,
        )
    out.print(table)


@quarantine_app.command("release")
def release(
    entry_id: str,
    to: Annotated[
        list[str] | None, typer.Option("--to", help="Release to this original recipient only (repeatable).")
    ] = None,
    by: ActorOption = "cli",
    config: ConfigOption = None,
) -> None:
    """Release a message (to all its quarantined recipients, or those given) without re-filtering."""
    with runtime(config, migrate=True) as rt:
        released = quarantine_for(rt).release(entry_id, by, to or None)
    for e in released:
        out.print(f"released {e.id} to {e.recipient}; the server queues it for delivery")


@quarantine_app.command("delete")
def delete(entry_id: str, by: ActorOption = "cli", config: ConfigOption = None) -> None:
    """Delete an entry (the message's copy goes when no other entry needs it)."""
    with runtime(config, migrate=True) as rt:
        entry = quarantine_for(rt).delete(entry_id, by)
    out.print(f"deleted {entry.id} ({entry.recipient})")


@quarantine_app.command("expire")
def expire(config: ConfigOption = None) -> None:
    """Remove entries past their retention now (the server also does this periodically)."""
    with runtime(config, migrate=True) as rt:
        count = quarantine_for(rt).expire(datetime.now(UTC))
    out.print(f"{count} entries expired")


@quarantine_app.command("digest")
def digest(
    show: Annotated[str | None, typer.Option("--show", help="Print the digest this recipient would get.")] = None,
    force: Annotated[bool, typer.Option(help="Ignore the policy's frequency.")] = False,
    config: ConfigOption = None,
) -> None:
    """Who is due a digest (the server sends them); with --show, the digest e-mail itself."""
    with runtime(config, migrate=True) as rt:
        digests = digests_for(rt)
        due = digests.due(force=force or show is not None)
        if show is not None:
            entries = due.get(show.strip().lower())
            if not entries:
                out.print(f"nothing new in quarantine for {show}")
                return
            sys.stdout.write(digests.compose(show.strip().lower(), entries).decode("utf-8", "replace"))
            return
    for recipient, entries in sorted(due.items()):
        out.print(f"{recipient}: {len(entries)} new", markup=False)
    if not due:
        out.print("no digest is due")
