"""What reading attachments (PDF and Office text and links, QR codes) changes in the spam filter's verdicts.

Runs the spam stage with the shipped model (as bench/filter_accuracy.py part 2) over the messages of each set
that carry a PDF, an Office file or a picture (attached, inline, or a data: URI in HTML), twice: with
`[stages.spam.attachments]` off (text and QR reading disabled: the filter as it was) and on (the defaults).
Messages without them get the same verdict either way (their attachment evidence is empty), so they are
counted but not run.

    .venv-test/bin/python bench/attachment_evidence.py [--corpus ../shared/corpus] [--sets phish modern-ham]
                                                       [--show] [--quick]

"caught" = the verdict is not clean (as in filter_accuracy.py). Measure only: nothing here trains anything.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections import Counter
from pathlib import Path

from mailwarden.model import Category, Direction, Message, Policy
from mailwarden.model.org import Domain, Organisation
from mailwarden.pipeline.engine import Pipeline
from mailwarden.pipeline.services import StageServices
from mailwarden.pipeline.spam.attached import AttachedLimits, attached_evidence
from mailwarden.pipeline.spam.stage import SpamFilter
from mailwarden.service.runtime import offline_envelope

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
ORG = Organisation("bench", (Domain("example.com"),))
DOCUMENTS = ("application/pdf", "application/x-ole-storage", "application/vnd.openxmlformats-officedocument")
IMAGES = ("image/png", "image/jpeg", "image/gif")
OFF = {"attachments": {"text": False, "qr": False}}
KINDS = ("pdf", "office", "image", "html-picture", "any")
NEW_SYMBOLS = ("QR_URL", "PHISH_QR_LURE", "PHISH_QR_SUSPICIOUS_URL")


def spam_filter(stage_config: dict[str, object]) -> SpamFilter:
    services = StageServices(resolver=None, data_dir=Path("/tmp"), stage_config={"spam": stage_config})  # type: ignore[arg-type]
    return SpamFilter.from_services(services)


def carried(message: Message) -> set[str]:
    kinds = set()
    for att in message.attachments:
        if att.real_type == "application/pdf":
            kinds.add("pdf")
        elif att.real_type.startswith(DOCUMENTS):
            kinds.add("office")
        elif att.real_type in IMAGES:
            kinds.add("image")
    if any("data:image/" in html for html in message.html_parts):
        kinds.add("html-picture")
    return kinds


async def verdict(spam: SpamFilter, raw: bytes) -> tuple[str, list[str]]:
    message = Message(raw)
    pipeline = Pipeline({Direction.INBOUND: [spam]})
    result = await pipeline.scan(
        message, offline_envelope(message), Policy(), organisation=ORG, direction=Direction.INBOUND
    )
    return result.category.value, [f.code for f in result.findings]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument(
        "--sets",
        nargs="+",
        default=["phish", "modern-ham", "spamassassin/ham", "spamassassin/hard_ham", "spamassassin/spam"],
    )
    parser.add_argument("--show", action="store_true", help="print every message whose verdict changed")
    parser.add_argument("--quick", action="store_true", help="20 files per set: checks the script works")
    args = parser.parse_args()
    before, after = spam_filter(OFF), spam_filter({})
    for name in args.sets:
        paths = sorted(p for p in (args.corpus / name).iterdir() if p.is_file() and p.suffix not in (".tsv", ".md"))
        if args.quick:
            paths = paths[:20]
        carrying: Counter[str] = Counter()
        caught = {kind: [0, 0] for kind in KINDS}
        symbols: Counter[str] = Counter()
        changed: list[str] = []
        cpu: list[float] = []
        qr = 0
        for path in paths:
            raw = path.read_bytes()
            kinds = carried(Message(raw))
            if not kinds:
                continue
            kinds.add("any")
            carrying.update(kinds)
            old, _ = asyncio.run(verdict(before, raw))
            fresh = Message(raw)
            started = time.process_time()
            evidence = attached_evidence(fresh, AttachedLimits())
            cpu.append((time.process_time() - started) * 1000)
            qr += bool(evidence.qr_codes)
            new, codes = asyncio.run(verdict(after, raw))
            symbols.update(c for c in codes if c in NEW_SYMBOLS)
            for kind in kinds:
                caught[kind][0] += old != Category.CLEAN.value
                caught[kind][1] += new != Category.CLEAN.value
            if old != new:
                changed.append(f"{name}\t{path.name}\t{old} -> {new}\t{','.join(sorted(kinds - {'any'}))}")
        print(f"{name}: {len(paths)} messages, {carrying['any']} carry a PDF, an Office file or a picture")
        for kind in KINDS:
            if carrying[kind]:
                old_n, new_n = caught[kind]
                print(
                    f"  {kind:7} {carrying[kind]:4} messages; not clean before {old_n} "
                    f"({old_n / carrying[kind]:.1%}), after {new_n} ({new_n / carrying[kind]:.1%})"
                )
        if cpu:
            cpu.sort()
            print(
                f"  reading attachments, CPU per carrying message: median {statistics.median(cpu):.2f} ms, "
                f"p95 {cpu[int(len(cpu) * 0.95)]:.2f} ms, max {cpu[-1]:.2f} ms, sum {sum(cpu):.0f} ms; "
                f"{qr} with a QR code; symbols {dict(symbols)}"
            )
        if args.show:
            print("\n".join(changed))


if __name__ == "__main__":
    main()
