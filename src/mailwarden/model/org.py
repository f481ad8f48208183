"""Organisations and their accepted domains."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from mailwarden.model.recipients import RecipientVerification


class ConnectionMode(StrEnum):
    """How a domain's mail reaches mailwarden."""

    JOURNAL = "journal"  # monitor: the mail service sends journal copies
    GATEWAY = "gateway"  # enforce: the MX record points here
    MAILFLOW = "mailflow"  # enforce: the mail service routes through us with a connector


class Mode(StrEnum):
    MONITOR = "monitor"
    ENFORCE = "enforce"


@dataclass(frozen=True, slots=True)
class Domain:
    name: str
    mode: ConnectionMode = ConnectionMode.JOURNAL
    next_hop: str | None = None  # host[:port] the domain's inbound mail is relayed to in enforce mode
    require_tls: bool = False
    # checked at RCPT time on the inbound listeners, docs/recipients.md
    recipient_verification: RecipientVerification = field(default_factory=RecipientVerification)


@dataclass(frozen=True, slots=True)
class Organisation:
    name: str
    domains: tuple[Domain, ...] = ()
    monitor_only: bool = True
    id: int | None = field(default=None, compare=False)

    @property
    def domain_names(self) -> frozenset[str]:
        return frozenset(d.name for d in self.domains)

    def domain(self, name: str | None) -> Domain | None:
        if name is None:
            return None
        name = name.lower()
        return next((d for d in self.domains if d.name == name), None)

    def mode_for(self, domain_name: str | None) -> Mode:
        """Monitor when the organisation is monitor-only or the domain is journaled; else enforce."""
        if self.monitor_only:
            return Mode.MONITOR
        domain = self.domain(domain_name)
        if domain is None or domain.mode is ConnectionMode.JOURNAL:
            return Mode.MONITOR
        return Mode.ENFORCE
