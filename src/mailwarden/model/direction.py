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
    originated: bool,
) -> Direction:
    """Decide inbound / outbound / internal.

    `originated` is positive evidence that the organisation itself sent the message: its submission
    path (the outbound listener, open only to authenticated clients and allowed networks) or its mail
    service's own word in a journal copy (`JournalEnvelope.originated`). A sender address is never
    evidence: anyone on the internet can write the organisation's domain into MAIL FROM and From.

    * not originated → inbound (scanned), whatever domain the sender claims;
    * originated, the sender and every recipient inside the organisation → internal (not scanned);
    * originated otherwise (a recipient outside, none known, or a sender outside) → outbound.
    """
    if not originated:
        return Direction.INBOUND
    domains = {d.lower() for d in org_domains}
    rcpts = list(recipients)
    if is_org_address(sender, domains) and rcpts and all(is_org_address(r, domains) for r in rcpts):
        return Direction.INTERNAL
    return Direction.OUTBOUND


def assumed_direction(sender: str | None, recipients: Iterable[str], org_domains: Collection[str]) -> Direction:
    """The direction offline tools (`scan FILE`, the rules test) assume when the operator names none: they
    have no transport to ask, so an own-domain sender stands for one of the organisation's users, as
    whoever runs them presumably means. Mail that arrived is never judged this way."""
    domains = {d.lower() for d in org_domains}
    return classify_direction(sender, recipients, domains, originated=is_org_address(sender, domains))
