"""The content classifier: Robinson–Fisher naive Bayes over message tokens, as in SpamBayes and bogofilter.

Each token's spam probability is Robinson's smoothed f(w) = (s·x + n·p(w)) / (s + n); tokens whose f(w)
lies within `min_deviation` of 0.5 are ignored and the `max_tokens` most significant are combined with
Fisher's chi-square method into the indicator I = (1 + H - S) / 2. I saturates at 0 or 1, so the
probability is a logistic (Platt) fit on the unsaturated evidence ln H - ln S from held-out scores,
shipped with the default model.

The model is nothing but counts (`TokenStore`), so learning is incremental, a mistake is unlearnt
exactly, and several nodes share one model through Redis.
"""

from __future__ import annotations

import gzip
import itertools
import math
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mailwarden.model.tokens import TokenStore
from mailwarden.pipeline.spam.statstore import MemoryTokenStore
from mailwarden.pipeline.spam.tokens import degenerate as case_fallback

DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "data" / "classifier" / "default-model.tsv.gz"
MODEL_FORMAT = "mailwarden-bayes 1"
# Robinson's s, chosen by 5-fold cross-validation inside the training half of the corpus (docs/classifier.md)
DEFAULT_STRENGTH = 0.45


@dataclass(frozen=True, slots=True)
class Calibration:
    """Platt scaling of the chi-square evidence z = ln H - ln S: P(spam) = 1 / (1 + exp(-(a·z + b)))."""

    a: float = 1.0
    b: float = 0.0

    def apply(self, evidence: float) -> float:
        z = self.a * evidence + self.b
        return 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))


@dataclass(frozen=True, slots=True)
class Score:
    """A classifier's answer: calibrated P(spam), the raw chi-square indicator and the evidence used."""

    probability: float
    indicator: float
    evidence: float  # ln H - ln S: the unsaturated statistic the probability is calibrated from
    top_tokens: tuple[tuple[str, float], ...]  # (token, f(w)), most significant first
    trained: bool  # False while the model has too few messages of either class to judge


class Classifier:
    """Scores token sets against a `TokenStore` and learns from labelled messages.

    `threshold` is the proposed probability from which a message counts as spam (the shipped model's
    when built by `open_classifier`); scoring itself does not use it.
    """

    def __init__(
        self,
        store: TokenStore,
        *,
        strength: float = DEFAULT_STRENGTH,
        assumed: float = 0.5,
        min_deviation: float = 0.1,
        max_tokens: int = 150,
        min_messages: int = 10,
        calibration: Calibration | None = None,
        threshold: float = 0.5,
        degenerate: Callable[[str], str | None] | None = case_fallback,
    ) -> None:
        self.store = store
        self.strength = strength
        self.assumed = assumed
        self.min_deviation = min_deviation
        self.max_tokens = max_tokens
        self.min_messages = min_messages
        self.calibration = calibration or Calibration()
        self.threshold = threshold
        self.degenerate = degenerate

    # ---- scoring ---------------------------------------------------------------------------
    def score(self, tokens: Collection[str], *, explain: int = 10) -> Score:
        """P(spam) of a message given its tokens; one batched read of the store.

        A token never learnt is replaced by its degenerate form (`FREE` by `free`) when it has one.
        """
        wanted = tokens if isinstance(tokens, (set, frozenset)) else set(tokens)
        fallbacks: dict[str, str] = {}
        degenerate = self.degenerate
        if degenerate is not None:
            for token in wanted:
                fallback = degenerate(token)
                if fallback is not None:
                    fallbacks[token] = fallback
        (nspam, nham), counts = self.store.read([*wanted, *(set(fallbacks.values()) - wanted)])
        if nspam < self.min_messages or nham < self.min_messages:
            return Score(0.5, 0.5, 0.0, (), trained=False)
        s, x, min_deviation = self.strength, self.assumed, self.min_deviation
        sx = s * x
        significant: list[tuple[float, str, float]] = []
        used_tokens: set[str] = set()
        get = counts.get
        # the loop runs for every token of every message: locals, and no call where an expression does
        for token in wanted:
            found = get(token)
            if (found is None or found[0] + found[1] <= 0) and token in fallbacks:
                token = fallbacks[token]
                found = get(token)
            if found is None:
                continue
            spam, ham = found
            n = spam + ham
            if n <= 0 or token in used_tokens:
                continue
            used_tokens.add(token)
            spam_ratio = (spam if spam > 0 else 0) / nspam
            ham_ratio = (ham if ham > 0 else 0) / nham
            p = spam_ratio / (spam_ratio + ham_ratio) if spam_ratio + ham_ratio else x
            f = (sx + n * p) / (s + n)
            dev = f - 0.5 if f >= 0.5 else 0.5 - f
            if dev >= min_deviation:
                significant.append((dev, token, f))
        significant.sort(reverse=True)
        used = significant[: self.max_tokens]
        indicator, evidence = fisher_indicator([f for _, _, f in used])
        top = tuple((token, round(f, 4)) for _, token, f in used[:explain])
        return Score(self.calibration.apply(evidence), indicator, evidence, top, trained=True)

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


def fisher_indicator(probabilities: list[float]) -> tuple[float, float]:
    """Fisher's chi-square combining of token probabilities.

    Returns I = (1 + H - S) / 2 in [0, 1] (0.5 without evidence) and the evidence z = ln H - ln S,
    which keeps ranking messages where I has already saturated at 0 or 1.
    """
    if not probabilities:
        return 0.5, 0.0
    n = len(probabilities)
    ln_ham = sum(math.log(max(f, 1e-300)) for f in probabilities)
    ln_spam = sum(math.log(max(1 - f, 1e-300)) for f in probabilities)
    log_h = log_chi2q(-2 * ln_ham, 2 * n)  # near 0 (H near 1) when the tokens are spammy
    log_s = log_chi2q(-2 * ln_spam, 2 * n)  # near 0 (S near 1) when the tokens are hammy
    return (1 + math.exp(log_h) - math.exp(log_s)) / 2, log_h - log_s


def log_chi2q(x2: float, v: int) -> float:
    """ln P(chi-square with v (even) degrees of freedom >= x2), exact in log space (no underflow)."""
    m = x2 / 2
    if m <= 0:
        return 0.0
    log_m = math.log(m)
    # the terms -m + i ln m - ln i!, each from the one before, in the same order of additions as ever
    terms = list(itertools.accumulate([log_m - _log(i) for i in range(1, v // 2)], initial=-m))
    best = max(terms)
    return min(0.0, best + math.log(sum([math.exp(t - best) for t in terms])))


def _log(i: int) -> float:
    return _LOG_INTS[i] if i < len(_LOG_INTS) else math.log(i)


_LOG_INTS = [0.0, *(math.log(i) for i in range(1, 1025))]


def fit_calibration(samples: Iterable[tuple[float, bool]], iterations: int = 100) -> Calibration:
    """Platt scaling fitted on held-out (evidence, is_spam) pairs: Newton's method with a backtracking line
    search (Lin, Lin and Weng's robust form of Platt's algorithm)."""
    data = list(samples)
    npos = sum(1 for _, y in data if y)
    nneg = len(data) - npos
    if not npos or not nneg:
        return Calibration()
    # Platt's smoothed targets keep the fit finite when the classes separate perfectly
    hi, lo = (npos + 1) / (npos + 2), 1 / (nneg + 2)
    targets = [(z, hi if y else lo) for z, y in data]

    def loss(a: float, b: float) -> float:
        total = 0.0
        for z, t in targets:
            f = a * z + b
            # cross-entropy in a form that never overflows
            total += (t - 1) * f + math.log1p(math.exp(-f)) if f >= 0 else t * -f + math.log1p(math.exp(f))
        return total

    a, b = 0.0, math.log((npos + 1) / (nneg + 1))
    current = loss(a, b)
    for _ in range(iterations):
        ga = gb = haa = hab = hbb = 0.0
        for z, t in targets:
            f = a * z + b
            p = 1 / (1 + math.exp(-f)) if f >= 0 else math.exp(f) / (1 + math.exp(f))
            d = p - t
            w = p * (1 - p)
            ga += d * z
            gb += d
            haa += w * z * z
            hab += w * z
            hbb += w
        haa += 1e-12
        hbb += 1e-12
        det = haa * hbb - hab * hab
        da = -(hbb * ga - hab * gb) / det
        db = -(haa * gb - hab * ga) / det
        step = 1.0
        while step >= 1e-10:
            candidate = loss(a + step * da, b + step * db)
            if candidate < current + 1e-4 * step * (ga * da + gb * db):
                break
            step /= 2
        else:
            break
        a, b, current = a + step * da, b + step * db, candidate
        if abs(ga) < 1e-5 and abs(gb) < 1e-5:
            break
    return Calibration(a, b)


def held_out_evidence(
    samples: Sequence[tuple[Collection[str], bool]], folds: int = 2, *, strength: float = DEFAULT_STRENGTH
) -> list[tuple[float, bool]]:
    """(evidence, is_spam) of every sample scored by a model trained on the other folds."""
    out: list[tuple[float, bool]] = []
    for fold in range(folds):
        clf = Classifier(MemoryTokenStore(), strength=strength)
        for k, (tokens, is_spam) in enumerate(samples):
            if k % folds != fold:
                clf.learn(tokens, is_spam)
        out += [(clf.score(t).evidence, y) for k, (t, y) in enumerate(samples) if k % folds == fold]
    return out


def pick_threshold(held_out: Sequence[tuple[float, bool]], calibration: Calibration, max_fp: float) -> float:
    """The lowest probability threshold (at least 0.5) whose ham false-positive rate is <= max_fp."""
    hams = sorted((calibration.apply(z) for z, y in held_out if not y), reverse=True)
    allowed = int(max_fp * len(hams))
    if allowed >= len(hams):
        return 0.5
    return max(0.5, min(0.9999, hams[allowed] + 1e-6))


# ---- the shipped model ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Model:
    """A trained model as written to a file: token counts, message totals and the calibration."""

    counts: dict[str, tuple[int, int]]
    spam_messages: int
    ham_messages: int
    calibration: Calibration
    threshold: float  # the proposed spam threshold on the calibrated probability
    version: str


def write_model(
    path: Path,
    store: MemoryTokenStore,
    calibration: Calibration,
    version: str,
    *,
    threshold: float = 0.5,
    min_count: int = 2,
) -> None:
    """Write the counts of `store` (tokens seen fewer than `min_count` times pruned) as gzipped TSV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        f"#{MODEL_FORMAT}\tversion={version}\tspam={store.spam_messages}\tham={store.ham_messages}"
        f"\ta={calibration.a!r}\tb={calibration.b!r}\tthreshold={threshold!r}"
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
        threshold=float(meta.get("threshold", 0.5)),
        version=meta["version"],
    )


def ensure_default_model(store: TokenStore, path: Path = DEFAULT_MODEL) -> Model | None:
    """Load the shipped model into an empty store (first start); returns it, or None if the store had data."""
    if store.totals() != (0, 0):
        return None
    model = read_model(path)
    store.load(model.counts, model.spam_messages, model.ham_messages)
    return model


def model_header(path: Path = DEFAULT_MODEL) -> tuple[Calibration, float, str]:
    """(calibration, threshold, version) of a model file without reading its counts."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        header = f.readline().rstrip("\n").lstrip("#").split("\t")
    if header[0] != MODEL_FORMAT:
        raise ValueError(f"{path}: not a {MODEL_FORMAT} model file")
    meta = dict(field.split("=", 1) for field in header[1:])
    return Calibration(float(meta["a"]), float(meta["b"])), float(meta.get("threshold", 0.5)), meta["version"]


def build_default_model(corpus: Path, path: Path = DEFAULT_MODEL, *, version: str = "1") -> Model:
    """Train on all of corpus/spamassassin (ham and hard_ham as ham, spam as spam) and write the model file.

    The calibration and the proposed threshold (ham false positives <= 0.1 %) come from 2-fold held-out
    scores on the same messages. Only this corpus may train the shipped model (corpus/README.md).
    """
    from mailwarden.model.message import Message
    from mailwarden.pipeline.spam.tokens import tokenize

    samples: list[tuple[Collection[str], bool]] = []
    for name, is_spam in (("ham", False), ("hard_ham", False), ("spam", True)):
        for file in sorted((corpus / "spamassassin" / name).iterdir()):
            samples.append((tokenize(Message(file.read_bytes())), is_spam))
    held_out = held_out_evidence(samples)
    calibration = fit_calibration(held_out)
    threshold = pick_threshold(held_out, calibration, 0.001)
    store = MemoryTokenStore()
    clf = Classifier(store)
    for tokens, is_spam in samples:
        clf.learn(tokens, is_spam)
    write_model(path, store, calibration, version, threshold=threshold)
    return read_model(path)


def train_files(store: TokenStore, spam: Iterable[Path], ham: Iterable[Path]) -> tuple[int, int]:
    """Learn message files (one RFC 5322 message each) into `store`; returns (spam, ham) messages learnt.

    The counts are gathered in memory and added to the store in one bulk load, so training a SQL or Redis
    store costs one write per distinct token rather than one transaction per message.
    """
    from mailwarden.model.message import Message
    from mailwarden.pipeline.spam.tokens import tokenize

    gathered = MemoryTokenStore()
    for paths, is_spam in ((spam, True), (ham, False)):
        for file in paths:
            gathered.add(tokenize(Message(Path(file).read_bytes())), 1 if is_spam else 0, 0 if is_spam else 1)
    counts = {token: (s, h) for token, (s, h) in gathered.table.items()}
    store.load(counts, gathered.spam_messages, gathered.ham_messages)
    return gathered.spam_messages, gathered.ham_messages


def open_classifier(store: TokenStore, path: Path = DEFAULT_MODEL) -> Classifier:
    """A classifier on `store` with the shipped model's calibration and threshold; an empty store is first
    filled with the shipped model."""
    ensure_default_model(store, path)
    calibration, threshold, _version = model_header(path)
    return Classifier(store, calibration=calibration, threshold=threshold)
