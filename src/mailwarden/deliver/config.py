"""`[delivery]`: how the enforce-mode relay reaches next hops, retries, and gives up."""

from __future__ import annotations

import ipaddress
import socket
from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mailwarden.deliver.queue import parse_next_hop

HIGH_RISK_POOL = "high_risk"  # where outbound spam leaves (enforce/pool.py decides which messages)


class DeliveryConfig(BaseModel):
    """The delivery (relay) section. Durations take seconds or an ISO 8601 duration such as `PT1M` or `P2D`."""

    model_config = ConfigDict(extra="forbid")

    hostname: str = Field("", description="name sent in EHLO and used as Reporting-MTA; empty means the host's FQDN")
    pools: dict[str, str] = Field(
        default_factory=lambda: {"default": ""},
        description='delivery pool → smart host ("host", "host:port" or "[ip]:port"); "" means MX lookup',
    )
    concurrency: int = Field(20, ge=1, le=1000, description="delivery attempts running at the same time")
    pool_concurrency: dict[str, int] = Field(
        default_factory=dict,
        description="pool → most attempts at once for that pool (a queue of its own within `concurrency`); "
        "the high_risk pool defaults to a quarter of `concurrency`",
    )
    source_addresses: dict[str, str] = Field(
        default_factory=dict, description="pool → the local IP address its connections come from"
    )
    connect_timeout: float = Field(30.0, gt=0, le=600, description="seconds to connect and read the banner")
    command_timeout: float = Field(300.0, gt=0, le=3600, description="seconds to wait for the reply to a command")
    data_timeout: float = Field(600.0, gt=0, le=3600, description="seconds to wait for the reply after the message")
    first_retry: timedelta = Field(timedelta(minutes=1), description="wait before the first retry")
    retry_factor: float = Field(2.0, ge=1.0, le=10.0, description="each wait is the previous one times this")
    max_retry: timedelta = Field(timedelta(hours=1), description="longest wait between two attempts")
    max_queue_lifetime: timedelta = Field(
        timedelta(days=2), description="after this a message still undelivered is bounced with a DSN"
    )
    poll_interval: float = Field(1.0, gt=0, le=60, description="seconds between looks at the queue when idle")
    tls_verify: bool = Field(
        False, description="verify the next hop's certificate and name when TLS is required by the route"
    )
    tls_ca_file: Path | None = Field(None, description="PEM CA bundle for tls_verify; absent means the system store")

    def pool_limit(self, pool: str) -> int:
        """How many attempts of `pool` may run at once. The high-risk pool's relay may be slow or refuse
        (that is what it is for), so by default it gets a quarter of the slots: it never holds up the
        organisation's normal mail."""
        if pool in self.pool_concurrency:
            return min(self.pool_concurrency[pool], self.concurrency)
        if pool == HIGH_RISK_POOL:
            return max(1, self.concurrency // 4)
        return self.concurrency

    def ehlo_hostname(self) -> str:
        """The name we give in EHLO and as Reporting-MTA."""
        return self.hostname or socket.getfqdn()

    @field_validator("first_retry", "max_retry", "max_queue_lifetime")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than zero")
        return value

    @field_validator("pools")
    @classmethod
    def _next_hops(cls, value: dict[str, str]) -> dict[str, str]:
        for pool, hop in value.items():
            if hop:
                parse_next_hop(hop)  # raises ValueError naming the bad string
            if not pool.replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"pool name {pool!r}: use letters, digits, '_' and '-'")
        return value

    @field_validator("pool_concurrency")
    @classmethod
    def _limits(cls, value: dict[str, int]) -> dict[str, int]:
        for pool, limit in value.items():
            if limit < 1:
                raise ValueError(f"pool {pool!r}: at least 1 attempt at once")
        return value

    @field_validator("source_addresses")
    @classmethod
    def _addresses(cls, value: dict[str, str]) -> dict[str, str]:
        for pool, address in value.items():
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise ValueError(f"pool {pool!r}: {address!r} is not an IP address") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DeliveryConfig:
        for section in ("pool_concurrency", "source_addresses"):
            unknown = sorted(set(getattr(self, section)) - set(self.pools))
            if unknown:
                raise ValueError(f"{section} names pools that are not in pools: {', '.join(unknown)}")
        if "default" not in self.pools:
            raise ValueError('pools needs a "default" entry ("" for MX lookup)')
        if self.max_retry < self.first_retry:
            raise ValueError("max_retry must not be shorter than first_retry")
        return self
