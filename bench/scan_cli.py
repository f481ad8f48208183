"""`mailwarden scan --json` as a user runs it: messages per second and CPU ms per message of the whole
command (start-up, the scanning processes, the forkserver and the JSON lines included).

    .venv-test/bin/python bench/scan_cli.py [--corpus ../shared/corpus] [--sets phish modern-ham ...]
                                            [--n 200] [--jobs 1 2] [--runs 3] [--src DIR] [--quick]

Runs offline (embedded SQLite in a temp dir, DNS answered SERVFAIL at once by the loopback resolver
bench/peers uses, in this process, as a local resolver daemon would be). `time_scan` makes this process a
child subreaper, so the CPU of every process the command started is counted, also of the forkserver that
outlives the command by a moment. Prints the median of `--runs` runs per `--jobs` (0: the command's
default). bench/peers/run.py --scan-jobs times the command the same way on its split.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import ctypes
import functools
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from profile_scan import CONFIG  # the offline config every scan bench uses (bench/ is on the path)

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
SRC = Path(__file__).resolve().parents[1] / "src"
PR_SET_CHILD_SUBREAPER = 36


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _children_of(pid: int) -> set[int]:
    try:
        return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    except OSError:
        return set()


@functools.cache
def _bytecode(src: Path) -> None:
    """The package's bytecode written once, as `pip install` writes it for an installed package: an
    editable install writes none, and with PYTHONDONTWRITEBYTECODE set (this machine sets it) every start
    of the command compiled its 180 modules again, 0.37 s of CPU that an installed mailwarden never spends."""
    compileall.compile_dir(str(src / "mailwarden"), quiet=1)


def time_scan(config: Path, inputs: Sequence[Path], messages: int, jobs: int, src: Path = SRC) -> dict[str, float]:
    """One run of `mailwarden scan --json` over `inputs` (files or directories holding `messages`
    messages): wall seconds, msg/s and CPU ms per message of the command and every process it started."""
    _bytecode(src)
    if sys.platform.startswith("linux"):  # the forkserver, orphaned when the command ends, is reaped here
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILWARDEN_")}
    env["PYTHONPATH"] = f"{src}{os.pathsep}{env.get('PYTHONPATH', '')}"
    command = [sys.executable, "-m", "mailwarden", "scan", "--json", "-c", str(config), *map(str, inputs)]
    command += ["--jobs", str(jobs)] if jobs else []  # 0: the command's default
    before = _children_cpu()
    started = time.perf_counter()
    helpers: set[int] = set()
    with open(os.devnull, "wb") as devnull:
        scan = subprocess.Popen(command, env=env, stdout=devnull, stderr=subprocess.PIPE)
        assert scan.stderr is not None
        while scan.poll() is None:  # the forkserver and resource tracker: reaped here once orphaned
            helpers |= _children_of(scan.pid)
            time.sleep(0.02)
        stderr = scan.stderr.read()
    wall = time.perf_counter() - started
    for pid in helpers:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    if scan.returncode not in (0, 1):  # 1: some input was no mail
        raise RuntimeError(f"scan failed ({scan.returncode}): {stderr.decode()[-2000:]}")
    cpu = _children_cpu() - before
    return {
        "jobs": jobs,
        "messages": messages,
        "seconds": round(wall, 3),
        "msgs_per_s": round(messages / wall, 2),
        "cpu_ms_per_msg": round(cpu * 1000 / messages, 3),
    }


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
    from mailwarden_adapter import _migrate, local_dns_port

    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--sets", nargs="+", default=["phish", "modern-ham", "spamassassin/ham", "spamassassin/spam"])
    parser.add_argument("--n", type=int, default=200, help="messages per set")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="0: the command's default")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--src", type=Path, default=SRC, help="the source tree to run (default: this checkout's)")
    parser.add_argument("--quick", action="store_true", help="a tiny run that checks the script works")
    args = parser.parse_args()
    if args.quick:
        args.n, args.runs = 5, 1
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
        for jobs in args.jobs:
            runs = [time_scan(config, [listing], len(paths), jobs, args.src) for _ in range(args.runs)]
            walls = [r["seconds"] for r in runs]
            wall = statistics.median(walls)
            cpu = statistics.median(r["cpu_ms_per_msg"] for r in runs)
            print(
                f"--jobs {jobs}: {len(paths)} messages, median of {args.runs}: {len(paths) / wall:.1f} msg/s, "
                f"CPU {cpu:.2f} ms per message (runs: {', '.join(f'{w:.2f}' for w in walls)} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
