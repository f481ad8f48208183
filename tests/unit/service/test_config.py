from __future__ import annotations

from pathlib import Path

import pytest

from mailwarden.errors import ConfigError
from mailwarden.service.config import load_config


def test_defaults_give_an_embedded_sqlite_store(tmp_path: Path) -> None:
    config = load_config(tmp_path / "absent.toml", environ={"MAILWARDEN_CONFIG": str(tmp_path / "absent.toml")})
    assert config.database_url.startswith("sqlite:///")
    assert config.paths.data_dir.is_absolute()


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "mailwarden.toml"
    path.write_text('[store]\nurl = "sqlite:///from-file.db"\n[pipeline]\nstage_timeout_seconds = 10\n')
    config = load_config(path, environ={"MAILWARDEN_PIPELINE__STAGE_TIMEOUT_SECONDS": "2.5"})
    assert config.database_url == "sqlite:///from-file.db"
    assert config.pipeline.stage_timeout_seconds == 2.5
    assert config.paths.data_dir == (tmp_path / "var").resolve()  # relative to the config file


def test_a_bad_value_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "mailwarden.toml"
    path.write_text("[pipeline]\nstage_timeout_seconds = -1\n")
    with pytest.raises(ConfigError, match=r"^pipeline\.stage_timeout_seconds: "):
        load_config(path, environ={})


def test_an_unknown_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "mailwarden.toml"
    path.write_text("[store]\nulr = 'x'\n")
    with pytest.raises(ConfigError, match=r"store\.ulr"):
        load_config(path, environ={})


def test_broken_toml_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "mailwarden.toml"
    path.write_text("[store\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path, environ={})


def test_a_named_file_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.toml", environ={})


def test_secrets_come_from_the_file_or_the_environment_as_their_exact_text(tmp_path: Path) -> None:
    path = tmp_path / "mailwarden.toml"
    path.write_text('[secrets]\nacme_ldap = "from-file"\nother = "kept"\n')
    config = load_config(path, environ={"MAILWARDEN_SECRETS__ACME_LDAP": "1e3"})
    assert config.secrets["acme_ldap"].get_secret_value() == "1e3"  # not read as a number
    assert config.secrets["other"].get_secret_value() == "kept"
    assert "1e3" not in repr(config)


def test_a_secret_name_a_policy_cannot_refer_to_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "mailwarden.toml"
    path.write_text('[secrets]\n"Acme-LDAP" = "x"\n')
    with pytest.raises(ConfigError, match=r"^secrets: .*'Acme-LDAP'"):
        load_config(path, environ={})
