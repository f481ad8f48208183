"""Shared pieces of the peers benchmark: corpus split, metrics, /proc CPU, concurrent timing."""

from __future__ import annotations

import os
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Sample:
    path: Path
    label: str  # ham, hard_ham, spam, phish, modern-ham

    @property
    def positive(self) -> bool:
        return self.label in {"spam", "phish"}


@dataclass
class Split:
    train: list[Sample]
    test: list[Sample]
    modern: list[Sample]


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file() and p.name not in {"README.md", "MANIFEST.tsv"})


def thin(items: list[Sample], n: int) -> list[Sample]:
    """Every k-th item so about n remain (deterministic)."""
    if n <= 0 or n >= len(items):
        return items
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def make_split(corpus: Path, quick: int = 0) -> Split:
    """The split of `spamassassin/` grouped by source and ordered by time (`mailwarden.pipeline.spam.training.
    time_split`, the one bench/filter_accuracy.py measures on): per class, whole sources (mailing list, else
    the sender's registered domain) in time order, the earlier half trains, the later half is tested, and no
    source is in both, so no system is scored on a list or sender it learnt from."""
    from mailwarden.pipeline.spam.training import corpus_files, load_samples, time_split

    labelled = [
        (p, label, label == "spam")
        for label in ("ham", "hard_ham", "spam")
        for p in corpus_files(corpus / "spamassassin" / label)
    ]
    samples = load_samples(labelled)
    by_name = {(label, p.name): p for p, label, _ in labelled}
    train_idx, test_idx = time_split(samples)
    train = [Sample(by_name[(samples[i].kind, samples[i].name)], samples[i].kind) for i in train_idx]
    test = [Sample(by_name[(samples[i].kind, samples[i].name)], samples[i].kind) for i in test_idx]
    if quick:
        per_class = {}
        for label in ("ham", "hard_ham", "spam"):
            share = sum(1 for p, lab, _ in labelled if lab == label) / 3250
            per_class[label] = (
                thin([x for x in train if x.label == label], max(20, round(2 * quick * share))),
                thin([x for x in test if x.label == label], max(10, round(quick * share))),
            )
        train = [x for pair in per_class.values() for x in pair[0]]
        test = [x for pair in per_class.values() for x in pair[1]]
    modern = [Sample(p, "phish") for p in _files(corpus / "phish") if p.suffix == ".eml"]
    modern += [Sample(p, "modern-ham") for p in _files(corpus / "modern-ham") if p.suffix == ".eml"]
    if quick:
        modern = thin([s for s in modern if s.label == "phish"], quick // 2) + thin(
            [s for s in modern if s.label == "modern-ham"], quick // 2
        )
    return Split(train, test, modern)


# ---- metrics ----------------------------------------------------------------------------------------


def roc_auc(pos: Sequence[float], neg: Sequence[float]) -> float | None:
    """Mann-Whitney AUC (ties count half)."""
    if not pos or not neg:
        return None
    ranked = sorted([(s, 1) for s in pos] + [(s, 0) for s in neg])
    rank_sum = 0.0
    i = 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        avg = (i + j + 1) / 2  # 1-based average rank
        rank_sum += avg * sum(1 for k in range(i, j) if ranked[k][1])
        i = j
    n_pos, n_neg = len(pos), len(neg)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def caught_at_fp(pos: Sequence[float], neg: Sequence[float], max_fp: float) -> tuple[float | None, float | None]:
    """Best recall with a re-tuned threshold (flag when score > t) keeping FP rate ≤ max_fp."""
    if not pos or not neg:
        return None, None
    allowed = int(max_fp * len(neg))  # negatives allowed above the threshold
    ordered = sorted(neg, reverse=True)
    threshold = ordered[allowed] if allowed < len(ordered) else min(ordered) - 1
    return sum(1 for s in pos if s > threshold) / len(pos), threshold


@dataclass
class Scored:
    sample: Sample
    score: float
    flagged: bool
    error: str | None = None


def accuracy(results: list[Scored]) -> dict:
    def rate(label: str) -> dict:
        rows = [r for r in results if r.sample.label == label]
        hit = sum(1 for r in rows if r.flagged)
        return {"n": len(rows), "flagged": hit, "rate": hit / len(rows) if rows else None}

    out: dict = {label: rate(label) for label in sorted({r.sample.label for r in results})}
    pos = [r.score for r in results if r.sample.positive]
    neg = [r.score for r in results if not r.sample.positive]
    out["auc"] = roc_auc(pos, neg)
    for fp in (0.01, 0.001):
        caught, threshold = caught_at_fp(pos, neg, fp)
        out[f"caught_at_fp_{fp:g}"] = {"rate": caught, "threshold": threshold}
    out["errors"] = sum(1 for r in results if r.error)
    return out


# ---- CPU from /proc ---------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            kids += [int(x) for x in text.split()]
    except OSError:
        pass
    return kids


def tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += _children(p)
    return out


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime+stime (+ reaped children) of every process in the trees rooted at pids."""
    total = 0
    for root in pids:
        for p in tree(root):
            try:
                fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / CLK_TCK


def pids_named(comm: str) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() == comm:
                    out.append(int(entry))
            except OSError:
                continue
    return out


# ---- memory from /proc ------------------------------------------------------------------------------


class PssSampler(threading.Thread):
    """PSS of groups of processes (name → roots, asked again at every sample, so workers started later are
    seen), every `interval` seconds while running; `stop()` takes the last sample ("at end")."""

    def __init__(self, groups: dict[str, Callable[[], Sequence[int]]], interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.groups = groups
        self.interval = interval
        self.halt = threading.Event()
        self.max_mb: dict[str, float] = dict.fromkeys(groups, 0.0)
        self.end_mb: dict[str, float] = dict.fromkeys(groups, 0.0)
        self.processes: dict[str, int] = dict.fromkeys(groups, 0)  # at the last sample
        self.samples = 0

    def sample(self) -> None:
        from journal_pipeline import tree_pss_mb  # bench/: each tree's PSS, shared pages split between processes

        roots = {name: list(pids()) for name, pids in self.groups.items()}
        self.processes = {name: sum(len(tree(p)) for p in pids) for name, pids in roots.items()}
        now = {name: sum(tree_pss_mb(p) for p in pids) for name, pids in roots.items()}
        if sum(now.values()) > sum(self.max_mb.values()):  # the moment the system as a whole held the most
            self.max_mb = now
        self.end_mb = now
        self.samples += 1

    def run(self) -> None:
        while not self.halt.wait(self.interval):
            self.sample()

    def stop(self) -> dict:
        self.halt.set()
        self.join()
        self.sample()
        return self.as_dict()

    def as_dict(self) -> dict:
        return {
            "max": {k: round(v, 1) for k, v in self.max_mb.items()},
            "end": {k: round(v, 1) for k, v in self.end_mb.items()},
            "processes": dict(self.processes),
            "samples": self.samples,
        }


# ---- timing -----------------------------------------------------------------------------------------


@dataclass
class Throughput:
    concurrency: int
    messages: int
    seconds: float
    latencies_ms: list[float] = field(repr=False)
    cpu_ms_per_msg: float | None = None
    extra_cpu_ms_per_msg: float | None = None  # e.g. Redis
    pss_mb: dict | None = None  # memory of each group of processes (PssSampler.as_dict)

    def as_dict(self) -> dict:
        lat = sorted(self.latencies_ms)

        def pct(q: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(q * len(lat)))], 2) if lat else None

        return {
            "concurrency": self.concurrency,
            "messages": self.messages,
            "seconds": round(self.seconds, 3),
            "msgs_per_s": round(self.messages / self.seconds, 2) if self.seconds else None,
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "mean_ms": round(statistics.fmean(lat), 2) if lat else None,
            "daemon_cpu_ms_per_msg": None if self.cpu_ms_per_msg is None else round(self.cpu_ms_per_msg, 2),
            "extra_cpu_ms_per_msg": None if self.extra_cpu_ms_per_msg is None else round(self.extra_cpu_ms_per_msg, 2),
        } | ({"pss_mb": self.pss_mb} if self.pss_mb is not None else {})


def run_concurrent(
    samples: list[Sample],
    score_one: Callable[[Sample], Scored],
    concurrency: int,
    cpu_pids: Sequence[int] = (),
    extra_pids: Sequence[int] = (),
    memory: dict[str, Callable[[], Sequence[int]]] | None = None,
) -> tuple[list[Scored], Throughput]:
    """`samples` scored by `concurrency` threads; CPU of the trees at cpu_pids (and extra_pids) over the
    run; with `memory`, the PSS of those groups of processes sampled meanwhile."""
    latencies: list[float] = []

    def timed(s: Sample) -> Scored:
        t0 = time.perf_counter()
        r = score_one(s)
        latencies.append((time.perf_counter() - t0) * 1000)
        return r

    sampler = PssSampler(memory) if memory else None
    cpu0, extra0 = cpu_seconds(cpu_pids), cpu_seconds(extra_pids)
    t0 = time.perf_counter()
    if sampler:
        sampler.start()
    pool = ThreadPoolExecutor(concurrency)
    try:
        results = list(pool.map(timed, samples))
    finally:  # Ctrl-C: drop the queued messages instead of scanning them all before the daemons stop
        pool.shutdown(wait=True, cancel_futures=True)
        pss = sampler.stop() if sampler else None
    seconds = time.perf_counter() - t0
    n = max(1, len(samples))
    cpu = (cpu_seconds(cpu_pids) - cpu0) * 1000 / n if cpu_pids else None
    extra = (cpu_seconds(extra_pids) - extra0) * 1000 / n if extra_pids else None
    return results, Throughput(concurrency, len(samples), seconds, latencies, cpu, extra, pss)


def sh(cmd: Sequence[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), check=False, capture_output=True, text=True, **kw)
