"""Retro-hunt benchmark: kept messages rescanned per second, and what keeping and a running hunt cost live
scanning in `mailwarden serve`.

Usage: .venv-test/bin/python bench/hunt.py [--corpus /work/shared/corpus] [--keep 2000] [--repeat 3]
                                           [--messages 2000] [--concurrency 32] [--quick]

1. Keep. A real `mailwarden serve` (the configuration of bench/journal_pipeline.py: SQLite, one journal
   listener, monitor mode, `[retention]` defaults: 7 days, zstd level 3) is sent `--keep` corpus messages
   (SpamAssassin ham, hard ham, spam and mime-edge, read-only from the corpus, in turn) as BCC journal
   copies over SMTP; it records and keeps each as production does. Printed: messages kept, MB as
   received and stored.
2. Rescan. The server stopped, this process rescans every kept message `--repeat` times (`Hunter.run`:
   the product's scan path with the default pipeline, no history record written), each time as a new
   hunt. Printed: messages per second and CPU ms per message (medians), verdicts changed.
3. Live. bench/journal_pipeline.py's load (`--messages` ~4 KB journal copies from `--concurrency`
   clients, fsync on) is measured `--repeat` times in three set-ups: keeping off (what the pipeline did
   before retro-hunt), keeping on, and keeping on while the server runs a rescan of everything kept in
   its background hunt process (queued as the API queues it). Printed per set-up: processed and
   accepted msg/s (medians) and the ratio to keeping off; for the hunt, how many messages it rescanned
   during the measured load. The issue's bound: no set-up below 0.80 of keeping off.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import journal_pipeline as jp  # the bench beside this one

from mailwarden.logs import configure as configure_logging
from mailwarden.service.config import load_config
from mailwarden.service.hunt import Hunter, new_hunt
from mailwarden.service.runtime import Runtime
from mailwarden.store.hunts import FINISHED, HuntKind, HuntStore
from mailwarden.store.kept import KeptStore

CORPUS_DIRS = ("spamassassin/ham", "spamassassin/hard_ham", "spamassassin/spam", "mime-edge")
QUICK = {"keep": 60, "repeat": 1, "messages": 100, "warmup": 10, "concurrency": 4}
MB = 1024 * 1024
# the original recipient encoded in the journal address, so a copy without To/Cc still unwraps
RECIPIENT = f"journal+in.alice={jp.ORG_DOMAIN}@{jp.JOURNAL_ADDRESS.split('@')[1]}"
SKIPPED = (".md", ".tsv", ".com")  # the corpus's notes and the bare eicar.com (not a message)


def corpus_mails(root: Path, count: int) -> list[jp.Mail]:
    """`count` corpus messages, the directories in turn, each as a BCC journal copy (CRLF, dot-stuffed)."""
    lists = [sorted(p for p in (root / d).rglob("*") if p.is_file() and p.suffix not in SKIPPED) for d in CORPUS_DIRS]
    mails = []
    for index in range(count):
        files = lists[index % len(lists)]
        raw = files[(index // len(lists)) % len(files)].read_bytes()
        if raw.startswith(b"From "):  # the mbox envelope line of the SpamAssassin files
            raw = raw.split(b"\n", 1)[1]
        raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        mails.append(jp.Mail("sender@corpus.example", RECIPIENT, _terminated(raw)))
    return mails


def _terminated(data: bytes) -> bytes:
    data = (b"." + data if data.startswith(b".") else data).replace(b"\r\n.", b"\r\n..")
    return (data if data.endswith(b"\r\n") else data + b"\r\n") + b".\r\n"


def server(root: Path, *, keep: bool) -> jp.ServerUnderTest:
    root.mkdir(parents=True, exist_ok=True)
    s = jp.ServerUnderTest(root, fsync=True, max_connections=128, processing=[])
    if not keep:
        s.config.write_text(s.config.read_text() + "[retention]\nkeep_days = 0\n")
    return s


def keep_phase(root: Path, args: argparse.Namespace) -> Runtime:
    s = server(root, keep=True)
    s.start()
    try:
        mails = corpus_mails(Path(args.corpus), args.keep)
        asyncio.run(jp.send_all(s.port, mails, 4, False))
        jp._wait_for_history(s, 1, timeout=120)
    finally:
        s.stop()
    rt = Runtime(load_config(s.config, environ={}))
    count, raw, stored = KeptStore(rt.db, rt.blobs).totals()
    print(
        f"kept: {count} messages ({args.keep} sent; copies of one message merge), {raw / MB:.1f} MB as received, "
        f"{stored / MB:.1f} MB stored (zstd level {rt.config.retention.zstd_level})"
    )
    return rt


def rescan_phase(rt: Runtime, args: argparse.Namespace) -> None:
    rates, cpu, changed = [], [], 0
    for _ in range(args.repeat):
        hunt = new_hunt(rt.db, HuntKind.RESCAN, created_by="bench", running=True)
        began, cpu_began = time.perf_counter(), time.process_time()
        final = asyncio.run(Hunter(rt).run(hunt))
        wall, used = time.perf_counter() - began, time.process_time() - cpu_began
        rates.append(final.done / wall)
        cpu.append(1000 * used / max(final.done, 1))
        changed = final.matched
    print(
        f"rescanned: {statistics.median(rates):.0f} messages/s, CPU {statistics.median(cpu):.2f} ms per message "
        f"(median of {args.repeat}; {changed} verdicts changed; one process, default pipeline)"
    )


def live_phase(root: Path, args: argparse.Namespace) -> None:
    load = argparse.Namespace(
        warmup=args.warmup, messages=args.messages, drain_timeout=120.0, profile=None, rate=None, client="pipelining"
    )
    case = jp.Case(True, args.concurrency, False)
    figures: dict[str, list[dict[str, float]]] = {"keeping off": [], "keeping on": [], "keeping on + hunt": []}
    progress: list[int] = []
    baseline = server(root.parent / "live-off", keep=False)
    run_no = 0
    for label, s in (("keeping off", baseline), ("keeping on", server(root, keep=True))):
        s.start()
        try:
            for _ in range(args.repeat):
                run_no += 1
                figures[label].append(jp._measure(s, case, load, run_no))
                if label == "keeping on":
                    run_no += 1
                    result, rescanned = _with_hunt(s, case, load, run_no)
                    figures["keeping on + hunt"].append(result)
                    progress.append(rescanned)
        finally:
            s.stop()
    _print_live(figures, progress, args)


def _with_hunt(
    s: jp.ServerUnderTest, case: jp.Case, load: argparse.Namespace, run_no: int
) -> tuple[dict[str, float], int]:
    """The load measured while the server runs a rescan of everything kept; how far the hunt got meanwhile."""
    rt = Runtime(load_config(s.config, environ={}))
    try:
        store = HuntStore(rt.db)
        hunt = new_hunt(rt.db, HuntKind.RESCAN, created_by="bench")
        deadline = time.monotonic() + 30
        while store.get(hunt.id).started_at is None and time.monotonic() < deadline:
            time.sleep(0.1)  # the server looks for queued hunts every 2 s
        before = store.get(hunt.id).done
        result = jp._measure(s, case, load, run_no)
        rescanned = store.get(hunt.id).done - before
        store.cancel(hunt.id)
        while store.get(hunt.id).state not in FINISHED:
            time.sleep(0.1)
        time.sleep(2.5)  # its process ends after its round; the next hunt waits for that
        return result, rescanned
    finally:
        rt.close()


def _print_live(figures: dict[str, list[dict[str, float]]], progress: list[int], args: argparse.Namespace) -> None:
    print(
        f"live scanning, journal_pipeline load: {args.messages} messages, {args.concurrency} clients, fsync on, "
        f"{os.cpu_count()} CPUs, median of {args.repeat}"
    )
    print(f"{'set-up':<20} {'proc msg/s':>10} {'acc msg/s':>9} {'ratio proc':>10} {'ratio acc':>9}")
    base = _medians(figures["keeping off"])
    for label, runs in figures.items():
        m = _medians(runs)
        processed, accepted = m["processed_per_second"], m["per_second"]
        print(
            f"{label:<20} {processed:>10.0f} {accepted:>9.0f}"
            f" {processed / base['processed_per_second']:>10.2f} {accepted / base['per_second']:>9.2f}"
        )
    for label, runs in figures.items():
        print(f"  {label} per run, proc msg/s: " + ", ".join(f"{r['processed_per_second']:.0f}" for r in runs))
    print(f"hunt progress during the measured load: {statistics.median(progress):.0f} messages rescanned (median)")


def _medians(runs: list[dict[str, float]]) -> dict[str, Any]:
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--corpus", default="/work/shared/corpus")
    parser.add_argument("--keep", type=int, default=2000, help="corpus messages sent to be kept")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; medians shown")
    parser.add_argument("--messages", type=int, default=2000, help="journal_pipeline messages per live run")
    parser.add_argument("--warmup", type=int, default=200, help="journal_pipeline warm-up messages per live run")
    parser.add_argument("--concurrency", type=int, default=32, help="journal_pipeline client connections")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--quick", action="store_true", help="a tiny run that checks the script works (CI)")
    args = parser.parse_args()
    configure_logging("error", "console")  # the rescans' own scan warnings are not the figures
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    with tempfile.TemporaryDirectory(prefix="mailwarden-hunt-bench-", dir=args.workdir) as tmp:
        root = Path(tmp) / "kept"
        rt = keep_phase(root, args)
        try:
            rescan_phase(rt, args)
        finally:
            rt.close()
        live_phase(root, args)


if __name__ == "__main__":
    main()
