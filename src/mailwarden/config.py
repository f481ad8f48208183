"""The service configuration: typed, validated once, layered (defaults < file < environment).

The file is TOML. Every key can be overridden by an environment variable
`MAILWARDEN_<SECTION>__<KEY>` (for example `MAILWARDEN_STORE__URL`).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mailwarden.errors import ConfigError

ENV_PREFIX = "MAILWARDEN_"
DEFAULT_CONFIG_PATH = Path("mailwarden.toml")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StoreConfig(_Section):
    url: str = Field("", description="SQLAlchemy URL; empty means SQLite in data_dir")
    echo: bool = False
    pool_size: int = Field(5, ge=1, le=200)


class PathsConfig(_Section):
    data_dir: Path = Path("var")

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"


class PipelineConfig(_Section):
    inbound: list[str] | None = None
    outbound: list[str] | None = None
    stage_timeout_seconds: float = Field(30.0, gt=0, le=600)


class LogConfig(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["console", "json"] = "console"


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    organisation: str = Field("default", description="organisation used when a command names none")
    store: StoreConfig = StoreConfig()
    paths: PathsConfig = PathsConfig()
    pipeline: PipelineConfig = PipelineConfig()
    log: LogConfig = LogConfig()
    source: Path | None = Field(None, exclude=True)

    @property
    def database_url(self) -> str:
        if self.store.url:
            return self.store.url
        return f"sqlite:///{(self.paths.data_dir / 'mailwarden.sqlite3').resolve()}"


def load_config(path: Path | None = None, *, environ: dict[str, str] | None = None) -> Config:
    """Read the config file (when it exists), overlay the environment, validate once."""
    env = dict(os.environ if environ is None else environ)
    if path is None:
        path = Path(env.get(ENV_PREFIX + "CONFIG", str(DEFAULT_CONFIG_PATH)))
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    elif path != DEFAULT_CONFIG_PATH and ENV_PREFIX + "CONFIG" not in env:
        raise ConfigError(f"{path}: no such config file")
    _overlay_environment(data, env)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(first["msg"], field=field) from None
    config.source = path if path.exists() else None
    base = path.parent if path.exists() else Path.cwd()
    if not config.paths.data_dir.is_absolute():
        config.paths.data_dir = (base / config.paths.data_dir).resolve()
    return config


def _overlay_environment(data: dict[str, Any], env: dict[str, str]) -> None:
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX) or key == ENV_PREFIX + "CONFIG":
            continue
        parts = key[len(ENV_PREFIX) :].lower().split("__")
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment variable {key} overrides a value that is not a section")
        node[parts[-1]] = _env_value(value)


def _env_value(value: str) -> Any:
    """Environment values are TOML scalars or arrays when they parse as such, plain strings otherwise."""
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value
