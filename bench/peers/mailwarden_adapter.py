"""mailwarden as a peer: its own pipeline, in-process, with a temp config and no real DNS.

`MailwardenScanner` builds `Runtime(load_config(...))` from a temp TOML (embedded SQLite under a temp
data dir, `[dns]` at a loopback DNS server that answers at once, SERVFAIL, see `local_dns_port`), parses
with `mailwarden.model.Message`, builds the envelope with `offline_envelope` and runs
`rt.pipeline.scan(...)` inbound with the default policy. Score = `verdict.score`;
flagged = `verdict.scl >= 5 or verdict.phish != none`.

Whatever stages the default inbound order lists are run, so the spam stage is picked up as soon as
it is registered there. Training: `train` runs what `mailwarden train` runs on the given messages (the
classifier and the learned scoring, as the shipped files are built), writes the files named in
`[stages.spam] model` and `scoring`, and empties the `token_stats` table, so the stage loads exactly that
model on start and nothing else.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import tempfile
import time
from pathlib import Path

from common import PssSampler, Sample, Scored, Throughput, cpu_seconds

CONFIG = """\
[paths]
data_dir = "{data_dir}"

[dns]
nameservers = ["127.0.0.1"]
port = {dns_port}
timeout = 0.5

[log]
level = "error"

[stages.spam]
model = "{model}"
scoring = "{scoring}"
"""


_DNS: list[object] = []


def local_dns_port() -> int:
    """A DNS server on loopback that answers every question at once with SERVFAIL, standing in for the local
    caching resolver a mail server runs. SERVFAIL, not NXDOMAIN: the corpus's SPF records and DKIM/ARC keys
    exist but cannot be fetched here (no network), so authentication comes out `temperror` (weight 0)
    instead of a made-up `fail`. Without it every look-up would wait for a time-out on a closed port:
    idle seconds per message that no peer pays (their network checks are off). It runs in this (parent)
    process, outside the timed workers' CPU, as a resolver daemon would."""
    if not _DNS:
        import sys

        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from tests.dnsserver import DnsServer

        class Unavailable(DnsServer):
            def answer(self, wire: bytes) -> bytes | None:
                import dns.message
                import dns.rcode

                response = dns.message.make_response(dns.message.from_wire(wire))
                response.set_rcode(dns.rcode.SERVFAIL)
                return response.to_wire()  # type: ignore[no-any-return]

        _DNS.append(Unavailable().start())
    server = _DNS[0]
    return int(server.port)  # type: ignore[attr-defined]


def write_config(workdir: Path) -> Path:
    data = workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    path = workdir / "mailwarden.toml"
    path.write_text(
        CONFIG.format(
            data_dir=data, dns_port=local_dns_port(), model=workdir / "model.tsv.gz", scoring=workdir / "scoring.json"
        )
    )
    _migrate(path)
    return path


def _migrate(config_path: Path) -> None:
    """The database's tables, once, before any scanner starts: the token statistics live in the product
    database, as they do under `mailwarden serve` (which migrates when it starts)."""
    from mailwarden.service.config import load_config
    from mailwarden.store.db import Database

    db = Database(load_config(config_path, environ={}).database_url)
    try:
        db.migrate()
    finally:
        db.close()


class MailwardenScanner:
    name = "mailwarden"

    def __init__(self, config_path: Path) -> None:
        import structlog

        from mailwarden.model import Policy
        from mailwarden.service.config import load_config
        from mailwarden.service.runtime import Runtime

        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))  # errors only
        self.config_path = config_path
        self.rt = Runtime(load_config(config_path, environ={}))
        self.policy = Policy()
        self.order = self.rt.pipeline.order()
        self.stage_ms: dict[str, float] = {}  # summed wall time per stage, to show where the time goes

    async def score_raw(self, raw: bytes) -> tuple[float, bool]:
        from mailwarden.model import Direction, Message, PhishLevel
        from mailwarden.service.runtime import offline_envelope

        message = Message(raw)
        verdict = await self.rt.pipeline.scan(
            message, offline_envelope(message), self.policy, direction=Direction.INBOUND
        )
        for stage in verdict.stages:
            self.stage_ms[stage.stage] = self.stage_ms.get(stage.stage, 0.0) + stage.duration_ms
        return float(verdict.score), verdict.scl >= 5 or verdict.phish != PhishLevel.NONE

    async def score(self, sample: Sample) -> Scored:
        try:
            score, flagged = await self.score_raw(sample.path.read_bytes())
        except Exception as exc:  # report, never hide
            return Scored(sample, 0.0, False, error=f"{type(exc).__name__}: {exc}")
        return Scored(sample, score, flagged)

    async def close(self) -> None:
        await self.rt.pipeline.close()
        self.rt.close()


def train(samples: list[Sample], config_path: Path) -> dict:
    """`mailwarden train` on `samples` alone, as it builds the shipped files: the classifier (collection tokens
    pruned, calibration and threshold from held-out scores inside `samples`) and the learned scoring (grouped,
    time-ordered cross-validation inside `samples`), written to the model and scoring files the config
    names; the token table is emptied so the stage loads that model on start."""
    from sqlalchemy import delete

    from mailwarden.pipeline.spam.training import load_samples, write_trained
    from mailwarden.pipeline.spam.training import train as learn
    from mailwarden.service.config import load_config
    from mailwarden.store.db import Database
    from mailwarden.store.schema import TokenStatRow

    config = load_config(config_path, environ={})
    section = config.stages["spam"]
    t0 = time.perf_counter()
    trained = learn(load_samples((s.path, s.label, s.positive) for s in samples))
    write_trained(trained, Path(section["model"]), Path(section["scoring"]), "bench")
    seconds = time.perf_counter() - t0
    db = Database(config.database_url)
    try:
        with db.engine.begin() as connection:
            connection.execute(delete(TokenStatRow))  # the stage loads the model file into the empty table
    finally:
        db.close()
    store = trained.classifier.store
    return {
        "trained": True,
        "entry_point": "mailwarden.pipeline.spam.training.train + write_trained (mailwarden train)",
        "ham": store.ham_messages,
        "spam": store.spam_messages,
        "threshold": round(trained.threshold, 4),
        "seconds": round(seconds, 1),
    }


# ---- runs -------------------------------------------------------------------------------------------


async def _scan_all(
    scanner: MailwardenScanner, samples: list[Sample], concurrency: int
) -> tuple[list[Scored], list[float]]:
    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(s: Sample) -> Scored:
        async with sem:
            t0 = time.perf_counter()
            r = await scanner.score(s)
            latencies.append((time.perf_counter() - t0) * 1000)
            return r

    return list(await asyncio.gather(*(one(s) for s in samples))), latencies


def run_inprocess(
    config_path: Path, samples: list[Sample], concurrency: int = 1
) -> tuple[list[Scored], Throughput, dict]:
    async def go() -> tuple[list[Scored], list[float], float, float, dict, dict]:
        scanner = MailwardenScanner(config_path)
        try:
            await _scan_all(scanner, samples[: min(5, len(samples))], 1)  # warm (lazy imports, rule compile)
            scanner.stage_ms.clear()
            cpu0, t0 = cpu_seconds([os.getpid()]), time.perf_counter()
            results, lat = await _scan_all(scanner, samples, concurrency)
            return (
                results,
                lat,
                time.perf_counter() - t0,
                cpu_seconds([os.getpid()]) - cpu0,
                scanner.order,
                dict(scanner.stage_ms),
            )
        finally:
            await scanner.close()

    results, lat, seconds, cpu, order, stage_ms = asyncio.run(go())
    tp = Throughput(concurrency, len(samples), seconds, lat, cpu * 1000 / max(1, len(samples)))
    info: dict = {str(k.value): v for k, v in order.items()}
    n = max(1, len(samples))
    info["mean_stage_ms"] = {k: round(v / n, 2) for k, v in stage_ms.items()}
    return results, tp, info


def _worker(
    args: tuple[str, list[tuple[str, str]], int, object, object],
) -> tuple[list[tuple[str, float, bool, str | None]], list[float]]:
    config_path, items, concurrency, barrier, _ = args
    samples = [Sample(Path(p), label) for p, label in items]

    async def go() -> tuple[list[Scored], list[float]]:
        scanner = MailwardenScanner(Path(config_path))
        try:
            await _scan_all(scanner, samples[: min(3, len(samples))], 1)
            barrier.wait()  # type: ignore[attr-defined]  # start the clock together
            return await _scan_all(scanner, samples, concurrency)
        finally:
            await scanner.close()

    results, lat = asyncio.run(go())
    return [(str(r.sample.path), r.score, r.flagged, r.error) for r in results], lat


def run_workers(
    config_path: Path, samples: list[Sample], concurrency: int = 8, workers: int | None = None, memory: bool = False
) -> tuple[list[Scored], Throughput, int]:
    """N worker processes (one Runtime each, like rspamd's normal workers), `concurrency` messages in
    flight in all: each worker runs concurrency/N at a time on its share. With `memory`, the workers' PSS
    is sampled while they scan."""
    workers = workers or os.cpu_count() or 2
    per = max(1, concurrency // workers)
    shares = [[(str(s.path), s.label) for s in samples[i::workers]] for i in range(workers)]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(workers + 1)
        with ctx.Pool(workers) as pool:
            pending = pool.map_async(_worker, [(str(config_path), sh, per, barrier, None) for sh in shares])
            barrier.wait()
            pids = [p.pid for p in pool._pool]
            sampler = PssSampler({"workers": lambda: pids}) if memory else None
            cpu0, t0 = cpu_seconds(pids), time.perf_counter()
            if sampler:
                sampler.start()
            try:
                out = pending.get()
            finally:
                pss = sampler.stop() if sampler else None
            seconds = time.perf_counter() - t0
            cpu = cpu_seconds(pids) - cpu0
    by_path = {s.path.as_posix(): s for s in samples}
    results: list[Scored] = []
    latencies: list[float] = []
    for rows, lat in out:
        latencies += lat
        results += [Scored(by_path[p], sc, fl, err) for p, sc, fl, err in rows]
    tp = Throughput(concurrency, len(samples), seconds, latencies, cpu * 1000 / max(1, len(samples)), pss_mb=pss)
    return results, tp, workers


def temp_config() -> tuple[Path, tempfile.TemporaryDirectory]:
    tmp = tempfile.TemporaryDirectory(prefix="mw-peers-")
    return write_config(Path(tmp.name)), tmp
