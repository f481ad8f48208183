"""The SMTP ingress's configuration: `[smtp]` and its `[[smtp.listeners]]`, validated once at load."""

from __future__ import annotations

import re
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mailwarden.model.listener import ListenerRole


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


_PASSWORD_HASH = re.compile(
    r"^(scrypt\$\d{1,2}\$\d{1,2}\$\d{1,2}|pbkdf2_sha256\$\d{4,9})\$[A-Za-z0-9+/=]{8,}\$[A-Za-z0-9+/=]{16,}$"
)


class SmtpListenerConfig(_Section):
    """One `[[smtp.listeners]]` entry: an address the SMTP ingress listens on and what it accepts there."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    role: ListenerRole
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
                    "(make one with `mailwarden hash-password`)"
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
        if self.role is ListenerRole.JOURNAL and not self.journal_addresses:
            raise ValueError("a journal listener needs journal_addresses")
        if self.role is not ListenerRole.JOURNAL and self.journal_addresses:
            raise ValueError("journal_addresses apply to journal listeners only")
        if self.allow_any_source and self.role is not ListenerRole.JOURNAL:
            raise ValueError("allow_any_source applies to journal listeners only")
        problem = _access_problem(self)
        if problem:
            raise ValueError(problem)
        return self


def _access_problem(listener: SmtpListenerConfig) -> str:
    """What is wrong with the listener's client rules (allowed_networks, auth_*, tls_client_*), or ""."""
    rules = bool(listener.allowed_networks or listener.auth_users or listener.tls_client_ca)
    if listener.role is ListenerRole.INBOUND and (rules or listener.auth_required or listener.tls_client_subjects):
        return "allowed_networks, auth_required, auth_users and tls_client_* apply to outbound and journal listeners"
    if listener.auth_required and not listener.auth_users:
        return "auth_required needs at least one entry in auth_users"
    if listener.tls_client_subjects and listener.tls_client_ca is None:
        return "tls_client_subjects needs tls_client_ca (the CA the client certificates are verified against)"
    if listener.role is ListenerRole.OUTBOUND and not rules:
        return "an outbound listener needs allowed_networks, auth_users or tls_client_ca (else nobody may send)"
    if listener.role is ListenerRole.JOURNAL and listener.allow_any_source and rules:
        return "allow_any_source = true contradicts allowed_networks, auth_users and tls_client_ca: choose one"
    if listener.role is ListenerRole.JOURNAL and not (rules or listener.allow_any_source):
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
