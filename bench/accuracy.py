"""Accuracy of the content classifier alone, on the split the peers were measured on (docs/peers.md).

Part 1: per class of corpus/spamassassin, sort the file names; train a fresh model on the even indexes,
score the odd ones. The spam threshold T is picked on the training half only (2-fold scores within it:
the lowest T whose ham false-positive rate there is <= 0.1 %), never on the test half.
Part 2: a model trained on all of corpus/spamassassin scores corpus/phish and corpus/modern-ham.

    .venv/bin/python bench/accuracy.py [--corpus ../shared/corpus] [--osb] [--strength S]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from mailwarden.model.message import Message
from mailwarden.pipeline.spam.classifier import (
    Calibration,
    Classifier,
    fit_calibration,
    held_out_evidence,
    pick_threshold,
)
from mailwarden.pipeline.spam.statstore import MemoryTokenStore
from mailwarden.pipeline.spam.tokens import tokenize

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
TARGET_FP = 0.001


def load(directory: Path, osb: bool) -> list[frozenset[str]]:
    files = [p for p in sorted(directory.iterdir()) if p.is_file() and p.suffix != ".tsv"]
    return [tokenize(Message(p.read_bytes()), osb=osb) for p in files]


def train(samples: Sequence[tuple[frozenset[str], bool]], strength: float) -> tuple[Classifier, float]:
    clf = Classifier(MemoryTokenStore(), strength=strength)
    start = time.perf_counter()
    for tokens, is_spam in samples:
        clf.learn(tokens, is_spam)
    return clf, time.perf_counter() - start


def scores(clf: Classifier, sets: Sequence[frozenset[str]]) -> list[float]:
    return [clf.score(t).probability for t in sets]


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


def calibrate(samples: Sequence[tuple[frozenset[str], bool]], strength: float) -> tuple[float, Calibration]:
    """T and a calibration from the given (training) messages alone: 2-fold held-out scores."""
    held_out = held_out_evidence(samples, strength=strength)
    calibration = fit_calibration(held_out)
    return pick_threshold(held_out, calibration, TARGET_FP), calibration


def rate(values: Sequence[float], threshold: float) -> str:
    hits = sum(1 for v in values if v >= threshold)
    return f"{100 * hits / len(values):6.2f} % ({hits}/{len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--osb", action="store_true", help="add orthogonal sparse bigrams to the tokens")
    parser.add_argument("--strength", type=float, default=1.0, help="Robinson's s")
    args = parser.parse_args()
    sa = args.corpus / "spamassassin"

    start = time.perf_counter()
    classes = {name: load(sa / name, args.osb) for name in ("ham", "hard_ham", "spam")}
    n_sa = sum(len(v) for v in classes.values())
    tok_s = time.perf_counter() - start
    print(f"parsed + tokenised {n_sa} messages in {tok_s:.2f} s ({1000 * tok_s / n_sa:.2f} ms/msg)")

    train_half = [(t, name == "spam") for name, sets in classes.items() for t in sets[0::2]]
    test = {name: sets[1::2] for name, sets in classes.items()}
    threshold, calibration = calibrate(train_half, args.strength)
    clf, train_s = train(train_half, args.strength)
    clf.calibration = calibration
    start = time.perf_counter()
    test_scores = {name: scores(clf, sets) for name, sets in test.items()}
    n_test = sum(len(v) for v in test.values())
    score_s = time.perf_counter() - start
    all_ham = test_scores["ham"] + test_scores["hard_ham"]

    print(f"\n## spamassassin split (train = even index, test = odd index), T = {threshold:.4f} (from train half)")
    print(f"spam caught        {rate(test_scores['spam'], threshold)}")
    print(f"ham flagged        {rate(test_scores['ham'], threshold)}")
    print(f"hard_ham flagged   {rate(test_scores['hard_ham'], threshold)}")
    print(f"ROC AUC spam vs all ham   {roc_auc(test_scores['spam'], all_ham):.4f}")
    print(
        f"spam caught at <= 0.1 % FP (re-tuned on test) {100 * caught_at_fp(test_scores['spam'], all_ham, 0.001):.1f} %"
    )
    print(
        f"training {len(train_half) / train_s:,.0f} msgs/s (tokens given), "
        f"scoring {n_test / score_s:,.0f} msgs/s (tokens given, in-memory store)"
    )

    full = [(t, name == "spam") for name, sets in classes.items() for t in sets]
    threshold_all, calibration_all = calibrate(full, args.strength)
    clf_all, _ = train(full, args.strength)
    clf_all.calibration = calibration_all
    phish = scores(clf_all, load(args.corpus / "phish", args.osb))
    modern = scores(clf_all, load(args.corpus / "modern-ham", args.osb))
    print(f"\n## trained on all of spamassassin, T = {threshold_all:.4f} (from spamassassin only)")
    print(f"phish caught       {rate(phish, threshold_all)}")
    print(f"modern-ham flagged {rate(modern, threshold_all)}")
    print(f"ROC AUC phish vs modern-ham {roc_auc(phish, modern):.4f}")
    for fp in (0.01, 0.001):
        print(f"phish caught at <= {100 * fp:g} % FP (re-tuned) {100 * caught_at_fp(phish, modern, fp):.1f} %")
    for t in (0.5, 0.9, 0.99):
        print(f"  at T = {t}: phish {rate(phish, t)}, modern-ham {rate(modern, t)}")


if __name__ == "__main__":
    main()
