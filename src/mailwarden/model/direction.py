"""Direction of a message relative to one organisation's domains."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from enum import StrEnum

from mailwarden.model.envelope import domain_of


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    INTERNAL = "internal"


def is_org_address(address: str | None, org_domains: Collection[str]) -> bool:
    """True when the address's domain is one of the organisation's accepted domains (exact match)."""
    domain = domain_of(address)
    return domain is not None and domain in org_domains


def classify_direction(
    sender: str | None,
    recipients: Iterable[str],
    org_domains: Collection[str],
    *,
    sender_verified: bool = True,
) -> Direction:
    """Decide inbound / outbound / internal.

    * sender outside the organisation → inbound;
    * sender inside and every recipient inside → internal (not scanned);
    * sender inside and at least one recipient outside (or no recipient known) → outbound.

    `sender_verified=False` says the mail service did not authenticate a sender that claims one of
    the organisation's domains (a spoof of the own domain): such mail is inbound, never internal.
    """
    domains = {d.lower() for d in org_domains}
    if not sender_verified or not is_org_address(sender, domains):
        return Direction.INBOUND
    rcpts = list(recipients)
    if rcpts and all(is_org_address(r, domains) for r in rcpts):
        return Direction.INTERNAL
    return Direction.OUTBOUND
