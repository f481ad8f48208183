"""Hit rates of the spam heuristics per symbol and corpus set, what they alone catch, and what they cost.

    .venv-test/bin/python bench/heuristics.py [--corpus ../shared/corpus] [--limit N] [--jobs 1] [--dump FILE]
                                              [--quick]

Per symbol: the share of messages in each set where it fires. Then, with the heuristics alone (no
Bayes, no authentication facts, no organisation), the share of each set reaching the decide()
thresholds: spam score >= 5, phish score >= 5 / >= 10, BCL >= 7. Last, per set, the CPU time per
message (time.process_time, median / p95 / p99 / max) of (a) parsing: the MIME tree, the decoded text
and HTML bodies, the attachments, the URL list and the decoded address, subject and date fields (all
`Message` properties), and (b) `Heuristics.evaluate()` alone on that parsed message. CPU figures are
only comparable with --jobs 1 on a quiet machine. Run from the repository root.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from mailwarden.mail import authresults as auth_results
from mailwarden.model import Message
from mailwarden.model.scoring import (
    BULK_PREFIX,
    HIGH_CONFIDENCE_PHISH_THRESHOLD,
    MALWARE_PREFIX,
    PHISH_PREFIX,
    PHISH_THRESHOLD,
    SPAM_SCORE,
)
from mailwarden.pipeline.facts import ScanFacts
from mailwarden.pipeline.spam.heuristics import SYMBOLS, Heuristics

SETS = (
    ("phish", "phish", "*.eml"),
    ("m-ham", "modern-ham", "*.eml"),
    ("ham", "spamassassin/ham", "*"),
    ("hard", "spamassassin/hard_ham", "*"),
    ("spam", "spamassassin/spam", "*"),
)
BCL_THRESHOLD = 7
QUICK_FILES_PER_SET = 8


_HEURISTICS = Heuristics()


def _facts(message: Message) -> ScanFacts:
    headers = message.raw_headers("Authentication-Results")
    if not headers:
        return ScanFacts()
    dmarc = auth_results.parse(headers[0]).first("dmarc")
    return ScanFacts(auth={"dmarc": dmarc.result.lower()}) if dmarc is not None else ScanFacts()


def _parse(raw: bytes) -> Message:
    """A Message with everything the heuristics read from the model already computed: what every
    stage shares, parsed once per message by the model (model/message.py), not by the heuristics."""
    message = Message(raw)
    _ = message.email, message.text_parts, message.html_parts, message.attachments, message.urls
    _ = message.subject, message.message_id, message.date, message.from_address, message.from_display_name
    _ = message.to_addresses, message.cc_addresses, message.reply_to, message.return_path
    return message


def _scan(path: Path, auth: bool) -> tuple[list[tuple[str, str]], float, float]:
    """Symbols of one message, and the CPU seconds of its parse and of evaluate() alone."""
    raw = path.read_bytes()
    started = time.process_time()
    message = _parse(raw)
    parsed = time.process_time()
    facts = _facts(message) if auth else ScanFacts()
    before = time.process_time()
    _HEURISTICS.evaluate(message, facts)
    evaluated = time.process_time()
    return _HEURISTICS.symbols(message, facts), parsed - started, evaluated - before


def _scan_plain(path: Path) -> tuple[list[tuple[str, str]], float, float]:
    return _scan(path, False)


def _scan_auth(path: Path) -> tuple[list[tuple[str, str]], float, float]:
    return _scan(path, True)


def _percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not values:
        return 0.0
    return values[min(len(values) - 1, max(0, round(share * len(values) + 0.5) - 1))]


def _cost_row(label: str, seconds: list[float]) -> str:
    ms = sorted(1000 * s for s in seconds)
    figures = (_percentile(ms, 0.5), _percentile(ms, 0.95), _percentile(ms, 0.99), ms[-1] if ms else 0.0)
    return f"{label:16} " + " ".join(f"{f:8.2f}" for f in figures)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", default="/work/shared/corpus")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--show", help="print the files of this set where SYMBOL fires: set:SYMBOL")
    parser.add_argument("--dump", help="write one JSON line per message (set, file, symbols) here")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--auth-results",
        action="store_true",
        help="take dmarc= from each message's topmost Authentication-Results (the receiving site's verdict) "
        "as ctx.facts.auth, to see PHISH_DMARC_FAIL; without it no authentication facts are given",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a tiny run that checks the script works (CI): its figures mean nothing"
    )
    args = parser.parse_args()
    if args.quick:
        args.limit, args.jobs = QUICK_FILES_PER_SET, 1
    heuristics = Heuristics()
    weights = heuristics.settings.weights
    fired: dict[str, Counter[str]] = {}
    totals: dict[str, Counter[str]] = {}
    sizes: dict[str, int] = {}
    show_set, _, show_symbol = (args.show or "").partition(":")
    started = time.perf_counter()
    count = 0
    dump = open(args.dump, "w") if args.dump else None  # noqa: SIM115 - closed below
    scan = _scan_auth if args.auth_results else _scan_plain
    pool = ProcessPoolExecutor(max_workers=args.jobs) if args.jobs > 1 else None
    cost: dict[str, tuple[list[float], list[float]]] = {}
    for label, folder, pattern in SETS:
        files = sorted(p for p in (Path(args.corpus) / folder).glob(pattern) if p.is_file())
        if args.limit:
            files = files[: args.limit]
        sizes[label] = len(files)
        fired[label] = Counter()
        totals[label] = Counter()
        cost[label] = ([], [])
        results = pool.map(scan, files, chunksize=16) if pool is not None else map(scan, files)
        for path, (hits, parse_s, evaluate_s) in zip(files, results, strict=True):
            count += 1
            cost[label][0].append(parse_s)
            cost[label][1].append(evaluate_s)
            if dump is not None:
                dump.write(json.dumps({"set": label, "file": path.name, "symbols": dict(hits)}) + "\n")
            spam = phish = bulk = 0.0
            for code, detail in hits:
                fired[label][code] += 1
                w = weights.get(code, 0.0)
                if code.startswith(PHISH_PREFIX):
                    phish += w
                elif code.startswith(BULK_PREFIX):
                    bulk += w
                elif not code.startswith(MALWARE_PREFIX):
                    spam += w
                if label == show_set and code == show_symbol:
                    print(f"{path.name}\t{detail}")
            t = totals[label]
            t["spam>=5"] += spam >= SPAM_SCORE
            t["phish>=5"] += phish >= PHISH_THRESHOLD
            t["phish>=10"] += phish >= HIGH_CONFIDENCE_PHISH_THRESHOLD
            t["spam|phish>=5"] += spam >= SPAM_SCORE or phish >= PHISH_THRESHOLD
            t["bcl>=7"] += round(min(9.0, bulk)) >= BCL_THRESHOLD
            t["bcl 1-4"] += 1 <= round(bulk) <= 4
    elapsed = time.perf_counter() - started
    if pool is not None:
        pool.shutdown()
    if dump is not None:
        dump.close()
    if show_set:
        return 0
    labels = [label for label, _, _ in SETS]
    print(f"{'symbol':28} {'weight':>6} " + " ".join(f"{lab:>7}" for lab in labels))
    for code in SYMBOLS:
        row = " ".join(f"{100 * fired[lab][code] / max(1, sizes[lab]):6.1f}%" for lab in labels)
        print(f"{code:28} {weights.get(code, 0.0):6.1f} {row}")
    print()
    print(f"{'heuristics alone':28} {'':6} " + " ".join(f"{lab:>7}" for lab in labels))
    for key in ("spam>=5", "phish>=5", "phish>=10", "spam|phish>=5", "bcl>=7", "bcl 1-4"):
        row = " ".join(f"{100 * totals[lab][key] / max(1, sizes[lab]):6.1f}%" for lab in labels)
        print(f"{key:28} {'':6} {row}")
    print()
    print(f"CPU ms per message (time.process_time, {args.jobs} process{'es' if args.jobs > 1 else ''})")
    print(f"{'set / part':16} {'median':>8} {'p95':>8} {'p99':>8} {'max':>8}")
    for lab in labels:
        print(_cost_row(f"{lab} parse", cost[lab][0]))
        print(_cost_row(f"{lab} evaluate", cost[lab][1]))
    print(_cost_row("all parse", [s for p, _ in cost.values() for s in p]))
    print(_cost_row("all evaluate", [s for _, e in cost.values() for s in e]))
    print(f"\n{count} messages in {elapsed:.1f} s wall clock with {args.jobs} processes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
