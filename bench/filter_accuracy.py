"""Accuracy of the whole spam filter verdict (classifier bands + heuristics + decide()), not the model alone.

Part 1, the peers' split (docs/peers.md): per class of corpus/spamassassin, sorted file names, train a
fresh model on the even indexes (calibration and threshold from 2-fold scores inside the training half),
run the spam stage and decide() on the odd ones. "caught" = the verdict is not clean (spam, high-confidence
spam, phish, bulk: every one of them leaves the inbox under the default policy).
Part 2: the shipped model (trained on all of corpus/spamassassin) on corpus/phish and corpus/modern-ham.

No network: no DNS block lists, no authentication look-ups (the messages' own results are not trusted).

    .venv-test/bin/python bench/filter_accuracy.py [--corpus ../shared/corpus] [--limit N] [--show SET] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from mailwarden.model import Category, Direction, Envelope, Message, Policy
from mailwarden.model.org import Domain, Organisation
from mailwarden.pipeline.engine import Pipeline
from mailwarden.pipeline.spam.classifier import (
    Classifier,
    fit_calibration,
    held_out_evidence,
    pick_threshold,
)
from mailwarden.pipeline.spam.heuristics import Heuristics
from mailwarden.pipeline.spam.stage import SpamConfig, SpamFilter
from mailwarden.pipeline.spam.statstore import MemoryTokenStore
from mailwarden.pipeline.spam.tokens import tokenize
from mailwarden.service.runtime import offline_envelope

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
ORG = Organisation("bench", (Domain("example.com"),))
QUICK_FILES_PER_SET = 40


def files(directory: Path, limit: int = 0) -> list[Path]:
    out = [p for p in sorted(directory.iterdir()) if p.is_file() and p.suffix not in (".tsv", ".md")]
    return out[:limit] if limit else out


def halves(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    return paths[0::2], paths[1::2]


def trained_filter(train: Sequence[tuple[Path, bool]]) -> SpamFilter:
    samples = [(tokenize(Message(p.read_bytes())), y) for p, y in train]
    held_out = held_out_evidence(samples)
    calibration = fit_calibration(held_out)
    threshold = pick_threshold(held_out, calibration, 0.001)
    classifier = Classifier(MemoryTokenStore(), calibration=calibration, threshold=threshold)
    for tokens, is_spam in samples:
        classifier.learn(tokens, is_spam)
    return SpamFilter(classifier, Heuristics(), SpamConfig())


def shipped_filter() -> SpamFilter:
    from mailwarden.pipeline.services import StageServices

    return SpamFilter.from_services(StageServices(resolver=None, data_dir=Path("/tmp")))  # type: ignore[arg-type]


class Result:
    def __init__(self) -> None:
        self.categories: Counter[str] = Counter()
        self.totals: list[float] = []
        self.cpu_ms: list[float] = []
        self.hits: list[tuple[str, str, float]] = []

    @property
    def n(self) -> int:
        return sum(self.categories.values())

    def caught(self) -> float:
        return 1 - self.categories[Category.CLEAN.value] / self.n if self.n else 0.0

    def share(self, *cats: Category) -> float:
        return sum(self.categories[c.value] for c in cats) / self.n if self.n else 0.0


def run(spam: SpamFilter, paths: Sequence[Path]) -> Result:
    pipeline = Pipeline({Direction.INBOUND: [spam]})
    result = Result()

    async def go() -> None:
        for path in paths:
            message = Message(path.read_bytes())
            envelope: Envelope = offline_envelope(message)
            started = time.process_time()
            verdict = await pipeline.scan(message, envelope, Policy(), organisation=ORG, direction=Direction.INBOUND)
            result.cpu_ms.append((time.process_time() - started) * 1000)
            result.categories[verdict.category.value] += 1
            phish = sum(f.score for f in verdict.findings if f.code.startswith("PHISH_"))
            result.totals.append(verdict.score + phish)
            result.hits.append((path.name, verdict.category.value, round(verdict.score + phish, 2)))

    asyncio.run(go())
    return result


def roc_auc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    ranked = sorted([(s, 1) for s in positives] + [(s, 0) for s in negatives])
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        rank_sum += (i + j + 1) / 2 * sum(1 for k in range(i, j) if ranked[k][1])
        i = j
    npos, nneg = len(positives), len(negatives)
    return (rank_sum - npos * (npos + 1) / 2) / (npos * nneg)


def line(name: str, r: Result, what: str) -> str:
    cats = ", ".join(f"{k} {v}" for k, v in r.categories.most_common())
    return f"{name:10} {r.n:5}  {what} {r.caught() * 100:6.2f}%   ({cats})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--limit", type=int, default=0, help="files per set (0: all)")
    parser.add_argument("--show", help="print the verdict of every message of this set")
    parser.add_argument(
        "--quick", action="store_true", help="a tiny run that checks the script works (CI): its figures mean nothing"
    )
    args = parser.parse_args()
    if args.quick:
        args.limit = QUICK_FILES_PER_SET
    sa = args.corpus / "spamassassin"
    split = {name: halves(files(sa / name, args.limit)) for name in ("ham", "hard_ham", "spam")}
    train = [(p, name == "spam") for name, (tr, _) in split.items() for p in tr]
    started = time.perf_counter()
    spam = trained_filter(train)
    print(f"part 1: trained on {len(train)} messages (even halves) in {time.perf_counter() - started:.1f} s")
    results: dict[str, Result] = {name: run(spam, test) for name, (_, test) in split.items()}
    print(line("spam", results["spam"], "caught        "))
    print(line("ham", results["ham"], "false positive"))
    print(line("hard_ham", results["hard_ham"], "false positive"))
    auc = roc_auc(results["spam"].totals, results["ham"].totals + results["hard_ham"].totals)
    print(f"ROC AUC of the total score (spam vs ham + hard_ham): {auc:.4f}")

    shipped = shipped_filter()
    part2 = {
        "phish": run(shipped, files(args.corpus / "phish", args.limit)),
        "modern-ham": run(shipped, files(args.corpus / "modern-ham", args.limit)),
    }
    results.update(part2)
    print("part 2: the shipped model (trained on all of spamassassin/)")
    print(line("phish", part2["phish"], "caught        "))
    p = part2["phish"]
    print(
        f"{'':10}        as phish {p.share(Category.PHISH, Category.HIGH_CONFIDENCE_PHISH) * 100:.2f}%, "
        f"as spam {p.share(Category.SPAM, Category.HIGH_CONFIDENCE_SPAM) * 100:.2f}%, "
        f"as bulk {p.share(Category.BULK) * 100:.2f}%"
    )
    print(line("modern-ham", part2["modern-ham"], "false positive"))
    print(f"ROC AUC phish vs modern-ham: {roc_auc(p.totals, part2['modern-ham'].totals):.4f}")
    cpu = [ms for r in results.values() for ms in r.cpu_ms]
    cpu.sort()
    print(
        f"spam stage + decide, CPU per message (time.process_time, parse included): median "
        f"{statistics.median(cpu):.2f} ms, p95 {cpu[int(len(cpu) * 0.95)]:.2f} ms, "
        f"p99 {cpu[int(len(cpu) * 0.99)]:.2f} ms"
    )
    if args.show:
        for name, category, total in results[args.show].hits:
            print(f"{args.show}\t{name}\t{category}\t{total}")


if __name__ == "__main__":
    main()
