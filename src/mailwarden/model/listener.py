"""The role of an SMTP listener: which mail it takes, and what the service does with that mail."""

from __future__ import annotations

from enum import StrEnum


class ListenerRole(StrEnum):
    """What a `[[smtp.listeners]]` entry is for; the config's `role` value."""

    INBOUND = "inbound"  # an MX: mail for the organisations' domains, from anyone
    OUTBOUND = "outbound"  # the organisation's servers relaying out, from the clients the listener's rule admits
    JOURNAL = "journal"  # monitor mode: journal reports and copies, to the journal mailboxes only
