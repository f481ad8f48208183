"""`mailwarden scan --json` as a user runs it: messages per second and CPU ms per message of the whole
command (start-up, the scanning processes, the forkserver and the JSON lines included).

    .venv-test/bin/python bench/scan_cli.py [--corpus ../shared/corpus] [--sets phish modern-ham ...]
                                            [--n 200] [--jobs 1 2] [--runs 3] [--quick]

Runs offline (embedded SQLite in a temp dir, DNS answered SERVFAIL at once by the loopback resolver
bench/peers uses, in this process, as a local resolver daemon would be). This process makes itself a
child subreaper, so the CPU of every process the command started is counted when it is reaped, also of
the forkserver that outlives the command by a moment. Prints the median of `--runs` runs per `--jobs`.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
PR_SET_CHILD_SUBREAPER = 36
CONFIG = """\
[paths]
data_dir = "{data}"
[dns]
nameservers = ["127.0.0.1"]
port = {dns_port}
timeout = 0.5
[log]
level = "error"
"""


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _reap_all() -> None:
    """Wait for every descendant re-parented to this process (the forkserver ends after the command)."""
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
    from mailwarden_adapter import _migrate, local_dns_port

    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--sets", nargs="+", default=["phish", "modern-ham", "spamassassin/ham", "spamassassin/spam"])
    parser.add_argument("--n", type=int, default=200, help="messages per set")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="0: the command's default")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--src", type=Path, help="the source tree to run (default: this checkout's src/)")
    parser.add_argument("--quick", action="store_true", help="a tiny run that checks the script works")
    args = parser.parse_args()
    if args.quick:
        args.n, args.runs = 5, 1
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    paths: list[Path] = []
    for name in args.sets:
        files = sorted(p for p in (args.corpus / name).iterdir() if p.is_file() and p.suffix not in (".tsv", ".md"))
        paths += files[: args.n]
    with tempfile.TemporaryDirectory(prefix="mw-scan-cli-") as tmp:
        config = Path(tmp) / "mailwarden.toml"
        config.write_text(CONFIG.format(data=Path(tmp) / "data", dns_port=local_dns_port()))
        _migrate(config)  # as after `mailwarden init`: token statistics in the database
        listing = Path(tmp) / "inputs"
        listing.mkdir()
        for i, path in enumerate(paths):  # one directory argument, as a user would give it
            (listing / f"{i:05d}.eml").symlink_to(path)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILWARDEN_")}
        src = args.src or Path(__file__).resolve().parents[1] / "src"
        env["PYTHONPATH"] = f"{src}{os.pathsep}{env.get('PYTHONPATH', '')}"
        for jobs in args.jobs:
            walls, cpus = [], []
            for _ in range(args.runs):
                before = _children_cpu()
                started = time.perf_counter()
                command = [sys.executable, "-m", "mailwarden", "scan", "--json", "-c", str(config), str(listing)]
                command += ["--jobs", str(jobs)] if jobs else []  # 0: the command's default
                with open(os.devnull, "wb") as devnull:
                    done = subprocess.run(command, env=env, stdout=devnull, stderr=subprocess.PIPE, check=False)
                walls.append(time.perf_counter() - started)
                with contextlib.suppress(ChildProcessError):
                    _reap_all()
                cpus.append(_children_cpu() - before)
                if done.returncode not in (0, 1):
                    sys.exit(f"scan failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
            n = len(paths)
            wall, cpu = statistics.median(walls), statistics.median(cpus)
            print(
                f"--jobs {jobs}: {n} messages, median of {args.runs}: {n / wall:.1f} msg/s, "
                f"CPU {cpu * 1000 / n:.2f} ms per message (wall {wall:.2f} s, CPU {cpu:.2f} s; "
                f"runs: {', '.join(f'{w:.2f}' for w in walls)} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
