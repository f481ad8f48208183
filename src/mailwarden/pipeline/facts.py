"""What one stage tells the later ones (and the decision): typed, so a misspelt name fails in mypy,
not silently at run time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mailwarden.model.rules_outcome import RulesOutcome


@dataclass
class ConnectionFacts:
    """The connection filter's: the sending IP it judged and where it found it."""

    ip: str | None = None
    ip_source: str = "none"  # smtp / received / none
    received_index: int | None = None  # the Received field the IP came from (journal copies)
    ip_list: str | None = None  # "allow" or "block" when an IP list matched
    dnsbl: list[dict[str, Any]] = field(default_factory=list)  # the DNS block list answers


@dataclass(frozen=True)
class SenderFacts:
    """What the service knows of an outbound message's sender before the scan (compromised-account
    signals): over the last `window_hours` UTC hours, this message included, the recipients it addressed,
    the external ones it wrote to for the first time and the delivery reports that came back to it; and
    its busiest `window_hours` in the days before (None: too little history to have a baseline)."""

    window_hours: int
    recipients: int
    new_external: int
    ndrs: int
    baseline: int | None


@dataclass
class ScanFacts:
    """Facts shared along one scan. The first three are seeded by the caller; the rest are set by stages."""

    journal: bool = False  # a journal copy: the mail service delivered it already
    journal_format: str | None = None
    sender: SenderFacts | None = None  # outbound only, when the service has the sender's activity
    connection: ConnectionFacts | None = None
    # the authentication stage's results by method (spf, dkim, dmarc, arc, from_domain, provider_*, ...)
    auth: dict[str, str] = field(default_factory=dict)
    rules: RulesOutcome | None = None  # what the transport rules matched and decided
    infected_attachments: tuple[str, ...] = ()  # top-level attachments that carried malware
    malware_unreplaceable: bool = False  # some malware sits where no attachment can be cut out
