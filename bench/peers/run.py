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


def run_daemon(peer, split: Split, conc: list[int], tn: int, extra_pids=lambda: []) -> dict:
    out: dict = {"notes": peer.notes}
    peer.configure()
    out["version"] = peer.version
    if peer.name == "SpamAssassin":  # sa-learn works on the DB files; spamd reads them after
        out["train"] = peer.learn(split.train)
        peer.start()
    else:  # rspamc learns through the running controller
        peer.start()
        out["train"] = peer.learn(split.train)
    print(f"{peer.name}: trained {out['train']}", flush=True)
    out["throughput"] = []
    top = max(conc)
    for c in sorted(conc, reverse=True):
        samples = split.test if c == top else _sample(split.test, tn)
        results, tp = run_concurrent(samples, peer.score, c, peer.pids, extra_pids())
        out["throughput"].append(tp.as_dict())
        print(f"{peer.name}: c={c} {tp.as_dict()}", flush=True)
        if c == top:
            out["accuracy"] = accuracy(results)
            out["errors"] = _errors(results)
            out["scores"] = _per_message(results)
            print(f"{peer.name}: accuracy {out['accuracy']}", flush=True)
    if split.modern:
        rest = [s for s in split.test]  # train on the test half as well: Bayes has seen all of spamassassin
        out["modern_train"] = peer.learn(rest)
        results, tp = run_concurrent(split.modern, peer.score, top, peer.pids, extra_pids())
        out["modern"] = accuracy(results)
        out["modern_errors"] = _errors(results)
        out["modern_scores"] = _per_message(results)
        out["modern_throughput"] = tp.as_dict()
        print(f"{peer.name}: modern {out['modern']}", flush=True)
    return out


def run_sa(split: Split, workdir: Path, conc: list[int], tn: int) -> dict:
    from spamassassin import SpamAssassin

    sa = SpamAssassin(workdir, children=max(conc))
    try:
        return run_daemon(sa, split, conc, tn)
    finally:
        sa.stop()


def run_rspamd(split: Split, workdir: Path, conc: list[int], tn: int) -> dict:
    from rspamd import Rspamd

    rs = Rspamd(workdir)
    try:
        out = run_daemon(rs, split, conc, tn, extra_pids=rs.redis_pids)
        out["dns_check"] = rs.dns_check()
        print(f"rspamd: log check {out['dns_check']}", flush=True)
        return out
    finally:
        rs.stop()
        if rs.conf.exists():
            rs.cleanup()


def run_mailwarden(split: Split, workdir: Path, conc: list[int], tn: int, scan_jobs: Sequence[int] = ()) -> dict:
    import mailwarden

    config = mw.write_config(workdir / "mailwarden")
    out: dict = {"version": f"mailwarden {getattr(mailwarden, '__version__', '?')} (this checkout)"}
    out["train"] = mw.train(split.train, config)
    print(f"mailwarden: {out['train']}", flush=True)
    out["throughput"] = []
    top = max(conc)
    for c in sorted(conc, reverse=True):
        if c == 1:
            # one worker process, as at c=8: the scanning process does nothing but scan (the loopback
            # resolver stays in this process, like a resolver daemon beside rspamd's workers)
            samples = split.test if c == top else _sample(split.test, tn)
            results, tp, workers = mw.run_workers(config, samples, 1, workers=1)
            mode = "1 worker process"
        else:
            samples = split.test if c == top else _sample(split.test, tn)
            results, tp, workers = mw.run_workers(config, samples, c)
            mode = f"{workers} worker processes"
        d = tp.as_dict() | {"mode": mode}
        out["throughput"].append(d)
        print(f"mailwarden: c={c} {d}", flush=True)
        if c == top:
            out["accuracy"] = accuracy(results)
            out["errors"] = _errors(results)
            out["scores"] = _per_message(results)
            print(f"mailwarden: accuracy {out['accuracy']}", flush=True)
    if scan_jobs:
        # the batch command as a user runs it over the same test messages (start-up, every process counted)
        from scan_cli import time_scan

        inputs = workdir / "mailwarden-scan-inputs"
        inputs.mkdir(exist_ok=True)
        for i, sample in enumerate(split.test):
            (inputs / f"{i:05d}.eml").symlink_to(sample.path.resolve())
        out["scan"] = [time_scan(config, [inputs], len(split.test), jobs) for jobs in scan_jobs]
        for run in out["scan"]:
            print(f"mailwarden: scan --jobs {run['jobs']} {run}", flush=True)
    if split.modern:
        out["modern_train"] = mw.train(split.train + split.test, config)
        if top == 1:
            results, tp, _ = mw.run_inprocess(config, split.modern, 1)
        else:
            results, tp, _ = mw.run_workers(config, split.modern, top)
        out["modern"] = accuracy(results)
        out["modern_errors"] = _errors(results)
        out["modern_scores"] = _per_message(results)
        out["modern_throughput"] = tp.as_dict()
        print(f"mailwarden: modern {out['modern']}", flush=True)
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
        "| system | concurrency | msg/s | p50 / p99 ms | CPU ms/msg | messages |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for key, res in results.items():
        for t in sorted(res.get("throughput", []), key=lambda t: t["concurrency"]):
            cpu = f"{t['daemon_cpu_ms_per_msg']}" if t["daemon_cpu_ms_per_msg"] is not None else "–"
            if t.get("extra_cpu_ms_per_msg") is not None:
                cpu += f" + {t['extra_cpu_ms_per_msg']} Redis"
            mode = f" ({t['mode']})" if "mode" in t else ""
            lat = f"{t['p50_ms']} / {t['p99_ms']}"
            lines.append(
                f"| {names[key]}{mode} | {t['concurrency']} | {t['msgs_per_s']} | {lat} | {cpu} | {t['messages']} |"
            )
        for run in res.get("scan", []):  # the batch command: every process of it, start-up included
            lines.append(
                f"| {names[key]} `scan --json --jobs {run['jobs']}` | – | {run['msgs_per_s']} | – | "
                f"{run['cpu_ms_per_msg']} | {run['messages']} |"
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
    runners = {
        "sa": run_sa,
        "rspamd": run_rspamd,
        "mailwarden": functools.partial(run_mailwarden, scan_jobs=args.scan_jobs),
    }
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="peers-bench-") as tmp:
        for key in args.only:
            t0 = time.time()
            try:
                results[key] = runners[key](split, Path(tmp), args.concurrency, args.throughput_n)
            except KeyboardInterrupt:
                print("interrupted: daemons stopped", file=sys.stderr)
                raise
            except Exception as exc:
                traceback.print_exc()
                results[key] = {"error": f"{type(exc).__name__}: {exc}"}
            results[key]["seconds"] = round(time.time() - t0, 1)
            # the machine is shared: the 1-minute load average says how noisy the timing was
            results[key]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
            partial = {"partial": True, "args": {k: str(v) for k, v in vars(args).items()}, "results": results}
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(partial, indent=2, default=str) + "\n")  # survives a later failure
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
