"""What the command line shows a person: whole help texts, plain flags, progress on long runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from mailwarden.cli import app
from tests.dnsserver import DnsServer
from tests.factories import build_message

runner = CliRunner()


def commands() -> Iterator[tuple[list[str], Any]]:
    """Every command and group of the CLI with its path of names, the top level first."""
    todo: list[tuple[list[str], Any]] = [([], typer.main.get_command(app))]
    while todo:
        path, command = todo.pop(0)
        yield path, command
        todo += [([*path, name], sub) for name, sub in getattr(command, "commands", {}).items()]


def words(text: str) -> str:
    return " ".join(text.split())


def help_page(path: list[str]) -> str:
    result = runner.invoke(app, [*path, "--help"], terminal_width=400)
    assert result.exit_code == 0, result.output
    return words(result.output)


def test_learn_help_names_the_config_section_where_the_statistics_live() -> None:
    assert "where `[stages.spam] statistics` says" in help_page(["learn"])


@pytest.mark.parametrize("path", [path for path, _ in commands()], ids=lambda p: " ".join(p) or "mailwarden")
def test_every_help_text_is_shown_whole(path: list[str]) -> None:
    command = dict((" ".join(p), c) for p, c in commands())[" ".join(path)]
    page = help_page(path)
    texts = [command.help or ""] + [getattr(param, "help", None) or "" for param in command.params]
    for text in texts:
        assert words(text) in page


def test_no_flag_is_offered_as_a_double_negative() -> None:
    offered = [
        (" ".join(path), name)
        for path, command in commands()
        for param in command.params
        for name in [*getattr(param, "opts", []), *getattr(param, "secondary_opts", [])]
    ]
    assert [(path, name) for path, name in offered if name.startswith("--no-no-")] == []
    page = help_page(["user", "add"])
    assert "--no-password" in page and "--no-no-password" not in page


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dns_server: DnsServer) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILWARDEN_CONFIG", raising=False)
    monkeypatch.setenv("MAILWARDEN_DNS__NAMESERVERS", '["127.0.0.1"]')
    monkeypatch.setenv("MAILWARDEN_DNS__PORT", str(dns_server.port))
    result = runner.invoke(app, ["init", "--organisation", "acme", "--domain", "example.com"])
    assert result.exit_code == 0, result.output
    return tmp_path


def test_learn_shows_its_progress_on_a_large_folder(workdir: Path) -> None:
    folder = workdir / "junk"
    folder.mkdir()
    for n in range(30):
        (folder / f"{n:02}.eml").write_bytes(build_message(subject=f"Cheap watches {n}", to="bob@example.com"))
    result = runner.invoke(app, ["learn", "--spam", "junk"])
    assert result.exit_code == 0, result.output
    assert "learning" in result.stderr and "100%" in result.stderr and "30 messages" in result.stderr
    assert "spam: 30 learnt" in result.stdout


def test_a_short_run_has_no_progress_bar(workdir: Path) -> None:
    (workdir / "one.eml").write_bytes(build_message(subject="Cheap watches"))
    result = runner.invoke(app, ["learn", "--spam", "one.eml"])
    assert result.exit_code == 0, result.output
    assert "learning" not in result.stderr
