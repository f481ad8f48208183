"""`mailwarden scan`: the pipeline over messages offline, verdicts shown (and recorded with --record)."""

from __future__ import annotations

import signal
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.markup import escape

from mailwarden.cli.common import ConfigOption, OrgOption, err, error, out, runtime, styled
from mailwarden.cli.progress import advancing
from mailwarden.ingest.files import expand_paths
from mailwarden.model import Category
from mailwarden.model.trace import EventRecord, MessageRecord
from mailwarden.service.offline import (
    OfflineScanner,
    Row,
    ScanJobs,
    Scanned,
    ScanSettings,
    Unit,
    default_jobs,
    plan,
    scan_in_process,
)
from mailwarden.service.runtime import Runtime

RECORD_BATCH = 200  # messages written per transaction by scan --record

Scan = Callable[[Iterable[Unit]], Iterator[tuple[Unit, list[Scanned]]]]


def scan(
    paths: Annotated[list[Path], typer.Argument(help=".eml files, directories of them, or mbox files.")],
    config: ConfigOption = None,
    org: OrgOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per message.")] = False,
    record: Annotated[bool, typer.Option("--record", help="Write each result to message history.")] = False,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            help=(
                "Scanning processes (default: one per CPU this process may use, for runs of at least "
                "100 messages per process; 1 scans in this process)."
            ),
        ),
    ] = None,
) -> None:
    """Run the pipeline over messages offline and show the verdicts (nothing is delivered or changed)."""
    with runtime(config, migrate=record) as rt:
        organisation, policy = rt.organisation_and_policy(org)
        files = expand_paths(paths)
        missing = [p for p in paths if not p.exists()]
        for p in missing:
            error(f"{p}: no such file or directory")
        units = plan(files)
        settings = ScanSettings(rt.config, organisation, policy, as_json=as_json, record=record)
        processes = min(jobs or default_jobs(sum(u.messages for u in units)), len(units))
        rows: list[tuple[str, Row]] = []
        pending: list[tuple[MessageRecord, list[EventRecord]]] = []
        failures = len(missing)
        stdout = sys.stdout.buffer if as_json else None
        # a bar on stderr for long runs; JSON output stays clean for pipes
        bar = advancing("scanning", err, files=len(files), total=sum(u.size for u in units), quiet=as_json)
        with _scanning(settings, processes, rt) as results, bar as advance:
            for unit, scanned in results(units):
                for result in scanned:
                    if result.error is not None:
                        failures += 1
                        error(f"{result.source}: {result.error}")
                        continue
                    if result.record is not None:
                        pending.append(result.record)
                        if len(pending) >= RECORD_BATCH:
                            rt.history.record_many(pending)
                            pending.clear()
                    if stdout is not None and result.line is not None:
                        stdout.write(result.line)  # plain JSON lines (decisions.md)
                    elif result.row is not None:
                        rows.append((result.source, result.row))
                advance(unit.size, len(scanned))
        rt.history.record_many(pending)
        if stdout is not None:
            stdout.flush()
        else:
            _print_scan_table(rows)
        if failures:
            raise typer.Exit(1)


@contextmanager
def _scanning(settings: ScanSettings, processes: int, rt: Runtime) -> Iterator[Scan]:
    """How the units are scanned: in this process (`--jobs 1`, or one unit), or by scanning processes
    that end with the command, also on Ctrl-C or SIGTERM."""
    if processes <= 1:
        scanner = OfflineScanner(settings, rt.pipeline)
        try:
            yield lambda units: scan_in_process(scanner, units)
        finally:
            scanner.loop.close()
        return
    # multiprocessing runs the `mailwarden` script again in each process it starts (not `python -m`):
    # the command line's modules are then imported once, by the forkserver, instead of in each process
    script = getattr(sys.modules["__main__"], "__spec__", None) is None
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        with ScanJobs(settings, processes, preload=["mailwarden.cli"] if script else []) as jobs:
            yield jobs.run
    finally:
        signal.signal(signal.SIGTERM, previous)


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _print_scan_table(rows: list[tuple[str, Row]]) -> None:
    """Fixed-width lines: readable in a terminal, greppable in a file, and fast for thousands of rows."""
    if rows:
        header = f"{'file':32} {'verdict':22} {'SCL':>3} {'BCL':>3} {'action (would be)':19} {'from':32} subject"
        out.print(f"[bold]{header}[/bold]")
    for source, row in rows:
        name = Path(source).name
        name = name if len(name) <= 32 else name[:31] + "…"
        sender = escape(row.sender[:32])
        pad = " " * (22 - len(row.category))
        out.print(
            f"{escape(name):32} {styled(Category(row.category))}{pad} {row.scl:>3} {row.bcl:>3} "
            f"{row.action:19} {sender:32} {escape(row.subject[:70])}",
            markup=True,
        )
    counts = Counter(row.category for _, row in rows)
    summary = ", ".join(f"{k}: {n}" for k, n in counts.most_common()) or "nothing scanned"
    out.print(f"{len(rows)} messages scanned — {summary}")
