"""The providers' opinions on a message's direction, and whether the organisation vouches it sent it."""

from __future__ import annotations

from dataclasses import dataclass, field

from mailwarden.model.direction import Direction, is_org_address


@dataclass(slots=True)
class Hints:
    """The direction sources found, in the order they were read, and what each said."""

    evidence: list[str] = field(default_factory=list)
    directions: list[Direction] = field(default_factory=list)
    vouched: bool = False  # a source the sender cannot write says the organisation sent it

    def add(self, source: str, raw_value: str, direction: Direction | None, *, vouches: bool = False) -> None:
        """One source's opinion. `vouches`: the sender cannot have written it, so an outbound or internal
        answer is evidence that the organisation sent the message (an inbound answer from any source
        is evidence against)."""
        self.evidence.append(f"{source}:{raw_value.lower()}")
        if direction is not None:
            self.directions.append(direction)
            self.vouched = self.vouched or (vouches and direction is not Direction.INBOUND)

    def direction(self) -> Direction | None:
        if len(set(self.directions)) > 1 and Direction.INBOUND in self.directions:
            self.evidence.append("hints_disagree")
        return self.directions[0] if self.directions else None

    def originated(self) -> bool:
        return self.vouched and Direction.INBOUND not in self.directions

    def spoof(self, sender: str, domains: set[str]) -> bool:
        """The sender claims one of the organisation's domains, but a source says the mail came in."""
        found = is_org_address(sender, domains) and Direction.INBOUND in self.directions
        if found:
            self.evidence.append("spoof_of_own_domain")
        return found
