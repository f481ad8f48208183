"""The service configuration: typed, validated once, layered (defaults < file < environment).

The file is TOML. Every key can be overridden by an environment variable
`MAILWARDEN_<SECTION>__<KEY>` (for example `MAILWARDEN_STORE__URL`).
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from mailwarden.deliver.config import DeliveryConfig
from mailwarden.dns import DnsConfig
from mailwarden.enforce.dkim_sign import DkimSigningConfig
from mailwarden.errors import ConfigError
from mailwarden.export.config import ExportConfig
from mailwarden.ingest.config import SmtpConfig

ENV_PREFIX = "MAILWARDEN_"
DEFAULT_CONFIG_PATH = Path("mailwarden.toml")
SYSTEM_CONFIG_PATH = Path("/etc/mailwarden/mailwarden.toml")
# Where a command that is not told a file (--config, MAILWARDEN_CONFIG) looks, in order; with none there
# the built-in defaults apply (the embedded SQLite store and ./var): `mailwarden config check` says so.
SEARCH_PATH = (DEFAULT_CONFIG_PATH, SYSTEM_CONFIG_PATH)


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
    def queue_dir(self) -> Path:
        return self.data_dir / "queue"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"


class PipelineConfig(_Section):
    inbound: list[str] | None = None
    outbound: list[str] | None = None
    stage_timeout_seconds: float = Field(30.0, gt=0, le=600)


class ProcessingConfig(_Section):
    """`[processing]`: how the server works through the spool behind the SMTP listeners."""

    workers: int = Field(8, ge=1, le=256, description="messages scanned at the same time")
    scan_processes: int = Field(
        2, ge=0, le=64, description="separate processes that scan (0: scan inside the server process)"
    )
    batch_size: int = Field(200, ge=1, le=5000, description="history records written per transaction")
    batch_delay_ms: float = Field(20.0, ge=0, le=5000, description="longest wait to fill a batch")
    policy_refresh_seconds: float = Field(10.0, ge=0, le=3600, description="how soon policy changes apply")
    journal_dedupe_hours: float = Field(24.0, gt=0, le=24 * 30, description="window for merging journal copies")
    scan_nice: int = Field(
        10,
        ge=0,
        le=19,
        description="how much lower the scanning processes' CPU priority is than the listeners' (a burst is "
        "accepted at full speed and scanned behind it)",
    )
    spool_fsync: bool = Field(
        True,
        description="fsync spool file and directory before the 250; false risks losing accepted mail on power loss",
    )


class QuarantineConfig(_Section):
    """`[quarantine]`: the server's expiry and digest jobs and the digest links (docs/quarantine.md)."""

    expiry_interval_seconds: float = Field(600.0, gt=0, le=86400, description="how often expired entries go")
    digest_interval_seconds: float = Field(
        300.0, gt=0, le=86400, description="how often the server looks for recipients whose digest is due"
    )
    release_interval_seconds: float = Field(
        2.0, gt=0, le=3600, description="how soon a release made elsewhere (CLI, API) is queued for delivery"
    )
    link_lifetime_hours: float = Field(72.0, gt=0, le=24 * 30, description="how long a digest link works")
    secret_file: Path | None = Field(None, description="HMAC key for digest links; absent: data_dir/link-secret")


class RetentionConfig(_Section):
    """`[retention]`: messages kept, compressed, for retro-hunt (docs/retro-hunt.md)."""

    keep_days: float = Field(
        7.0, ge=0, le=3650, description="how long each recorded message is kept for rescans and searches; 0: none"
    )
    zstd_level: int = Field(3, ge=1, le=22, description="zstandard level (higher: smaller, slower)")
    expiry_interval_seconds: float = Field(600.0, gt=0, le=86400, description="how often expired messages go")


class ConsoleConfig(_Section):
    """`[console]`: the web console as users reach it (digest links point there)."""

    public_url: str = Field("http://127.0.0.1:8025", pattern=r"^https?://[^\s/]+(/\S*)?$")


class ApiConfig(_Section):
    """`[api]`: the REST API and web console listener, served by `mailwarden serve` (docs/api.md)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(8025, ge=0, le=65535, description="0 picks a free port (tests)")
    secure_cookies: bool = Field(False, description="session cookies only over HTTPS (set behind a TLS proxy)")


class ClawbackConfig(_Section):
    """`[clawback]`: the key that seals connector secrets and how the server works through clawback jobs
    (docs/clawback.md)."""

    key: SecretStr | None = Field(
        None,
        description="Fernet key(s) sealing connector secrets, newest first, comma-separated "
        "(MAILWARDEN_CLAWBACK__KEY); absent: the key file",
    )
    key_file: Path | None = Field(
        None, description="where the key lives when `key` is not set; absent: data_dir/clawback.key"
    )
    poll_seconds: float = Field(1.0, gt=0, le=3600, description="how often the server looks for due work")
    batch_size: int = Field(200, ge=1, le=5000, description="recipients taken per round")
    lease_seconds: float = Field(600.0, ge=10, le=86400, description="how long a round may hold its recipients")
    max_attempts: int = Field(8, ge=1, le=100, description="tries per recipient before it is marked failed")
    retry_first_seconds: float = Field(30.0, gt=0, le=86400, description="first pause after a failure (doubles)")


class OutboundConfig(_Section):
    """`[outbound]`: where the sending-limit counters live (docs/outbound.md)."""

    redis_url: str = Field("", description="redis://host:6379/0 shares the counters between nodes; empty: the database")


class LogConfig(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["console", "json"] = "console"


# `scrypt$<log2 n>$<r>$<p>$<salt b64>$<key b64>` or `pbkdf2_sha256$<iterations>$<salt b64>$<key b64>`
class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    organisation: str = Field("default", description="organisation used when a command names none")
    store: StoreConfig = StoreConfig()
    paths: PathsConfig = PathsConfig()
    pipeline: PipelineConfig = PipelineConfig()
    log: LogConfig = LogConfig()
    smtp: SmtpConfig = SmtpConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    processing: ProcessingConfig = ProcessingConfig()
    dns: DnsConfig = DnsConfig()
    dkim: DkimSigningConfig = DkimSigningConfig()
    quarantine: QuarantineConfig = QuarantineConfig()
    retention: RetentionConfig = RetentionConfig()
    console: ConsoleConfig = ConsoleConfig()
    api: ApiConfig = ApiConfig()
    clawback: ClawbackConfig = ClawbackConfig()
    export: ExportConfig = ExportConfig()
    outbound: OutboundConfig = OutboundConfig()
    stages: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="`[stages.<name>]`: each stage validates its own section at start-up"
    )
    secrets: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="`[secrets]`: named secrets a policy document refers to by name (LDAP bind passwords), "
        "never stored in the policy; MAILWARDEN_SECRETS__<NAME> sets one from the environment",
    )
    source: Path | None = Field(None, exclude=True)

    @field_validator("secrets", mode="before")
    @classmethod
    def _secret_names(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value
        for name in value:
            if not re.fullmatch(r"[a-z0-9_]{1,64}", str(name)):
                raise ValueError(f"secret name {name!r}: use 1 to 64 lower-case letters, digits and '_'")
        return value

    @property
    def database_url(self) -> str:
        if self.store.url:
            return self.store.url
        return f"sqlite:///{(self.paths.data_dir / 'mailwarden.sqlite3').resolve()}"


def load_config(path: Path | None = None, *, environ: dict[str, str] | None = None) -> Config:
    """Read the config file (when it exists), overlay the environment, validate once."""
    env = dict(os.environ if environ is None else environ)
    if path is None:
        named = env.get(ENV_PREFIX + "CONFIG")
        path = Path(named) if named else next((p for p in SEARCH_PATH if p.exists()), DEFAULT_CONFIG_PATH)
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
        # a validator's own words, without pydantic's "Value error, " in front
        context = first.get("ctx") or {}
        message = str(context["error"]) if first["type"] == "value_error" and "error" in context else first["msg"]
        raise ConfigError(message, field=field) from None
    config.source = path if path.exists() else None
    base = path.parent if path.exists() else Path.cwd()
    # relative paths in the file are relative to the file, not to wherever the command runs
    if not config.paths.data_dir.is_absolute():
        config.paths.data_dir = (base / config.paths.data_dir).resolve()
    for attr in ("tls_cert", "tls_key"):
        value = getattr(config.smtp, attr)
        if value is not None and not value.is_absolute():
            setattr(config.smtp, attr, (base / value).resolve())
    if config.clawback.key_file is not None and not config.clawback.key_file.is_absolute():
        config.clawback.key_file = (base / config.clawback.key_file).resolve()
    for listener in config.smtp.listeners:
        if listener.tls_client_ca is not None and not listener.tls_client_ca.is_absolute():
            listener.tls_client_ca = (base / listener.tls_client_ca).resolve()
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
        # a secret is its exact text, even when it looks like a number or a boolean
        node[parts[-1]] = value if parts[0] == "secrets" else _env_value(value)


def _env_value(value: str) -> Any:
    """Environment values are TOML scalars or arrays when they parse as such, plain strings otherwise."""
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value
