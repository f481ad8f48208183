"""`mailwarden config check` as an administrator runs it: where the config was found (or where it was
looked for), and every problem of a config listed in one run with the exit code of a config error."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailwarden.cli import app
from mailwarden.errors import ConfigError


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILWARDEN_CONFIG", raising=False)
    return tmp_path


def test_without_a_config_it_says_where_it_looked_and_creates_nothing(here: Path) -> None:
    result = CliRunner().invoke(app, ["config", "check"])
    assert result.exit_code == 0, result.output
    assert "none found (looked in mailwarden.toml, /etc/mailwarden/mailwarden.toml)" in result.output
    assert "not created yet: `mailwarden init` makes it" in result.output
    assert list(here.iterdir()) == []


def test_the_file_in_the_current_directory_is_found_and_every_problem_listed(here: Path) -> None:
    (here / "mailwarden.toml").write_text(
        '[smtp]\ntls_cert = "missing.pem"\ntls_key = "missing.key"\n'
        '[[smtp.listeners]]\nname = "outbound"\nrole = "outbound"\nport = 2587\nallowed_networks = ["10.0.0.0/8"]\n'
    )
    result = CliRunner().invoke(app, ["config", "check"])
    assert isinstance(result.exception, ConfigError) and result.exception.exit_code == 78  # `run` maps it
    assert str((here / "mailwarden.toml").resolve()) in result.output
    assert f"smtp.tls_cert: {(here / 'missing.pem').resolve()}: no such file" in result.output
    assert "add high_risk to [delivery] pools" in result.output  # a warning beside the failure
    assert str(result.exception) == "1 check(s) failed: TLS certificate"


def test_after_init_the_embedded_default_is_usable(here: Path) -> None:
    assert CliRunner().invoke(app, ["init"]).exit_code == 0
    result = CliRunner().invoke(app, ["config", "check"])
    assert result.exit_code == 0, result.output
    assert "schema at revision" in result.output and "configuration usable" in result.output


@pytest.mark.parametrize(
    ("provider", "trust", "network"),
    [
        ("m365", "trust_first_authentication_results = true", "40.107.0.0/16"),
        ("google", 'trusted_authserv_ids = ["mx.google.com"]', "209.85.128.0/17"),
        ("postfix", 'trusted_authserv_ids = ["mta.corp.example"]', "127.0.0.0/8"),
    ],
)
def test_init_for_a_provider_writes_its_trust_settings_and_says_what_to_do_next(
    here: Path, provider: str, trust: str, network: str
) -> None:
    args = [
        "init",
        "--provider",
        provider,
        "--authserv-id",
        "mta.corp.example",
        "--public-url",
        "https://mw.corp.example",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    text = (here / "mailwarden.toml").read_text()
    assert trust in text and f'"{network}"' in text and 'public_url = "https://mw.corp.example"' in text
    assert "next steps:" in result.output and "mailwarden user add admin --role admin" in result.output
    checked = CliRunner().invoke(app, ["config", "check"])
    assert checked.exit_code == 0, checked.output
    [row] = [line for line in checked.output.splitlines() if "console public_url" in line]
    assert " ok " in row and "https://mw.corp.example" in row
