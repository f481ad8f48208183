"""Accuracy and cost of the content classifier alone, on the split the peers were measured on (docs/peers.md).

Part 1: per class of corpus/spamassassin, sort the file names; train a fresh model on the even indexes,
score the odd ones. The spam threshold T is picked on the training half only (2-fold scores within it:
the lowest T whose ham false-positive rate there is <= 0.1 %), never on the test half.
Part 2: a model trained on all of corpus/spamassassin scores corpus/phish and corpus/modern-ham.
Cost: CPU time per message (time.process_time, so other processes on the machine do not count) of
parsing, of tokenize() and of score() on the in-memory and the SQLite store, median and p95.
`--cv` chooses the model parameters by 5-fold cross-validation inside the training half.

    .venv-test/bin/python bench/accuracy.py [--corpus ../shared/corpus] [--without GROUP] [--with GROUP] [--cv]
                                            [--limit N] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from mailwarden.model.message import Message
from mailwarden.pipeline.spam.classifier import (
    DEFAULT_STRENGTH,
    Calibration,
    Classifier,
    fit_calibration,
    held_out_evidence,
    pick_threshold,
)
from mailwarden.pipeline.spam.statstore import MemoryTokenStore
from mailwarden.pipeline.spam.tokens import DEFAULT_FEATURES, FEATURES, tokenize
from mailwarden.store.db import Database
from mailwarden.store.tokens import SqlTokenStore

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
TARGET_FP = 0.001
QUICK_FILES_PER_SET = 40
Samples = Sequence[tuple[frozenset[str], bool]]
T = TypeVar("T")


class Timer:
    """CPU milliseconds of individual calls."""

    def __init__(self) -> None:
        self.ms: list[float] = []

    def time(self, fn: Callable[..., T], *args: Any) -> T:
        start = time.process_time()
        result = fn(*args)
        self.ms.append(1000 * (time.process_time() - start))
        return result

    def summary(self) -> str:
        ordered = sorted(self.ms)
        p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
        return f"median {statistics.median(ordered):.3f} ms, p95 {p95:.3f} ms CPU per message (n={len(ordered)})"


PARSE, TOKENIZE = Timer(), Timer()


def parsed(raw: bytes) -> Message:
    """A message with what earlier stages share already done: MIME tree, decoded bodies, URLs, attachments."""
    message = Message(raw)
    _ = message.email, message.text_parts, message.html_parts, message.urls, message.attachments
    return message


def load(directory: Path, features: frozenset[str], limit: int = 0) -> list[frozenset[str]]:
    files = [p for p in sorted(directory.iterdir()) if p.is_file() and p.suffix not in (".tsv", ".md")]
    files = files[:limit] if limit else files
    out = []
    for p in files:
        message = PARSE.time(parsed, p.read_bytes())
        out.append(TOKENIZE.time(partial(tokenize, features=features), message))
    return out


def train(samples: Samples, params: dict[str, Any]) -> Classifier:
    clf = Classifier(MemoryTokenStore(), **params)
    for tokens, is_spam in samples:
        clf.learn(tokens, is_spam)
    return clf


def roc_auc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    ranked = sorted([(s, 1) for s in positives] + [(s, 0) for s in negatives])
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        mean_rank = (i + j + 1) / 2
        rank_sum += mean_rank * sum(1 for k in range(i, j) if ranked[k][1])
        i = j
    npos, nneg = len(positives), len(negatives)
    return (rank_sum - npos * (npos + 1) / 2) / (npos * nneg)


def caught_at_fp(positives: Sequence[float], negatives: Sequence[float], max_fp: float) -> float:
    """Share of positives above the lowest threshold that keeps the negatives' FP rate <= max_fp."""
    allowed = int(max_fp * len(negatives))
    ordered = sorted(negatives, reverse=True)
    threshold = ordered[allowed] if allowed < len(ordered) else -1.0
    return sum(1 for s in positives if s > threshold) / len(positives)


def calibrate(samples: Samples, params: dict[str, Any]) -> tuple[float, Calibration]:
    """T and a calibration from the given (training) messages alone: 2-fold held-out scores."""
    held_out = held_out_evidence(samples, strength=params.get("strength", DEFAULT_STRENGTH))
    calibration = fit_calibration(held_out)
    return pick_threshold(held_out, calibration, TARGET_FP), calibration


def rate(values: Sequence[float], threshold: float) -> str:
    hits = sum(1 for v in values if v >= threshold)
    return f"{100 * hits / len(values):6.2f} % ({hits}/{len(values)})"


def cross_validate(samples: Samples, params: dict[str, Any], folds: int = 5) -> tuple[float, float]:
    """(mean spam caught at 0.25/0.5/1 % ham FP, ROC AUC) of pooled k-fold held-out evidence."""
    evidence: list[tuple[float, bool]] = []
    for fold in range(folds):
        clf = train([s for k, s in enumerate(samples) if k % folds != fold], params)
        evidence += [(clf.score(t).evidence, y) for k, (t, y) in enumerate(samples) if k % folds == fold]
    spam = [z for z, y in evidence if y]
    ham = [z for z, y in evidence if not y]
    return statistics.mean(caught_at_fp(spam, ham, fp) for fp in (0.0025, 0.005, 0.01)), roc_auc(spam, ham)


def parameter_search(samples: Samples, base: dict[str, Any]) -> None:
    grid: dict[str, list[Any]] = {
        "strength": [0.1, 0.25, 0.45, 1.0, 2.0],
        "assumed": [0.4, 0.5, 0.6],
        "min_deviation": [0.0, 0.05, 0.1, 0.2, 0.3],
        "max_tokens": [30, 60, 100, 150, 250, 400],
    }
    print("\n## 5-fold cross-validation inside the training half (one parameter varied, the others as given)")
    for key, values in grid.items():
        for value in values:
            objective, auc = cross_validate(samples, {**base, key: value})
            print(f"{key} = {value}: spam caught at 0.25/0.5/1 % FP (mean) {100 * objective:.1f} %, AUC {auc:.4f}")


def sql_score_timer(samples: Samples, test: Sequence[frozenset[str]], params: dict[str, Any]) -> Timer:
    """score() CPU time with the model in a SQLite file (the embedded default store)."""
    timer = Timer()
    memory = train(samples, params).store
    assert isinstance(memory, MemoryTokenStore)
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{tmp}/bench.sqlite3")
        try:
            db.migrate()
            store = SqlTokenStore(db)
            store.load({t: (c[0], c[1]) for t, c in memory.table.items()}, *memory.totals())
            clf = Classifier(store, **params)
            for tokens in test[:10]:
                clf.score(tokens)  # warm: connection pool, statement cache
            for tokens in test:
                timer.time(clf.score, tokens)
        finally:
            db.close()
    return timer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--without", action="append", default=[], choices=sorted(FEATURES), help="token group")
    parser.add_argument("--with", dest="extra", action="append", default=[], choices=sorted(FEATURES))
    parser.add_argument("--strength", type=float, default=DEFAULT_STRENGTH, help="Robinson's s")
    parser.add_argument("--assumed", type=float, default=0.5, help="Robinson's x")
    parser.add_argument("--min-deviation", type=float, default=0.1)
    parser.add_argument("--max-tokens", type=int, default=150)
    parser.add_argument("--cv", action="store_true", help="cross-validate the model parameters in the training half")
    parser.add_argument("--limit", type=int, default=0, help="files per corpus set (0: all)")
    parser.add_argument(
        "--quick", action="store_true", help="a tiny run that checks the script works (CI): its figures mean nothing"
    )
    args = parser.parse_args()
    if args.quick:
        args.limit = QUICK_FILES_PER_SET
    features = (DEFAULT_FEATURES | set(args.extra)) - set(args.without)
    params: dict[str, Any] = {
        "strength": args.strength,
        "assumed": args.assumed,
        "min_deviation": args.min_deviation,
        "max_tokens": args.max_tokens,
    }
    print(f"token groups: {', '.join(sorted(features))}; parameters: {params}")
    sa = args.corpus / "spamassassin"
    classes = {name: load(sa / name, features, args.limit) for name in ("ham", "hard_ham", "spam")}
    n_sa = sum(len(v) for v in classes.values())
    tokens_per = sum(len(t) for v in classes.values() for t in v) / n_sa
    print(f"{n_sa} messages, {tokens_per:.0f} distinct tokens per message on average")

    train_half = [(t, name == "spam") for name, sets in classes.items() for t in sets[0::2]]
    if args.cv:
        parameter_search(train_half, params)
    test = {name: sets[1::2] for name, sets in classes.items()}
    threshold, calibration = calibrate(train_half, params)
    clf = train(train_half, params)
    clf.calibration = calibration
    memory_timer = Timer()
    results = {name: [memory_timer.time(clf.score, t) for t in sets] for name, sets in test.items()}
    test_scores = {name: [s.probability for s in v] for name, v in results.items()}
    evidence = {name: [s.evidence for s in v] for name, v in results.items()}
    all_ham = evidence["ham"] + evidence["hard_ham"]

    print(f"\n## spamassassin split (train = even index, test = odd index), T = {threshold:.4f} (from train half)")
    print(f"spam caught        {rate(test_scores['spam'], threshold)}")
    print(f"ham flagged        {rate(test_scores['ham'], threshold)}")
    print(f"hard_ham flagged   {rate(test_scores['hard_ham'], threshold)}")
    print(f"ROC AUC spam vs all ham   {roc_auc(evidence['spam'], all_ham):.4f}")
    for fp in (0.001, 0.01):
        caught = caught_at_fp(evidence["spam"], all_ham, fp)
        print(f"spam caught at <= {100 * fp:g} % FP (re-tuned on test) {100 * caught:.1f} %")

    full = [(t, name == "spam") for name, sets in classes.items() for t in sets]
    threshold_all, calibration_all = calibrate(full, params)
    clf_all = train(full, params)
    clf_all.calibration = calibration_all
    phish = [clf_all.score(t) for t in load(args.corpus / "phish", features, args.limit)]
    modern = [clf_all.score(t) for t in load(args.corpus / "modern-ham", features, args.limit)]
    phish_p, modern_p = [s.probability for s in phish], [s.probability for s in modern]
    phish_z, modern_z = [s.evidence for s in phish], [s.evidence for s in modern]
    print(f"\n## trained on all of spamassassin, T = {threshold_all:.4f} (from spamassassin only)")
    print(f"phish caught       {rate(phish_p, threshold_all)}")
    print(f"modern-ham flagged {rate(modern_p, threshold_all)}")
    print(f"ROC AUC phish vs modern-ham {roc_auc(phish_z, modern_z):.4f}")
    for fp in (0.01, 0.001):
        print(f"phish caught at <= {100 * fp:g} % FP (re-tuned) {100 * caught_at_fp(phish_z, modern_z, fp):.1f} %")
    for t in (0.5, 0.9, 0.99):
        print(f"  at T = {t}: phish {rate(phish_p, t)}, modern-ham {rate(modern_p, t)}")

    print("\n## cost (CPU time, time.process_time per call; all corpus sets)")
    print(f"parse + decode bodies/URLs: {PARSE.summary()}")
    print(f"tokenize() of a parsed message: {TOKENIZE.summary()}")
    print(f"score(), in-memory store: {memory_timer.summary()}")
    all_test = [t for sets in test.values() for t in sets]
    print(f"score(), SQLite store (file): {sql_score_timer(train_half, all_test, params).summary()}")


if __name__ == "__main__":
    main()
