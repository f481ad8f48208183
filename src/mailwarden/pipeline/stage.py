"""The stage interface: one async method that looks at a message and reports evidence."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Protocol, runtime_checkable

from mailwarden.model import (
    Direction,
    Envelope,
    Finding,
    Message,
    Organisation,
    Policy,
    StageOutcome,
    StageResult,
)
from mailwarden.pipeline.facts import ScanFacts
from mailwarden.pipeline.services import StageServices


@dataclass
class ScanContext:
    """What a stage may look at. Stages never see SMTP sessions, databases or the mode."""

    message: Message
    envelope: Envelope
    direction: Direction
    policy: Policy
    organisation: Organisation | None = None
    results: list[StageResult] = field(default_factory=list)
    # facts one stage shares with later ones (the sending IP it used, authentication results, ...)
    facts: ScanFacts = field(default_factory=ScanFacts)
    # set by a stage that says the spam filter must be skipped (IP allow list, a rule setting SCL -1)
    bypass_spam: str | None = None
    # set by a stage that refuses the message outright (IP block list): the SMTP reply to give
    reject: str | None = None


@dataclass(frozen=True, slots=True)
class Inspection:
    """A stage's answer when it has more to say than a list of findings (skipped, encrypted)."""

    outcome: StageOutcome
    findings: tuple[Finding, ...] = ()
    reason: str | None = None


@runtime_checkable
class Stage(Protocol):
    """A filter stage. `name` is stable: it is used in the order lists, the trace and the config.

    A stage that is part of the spam filter says so with a class attribute `spam_filter = True`: the
    engine skips it when an earlier stage bypassed spam filtering (IP allow list, a rule's SCL -1)."""

    name: ClassVar[str]

    @classmethod
    def from_services(cls, services: StageServices) -> Stage: ...

    async def inspect(self, ctx: ScanContext) -> list[Finding] | Inspection: ...


def is_spam_filter(stage: Stage) -> bool:
    """Whether the spam filter's bypass skips this stage (see `Stage`)."""
    return bool(getattr(type(stage), "spam_filter", False))
