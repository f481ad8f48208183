"""What enforcing would have done: the would-have actions recorded in monitor mode, counted over a window
(docs/policy-replay.md).

Monitor mode records each message's action without applying it (`applied` false). Counting those records
per action and category, for one organisation or one of its domains, answers "what changes if I switch
to enforce?" from history alone: no rescan. The window is an id range (ids are time-ordered), as for the
reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, exists, func, or_, select

from mailwarden.model import Action
from mailwarden.store.db import Database
from mailwarden.store.reports import Window
from mailwarden.store.schema import MessageRow, RecipientRow

# the actions that stop or divert a message: what switching to enforce changes for its recipients
ENFORCED_ACTIONS: tuple[Action, ...] = (Action.QUARANTINE, Action.JUNK, Action.REJECT, Action.DROP)
SAMPLE = 20  # messages listed per action


@dataclass(frozen=True, slots=True)
class WouldHave:
    """One message that would have been acted on."""

    message_id: str
    received_at: datetime
    sender: str
    subject: str
    category: str


@dataclass(frozen=True, slots=True)
class ModePreview:
    """Recorded would-have actions of a window: counts per action and category, the newest messages per
    action, and how many monitor-mode messages there were in all."""

    organisation: str
    domain: str | None
    start: datetime
    end: datetime | None
    monitored: int
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # action -> category -> messages
    messages: dict[str, list[WouldHave]] = field(default_factory=dict)  # action -> newest first

    def total(self, action: str) -> int:
        return sum(self.counts.get(action, {}).values())


def mode_preview(
    db: Database,
    organisation: str,
    start: datetime,
    end: datetime | None = None,
    *,
    domain: str | None = None,
    actions: Sequence[Action] = ENFORCED_ACTIONS,
    sample: int = SAMPLE,
) -> ModePreview:
    """The would-have actions recorded for `organisation` (or only mail to or from `domain`) in the window."""
    where = [*Window(start, end, organisation).filters(), MessageRow.applied.is_(False)]
    if domain is not None:
        where.append(_concerns(domain.strip().lower()))
    wanted = [a.value for a in actions]
    counts: dict[str, dict[str, int]] = {a: {} for a in wanted}
    messages: dict[str, list[WouldHave]] = {a: [] for a in wanted}
    with db.session() as session:
        monitored = int(session.scalar(select(func.count()).select_from(MessageRow).where(*where)) or 0)
        grouped = (
            select(MessageRow.action, MessageRow.category, func.count())
            .where(*where, MessageRow.action.in_(wanted))
            .group_by(MessageRow.action, MessageRow.category)
        )
        for action, category, count in session.execute(grouped):
            counts[action][category] = int(count)
        for action in wanted:
            if not counts[action]:
                continue
            rows = session.execute(
                select(
                    MessageRow.id, MessageRow.received_at, MessageRow.sender, MessageRow.subject, MessageRow.category
                )
                .where(*where, MessageRow.action == action)
                .order_by(MessageRow.id.desc())
                .limit(sample)
            )
            messages[action] = [WouldHave(*row) for row in rows]
    return ModePreview(organisation, domain, start, end, monitored, counts, messages)


def _concerns(domain: str) -> ColumnElement[bool]:
    """Mail to the domain (a recipient in it) or from it (its sender's domain)."""
    to_domain = exists().where(RecipientRow.message_id == MessageRow.id, RecipientRow.domain == domain)
    return or_(MessageRow.sender_domain == domain, to_domain)
