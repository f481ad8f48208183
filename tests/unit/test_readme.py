"""The README's commands are the ones CI runs, and its two environments stay apart."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def shell_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)


def test_ci_runs_the_readme_test_command() -> None:
    (test_command,) = [block.strip() for block in shell_blocks() if "pytest" in block]
    assert test_command in (ROOT / ".ci" / "run").read_text().splitlines()


def test_the_tests_never_install_into_the_environment_serve_runs_from() -> None:
    installs = [block for block in shell_blocks() if "python3 -m venv" in block]
    (setup,) = [block for block in installs if "mailwarden serve" in block]
    (tests,) = [block for block in installs if "pytest" in block]
    serve_env = re.search(r"python3 -m venv (\S+)", setup)
    test_env = re.search(r"python3 -m venv (\S+)", tests)
    assert serve_env and test_env
    assert serve_env.group(1) != test_env.group(1)
    assert f"{serve_env.group(1)}/" not in tests
    assert f"{test_env.group(1)}/" in (ROOT / ".gitignore").read_text()
