"""`[export]`: the feed's sinks (several at once, each with its own filter) and the outbox's bounds.

```toml
[export]
max_backlog = 1000000        # outbox rows kept at most; past it the oldest are dropped, loudly
retention_hours = 168        # rows older than this go even if a sink has not passed them

[[export.sinks]]
type = "nats"                # nats, syslog, webhook or file
name = "lake"
subject = "mailwarden.events.{class_uid}"
classes = [4009, 2004]       # OCSF class_uid filter; empty: every class
min_severity = 0             # OCSF severity_id at least this
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class _Sink(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="the sink's name; its cursor's key")
    enabled: bool = True
    classes: list[int] = Field(default_factory=list, description="OCSF class_uids to send; empty: all")
    min_severity: int = Field(0, ge=0, le=6, description="OCSF severity_id at least this")
    batch_size: int = Field(200, ge=1, le=10000, description="outbox rows per batch")
    start: Literal["oldest", "now"] = Field("oldest", description="a new sink starts from the oldest row kept, or now")


class NatsSink(_Sink):
    type: Literal["nats"]
    servers: list[str] = Field(default_factory=lambda: ["nats://127.0.0.1:4222"])
    subject: str = Field("mailwarden.events", description="may hold {class_uid}")
    stream: str | None = None
    create_stream: bool = False
    user: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    ca_file: Path | None = None
    timeout_seconds: float = Field(10.0, gt=0)


class SyslogSink(_Sink):
    type: Literal["syslog"]
    host: str
    port: int = Field(6514, ge=1, le=65535)
    transport: Literal["tls", "tcp", "udp"] = "tls"
    ca_file: Path | None = None
    format: Literal["json", "cef"] = "json"
    facility: int = Field(16, ge=0, le=23, description="16 = local0")
    app_name: str = "mailwarden"


class WebhookSink(_Sink):
    type: Literal["webhook"]
    url: str = Field(pattern=r"^https?://\S+$")
    secret: SecretStr
    ca_file: Path | None = None
    timeout_seconds: float = Field(10.0, gt=0)
    max_batch: int = Field(100, ge=1, le=10000)


class FileSink(_Sink):
    type: Literal["file"]
    path: Path
    max_bytes: int = Field(100 * 1024 * 1024, ge=1024)
    max_age_seconds: float = Field(86400.0, gt=0)
    keep: int = Field(7, ge=1, le=1000)


SinkConfig = Annotated[NatsSink | SyslogSink | WebhookSink | FileSink, Field(discriminator="type")]


class ExportConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sinks: list[SinkConfig] = Field(default_factory=list)
    max_backlog: int = Field(1_000_000, ge=1000, description="outbox rows kept at most (the oldest go first)")
    retention_hours: float = Field(168.0, gt=0, description="outbox rows older than this go")
    poll_seconds: float = Field(1.0, gt=0, le=60)
    housekeeping_seconds: float = Field(
        30.0, gt=0, le=86400, description="how often passed rows are pruned and the bound enforced"
    )

    @field_validator("sinks")
    @classmethod
    def _unique_names(cls, sinks: list[SinkConfig]) -> list[SinkConfig]:
        names = [s.name for s in sinks]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"sink names must differ: {', '.join(twice)} given twice")
        return sinks
