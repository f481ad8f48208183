"""Every benchmark under bench/ runs on a tiny input (`--quick`) and prints its figures.

A refactor that breaks a benchmark (a renamed attribute, a moved module) fails here, not months later
when someone wants the figures. Each script runs as a user runs it: its own process, from the
repository root, with this environment's Python.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.integration.conftest import POSTGRES_ADMIN_URL
from tests.services import unavailable

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_SECONDS = 300  # per script; a quick run takes seconds on an idle machine


@dataclass(frozen=True)
class Bench:
    figures: str  # a line of stdout that carries the script's main figure (a regular expression)
    args: tuple[str, ...] = ("--corpus", "{corpus}")
    postgres: bool = False


BENCHES = {
    "bench/accuracy.py": Bench(r"ROC AUC spam vs all ham +\d\.\d{4}"),
    "bench/attachment_evidence.py": Bench(r"any +\d+ messages; not clean before \d+ .*, after \d+"),
    "bench/clawback.py": Bench(r"imap +\d+\.\d +\d+\.\d\d +\d+\.\d\d", ()),
    "bench/dlp.py": Bench(r"extraction \+ scan: \d+ messages per CPU second"),
    "bench/export.py": Bench(r"added CPU per message with every sink on: \d+\.\d{3} ms"),
    "bench/filter_accuracy.py": Bench(r"ROC AUC of the total score .*: \d\.\d{4}"),
    "bench/heuristics.py": Bench(r"all evaluate +\d+\.\d+ +\d+\.\d+"),
    "bench/hunt.py": Bench(r"^rescanned: \d+ messages/s, CPU \d+\.\d\d ms per message"),
    "bench/history_search.py": Bench(r"all +10 +\d+\.\d +\d+\.\d", ("--admin-url", "{postgres}"), postgres=True),
    "bench/journal_pipeline.py": Bench(r"on +reuse +4 +\d+ +\d+\.\d\d +\d+\.\d\d", ()),
    "bench/malware_scan.py": Bench(r"generated +hashlist\+yara +1 +\d+ +\d+\.\d +[\d,]+"),
    "bench/outbound.py": Bench(r"counters in Redis: +\d+\.\d{3} ms CPU per message", ()),
    "bench/parse.py": Bench(r"mailwarden Message .* \d+ msg/s", ("{corpus}/spamassassin",)),
    "bench/profile_scan.py": Bench(r"\d+ messages; CPU per message .*median \d+\.\d\d ms"),
    "bench/rules.py": Bench(r"messages/s of CPU: \d+"),
    "bench/scan_cli.py": Bench(r"^--jobs 2: \d+ messages, median of \d+: \d+\.\d msg/s, CPU \d+\.\d\d ms per message"),
    "bench/smtp_ingest.py": Bench(r"(on|off) +\S+ +\S+ +\d+ +\d+", ()),
    "bench/peers/run.py": Bench(
        r"\| mailwarden \| \d+\.\d % \(\d+/\d+\)(.|\n)*\| mailwarden `scan --json --jobs 2` \| – \| \d+"
        r"(.|\n)*\| mailwarden `serve`, journal copies \| 2 \| \d+(\.\d+)? \|"
        r"[^\n]*\| \d+(\.\d+)? / \d+(\.\d+)? \| 30 \| 1 \|",
        (
            "--corpus",
            "{corpus}",
            "--only",
            "mailwarden",
            "--concurrency",
            "1",
            "--no-modern",
            "--scan-jobs",
            "2",
            "--serve-clients",
            "2",
            "--out",
            "{tmp}/p.json",
        ),
    ),
}


def scripts() -> list[str]:
    found = [*(ROOT / "bench").glob("*.py"), ROOT / "bench" / "peers" / "run.py"]
    return sorted(str(p.relative_to(ROOT)) for p in found)


def test_every_bench_script_is_run_here() -> None:
    assert scripts() == sorted(BENCHES)


def corpus() -> Path:
    """shared/corpus beside the checkout (CI), or beside a folder above it (a git worktree)."""
    for folder in ROOT.parents:
        if (folder / "shared" / "corpus" / "spamassassin").is_dir():
            return folder / "shared" / "corpus"
    unavailable(f"no shared/corpus beside {ROOT} or a folder above it")


def postgres() -> str:
    try:
        psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {exc}".strip())
    return POSTGRES_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://", 1)


def run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILWARDEN_")}
    return subprocess.run(
        [sys.executable, script, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_SECONDS
    )


@pytest.mark.parametrize("script", scripts())
def test_the_bench_script_runs_quick_and_prints_its_figures(script: str, tmp_path: Path) -> None:
    bench = BENCHES[script]
    values = {"corpus": "", "postgres": "", "tmp": str(tmp_path)}
    if any("{corpus}" in a for a in bench.args):
        values["corpus"] = str(corpus())
    if bench.postgres:
        values["postgres"] = postgres()
    result = run(script, "--quick", *(a.format(**values) for a in bench.args))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.search(bench.figures, result.stdout, re.MULTILINE), result.stdout[-3000:]
