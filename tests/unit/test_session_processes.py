"""The test session's own hygiene: a run that leaves a process behind fails, and the process is ended."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]

# An inner session gets the real hooks from tests/conftest.py.
CONFTEST = "from tests.conftest import pytest_configure, pytest_sessionfinish  # noqa: F401\n"


def run_session(directory: Path, test: str) -> subprocess.CompletedProcess[str]:
    (directory / "conftest.py").write_text(CONFTEST)
    (directory / "test_inner.py").write_text(test)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(directory), str(directory)],
        cwd=directory,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def running(marker: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if marker in " ".join(process.info["cmdline"] or []):
            found.append(process)
    return found


def test_a_process_orphaned_by_a_test_fails_the_run_and_is_ended(tmp_path: Path) -> None:
    marker = f"600.{secrets.randbelow(10**6):06d}"  # a sleep no other process runs
    # the shell exits at once: its background sleep is orphaned, as a killed server's helpers were
    result = run_session(
        tmp_path,
        f"import subprocess\n\ndef test_daemon():\n    subprocess.run(['sh', '-c', 'sleep {marker} &'], check=True)\n",
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert "still running at the end" in result.stdout
    assert f"sleep {marker}" in result.stdout
    assert not running(f"sleep {marker}")


def test_a_session_that_ends_what_it_starts_passes(tmp_path: Path) -> None:
    result = run_session(
        tmp_path,
        "import subprocess\n\ndef test_waits():\n    subprocess.run(['sleep', '0.1'], check=True)\n",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "still running" not in result.stdout
