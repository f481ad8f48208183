"""The SMTP envelope: who handed us the message, from whom, to whom."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class TlsInfo:
    """TLS facts of the session that carried the message."""

    version: str
    cipher: str
    peer_certificate_subject: str | None = None


@dataclass(frozen=True, slots=True)
class Envelope:
    """Envelope of one message as received (or as reconstructed from a journal report).

    `mail_from` is "" for the null sender (bounces); recipients are lower-cased addresses.
    """

    mail_from: str
    rcpt_to: tuple[str, ...]
    client_ip: str | None = None
    helo: str | None = None
    tls: TlsInfo | None = None
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    authenticated_as: str | None = None

    @property
    def sender_domain(self) -> str | None:
        return domain_of(self.mail_from)


def domain_of(address: str | None) -> str | None:
    """The lower-cased domain of an address, or None when it has none."""
    if not address or "@" not in address:
        return None
    return address.rsplit("@", 1)[1].strip().strip(">").lower() or None


def normalise_address(address: str) -> str:
    """Strip angle brackets and white space and lower-case the domain part.

    Local parts are case-sensitive by the letter of RFC 5321, but every mail system an
    administrator meets treats them as case-insensitive, so history stores them lowered.
    """
    return address.strip().strip("<>").strip().lower()
