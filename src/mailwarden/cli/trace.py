"""`mailwarden trace`: search message history, or show one message's timeline."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.text import Text

from mailwarden.cli.common import ConfigOption, DataTable, OrgOption, out, runtime, styled
from mailwarden.errors import MailwardenError
from mailwarden.model import Action, Category, Direction
from mailwarden.model.provider import Agreement, ProviderCategory, ProviderVerdict
from mailwarden.service.runtime import Runtime
from mailwarden.store import HistoryQuery


def when(value: str | None) -> datetime | None:
    """`2h`, `3d`, `30m` ago, or an ISO date/time (UTC when no zone is given)."""
    if value is None:
        return None
    match = re.fullmatch(r"(\d+)([mhd])", value.strip())
    if match:
        unit = {"m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
        return datetime.now(UTC) - timedelta(**{unit: int(match.group(1))})
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is neither an age like 24h / 7d nor an ISO date") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def trace(
    config: ConfigOption = None,
    message: Annotated[str | None, typer.Option("--id", help="Show one message's detail and timeline.")] = None,
    since: Annotated[str | None, typer.Option(help="Start: an age (24h, 7d) or an ISO date.")] = None,
    until: Annotated[str | None, typer.Option(help="End: an age or an ISO date.")] = None,
    sender: Annotated[str | None, typer.Option(help="Sender address, or @domain.")] = None,
    recipient: Annotated[str | None, typer.Option(help="Recipient address, or @domain.")] = None,
    subject: Annotated[str | None, typer.Option(help="Words that must all appear in the subject.")] = None,
    message_id: Annotated[str | None, typer.Option("--message-id", help="Internet Message-ID.")] = None,
    direction: Annotated[Direction | None, typer.Option(help="inbound, outbound or internal.")] = None,
    verdict: Annotated[Category | None, typer.Option(help="Verdict category.")] = None,
    action: Annotated[Action | None, typer.Option(help="Action taken (or that would have been).")] = None,
    org: OrgOption = None,
    provider_verdict: Annotated[
        ProviderCategory | None,
        typer.Option("--provider-verdict", help="The mail provider's verdict of a journal copy."),
    ] = None,
    agreement: Annotated[
        Agreement | None,
        typer.Option(
            help="The provider's verdict against mailwarden's: provider_missed (the provider passed, mailwarden "
            "flagged spam, phish or malware), provider_only (the reverse), agree, differ, unknown."
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    cursor: Annotated[str | None, typer.Option(help="Next page: the cursor printed under the last page.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Search message history (newest first), or show one message's timeline with --id."""
    with runtime(config) as rt:
        if not rt.is_initialised():
            raise MailwardenError("the database is not initialised: run `mailwarden init` first")
        if message:
            _print_detail(rt, message, as_json)
            return
        query = HistoryQuery(
            start=when(since),
            end=when(until),
            sender=sender,
            recipient=recipient,
            subject=subject,
            internet_message_id=message_id,
            direction=direction,
            category=verdict,
            action=action,
            organisation=org,
            provider_category=provider_verdict,
            agreement=agreement,
            limit=limit,
            cursor=cursor,
        )
        page = rt.history.search(query)
        if as_json:
            for item in page.items:
                out.print_json(json.dumps(_jsonable(item.__dict__)), indent=None)
            return
        table = DataTable(header_style="bold")
        for column in ("id", "received (UTC)", "direction", "from", "to", "subject", "verdict", "SCL", "action"):
            table.add_column(column, no_wrap=True, overflow="ellipsis")
        for item in page.items:
            table.add_row(
                item.id,
                item.received_at.strftime("%Y-%m-%d %H:%M:%S"),
                item.direction.value,
                item.sender,
                ", ".join(item.recipients[:2]) + (" …" if len(item.recipients) > 2 else ""),
                item.subject[:50],
                Text.from_markup(styled(item.category)),
                str(item.scl),
                item.action.value + ("" if item.applied else " (would)"),
            )
        out.print(table)
        out.print(
            f"{len(page.items)} message{'' if len(page.items) == 1 else 's'}"
            + (f" — next page: --cursor {page.next_cursor}" if page.next_cursor else "")
        )


def _print_detail(rt: Runtime, message_id: str, as_json: bool) -> None:
    detail = rt.history.get(message_id)
    if as_json:
        data = {
            "summary": detail.summary.__dict__,
            "verdict": detail.verdict,
            "recipients": [r.__dict__ for r in detail.recipients],
            "events": [e.__dict__ for e in detail.events],
        }
        out.print_json(json.dumps(_jsonable(data)))
        return
    s = detail.summary
    out.print(f"[bold]{escape(s.subject or '(no subject)')}[/bold]")
    out.print(f"id {s.id}  Message-ID {s.internet_message_id or '-'}")
    out.print(f"from {s.sender or '<>'} ({s.from_address or '-'})  {s.direction.value}, {s.mode.value} mode")
    out.print(
        f"verdict {styled(s.category)}  SCL {s.scl}  BCL {s.bcl}  action {s.action.value}"
        + ("" if s.applied else " (would have; not applied)")
    )
    if s.provider is not None:
        p = s.provider
        out.print(
            f"provider {p.provider.value}: {p.category.value}"
            + (f"  SCL {p.scl}" if p.scl is not None else "")
            + (f"  BCL {p.bcl}" if p.bcl is not None else "")
            + (f"  ({s.agreement.value.replace('_', ' ')})" if s.agreement else "")
            + f"  {escape(p.shown())}"
        )
    table = DataTable(title="recipients", header_style="bold")
    table.add_column("address")
    table.add_column("field")
    table.add_column("status")
    for r in detail.recipients:
        table.add_row(r.address, r.field, r.status.value)
    out.print(table)
    timeline = DataTable(title="timeline", header_style="bold")
    for column in ("time (UTC)", "event", "recipient", "detail"):
        timeline.add_column(column)
    for e in detail.events:
        at = e.at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if e.at else ""
        text = e.detail + (f" [{e.smtp_reply}]" if e.smtp_reply else "")
        timeline.add_row(at, e.type.value, e.recipient or "", text)
    out.print(timeline)
    findings = [f for st in detail.verdict.get("stages", []) for f in st.get("findings", [])]
    if findings:
        out.print("findings: " + ", ".join(f"{f['code']}({f['score']:g})" for f in findings))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, ProviderVerdict):
        return value.as_dict()
    if hasattr(value, "value") and not isinstance(value, int | float | str):
        return value.value
    return value
