"""Policy replay: a candidate policy run over the kept messages of a window, and what it would change
(docs/policy-replay.md).

Each kept message (store/kept.py) is scanned twice through the product's own scan path
(`Scanner.process`, as the retro-hunt rescans): once with the organisation as saved, once with the
candidate in its place. Both scans run now, so the difference is the policy's alone (today's signatures
and DNS answer both). Nothing is recorded: no history, no timeline event, no job, no audit row.

The work is synchronous and bounded: at most `limit` messages, the newest of the window first
(`MAX_LIMIT` at most); the report says how many the window held, so a capped replay is visible.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

import structlog

from mailwarden.errors import NotFoundError, PolicyError
from mailwarden.model import Domain
from mailwarden.model.listener import ListenerRole
from mailwarden.model.policy import OrganisationDocument, Tenant, parse_organisation_document
from mailwarden.model.trace import MessageRecord
from mailwarden.service.directory import OrgDirectory
from mailwarden.service.runtime import Runtime
from mailwarden.store import PolicyStore
from mailwarden.store.kept import KeptMessage, KeptStore, Window

if TYPE_CHECKING:  # imported when a replay runs: the command line imports this module to start
    from mailwarden.service.scan import Scanner

log = structlog.get_logger(__name__)

DEFAULT_LIMIT = 500  # messages replayed when the caller names no limit (~10 ms each: two scans)
MAX_LIMIT = 5000


@dataclass(frozen=True, slots=True)
class ReplayChange:
    """One message whose verdict or action the candidate changes."""

    message_id: str
    received_at: datetime
    sender: str
    subject: str
    category_before: str
    action_before: str
    category_after: str
    action_after: str
    rules_before: tuple[str, ...] = ()
    rules_after: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "received_at": self.received_at.isoformat(),
            "sender": self.sender,
            "subject": self.subject,
            "before": {
                "category": self.category_before,
                "action": self.action_before,
                "rules": list(self.rules_before),
            },
            "after": {"category": self.category_after, "action": self.action_after, "rules": list(self.rules_after)},
        }


@dataclass(slots=True)
class ReplayReport:
    """What a replay found: how much of the window it scanned, and every change."""

    organisation: str
    since: datetime | None
    until: datetime | None
    limit: int
    in_window: int  # kept messages in the window
    scanned: int = 0
    skipped: int = 0  # kept copy gone meanwhile, or a scan that failed
    changes: list[ReplayChange] = field(default_factory=list)

    @property
    def capped(self) -> bool:
        return self.in_window > self.limit

    def transitions(self) -> list[tuple[str, str, int]]:
        """(action before, action after, messages) for the changes whose action changes, most first."""
        counted = Counter((c.action_before, c.action_after) for c in self.changes if c.action_before != c.action_after)
        return [(before, after, n) for (before, after), n in counted.most_common()]

    def as_dict(self) -> dict[str, Any]:
        return {
            "organisation": self.organisation,
            "since": None if self.since is None else self.since.isoformat(),
            "until": None if self.until is None else self.until.isoformat(),
            "limit": self.limit,
            "in_window": self.in_window,
            "scanned": self.scanned,
            "skipped": self.skipped,
            "capped": self.capped,
            "transitions": [{"before": b, "after": a, "messages": n} for b, a, n in self.transitions()],
            "changes": [c.as_dict() for c in self.changes],
        }


def candidate_document(current: OrganisationDocument, data: object) -> OrganisationDocument:
    """The candidate a caller gave, as a whole document: a whole organisation document (its name must be
    the organisation's), a policy mapping (the organisation's domains kept), or a list of rules (the rest
    of the policy kept). A PolicyError lists every bad field."""
    base = current.model_dump(mode="json")
    if isinstance(data, list):
        base["policy"]["rules"] = data
    elif isinstance(data, dict) and "policy" in data:
        if data.get("name", current.name) != current.name:
            raise PolicyError(f"the candidate is for organisation {data.get('name')!r}, not {current.name!r}")
        base = {**base, **data, "name": current.name}
    elif isinstance(data, dict):
        base["policy"] = data
    else:
        raise PolicyError("a candidate is a policy document, a policy mapping or a list of rules")
    return parse_organisation_document(base)


class CandidateDirectory(OrgDirectory):
    """The organisation directory with one organisation replaced by a candidate document."""

    def __init__(self, policies: PolicyStore, candidate: OrganisationDocument) -> None:
        super().__init__(policies, refresh_seconds=float("inf"))
        self.candidate = candidate

    def _load(self) -> dict[str, tuple[Tenant, Domain]]:
        name = self.candidate.name
        by_domain = {d: found for d, found in super()._load().items() if found[0].organisation.name != name}
        org = self.candidate.to_organisation()
        tenant = Tenant(org, self.candidate.policy)
        for domain in org.domains:
            by_domain[domain.name] = (tenant, domain)
        return by_domain


class PolicyReplay:
    """Replays candidates over one runtime's kept messages."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.kept = KeptStore(rt.db, rt.blobs)
        self.roles = {listener.name: ListenerRole(listener.role) for listener in rt.config.smtp.listeners}

    def _scanner(self, directory: OrgDirectory) -> Scanner:
        from mailwarden.service.scan import Scanner, outcomes_for

        directory.refresh(force=True)
        return Scanner(self.rt.pipeline, directory, self.roles, outcomes_for(self.rt.config, directory))

    @cached_property
    def current(self) -> Scanner:
        return self._scanner(OrgDirectory(self.rt.policies, refresh_seconds=float("inf")))

    async def run(
        self,
        candidate: OrganisationDocument,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> ReplayReport:
        """The changes `candidate` makes over the newest `limit` kept messages of its organisation in the
        window (NotFoundError for an organisation that does not exist)."""
        self.rt.policies.get_organisation(candidate.name)
        limit = max(1, min(limit, MAX_LIMIT))
        from mailwarden.service.hunt import CONCURRENCY, rebuilt_entry

        window = Window(candidate.name, since, until)
        report = ReplayReport(candidate.name, since, until, limit, self.kept.count(window))
        page = self.kept.page(window, limit=limit, newest_first=True)
        proposed = self._scanner(CandidateDirectory(self.rt.policies, candidate))
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(kept: KeptMessage) -> ReplayChange | bool | None:
            async with gate:
                try:
                    raw = self.kept.raw(kept)
                    before = _record_of(await self.current.process(rebuilt_entry(kept, raw)), kept.message_id)
                    after = _record_of(await proposed.process(rebuilt_entry(kept, raw)), kept.message_id)
                except NotFoundError:  # its kept copy expired meanwhile
                    return False
                except Exception as exc:  # one message that cannot be scanned holds up no other
                    log.warning("replay_scan_failed", message=kept.message_id, error=f"{type(exc).__name__}: {exc}")
                    return False
            if before is None or after is None:
                return False
            return _change(kept, before, after)

        for result in await asyncio.gather(*(one(k) for k in page)):
            if result is False:
                report.skipped += 1
                continue
            report.scanned += 1
            if isinstance(result, ReplayChange):
                report.changes.append(result)
        report.changes.sort(key=lambda c: c.message_id, reverse=True)
        log.info("policy_replayed", organisation=candidate.name, scanned=report.scanned, changed=len(report.changes))
        return report


def _record_of(outcome: Any, message_id: str) -> MessageRecord | None:
    records: Sequence[tuple[MessageRecord, object]] = outcome.records
    for record, _ in records:
        if record.id == message_id:
            return record
    return records[0][0] if len(records) == 1 else None


def _change(kept: KeptMessage, before: MessageRecord, after: MessageRecord) -> ReplayChange | None:
    was, now = before.verdict, after.verdict
    same = was.category == now.category and was.disposition.action == now.disposition.action
    if same and was.rule_hits == now.rule_hits:
        return None
    return ReplayChange(
        message_id=kept.message_id,
        received_at=kept.envelope.received_at,
        sender=before.sender,
        subject=before.subject,
        category_before=was.category.value,
        action_before=was.disposition.action.value,
        category_after=now.category.value,
        action_after=now.disposition.action.value,
        rules_before=was.rule_hits,
        rules_after=now.rule_hits,
    )


def replay_blocking(
    rt: Runtime,
    candidate: OrganisationDocument,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = DEFAULT_LIMIT,
) -> ReplayReport:
    """`PolicyReplay.run` from a worker thread (a console page, an API request), on an event loop of its
    own and with a pipeline of its own: the server's stages (DNS lookups in flight, locks) belong to the
    server's event loop. The database and blobs are shared; both are safe across threads."""
    own = Runtime(rt.config)
    own.__dict__.update(db=rt.db, blobs=rt.blobs, policies=rt.policies)
    return asyncio.run(PolicyReplay(own).run(candidate, since=since, until=until, limit=limit))
