"""DLP benchmark: text extraction plus every sensitive information type over the shared corpus.

    .venv-test/bin/python bench/dlp.py [--corpus ../shared/corpus] [--sets spamassassin,phish,...] [--limit N] [--quick]

Each message is parsed first (the MIME tree, timed apart: every stage shares it), then timed twice in
CPU time (time.process_time, not wall-clock): `message_texts` (headers, bodies, HTML to text, attachment
text) and `DlpScanner.scan` over those texts, with one custom type (pattern + keywords) beside the
built-in ones. Prints messages/s of CPU, median and p95 CPU ms per message, the slowest messages, and
how many messages had a match of each type and confidence, which is what a rule would see on this mail.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

from mailwarden.model.message import Message
from mailwarden.pipeline.dlp import CustomType, DlpScanner
from mailwarden.pipeline.extract import message_texts

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
QUICK_MESSAGES = 40


def corpus_files(root: Path, sets: list[str] | None) -> list[Path]:
    files = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        if sets and sub.name not in sets:
            continue
        for path in sorted(sub.rglob("*")):
            if path.is_file() and path.name not in {"README.md", "MANIFEST.tsv"} and not path.name.startswith("."):
                files.append(path)
    return files


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--sets", help="comma-separated corpus sets (default: all)")
    parser.add_argument("--limit", type=int, default=0, help="at most this many messages per run")
    parser.add_argument(
        "--quick", action="store_true", help="a tiny run that checks the script works (CI): its figures mean nothing"
    )
    args = parser.parse_args()
    if args.quick:
        args.limit = QUICK_MESSAGES
    files = corpus_files(args.corpus, args.sets.split(",") if args.sets else None)
    if args.limit:
        files = files[: args.limit]
    if not files:
        print(f"no messages under {args.corpus}", file=sys.stderr)
        return 1
    scanner = DlpScanner(
        [CustomType(name="project_code", pattern=r"PRJ-\d{4}-[A-Z]{3}", keywords=("project", "案件"), min_count=1)]
    )
    extract_ms: list[float] = []
    scan_ms: list[float] = []
    total_ms: list[float] = []
    chars = 0
    slowest: list[tuple[float, str]] = []
    seen: Counter[tuple[str, str]] = Counter()
    for path in files:
        message = Message(path.read_bytes())
        _ = message.email  # parsing is shared by every stage: not counted here
        t0 = time.process_time()
        texts = message_texts(message)
        t1 = time.process_time()
        matches = scanner.scan(texts)
        t2 = time.process_time()
        extract_ms.append((t1 - t0) * 1000)
        scan_ms.append((t2 - t1) * 1000)
        total_ms.append((t2 - t0) * 1000)
        chars += sum(len(t.text) for t in texts)
        slowest.append(((t2 - t0) * 1000, str(path.relative_to(args.corpus))))
        for m in matches:
            seen[(m.type, m.confidence)] += 1
    cpu_s = sum(total_ms) / 1000
    print(f"DLP bench: {len(files)} messages from {args.corpus} (all times are CPU time, time.process_time)")
    print(f"  text extracted: {chars / len(files) / 1000:.1f} k characters per message on average")
    print(f"  extraction + scan: {len(files) / cpu_s:.0f} messages per CPU second")
    for label, values in (("extraction", extract_ms), ("scan", scan_ms), ("extraction + scan", total_ms)):
        print(
            f"  {label:<18} median {statistics.median(values):.2f} ms  p95 {pct(values, 0.95):.2f} ms  "
            f"max {max(values):.1f} ms"
        )
    print("  slowest messages (CPU ms):")
    for ms, name in sorted(slowest, reverse=True)[:5]:
        print(f"    {ms:8.1f}  {name}")
    print("  messages with a match, by type and confidence:")
    for (type_, confidence), n in sorted(seen.items()):
        print(f"    {type_:<22} {confidence:<6} {n:5d}  ({100 * n / len(files):.1f} %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
