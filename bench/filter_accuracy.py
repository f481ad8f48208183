"""Accuracy of the whole spam filter verdict (classifier bands + heuristics + decide()), not the model alone.

Every figure is measured on messages the model never learnt from:

* **The held-out split of corpus/spamassassin, grouped by source and by time** (`training.time_split`):
  per folder, messages are grouped by source (mailing list, else sender's registered domain), the groups
  ordered by time, the earlier half trains, the later half is tested; no source is in both. A fresh model
  is trained on the training half for each scoring: `hand` (the hand weights, the classifier built as the
  model before issue 16 was) and `learned` (`mailwarden train` on the training half: collection tokens pruned,
  weights learnt with grouped time-ordered cross-validation inside the half).
  `learned-grouped`: the same with the classifier's bands weighed on folds of unseen sources.
  `pruned`: the hand weights with the collection's own tokens left out of the classifier.
* **corpus/phish and corpus/modern-ham**, measurement only, with the model trained on all of
  corpus/spamassassin (`hand`: built as the model before issue 16 was; `learned`: `train` on all of
  spamassassin/, which is what `mailwarden train` ships; `--scoring shipped` scans them with the package's
  own files, through `SpamFilter.from_services` as `scan` and `serve` build it).

Positive = SCL >= 5 or a phish verdict (bulk alone is not). No network: no DNS block lists, no
authentication look-ups (the messages' own results are not trusted). Through the product's scan path:
`Pipeline` with the spam stage, `decide()`.

    .venv-test/bin/python bench/filter_accuracy.py [--corpus ../shared/corpus] [--limit N] [--scoring hand learned]
                                                   [--show SET] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from mailwarden.model import Category, Direction, Envelope, Message, PhishLevel, Policy
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
from mailwarden.pipeline.spam.training import (
    Sample,
    collection_tokens,
    corpus_files,
    load_samples,
    time_split,
    train,
    write_trained,
)
from mailwarden.service.runtime import offline_envelope

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
ORG = Organisation("bench", (Domain("example.com"),))
QUICK_FILES_PER_SET = 40
KINDS = ("spam", "ham", "hard_ham")


def hand_filter(train_set: Sequence[Sample], *, prune: bool = False) -> SpamFilter:
    """The filter as built before learned scoring: every token learnt (`prune`: but the collection's own),
    2-fold threshold, hand weights."""
    pruned = collection_tokens(train_set) if prune else frozenset()
    samples = [(s.tokens - pruned, s.is_spam) for s in train_set]
    held_out = held_out_evidence(samples)
    calibration = fit_calibration(held_out)
    threshold = pick_threshold(held_out, calibration, 0.001)
    classifier = Classifier(MemoryTokenStore(), calibration=calibration, threshold=threshold)
    for tokens, is_spam in samples:
        classifier.learn(tokens, is_spam)
    return SpamFilter(classifier, Heuristics(), SpamConfig())


def learned_filter(train_set: Sequence[Sample], *, grouped_bayes: bool = False) -> SpamFilter:
    """`mailwarden train` on these samples, its two files written and loaded the way `scan` and `serve` load
    the shipped ones (`[stages.spam] model` and `scoring`): what would ship, rare tokens pruned included."""
    trained = train(train_set, grouped_bayes=grouped_bayes)
    with tempfile.TemporaryDirectory(prefix="mw-accuracy-") as tmp:  # both files are read as the stage is built
        model, scoring = Path(tmp) / "default-model.tsv.gz", Path(tmp) / "scoring.json"
        write_trained(trained, model, scoring, "bench")
        return configured_filter({"model": str(model), "scoring": str(scoring)})


def configured_filter(section: Mapping[str, object]) -> SpamFilter:
    """The spam stage as the service layer builds it from `[stages.spam]` (offline: the model in memory)."""
    from mailwarden.pipeline.services import StageServices

    services = StageServices(resolver=None, data_dir=Path(tempfile.gettempdir()), stage_config={"spam": dict(section)})  # type: ignore[arg-type]
    return SpamFilter.from_services(services)


def shipped_filter() -> SpamFilter:
    return configured_filter({})


class Result:
    def __init__(self) -> None:
        self.categories: Counter[str] = Counter()
        self.positives = 0
        self.totals: list[float] = []
        self.cpu_ms: list[float] = []
        self.hits: list[tuple[str, str, float]] = []

    @property
    def n(self) -> int:
        return sum(self.categories.values())

    def rate(self) -> float:
        return self.positives / self.n if self.n else 0.0

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
            result.positives += verdict.scl >= 5 or verdict.phish is not PhishLevel.NONE
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
    return (rank_sum - npos * (npos + 1) / 2) / (npos * nneg) if npos and nneg else 0.0


def cell(r: Result | None) -> str:
    if r is None:
        return "—"
    return f"{r.rate() * 100:6.2f} % ({r.positives}/{r.n})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--limit", type=int, default=0, help="files per set (0: all)")
    parser.add_argument(
        "--scoring",
        nargs="+",
        choices=("hand", "pruned", "learned", "learned-grouped", "shipped"),
        default=["hand", "learned", "shipped"],
    )
    parser.add_argument("--show", help="print the verdict of every message of this set (e.g. learned:modern-ham)")
    parser.add_argument(
        "--quick", action="store_true", help="a tiny run that checks the script works (CI): its figures mean nothing"
    )
    args = parser.parse_args()
    if args.quick:
        args.limit = QUICK_FILES_PER_SET
    sa = args.corpus / "spamassassin"

    def limited(paths: list[Path]) -> list[Path]:
        return paths[: args.limit] if args.limit else paths

    started = time.perf_counter()
    samples = load_samples((p, kind, kind == "spam") for kind in KINDS for p in limited(corpus_files(sa / kind)))
    paths = {p.name: p for kind in KINDS for p in limited(corpus_files(sa / kind))}
    train_idx, test_idx = time_split(samples)
    train_set = [samples[i] for i in train_idx]
    test = {kind: [paths[samples[i].name] for i in test_idx if samples[i].kind == kind] for kind in KINDS}
    modern = {name: limited(corpus_files(args.corpus / name)) for name in ("phish", "modern-ham")}
    print(
        f"split grouped by source and time: train {len(train_set)}, test {len(test_idx)} "
        f"({', '.join(f'{k} {len(v)}' for k, v in test.items())}); loaded in {time.perf_counter() - started:.1f} s"
    )
    results: dict[str, dict[str, Result]] = {}
    aucs: dict[str, tuple[float, float]] = {}
    for scoring in args.scoring:
        started = time.perf_counter()
        if scoring == "shipped":  # the package's own model and scoring, built as scan and serve build them
            full = shipped_filter()
            results[scoring] = {name: run(full, files) for name, files in modern.items()}
            aucs[scoring] = (math.nan, roc_auc(results[scoring]["phish"].totals, results[scoring]["modern-ham"].totals))
            continue
        if scoring == "hand":
            split_filter, full_filter = hand_filter(train_set), hand_filter(samples)
        elif scoring == "pruned":  # hand weights, the collection's own tokens left out of the classifier
            split_filter, full_filter = hand_filter(train_set, prune=True), hand_filter(samples, prune=True)
        else:
            grouped = scoring == "learned-grouped"  # bands weighed on folds of unseen sources
            split_filter = learned_filter(train_set, grouped_bayes=grouped)
            full_filter = learned_filter(samples, grouped_bayes=grouped)
        print(f"{scoring}: trained in {time.perf_counter() - started:.1f} s")
        r = {kind: run(split_filter, test[kind]) for kind in KINDS}
        r.update({name: run(full_filter, files) for name, files in modern.items()})
        results[scoring] = r
        aucs[scoring] = (
            roc_auc(r["spam"].totals, r["ham"].totals + r["hard_ham"].totals),
            roc_auc(r["phish"].totals, r["modern-ham"].totals),
        )
    print()
    print("| scoring | spam caught | ham flagged | hard_ham flagged | phish caught | modern-ham flagged "
          "| split AUC | modern AUC | CPU ms/msg median (p95) |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for scoring, r in results.items():
        cpu = sorted(ms for res in r.values() for ms in res.cpu_ms)
        print(
            f"| {scoring} | {cell(r.get('spam'))} | {cell(r.get('ham'))} | {cell(r.get('hard_ham'))} "
            f"| {cell(r['phish'])} "
            f"| {cell(r['modern-ham'])} | {aucs[scoring][0]:.4f} | {aucs[scoring][1]:.4f} "
            f"| {statistics.median(cpu):.2f} ({cpu[int(len(cpu) * 0.95)]:.2f}) |"
        )
    for scoring, r in results.items():
        p = r["phish"]
        print(
            f"{scoring}: phish as phish {p.share(Category.PHISH, Category.HIGH_CONFIDENCE_PHISH) * 100:.2f} %, "
            f"as spam {p.share(Category.SPAM, Category.HIGH_CONFIDENCE_SPAM) * 100:.2f} %"
        )
    split = [name for name in args.scoring if name != "shipped"]
    if split:
        print(f"ROC AUC of the total score (spam vs ham + hard_ham): {aucs[split[-1]][0]:.4f}")
    if args.show:
        scoring, _, name = args.show.rpartition(":")
        for file, category, total in results[scoring or args.scoring[-1]][name].hits:
            print(f"{args.show}\t{file}\t{category}\t{total}")


if __name__ == "__main__":
    main()
