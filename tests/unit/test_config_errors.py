"""A config that points at something unusable stops a command with one line naming the field.

Each bad config is tried with the commands an administrator runs first: `serve` as a real process (exit
code EX_CONFIG, 78, and one line on stderr, never a traceback), `init` and `scan` in this process.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailwarden.cli import app
from mailwarden.errors import ConfigError
from tests.factories import build_message

LISTENER = (
    '[[smtp.listeners]]\nname = "journal"\nrole = "journal"\nport = 0\njournal_addresses = ["j@mw.test"]\n'
    'allowed_networks = ["127.0.0.0/8"]\n'
)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket is closed


def data_dir_is_a_file(root: Path) -> str:
    (root / "taken").write_text("not a directory\n")
    return '[paths]\ndata_dir = "taken"\n'


def data_dir_cannot_be_created(root: Path) -> str:
    (root / "taken").write_text("not a directory\n")
    return '[paths]\ndata_dir = "taken/var"\n'


def store_unreachable(root: Path) -> str:
    return f'[store]\nurl = "postgresql+psycopg://mailwarden@127.0.0.1:{closed_port()}/mailwarden"\n'


def nameserver_not_an_address(root: Path) -> str:
    return '[dns]\nnameservers = ["not-an-ip"]\n'


BAD_CONFIGS: dict[str, tuple[Callable[[Path], str], str, tuple[str, ...]]] = {
    # name: (config section, the field named, words of the problem)
    "data_dir is a file": (data_dir_is_a_file, "paths.data_dir", ("taken", "not a directory")),
    "data_dir cannot be created": (data_dir_cannot_be_created, "paths.data_dir", ("cannot create", "taken/var")),
    "store unreachable": (store_unreachable, "store.url", ("cannot connect", "refused")),
    "nameserver not an address": (nameserver_not_an_address, "dns.nameservers", ("'not-an-ip'", "not an IP address")),
}


def write_config(root: Path, case: str) -> None:
    section, _, _ = BAD_CONFIGS[case]
    (root / "mailwarden.toml").write_text(section(root) + LISTENER)
    (root / "mail.eml").write_bytes(build_message(subject="hello"))


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_serve_stops_at_a_bad_config_with_one_line_naming_the_field(tmp_path: Path, case: str) -> None:
    write_config(tmp_path, case)
    _, field, problem = BAD_CONFIGS[case]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILWARDEN_")}
    result = subprocess.run(
        [sys.executable, "-m", "mailwarden", "serve"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 78, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {field}: ")
    for words in problem:
        assert words.lower() in lines[0].lower()


@pytest.mark.parametrize("command", [["init"], ["scan", "mail.eml"]], ids=["init", "scan"])
@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_init_and_scan_stop_at_a_bad_config_naming_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, command: list[str]
) -> None:
    write_config(tmp_path, case)
    _, field, problem = BAD_CONFIGS[case]
    monkeypatch.chdir(tmp_path)
    for name in [k for k in os.environ if k.startswith("MAILWARDEN_")]:
        monkeypatch.delenv(name)
    result = CliRunner().invoke(app, command)
    # the error the command raises is the one `main` prints as one line (see the serve test)
    assert isinstance(result.exception, ConfigError), result.output
    assert result.exception.field == field
    for words in problem:
        assert words.lower() in str(result.exception).lower()
