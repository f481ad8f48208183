"""The learned scoring's model: symbols and classifier bands → score points (used by `training.py`).

A class-balanced logistic regression whose log-odds are points / T, fitted with bounds (monotonic weights,
phishing symbols fixed at their hand weights) and an L2 penalty centred on each hand weight, so a symbol
without support keeps its hand weight. The classifier enters as cumulative steps away from BAYES_NEUTRAL.
numpy and scipy (the `train` extra) are imported only by `fit_weights`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mailwarden.pipeline.spam.classifier import Calibration

# The classifier's bands, hammiest first; BAYES_NEUTRAL is the reference the others are measured from.
BANDS = (
    "BAYES_HAM_HIGH",
    "BAYES_HAM",
    "BAYES_NEUTRAL",
    "BAYES_SPAM_LOW",
    "BAYES_SPAM_MEDIUM",
    "BAYES_SPAM_MEDIUM_HIGH",
    "BAYES_SPAM",
    "BAYES_SPAM_HIGH",
)
HAND_BANDS: dict[str, float] = {
    "BAYES_HAM_HIGH": -3.0,
    "BAYES_HAM": -1.0,
    "BAYES_NEUTRAL": 0.0,
    "BAYES_SPAM_LOW": 2.5,
    "BAYES_SPAM_MEDIUM": 3.5,
    "BAYES_SPAM_MEDIUM_HIGH": 4.0,
    "BAYES_SPAM": 5.5,
    "BAYES_SPAM_HIGH": 7.5,
}
PHISH_HAMLIKE = "PHISH_BAYES_HAM_HIGH"
SPAM_SCORE = 5.0
# Phishing symbols keep their hand weights: the training mail has no modern phish, and the phish verdict
# (phish score >= 5) keeps its hand calibration; they enter the fit as fixed contributions.
FIXED_PREFIXES: tuple[str, ...] = ("PHISH_",)
# Where the classifier is unsure it never decides alone: bands below CAP_BELOW weigh at most
# SUB_THRESHOLD_MAX (the largest hand weight below the threshold), and a message it has no opinion on
# (BAYES_NEUTRAL, and the hammy bands) starts from at most NEUTRAL_MAX, SCL 1's floor.
CAP_BELOW = "BAYES_SPAM_MEDIUM"
SUB_THRESHOLD_MAX = HAND_BANDS["BAYES_SPAM_MEDIUM_HIGH"]
NEUTRAL_MAX = 1.0
MAX_RAISE = 3.0  # a learned weight stays within [0, hand + 3] (negative hand weights: [hand - 3, 0])


def band_of(p: float, spam_band: float) -> str:
    """The classifier band of a calibrated P(spam), with the default band edges (stage.BayesBands)."""
    if p >= 0.999:
        return "BAYES_SPAM_HIGH"
    if p >= spam_band:
        return "BAYES_SPAM"
    if p >= 0.65:
        return "BAYES_SPAM_MEDIUM_HIGH"
    if p >= 0.55:
        return "BAYES_SPAM_MEDIUM"
    if p >= 0.4:
        return "BAYES_SPAM_LOW"
    if p <= 0.01:
        return "BAYES_HAM_HIGH"
    if p <= 0.1:
        return "BAYES_HAM"
    return "BAYES_NEUTRAL"


@dataclass(frozen=True, slots=True)
class Design:
    """The features: learned symbols (hand weight ≠ 0, not bulk), then the cumulative band steps."""

    symbols: tuple[str, ...]
    hand: Mapping[str, float]

    # cumulative steps away from BAYES_NEUTRAL: hammy steps get weights <= 0, spammy ones >= 0
    steps: tuple[str, ...] = (
        "BAYES_HAM",
        "BAYES_HAM_HIGH",
        "BAYES_SPAM_LOW",
        "BAYES_SPAM_MEDIUM",
        "BAYES_SPAM_MEDIUM_HIGH",
        "BAYES_SPAM",
        "BAYES_SPAM_HIGH",
    )

    @property
    def names(self) -> tuple[str, ...]:
        return (*self.symbols, *(f"step:{s}" for s in self.steps))

    def prior(self) -> list[float]:
        out = [self.hand[s] for s in self.symbols]
        for step in self.steps:
            rank = BANDS.index(step)
            inner = BANDS[rank + 1] if rank < BANDS.index("BAYES_NEUTRAL") else BANDS[rank - 1]
            out.append(HAND_BANDS[step] - HAND_BANDS[inner])
        return out

    def bounds(self) -> list[tuple[float, float]]:
        out: list[tuple[float, float]] = []
        for s in self.symbols:
            h = self.hand[s]
            if s.startswith(FIXED_PREFIXES):
                out.append((h, h))  # the phish verdict keeps its hand calibration: no modern phish to learn from
            else:
                out.append((0.0, h + MAX_RAISE) if h > 0 else (h - MAX_RAISE, 0.0))
        for h in self.prior()[len(self.symbols) :]:
            out.append((0.0, h + MAX_RAISE) if h > 0 else (h - MAX_RAISE, 0.0))
        return out

    def row(self, symbols: frozenset[str], band: str) -> list[float]:
        rank = BANDS.index(band)
        neutral = BANDS.index("BAYES_NEUTRAL")
        out = [1.0 if s in symbols else 0.0 for s in self.symbols]
        for step in self.steps:
            r = BANDS.index(step)
            out.append(1.0 if (r < neutral and rank <= r) or (r > neutral and rank >= r) else 0.0)
        return out


def design_for(symbol_sets: Iterable[frozenset[str]], hand: Mapping[str, float]) -> Design:
    """Every symbol the messages show or the hand table names, that counts towards the spam or phish score."""
    names = set(hand) | {s for symbols in symbol_sets for s in symbols}
    learned = sorted(n for n in names if hand.get(n, 0.0) != 0.0 and not n.startswith(("BULK_", "BAYES_")))
    return Design(tuple(learned), dict(hand))


def rows_for(
    symbol_sets: Sequence[frozenset[str]],
    evidence: Sequence[float],
    calibration: Calibration,
    spam_band: float,
    design: Design,
) -> tuple[list[list[float]], list[str]]:
    """A feature row and the band of each message, from its symbols and its classifier evidence."""
    rows: list[list[float]] = []
    bands: list[str] = []
    phish = {s for s in design.symbols if s.startswith("PHISH_") and design.hand[s] > 0}
    for symbols, z in zip(symbol_sets, evidence, strict=True):
        band = band_of(calibration.apply(z), spam_band)
        if band == "BAYES_HAM_HIGH" and symbols & phish:
            symbols = symbols | {PHISH_HAMLIKE}
        rows.append(design.row(symbols, band))
        bands.append(band)
    return rows, bands


def fit_weights(
    rows: Sequence[Sequence[float]],
    labels: Sequence[bool],
    design: Design,
    *,
    strength: float,
    temperature: float,
) -> tuple[float, list[float]]:
    """(intercept, weights) in score points: a class-balanced logistic regression whose log-odds are
    points / temperature, each weight bounded (monotonic) and pulled towards its hand weight by an L2
    penalty of `strength` (per message of the data set)."""
    import numpy as np
    from scipy.optimize import minimize  # type: ignore[import-untyped]

    x = np.asarray(rows, dtype=float)
    y = np.asarray(labels, dtype=float)
    npos = max(1.0, float(y.sum()))
    nneg = max(1.0, float(len(y) - y.sum()))
    weight = np.where(y > 0, len(y) / (2 * npos), len(y) / (2 * nneg)) / len(y)
    prior = np.asarray(design.prior(), dtype=float)
    reg = strength / len(y)

    def objective(theta: Any) -> tuple[float, Any]:
        b0, w = theta[0], theta[1:]
        z = (b0 + x @ w) / temperature
        # log(1 + e^-z) for positives, log(1 + e^z) for negatives, without overflow
        loss = weight * np.where(y > 0, np.logaddexp(0, -z), np.logaddexp(0, z))
        p = 1 / (1 + np.exp(-np.clip(z, -500, 500)))
        g = weight * (p - y) / temperature
        diff = w - prior
        value = float(loss.sum()) + 0.5 * reg * float(diff @ diff)
        grad = np.concatenate(([g.sum()], x.T @ g + reg * diff))
        return value, grad

    bounds = design.bounds()
    start = [0.0, *(min(max(p, lo), hi) for p, (lo, hi) in zip(design.prior(), bounds, strict=True))]
    result = minimize(
        objective,
        np.asarray(start),
        jac=True,
        method="L-BFGS-B",
        bounds=[(None, None), *bounds],
        options={"maxiter": 500},
    )
    theta = result.x
    return float(theta[0]), [float(v) for v in theta[1:]]


def points(rows: Sequence[Sequence[float]], intercept: float, weights: Sequence[float]) -> list[float]:
    return [intercept + sum(w * v for w, v in zip(weights, row, strict=True) if v) for row in rows]


def caught_at(spam: Sequence[float], ham: Sequence[float], max_fp: float) -> float:
    """Share of spam above the highest ham score that keeps ham false positives <= max_fp."""
    if not spam or not ham:
        return 0.0
    allowed = int(max_fp * len(ham))
    ordered = sorted(ham, reverse=True)
    cut = ordered[allowed] if allowed < len(ordered) else -math.inf
    return sum(1 for s in spam if s > cut) / len(spam)


def band_table(design: Design, base: float, weights: Sequence[float]) -> dict[str, float]:
    """Symbol → points; each band's weight is the base plus its cumulative steps."""
    learned = dict(zip(design.names, weights, strict=True))
    table = {name: round(learned[name], 3) for name in design.symbols}
    neutral = BANDS.index("BAYES_NEUTRAL")
    for rank, band in enumerate(BANDS):
        steps = [s for s in design.steps if (rank <= BANDS.index(s) < neutral) or (neutral < BANDS.index(s) <= rank)]
        table[band] = round(base + sum(learned[f"step:{s}"] for s in steps), 3)
    # where the classifier is unsure (LOW: P(spam) < 0.55) it never decides alone, and a message it has
    # no opinion on starts from at most SCL 1's floor (docs/spam-filter.md)
    for band in BANDS[: BANDS.index(CAP_BELOW)]:
        table[band] = min(table[band], SUB_THRESHOLD_MAX)
    for band in BANDS[: BANDS.index("BAYES_NEUTRAL") + 1]:
        table[band] = min(table[band], NEUTRAL_MAX)
    table["BAYES_UNTRAINED"] = table["BAYES_NEUTRAL"]
    return table
