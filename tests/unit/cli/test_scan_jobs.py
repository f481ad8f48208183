"""`mailwarden scan --jobs N`: scanning processes give the same lines in the same order as one process,
a bad file is reported on its own, and no process outlives the command however it ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
from typer.testing import CliRunner

from mailwarden.cli import app
from tests import processes
from tests.factories import build_message
from tests.unit.cli.test_cli import cli, workdir

__all__ = ["workdir"]  # the fixture, shared with the other command-line tests

runner = CliRunner()

SUBJECTS = ["Quarterly numbers", "URGENT verify your account now", "Lunch on Friday?", "Your invoice is overdue"]


def mail_folder(root: Path, count: int) -> Path:
    """`count` .eml files and an mbox of five messages, varied enough to get different verdicts."""
    folder = root / "mail"
    folder.mkdir()
    for i in range(count):
        html = '<p>Sign in <a href="http://198.51.100.9/login">here</a></p>' if i % 3 == 0 else None
        raw = build_message(
            subject=f"{SUBJECTS[i % len(SUBJECTS)]} {i}",
            sender=f"sender{i}@example.org",
            html=html,
        )
        (folder / f"{i:03d}.eml").write_bytes(raw)
    mbox = b"".join(
        b"From someone@example.org  Thu Aug 22 13:17:22 2002\n"
        + build_message(subject=f"In the mbox {n}").replace(b"\r\n", b"\n")
        + b"\n"
        for n in range(5)
    )
    (folder / "zz.mbox").write_bytes(mbox)
    return folder


def verdict_lines(stdout: str) -> list[dict[str, Any]]:
    """The lines without what differs from run to run (how long each stage took)."""
    rows = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    for row in rows:
        for stage in row["stages"]:
            stage.pop("duration_ms")
    return rows


def test_two_processes_give_the_lines_of_one_in_the_same_order(workdir: Path) -> None:
    folder = mail_folder(workdir, 24)
    one = cli("scan", "--json", "--jobs", "1", str(folder), cwd=workdir)
    two = cli("scan", "--json", "--jobs", "2", str(folder), cwd=workdir)
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    expected = verdict_lines(one.stdout)
    assert len(expected) == 29
    assert [row["file"].rsplit("/", 1)[-1] for row in expected][-5:] == [f"zz.mbox:{n}" for n in range(1, 6)]
    assert len({row["category"] for row in expected}) > 1  # not one verdict for all, or order would not show
    assert verdict_lines(two.stdout) == expected


def test_a_broken_file_among_good_ones_is_reported_and_the_others_are_scanned(workdir: Path) -> None:
    folder = mail_folder(workdir, 10)
    (folder / "005b.eml").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    (folder / "007b.eml").write_bytes(b"")
    result = cli("scan", "--json", "--jobs", "2", str(folder), cwd=workdir)
    assert result.returncode == 1
    assert "005b.eml: not an email message" in result.stderr
    assert "007b.eml: not an email message" in result.stderr
    files = [row["file"].rsplit("/", 1)[-1] for row in verdict_lines(result.stdout)]
    assert files == [f"{i:03d}.eml" for i in range(10)] + [f"zz.mbox:{n}" for n in range(1, 6)]


def test_table_and_record_with_two_processes(workdir: Path) -> None:
    folder = mail_folder(workdir, 6)
    result = runner.invoke(app, ["scan", "--record", "--jobs", "2", str(folder)])
    assert result.exit_code == 0, result.output
    assert "11 messages scanned" in result.output
    assert result.output.index("000.eml") < result.output.index("005.eml") < result.output.index("zz.mbox:1")
    traced = runner.invoke(app, ["trace", "--subject", "in the mbox", "--json"])
    assert sorted(json.loads(line)["subject"] for line in traced.output.splitlines()) == [
        f"In the mbox {n}" for n in range(5)
    ]


def scanning(folder: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """`scan --jobs 2` in a session of its own (as a terminal's foreground job), once its processes scan."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILWARDEN_") or k.startswith("MAILWARDEN_DNS")}
    command = [sys.executable, "-m", "mailwarden", "scan", "--json", "--jobs", "2", str(folder)]
    scan = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, start_new_session=True)
    assert scan.stdout is not None
    assert scan.stdout.readline()  # the first line: the scanning processes are at work
    return scan


def scanning_processes(scan: subprocess.Popen[bytes]) -> list[psutil.Process]:
    return psutil.Process(scan.pid).children(recursive=True)


@pytest.mark.parametrize(
    ("how", "signum"),
    [
        ("Ctrl-C to the foreground job", signal.SIGINT),
        ("SIGTERM to the command", signal.SIGTERM),
        ("SIGKILL to the command: its processes follow it by their lifeline", signal.SIGKILL),
    ],
)
def test_an_interrupted_scan_leaves_no_process(workdir: Path, how: str, signum: int) -> None:
    folder = mail_folder(workdir, 400)
    scan = scanning(folder, workdir)
    started = scanning_processes(scan)
    assert len(started) >= 2  # two scanning processes (and a forkserver and resource tracker when not forked)
    if signum == signal.SIGINT:
        os.killpg(scan.pid, signum)  # a terminal sends Ctrl-C to every process of the job
    else:
        scan.send_signal(signum)
    scan.communicate(timeout=30)  # read on: a command blocked on a full pipe would never end
    assert scan.returncode != 0
    left = processes.still_running(started, grace=10)
    assert left == [], [processes.describe(p) for p in left]


def test_a_scanning_process_that_dies_holds_up_no_message(workdir: Path) -> None:
    folder = mail_folder(workdir, 120)
    scan = scanning(folder, workdir)
    command = psutil.Process(scan.pid)
    victim = next(p for p in command.children() if p.cmdline() == command.cmdline())  # forked from the command
    victim.kill()
    assert scan.stdout is not None
    out = scan.stdout.read()  # to the end: the command has exited
    assert scan.wait(timeout=30) == 0
    files = [json.loads(line)["file"].rsplit("/", 1)[-1] for line in out.decode().splitlines()]
    # the first line was read before the kill
    assert files == [f"{i:03d}.eml" for i in range(1, 120)] + [f"zz.mbox:{n}" for n in range(1, 6)]


def test_scanning_processes_that_cannot_build_their_pipeline_end_the_run_with_its_error(workdir: Path) -> None:
    folder = mail_folder(workdir, 4)
    config = workdir / "mailwarden.toml"
    text = config.read_text().replace("[pipeline]\n", '[pipeline]\ninbound = ["connection", "no-such-stage"]\n', 1)
    config.write_text(text)
    result = cli("scan", "--json", "--jobs", "2", str(folder), cwd=workdir)
    assert result.returncode == 78  # as the configuration error it is, not a scan error per message
    assert "unknown stage 'no-such-stage'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""
