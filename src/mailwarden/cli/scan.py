"""`mailwarden scan`: the pipeline over messages offline, verdicts shown (and recorded with --record)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from mailwarden import ids
from mailwarden.cli.common import ConfigOption, OrgOption, as_mail, err, error, out, runtime, styled
from mailwarden.cli.progress import reading
from mailwarden.enforce.record import monitor_record
from mailwarden.ingest.files import expand_paths
from mailwarden.model import Envelope, Message, Verdict
from mailwarden.model.direction import assumed_direction
from mailwarden.model.trace import EventRecord, MessageRecord
from mailwarden.service.runtime import offline_envelope

RECORD_BATCH = 200  # messages written per transaction by scan --record


def scan(
    paths: Annotated[list[Path], typer.Argument(help=".eml files, directories of them, or mbox files.")],
    config: ConfigOption = None,
    org: OrgOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per message.")] = False,
    record: Annotated[bool, typer.Option("--record", help="Write each result to message history.")] = False,
) -> None:
    """Run the pipeline over messages offline and show the verdicts (nothing is delivered or changed)."""
    with runtime(config, migrate=record) as rt:
        organisation, policy = rt.organisation_and_policy(org)
        files = expand_paths(paths)
        missing = [p for p in paths if not p.exists()]
        for p in missing:
            error(f"{p}: no such file or directory")
        rows: list[tuple[str, Message, Verdict]] = []
        pending: list[tuple[MessageRecord, list[EventRecord]]] = []
        failures = len(missing)

        async def run() -> None:
            nonlocal failures
            # a bar on stderr for long runs; JSON output stays clean for pipes
            with reading(files, "scanning", err, quiet=as_json) as items:
                for item in items:
                    message = as_mail(item)
                    if message is None:
                        failures += 1
                        continue
                    envelope = offline_envelope(message)
                    domains = organisation.domain_names if organisation else frozenset()
                    direction = assumed_direction(envelope.mail_from, envelope.rcpt_to, domains)
                    try:
                        verdict = await rt.pipeline.scan(
                            message, envelope, policy, organisation=organisation, direction=direction
                        )
                    except Exception as exc:  # the engine guards stages; this guards the engine itself
                        failures += 1
                        error(f"{item.source}: scan failed: {type(exc).__name__}: {exc}")
                        continue
                    if record:
                        pending.append(_record(message, envelope, verdict, organisation.name if organisation else None))
                        if len(pending) >= RECORD_BATCH:
                            rt.history.record_many(pending)
                            pending.clear()
                    if as_json:  # plain JSON lines: a pretty-printer costs more than the scan (decisions.md)
                        sys.stdout.write(json.dumps(_json_row(item.source, message, verdict), ensure_ascii=False))
                        sys.stdout.write("\n")
                    else:
                        rows.append((item.source, message, verdict))
                rt.history.record_many(pending)

        asyncio.run(run())
        if not as_json:
            _print_scan_table(rows)
        if failures:
            raise typer.Exit(1)


def _record(
    message: Message, envelope: Envelope, verdict: Verdict, organisation: str | None
) -> tuple[MessageRecord, list[EventRecord]]:
    return monitor_record(
        message_id=ids.new_id(envelope.received_at),
        message=message,
        envelope=envelope,
        verdict=verdict,
        organisation=organisation,
        source="scan",
        receive_detail="offline scan",
    )


def _json_row(source: str, message: Message, verdict: Verdict) -> dict[str, Any]:
    return {
        "file": source,
        "message_id": message.message_id,
        "from": message.from_address,
        "subject": message.subject,
        **verdict.as_dict(),
    }


def _print_scan_table(rows: list[tuple[str, Message, Verdict]]) -> None:
    """Fixed-width lines: readable in a terminal, greppable in a file, and fast for thousands of rows."""
    if rows:
        header = f"{'file':32} {'verdict':22} {'SCL':>3} {'BCL':>3} {'action (would be)':19} {'from':32} subject"
        out.print(f"[bold]{header}[/bold]")
    for source, message, verdict in rows:
        name = Path(source).name
        name = name if len(name) <= 32 else name[:31] + "…"
        sender = escape((message.from_address or "")[:32])
        category = verdict.category.value
        pad = " " * (22 - len(category))
        out.print(
            f"{escape(name):32} {styled(verdict.category)}{pad} {verdict.scl:>3} {verdict.bcl:>3} "
            f"{verdict.disposition.action.value:19} {sender:32} {escape(message.subject[:70])}",
            markup=True,
        )
    counts = Counter(v.category.value for _, _, v in rows)
    summary = ", ".join(f"{k}: {n}" for k, n in counts.most_common()) or "nothing scanned"
    out.print(f"{len(rows)} messages scanned — {summary}")
