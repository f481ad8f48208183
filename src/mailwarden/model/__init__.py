"""Pure data of the domain: no I/O anywhere in this package."""

from mailwarden.model.direction import Direction, classify_direction
from mailwarden.model.envelope import Envelope, TlsInfo
from mailwarden.model.listener import ListenerRole
from mailwarden.model.message import Attachment, Message
from mailwarden.model.org import ConnectionMode, Domain, Mode, Organisation
from mailwarden.model.policy import Policy
from mailwarden.model.verdict import (
    Action,
    Category,
    Disposition,
    Finding,
    PhishLevel,
    StageOutcome,
    StageResult,
    Verdict,
)

__all__ = [
    "Action",
    "Attachment",
    "Category",
    "ConnectionMode",
    "Direction",
    "Disposition",
    "Domain",
    "Envelope",
    "Finding",
    "ListenerRole",
    "Message",
    "Mode",
    "Organisation",
    "PhishLevel",
    "Policy",
    "StageOutcome",
    "StageResult",
    "TlsInfo",
    "Verdict",
    "classify_direction",
]
