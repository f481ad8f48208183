"""SpamAssassin and rspamd beside mailwarden on the same corpus split (docs/peers-bench.md).

    .venv-test/bin/python bench/peers/run.py [--only sa|rspamd|mailwarden ...] [--concurrency 1 8]
                                             [--scan-jobs 1 2]
                                             [--quick [N]] [--out bench/peers/results.json]

Installs the peers from Debian's packages when missing, configures each in its own temp directory as
/work/shared/docs/peers.md describes (local rules + Bayes, no network look-ups), trains Bayes on the
even half of `spamassassin/` (per class, sorted names), scores the odd half, then trains on the rest
and scores `phish/` + `modern-ham/`. The run at the highest concurrency scores every test message
(accuracy and throughput); lower concurrencies time a deterministic sample (`--throughput-n`).
Daemons listen on loopback only and are stopped at the end, also on error or Ctrl-C. `--quick` alone
takes the smallest split (about 30 test messages); CI runs it with `--only mailwarden` (no peer to install).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: scan_cli

import install
import mailwarden_adapter as mw
from common import Sample, Scored, Split, accuracy, make_split, run_concurrent, thin

SYSTEMS = ("sa", "rspamd", "mailwarden")
QUICK_MESSAGES = 10  # make_split's floor: 10 test and 20 training messages per class


def _sample(samples: list[Sample], n: int) -> list[Sample]:
    """A deterministic spread over all classes for the lower-concurrency timing runs."""
    return thin(samples, n)


def _errors(results: list[Scored]) -> dict:
    out: dict[str, int] = {}
    for r in results:
        if r.error:
            key = r.error.split(":")[0]
            out[key] = out.get(key, 0) + 1
    return out


def _per_message(results: list[Scored]) -> list[list]:
    """[class, file name, score, flagged, error] per message, for auditing a figure."""
    return [[r.sample.label, r.sample.path.name, r.score, r.flagged, r.error] for r in results]


class Runner:
    """One system across the run: `prepare` (configure, start, train), `round` (its throughput runs, once
    per repetition, interleaved with the other systems'), `finish` (what is measured once more: the modern
    sets), `close` (whatever it started, stopped)."""

    key = ""

    def __init__(self, split: Split, conc: list[int], tn: int) -> None:
        self.split, self.conc, self.tn = split, conc, tn
        self.top = max(conc)
        self.out: dict = {}
        self.rounds: list[dict] = []  # per repetition: {"throughput": [...], ...}
        self.loadavg: list[float] = []  # after its last step

    def samples_at(self, c: int) -> list[Sample]:
        return self.split.test if c == self.top else _sample(self.split.test, self.tn)

    def keep_accuracy(self, results: list[Scored]) -> None:
        """Accuracy from the first repetition's top-concurrency run, which scores every test message."""
        if "accuracy" not in self.out:
            self.out["accuracy"] = accuracy(results)
            self.out["errors"] = _errors(results)
            self.out["scores"] = _per_message(results)
            print(f"{self.key}: accuracy {self.out['accuracy']}", flush=True)

    def prepare(self) -> None:
        raise NotImplementedError

    def round(self, rep: int) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        pass

    def close(self) -> None:
        pass

    def result(self) -> dict:
        """The figures of the repetitions' medians (each run's in `runs`)."""
        for part, key in (("throughput", "concurrency"), ("scan", "jobs"), ("serve", "clients")):
            if any(part in r for r in self.rounds):
                self.out[part] = medians([r.get(part, []) for r in self.rounds], key)
        if len(self.rounds) > 1:
            self.out["runs"] = self.rounds
        return self.out


class DaemonRunner(Runner):
    """SpamAssassin or rspamd: the daemon asked by concurrent clients."""

    def __init__(self, key: str, peer, split: Split, conc: list[int], tn: int, extra_pids=lambda: []) -> None:
        super().__init__(split, conc, tn)
        self.key, self.peer, self.extra_pids = key, peer, extra_pids
        self.out["notes"] = peer.notes

    def prepare(self) -> None:
        peer = self.peer
        peer.configure()
        self.out["version"] = peer.version
        if peer.name == "SpamAssassin":  # sa-learn works on the DB files; spamd reads them after
            self.out["train"] = peer.learn(self.split.train)
            peer.start()
        else:  # rspamc learns through the running controller
            peer.start()
            self.out["train"] = peer.learn(self.split.train)
        print(f"{peer.name}: trained {self.out['train']}", flush=True)

    def memory(self) -> dict:
        groups = {self.key: lambda: self.peer.pids}
        return groups | ({"Redis": self.extra_pids} if self.extra_pids() else {})

    def round(self, rep: int) -> None:
        rows = []
        for c in sorted(self.conc, reverse=True):
            memory = self.memory() if c == self.top else None
            results, tp = run_concurrent(
                self.samples_at(c), self.peer.score, c, self.peer.pids, self.extra_pids(), memory
            )
            rows.append(tp.as_dict())
            print(f"{self.peer.name}: run {rep + 1} c={c} {rows[-1]}", flush=True)
            if c == self.top:
                self.keep_accuracy(results)
        self.rounds.append({"throughput": rows})

    def finish(self) -> None:
        if not self.split.modern:
            return
        peer = self.peer
        # train on the test half as well: Bayes has seen all of spamassassin
        self.out["modern_train"] = peer.learn(list(self.split.test))
        results, tp = run_concurrent(self.split.modern, peer.score, self.top, peer.pids, self.extra_pids())
        self.out["modern"] = accuracy(results)
        self.out["modern_errors"] = _errors(results)
        self.out["modern_scores"] = _per_message(results)
        self.out["modern_throughput"] = tp.as_dict()
        print(f"{peer.name}: modern {self.out['modern']}", flush=True)


class SpamAssassinRunner(DaemonRunner):
    def __init__(self, split: Split, workdir: Path, conc: list[int], tn: int) -> None:
        from spamassassin import SpamAssassin

        super().__init__("sa", SpamAssassin(workdir, children=max(conc)), split, conc, tn)

    def close(self) -> None:
        self.peer.stop()


class RspamdRunner(DaemonRunner):
    def __init__(self, split: Split, workdir: Path, conc: list[int], tn: int) -> None:
        from rspamd import Rspamd

        rs = Rspamd(workdir)
        super().__init__("rspamd", rs, split, conc, tn, extra_pids=rs.redis_pids)

    def finish(self) -> None:
        super().finish()
        self.out["dns_check"] = self.peer.dns_check()
        print(f"rspamd: log check {self.out['dns_check']}", flush=True)

    def close(self) -> None:
        self.peer.stop()
        if self.peer.conf.exists():
            self.peer.cleanup()


class MailwardenRunner(Runner):
    """mailwarden's pipeline in worker processes, and optionally the `scan --json --jobs N` command and the
    `mailwarden serve` server, all on the same trained files."""

    key = "mailwarden"

    def __init__(
        self,
        split: Split,
        workdir: Path,
        conc: list[int],
        tn: int,
        scan_jobs: Sequence[int] = (),
        serve_clients: Sequence[int] = (),
    ) -> None:
        super().__init__(split, conc, tn)
        self.workdir = workdir
        self.scan_jobs, self.serve_clients = list(scan_jobs), sorted(serve_clients, reverse=True)
        self.config = workdir / "mailwarden" / "mailwarden.toml"
        self.flagged: dict[str, bool] = {}  # path → flagged by the adapter, to compare serve's verdicts with

    def prepare(self) -> None:
        import mailwarden

        self.config = mw.write_config(self.workdir / "mailwarden")
        self.out["version"] = f"mailwarden {getattr(mailwarden, '__version__', '?')} (this checkout)"
        self.out["train"] = mw.train(self.split.train, self.config)
        print(f"mailwarden: {self.out['train']}", flush=True)
        if self.scan_jobs:
            self.inputs = self.workdir / "mailwarden-scan-inputs"
            self.inputs.mkdir(exist_ok=True)
            for i, sample in enumerate(self.split.test):
                (self.inputs / f"{i:05d}.eml").symlink_to(sample.path.resolve())

    def round(self, rep: int) -> None:
        rows = []
        for c in sorted(self.conc, reverse=True):
            # c=1: one worker process, as at c=8 the scanning processes do nothing but scan (the loopback
            # resolver stays in this process, like a resolver daemon beside rspamd's workers)
            workers = 1 if c == 1 else None
            results, tp, n = mw.run_workers(self.config, self.samples_at(c), c, workers=workers, memory=c == self.top)
            rows.append(tp.as_dict() | {"mode": "1 worker process" if n == 1 else f"{n} worker processes"})
            print(f"mailwarden: run {rep + 1} c={c} {rows[-1]}", flush=True)
            if c == self.top:
                self.keep_accuracy(results)
                self.flagged = self.flagged or {str(r.sample.path): r.flagged for r in results if not r.error}
        this: dict = {"throughput": rows}
        if self.scan_jobs:
            # the batch command as a user runs it over the same test messages (start-up, every process counted)
            from scan_cli import time_scan

            this["scan"] = [time_scan(self.config, [self.inputs], len(self.split.test), j) for j in self.scan_jobs]
            for run in this["scan"]:
                print(f"mailwarden: run {rep + 1} scan --jobs {run['jobs']} {run}", flush=True)
        if self.serve_clients:
            from mailwarden_serve import run_serve

            top = max(self.serve_clients)
            this["serve"] = []
            for clients in self.serve_clients:
                first = rep == 0 and clients == top
                run = run_serve(
                    self.config, mw.local_dns_port(), self.workdir, self.split.test, clients, rep,
                    memory=clients == top, agreement=self.flagged if first else None,
                )  # fmt: skip
                this["serve"].append(run)
                print(f"mailwarden: run {rep + 1} serve, {clients} clients {run}", flush=True)
                if first:
                    self.out["serve_agreement"] = run.pop("agreement")
        self.rounds.append(this)

    def finish(self) -> None:
        if not self.split.modern:
            return
        self.out["modern_train"] = mw.train(self.split.train + self.split.test, self.config)
        if self.top == 1:
            results, tp, _ = mw.run_inprocess(self.config, self.split.modern, 1)
        else:
            results, tp, _ = mw.run_workers(self.config, self.split.modern, self.top)
        self.out["modern"] = accuracy(results)
        self.out["modern_errors"] = _errors(results)
        self.out["modern_scores"] = _per_message(results)
        self.out["modern_throughput"] = tp.as_dict()
        print(f"mailwarden: modern {self.out['modern']}", flush=True)


def medians(runs: list[list[dict]], key: str) -> list[dict]:
    """Per `key` value (concurrency, jobs, clients), the median of every figure over the runs (nested
    dicts too, e.g. memory); anything not a number is taken from the first run."""

    def merge(values: list) -> object:
        first = values[0]
        if isinstance(first, dict):
            return {k: merge([v[k] for v in values if isinstance(v, dict) and k in v]) for k in first}
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        if len(numbers) < len(values) or len(set(numbers)) == 1:  # words, or the same in every run
            return first
        m = statistics.median(numbers)
        return round(m, 2) if isinstance(m, float) else m

    order = [row[key] for row in runs[0]] if runs else []
    out = []
    for value in order:
        rows = [row for run in runs for row in run if row[key] == value]
        merged = merge(rows)
        assert isinstance(merged, dict)
        out.append(merged | {"runs": len(rows)})
    return out


# ---- the table --------------------------------------------------------------------------------------


def _pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f} %"


def _cls(acc: dict, label: str, digits: int = 1) -> str:
    c = acc.get(label)
    if not c:
        return "–"
    return f"{_pct(c['rate'], digits)} ({c['flagged']}/{c['n']})"


def _tput(res: dict, c: int) -> str:
    for t in res.get("throughput", []):
        if t["concurrency"] == c:
            return f"{t['msgs_per_s']:g}"
    return "–"


def _memory(pss: dict | None) -> str:
    """'153 + 2 Redis / 150 + 2 Redis': each group's PSS at the sampled maximum, then at the end."""
    if not pss:
        return "–"

    def groups(d: dict) -> str:
        parts = [f"{mb:g}" + ("" if i == 0 else f" {name}") for i, (name, mb) in enumerate(d.items())]
        return " + ".join(parts)

    return f"{groups(pss['max'])} / {groups(pss['end'])}"


def table(results: dict, conc: list[int]) -> str:
    names = {"sa": "SpamAssassin", "rspamd": "rspamd", "mailwarden": "mailwarden"}
    head = [
        "system", "spam caught", "ham flagged", "hard_ham flagged", "ROC AUC", "spam @≤0.1 % FP",
        "phish caught", "modern-ham flagged", "modern AUC", "phish @≤1 % / ≤0.1 % FP",
        *[f"msg/s c={c}" for c in sorted(conc)],
    ]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for key, res in results.items():
        if "error" in res:
            lines.append(f"| {names[key]} | failed: {res['error'][:80]} |")
            continue
        a, m = res.get("accuracy", {}), res.get("modern", {})
        auc = "–" if a.get("auc") is None else f"{a['auc']:.4f}"
        mauc = "–" if m.get("auc") is None else f"{m['auc']:.3f}"
        row = [
            names[key], _cls(a, "spam"), _cls(a, "ham", 2), _cls(a, "hard_ham"), auc,
            _pct(a.get("caught_at_fp_0.001", {}).get("rate")),
            _cls(m, "phish"), _cls(m, "modern-ham", 2), mauc,
            f"{_pct(m.get('caught_at_fp_0.01', {}).get('rate'))} / {_pct(m.get('caught_at_fp_0.001', {}).get('rate'))}",
            *[_tput(res, c) for c in sorted(conc)],
        ]  # fmt: skip
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "| system | concurrency | msg/s | p50 / p99 ms | CPU ms/msg | memory (PSS MB) max / at end | messages | runs |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, res in results.items():
        for t in sorted(res.get("throughput", []), key=lambda t: t["concurrency"]):
            cpu = f"{t['daemon_cpu_ms_per_msg']}" if t["daemon_cpu_ms_per_msg"] is not None else "–"
            if t.get("extra_cpu_ms_per_msg") is not None:
                cpu += f" + {t['extra_cpu_ms_per_msg']} Redis"
            mode = f" ({t['mode']})" if "mode" in t else ""
            lat = f"{t['p50_ms']} / {t['p99_ms']}"
            lines.append(
                f"| {names[key]}{mode} | {t['concurrency']} | {t['msgs_per_s']} | {lat} | {cpu} | "
                f"{_memory(t.get('pss_mb'))} | {t['messages']} | {t.get('runs', 1)} |"
            )
        for run in res.get("scan", []):  # the batch command: every process of it, start-up included
            lines.append(
                f"| {names[key]} `scan --json --jobs {run['jobs']}` | – | {run['msgs_per_s']} | – | "
                f"{run['cpu_ms_per_msg']} | – | {run['messages']} | {run.get('runs', 1)} |"
            )
        for run in sorted(res.get("serve", []), key=lambda r: r["clients"]):  # the server and its children
            lat = f"{run['accept_p50_ms']} / {run['accept_p99_ms']} accept"
            lines.append(
                f"| {names[key]} `serve`, journal copies | {run['clients']} | {run['msgs_per_s']} | {lat} | "
                f"{run['cpu_ms_per_msg']} (client {run['client_cpu_ms_per_msg']}) | {_memory(run.get('pss_mb'))} | "
                f"{run['messages']}{f' ({refused} refused)' if (refused := run.get('refused')) else ''} | "
                f"{run.get('runs', 1)} |"
            )
    return "\n".join(lines)


def merge(files: list[Path], out: Path) -> int:
    docs = [json.loads(f.read_text()) for f in files]
    results: dict = {}
    for d in docs:
        results.update(d["results"])
    conc = sorted({t["concurrency"] for r in results.values() for t in r.get("throughput", [])}) or [1, 8]
    text = table(results, conc)
    print(text)
    merged = {
        "merged_from": [str(f) for f in files],
        "runs": [{k: v for k, v in d.items() if k != "results"} for d in docs],
    }
    merged |= {"results": results, "table": text}
    out.write_text(json.dumps(merged, indent=2, default=str) + "\n")
    print(f"\nwrote {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    ap.add_argument("--concurrency", nargs="+", type=int, default=[1, 8])
    ap.add_argument(
        "--quick",
        type=int,
        nargs="?",
        const=QUICK_MESSAGES,
        default=0,
        help=f"about N test messages (and 2N train) instead of all; alone: {QUICK_MESSAGES}",
    )
    ap.add_argument("--throughput-n", type=int, default=300, help="messages timed at the lower concurrencies")
    ap.add_argument(
        "--scan-jobs",
        nargs="+",
        type=int,
        default=[],
        metavar="N",
        help="also time `mailwarden scan --json --jobs N` over the test messages (msg/s, CPU ms per message)",
    )
    ap.add_argument(
        "--serve-clients",
        nargs="+",
        type=int,
        default=[],
        metavar="N",
        help="also time `mailwarden serve` taking the test messages as journal copies over N SMTP connections",
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="throughput runs per system, interleaved between the systems; the table shows medians",
    )
    ap.add_argument("--no-modern", action="store_true", help="skip the phish/modern-ham run")
    ap.add_argument("--corpus", type=Path, default=Path("/work/shared/corpus"))
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results.json")
    ap.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        metavar="JSON",
        help="print one table from earlier runs' JSON files (e.g. systems run separately) and write --out",
    )
    args = ap.parse_args(argv)
    if args.merge:
        return merge(args.merge, args.out)

    started = time.time()
    load0 = [round(x, 2) for x in os.getloadavg()]
    peers = [s for s in args.only if s != "mailwarden"]
    installed = install.ensure(peers) if peers else []
    split = make_split(args.corpus, args.quick)
    if args.no_modern:
        split.modern = []
    print(f"split: train {len(split.train)}, test {len(split.test)}, modern {len(split.modern)}", flush=True)
    makers = {
        "sa": SpamAssassinRunner,
        "rspamd": RspamdRunner,
        "mailwarden": functools.partial(MailwardenRunner, scan_jobs=args.scan_jobs, serve_clients=args.serve_clients),
    }
    runners: list[Runner] = []
    failed: dict[str, str] = {}
    seconds: dict[str, float] = {}

    def collect() -> dict:
        out: dict = {}
        for r in runners:
            out[r.key] = {"error": failed[r.key]} if r.key in failed else r.result()
            out[r.key]["seconds"] = round(seconds.get(r.key, 0.0), 1)
            # the machine is shared: the 1-minute load average says how noisy the timing was
            out[r.key]["loadavg_after"] = r.loadavg
        return out

    def step(runner: Runner, what: str, *a) -> None:
        """One step of one system; an error ends that system only (its row says why)."""
        t0 = time.time()
        try:
            getattr(runner, what)(*a)
        except KeyboardInterrupt:
            print("interrupted: daemons stopped", file=sys.stderr)
            raise
        except Exception as exc:
            traceback.print_exc()
            failed[runner.key] = f"{what}: {type(exc).__name__}: {exc}"
        seconds[runner.key] = seconds.get(runner.key, 0.0) + time.time() - t0
        runner.loadavg = [round(x, 2) for x in os.getloadavg()]
        partial = {"partial": True, "args": {k: str(v) for k, v in vars(args).items()}, "results": collect()}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(partial, indent=2, default=str) + "\n")  # survives a later failure

    with tempfile.TemporaryDirectory(prefix="peers-bench-") as tmp:
        try:
            for key in args.only:
                runners.append(makers[key](split, Path(tmp), args.concurrency, args.throughput_n))
                step(runners[-1], "prepare")
            # the throughput runs interleaved: every system once per repetition, in turn
            for rep in range(args.repeat):
                for runner in [r for r in runners if r.key not in failed]:
                    step(runner, "round", rep)
            for runner in [r for r in runners if r.key not in failed]:
                step(runner, "finish")
        finally:
            for runner in runners:  # daemons stopped, also on error or Ctrl-C
                try:
                    runner.close()
                except Exception:
                    traceback.print_exc()
    results = collect()
    text = table(results, args.concurrency)
    print()
    print(text)
    doc = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "installed": installed,
        "loadavg_at_start": load0,
        "split": {"train": len(split.train), "test": len(split.test), "modern": len(split.modern)},
        "results": results,
        "table": text,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(f"\nwrote {args.out} ({doc['seconds']} s)")
    return 0 if all("error" not in r for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
