"""Parse cost: the floor of every scan. Compares the email package's policies on a corpus.

Usage: .venv-test/bin/python bench/parse.py [CORPUS_DIR] [--quick]   (default ../shared/corpus/spamassassin)

For each policy: parse, read every header, decode every leaf part. Then the same work through
mailwarden's Message (compat32, headers decoded on demand). Prints messages/second, median of 3 runs.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import statistics
import time
from pathlib import Path

from mailwarden.model import Message

QUICK_MESSAGES = 30


def load(corpus: Path, limit: int = 0) -> list[bytes]:
    paths = [p for p in sorted(corpus.rglob("*")) if p.is_file() and not p.name.endswith((".md", ".tsv"))]
    return [p.read_bytes() for p in (paths[:limit] if limit else paths)]


def stdlib_pass(raws: list[bytes], policy: email.policy.Policy) -> None:
    for raw in raws:
        msg = email.message_from_bytes(raw, policy=policy)
        for part in msg.walk():
            for _name, value in part.items():
                str(value)
            if not part.is_multipart():
                part.get_payload(decode=True)


def mailwarden_pass(raws: list[bytes]) -> None:
    for raw in raws:
        msg = Message(raw)
        _ = (msg.subject, msg.from_address, msg.to_addresses, msg.message_id, msg.date)
        _ = (msg.text_parts, msg.html_parts, msg.attachments, msg.urls)


def timed(fn, *args, runs: int = 3) -> float:
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        fn(*args)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=Path("../shared/corpus/spamassassin"))
    parser.add_argument(
        "--quick", action="store_true", help="a tiny run that checks the script works (CI): its figures mean nothing"
    )
    options = parser.parse_args()
    corpus = options.corpus
    raws = load(corpus, QUICK_MESSAGES if options.quick else 0)
    mb = sum(map(len, raws)) / 1e6
    print(f"corpus {corpus}: {len(raws)} messages, {mb:.1f} MB")
    for label, fn, args in (
        ("stdlib policy.default  (all headers, all parts)", stdlib_pass, (raws, email.policy.default)),
        ("stdlib policy.compat32 (all headers, all parts)", stdlib_pass, (raws, email.policy.compat32)),
        ("mailwarden Message (headers, bodies, URLs, attachments)", mailwarden_pass, (raws,)),
    ):
        seconds = timed(fn, *args, runs=1 if options.quick else 3)
        print(f"{label:58} {len(raws) / seconds:8.0f} msg/s  {mb / seconds:6.1f} MB/s")


if __name__ == "__main__":
    main()
