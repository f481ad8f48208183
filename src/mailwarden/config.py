"""The service configuration: typed, validated once, layered (defaults < file < environment).

The file is TOML. Every key can be overridden by an environment variable
`MAILWARDEN_<SECTION>__<KEY>` (for example `MAILWARDEN_STORE__URL`).
"""

from __future__ import annotations

import os
import re
import tomllib
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from mailwarden.deliver.config import DeliveryConfig
from mailwarden.dns import DnsConfig
from mailwarden.enforce.dkim_sign import DkimSigningConfig
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


class ConsoleConfig(_Section):
    """`[console]`: the web console as users reach it (digest links point there)."""

    public_url: str = Field("http://127.0.0.1:8025", pattern=r"^https?://[^\s/]+(/\S*)?$")


class ApiConfig(_Section):
    """`[api]`: the REST API and web console listener, served by `mailwarden serve` (docs/api.md)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(8025, ge=0, le=65535, description="0 picks a free port (tests)")
    secure_cookies: bool = Field(False, description="session cookies only over HTTPS (set behind a TLS proxy)")


class LogConfig(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["console", "json"] = "console"


# `scrypt$<log2 n>$<r>$<p>$<salt b64>$<key b64>` or `pbkdf2_sha256$<iterations>$<salt b64>$<key b64>`
_PASSWORD_HASH = re.compile(
    r"^(scrypt\$\d{1,2}\$\d{1,2}\$\d{1,2}|pbkdf2_sha256\$\d{4,9})\$[A-Za-z0-9+/=]{8,}\$[A-Za-z0-9+/=]{16,}$"
)


class SmtpListenerConfig(_Section):
    """One `[[smtp.listeners]]` entry: an address the SMTP ingress listens on and what it accepts there."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    role: Literal["inbound", "outbound", "journal"]
    host: str = "127.0.0.1"
    port: int = Field(..., ge=0, le=65535, description="0 picks a free port (tests)")
    implicit_tls: bool = Field(False, description="SMTPS: TLS from the first byte, no STARTTLS")
    require_tls: bool = Field(False, description="refuse mail commands (530 5.7.0) before STARTTLS")
    allowed_networks: list[IPv4Network | IPv6Network] = Field(
        default_factory=list, description="outbound and journal: client networks (CIDR) that may send"
    )
    auth_required: bool = Field(
        False, description="outbound and journal: clients outside allowed_networks must authenticate (AUTH over TLS)"
    )
    auth_users: dict[str, str] = Field(
        default_factory=dict, description="outbound and journal: user name → scrypt or pbkdf2_sha256 password hash"
    )
    tls_client_ca: Path | None = Field(
        None,
        description="outbound and journal: PEM CA certificates; a client whose TLS certificate verifies against "
        "them (and carries one of tls_client_subjects) may send",
    )
    tls_client_subjects: list[str] = Field(
        default_factory=list,
        description="names a client certificate must carry (subject CN or DNS subjectAltName; `*.example.com` "
        "matches one label); empty: any certificate from tls_client_ca",
    )
    allow_any_source: bool = Field(
        False, description="journal: take journal reports from any client (a lab; warned about at every start)"
    )
    journal_addresses: list[str] = Field(
        default_factory=list, description="journal: mailboxes that accept journal reports (plus-addressing too)"
    )

    @field_validator("journal_addresses")
    @classmethod
    def _lower_addresses(cls, value: list[str]) -> list[str]:
        out = []
        for address in value:
            address = address.strip().strip("<>").lower()
            if address.count("@") != 1 or address.startswith("@") or address.endswith("@"):
                raise ValueError(f"{address!r} is not a mailbox address")
            out.append(address)
        return out

    @field_validator("auth_users")
    @classmethod
    def _hashes_only(cls, value: dict[str, str]) -> dict[str, str]:
        for user, hashed in value.items():
            if not _PASSWORD_HASH.match(hashed):
                raise ValueError(
                    f"user {user!r}: not a scrypt$... or pbkdf2_sha256$... password hash "
                    "(make one with `python -m mailwarden.ingest.smtp hash-password`)"
                )
        return value

    @field_validator("tls_client_subjects")
    @classmethod
    def _lower_names(cls, value: list[str]) -> list[str]:
        names = [name.strip().lower() for name in value]
        if not all(names):
            raise ValueError("an empty name")
        return names

    @model_validator(mode="after")
    def _role_keys(self) -> SmtpListenerConfig:
        if self.role == "journal" and not self.journal_addresses:
            raise ValueError("a journal listener needs journal_addresses")
        if self.role != "journal" and self.journal_addresses:
            raise ValueError("journal_addresses apply to journal listeners only")
        if self.allow_any_source and self.role != "journal":
            raise ValueError("allow_any_source applies to journal listeners only")
        problem = _access_problem(self)
        if problem:
            raise ValueError(problem)
        return self


def _access_problem(listener: SmtpListenerConfig) -> str:
    """What is wrong with the listener's client rules (allowed_networks, auth_*, tls_client_*), or ""."""
    rules = bool(listener.allowed_networks or listener.auth_users or listener.tls_client_ca)
    if listener.role == "inbound" and (rules or listener.auth_required or listener.tls_client_subjects):
        return "allowed_networks, auth_required, auth_users and tls_client_* apply to outbound and journal listeners"
    if listener.auth_required and not listener.auth_users:
        return "auth_required needs at least one entry in auth_users"
    if listener.tls_client_subjects and listener.tls_client_ca is None:
        return "tls_client_subjects needs tls_client_ca (the CA the client certificates are verified against)"
    if listener.role == "outbound" and not rules:
        return "an outbound listener needs allowed_networks, auth_users or tls_client_ca (else nobody may send)"
    if listener.role == "journal" and listener.allow_any_source and rules:
        return "allow_any_source = true contradicts allowed_networks, auth_users and tls_client_ca: choose one"
    if listener.role == "journal" and not (rules or listener.allow_any_source):
        return (
            "a journal listener needs allowed_networks, auth_users or tls_client_ca: who may send journal "
            "reports (anyone else could forge message history); allow_any_source = true only for a lab"
        )
    return ""


class SmtpConfig(_Section):
    """`[smtp]`: limits shared by every listener, the TLS certificate, and the listeners."""

    hostname: str = Field("", description="name in the banner and EHLO reply; empty means the host's FQDN")
    max_message_size: int = Field(50 * 1024 * 1024, ge=1024, description="bytes; announced in EHLO SIZE")
    max_recipients: int = Field(500, ge=1, le=100_000)
    max_line_length: int = Field(1000, ge=100, le=1_000_000, description="octets per line including CRLF")
    command_timeout: float = Field(300.0, gt=0, le=3600, description="seconds a client may idle between commands")
    data_timeout: float = Field(180.0, gt=0, le=3600, description="seconds a client may stall inside DATA")
    max_connections_per_ip: int = Field(20, ge=1, le=10_000)
    max_backlog: int = Field(
        50_000,
        ge=1,
        description="messages waiting in the spool at which MAIL FROM is answered 452 4.3.1 until scanning catches up",
    )
    max_data_in_flight: int = Field(
        256 * 1024 * 1024,
        ge=1024,
        description="bytes of message data all sessions together may hold while DATA is read; past it the"
        " largest message in transit is answered 452 4.3.1",
    )
    max_hops: int = Field(
        50, ge=1, le=1000, description="Received fields at which inbound and outbound mail is refused as a loop"
    )
    tls_cert: Path | None = Field(None, description="PEM certificate chain; absent means a self-signed one")
    tls_key: Path | None = None
    listeners: list[SmtpListenerConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> SmtpConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        if self.max_data_in_flight < self.max_message_size:
            raise ValueError("max_data_in_flight must hold at least one message of max_message_size")
        names = [listener.name for listener in self.listeners]
        if len(names) != len(set(names)):
            raise ValueError("listener names must be unique")
        bound = [(listener.host, listener.port) for listener in self.listeners if listener.port]
        if len(bound) != len(set(bound)):
            raise ValueError("two listeners on the same host and port")
        return self


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
    console: ConsoleConfig = ConsoleConfig()
    api: ApiConfig = ApiConfig()
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
