"""The content classifier: Robinson–Fisher naive Bayes over message tokens, as in SpamBayes and bogofilter.

Each token's spam probability is Robinson's smoothed f(w) = (s·x + n·p(w)) / (s + n); tokens whose f(w)
lies within `min_deviation` of 0.5 are ignored and the `max_tokens` most significant are combined with
Fisher's chi-square method into the indicator I = (1 + H - S) / 2. I is mapped to a calibrated
probability by a logistic (Platt) fit on held-out scores, shipped with the default model.

The model is nothing but counts (`TokenStore`), so learning is incremental, a mistake is unlearnt
exactly, and several nodes share one model through Redis.
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

from mailwarden.pipeline.spam.statstore import MemoryTokenStore, TokenStore

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "data" / "classifier" / "default-model.tsv.gz"
MODEL_FORMAT = "mailwarden-bayes 1"
_LOGIT_CLIP = 1e-9


@dataclass(frozen=True, slots=True)
class Calibration:
    """Platt scaling of the chi-square indicator: P(spam) = 1 / (1 + exp(-(a·logit(I) + b)))."""

    a: float = 1.0
    b: float = 0.0

    def apply(self, indicator: float) -> float:
        z = self.a * _logit(indicator) + self.b
        return 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))


@dataclass(frozen=True, slots=True)
class Score:
    """A classifier's answer: calibrated P(spam), the raw chi-square indicator and the evidence used."""

    probability: float
    indicator: float
    top_tokens: tuple[tuple[str, float], ...]  # (token, f(w)), most significant first
    trained: bool  # False while the model has too few messages of either class to judge


class Classifier:
    """Scores token sets against a `TokenStore` and learns from labelled messages."""

    def __init__(
        self,
        store: TokenStore,
        *,
        strength: float = 0.45,
        assumed: float = 0.5,
        min_deviation: float = 0.1,
        max_tokens: int = 150,
        min_messages: int = 10,
        calibration: Calibration | None = None,
    ) -> None:
        self.store = store
        self.strength = strength
        self.assumed = assumed
        self.min_deviation = min_deviation
        self.max_tokens = max_tokens
        self.min_messages = min_messages
        self.calibration = calibration or Calibration()

    # ---- scoring ---------------------------------------------------------------------------
    def score(self, tokens: Collection[str], *, explain: int = 10) -> Score:
        """P(spam) of a message given its tokens; one batched read of the store."""
        nspam, nham = self.store.totals()
        if nspam < self.min_messages or nham < self.min_messages:
            return Score(0.5, 0.5, (), trained=False)
        counts = self.store.counts(list(tokens))
        s, x = self.strength, self.assumed
        significant: list[tuple[float, str, float]] = []
        for token, (spam, ham) in counts.items():
            n = spam + ham
            if n <= 0:
                continue
            spam_ratio = max(spam, 0) / nspam
            ham_ratio = max(ham, 0) / nham
            p = spam_ratio / (spam_ratio + ham_ratio) if spam_ratio + ham_ratio else x
            f = (s * x + n * p) / (s + n)
            dev = abs(f - 0.5)
            if dev >= self.min_deviation:
                significant.append((dev, token, f))
        significant.sort(reverse=True)
        used = significant[: self.max_tokens]
        indicator = fisher_indicator([f for _, _, f in used])
        top = tuple((token, round(f, 4)) for _, token, f in used[:explain])
        return Score(self.calibration.apply(indicator), indicator, top, trained=True)

    # ---- training --------------------------------------------------------------------------
    def learn(self, tokens: Iterable[str], is_spam: bool) -> None:
        """Count one message as spam or ham."""
        self.store.add(tokens, 1 if is_spam else 0, 0 if is_spam else 1)

    def unlearn(self, tokens: Iterable[str], is_spam: bool) -> None:
        """Take back a message learnt earlier with the same label."""
        self.store.add(tokens, -1 if is_spam else 0, 0 if is_spam else -1)

    def relearn(self, tokens: Collection[str], is_spam: bool) -> None:
        """A user reports a mistake: a message learnt with the other label moves to `is_spam`."""
        self.store.add(tokens, 1 if is_spam else -1, -1 if is_spam else 1)


def fisher_indicator(probabilities: list[float]) -> float:
    """Fisher's chi-square combining of token probabilities into I in [0, 1] (0.5 without evidence)."""
    if not probabilities:
        return 0.5
    n = len(probabilities)
    ln_ham = sum(math.log(max(f, 1e-300)) for f in probabilities)
    ln_spam = sum(math.log(max(1 - f, 1e-300)) for f in probabilities)
    h = chi2q(-2 * ln_ham, 2 * n)  # near 0 when the tokens are spammy
    s = chi2q(-2 * ln_spam, 2 * n)  # near 0 when the tokens are hammy
    return (1 + h - s) / 2


def chi2q(x2: float, v: int) -> float:
    """P(chi-square with v (even) degrees of freedom >= x2)."""
    m = x2 / 2
    term = math.exp(-m)
    total = term
    for i in range(1, v // 2):
        term *= m / i
        total += term
    return min(total, 1.0)


def fit_calibration(samples: Iterable[tuple[float, bool]], iterations: int = 50) -> Calibration:
    """Platt scaling fitted by Newton's method on held-out (indicator, is_spam) pairs."""
    data = [(_logit(i), y) for i, y in samples]
    npos = sum(1 for _, y in data if y)
    nneg = len(data) - npos
    if not npos or not nneg:
        return Calibration()
    # Platt's smoothed targets keep the fit finite when the classes separate perfectly
    hi, lo = (npos + 1) / (npos + 2), 1 / (nneg + 2)
    a, b = 1.0, 0.0
    for _ in range(iterations):
        ga = gb = haa = hab = hbb = 0.0
        for z, y in data:
            p = 1 / (1 + math.exp(-max(min(a * z + b, 500), -500)))
            d = p - (hi if y else lo)
            w = max(p * (1 - p), 1e-12)
            ga += d * z
            gb += d
            haa += w * z * z
            hab += w * z
            hbb += w
        det = haa * hbb - hab * hab
        if abs(det) < 1e-12:
            break
        da = (hbb * ga - hab * gb) / det
        db = (haa * gb - hab * ga) / det
        a, b = a - da, b - db
        if abs(da) < 1e-9 and abs(db) < 1e-9:
            break
    return Calibration(a, b)


def _logit(indicator: float) -> float:
    i = min(max(indicator, _LOGIT_CLIP), 1 - _LOGIT_CLIP)
    return math.log(i / (1 - i))


# ---- the shipped model ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Model:
    """A trained model as written to a file: token counts, message totals and the calibration."""

    counts: dict[str, tuple[int, int]]
    spam_messages: int
    ham_messages: int
    calibration: Calibration
    version: str


def write_model(path: Path, store: MemoryTokenStore, calibration: Calibration, version: str, *, min_count: int = 2) -> None:
    """Write the counts of `store` (tokens seen fewer than `min_count` times pruned) as gzipped TSV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        f"#{MODEL_FORMAT}\tversion={version}\tspam={store.spam_messages}\tham={store.ham_messages}"
        f"\ta={calibration.a!r}\tb={calibration.b!r}"
    ]
    for token, (spam, ham) in sorted(store.table.items()):
        if spam + ham >= min_count and "\t" not in token and "\n" not in token:
            lines.append(f"{token}\t{spam}\t{ham}")
    with gzip.GzipFile(filename="", fileobj=path.open("wb"), mode="wb", compresslevel=9, mtime=0) as out:
        out.write(("\n".join(lines) + "\n").encode("utf-8"))


def read_model(path: Path = DEFAULT_MODEL) -> Model:
    """A model file written by `write_model`."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        header = f.readline().rstrip("\n").lstrip("#").split("\t")
        if header[0] != MODEL_FORMAT:
            raise ValueError(f"{path}: not a {MODEL_FORMAT} model file")
        meta = dict(field.split("=", 1) for field in header[1:])
        counts: dict[str, tuple[int, int]] = {}
        for line in f:
            token, spam, ham = line.rstrip("\n").split("\t")
            counts[token] = (int(spam), int(ham))
    return Model(
        counts=counts,
        spam_messages=int(meta["spam"]),
        ham_messages=int(meta["ham"]),
        calibration=Calibration(float(meta["a"]), float(meta["b"])),
        version=meta["version"],
    )


def ensure_default_model(store: TokenStore, path: Path = DEFAULT_MODEL) -> Model | None:
    """Load the shipped model into an empty store (first start); returns it, or None if the store had data."""
    if store.totals() != (0, 0):
        return None
    model = read_model(path)
    store.load(model.counts, model.spam_messages, model.ham_messages)
    return model
