"""Clawback as a use case: connectors per organisation, jobs for a message, a campaign, quarantine entries,
the automatic policy or a hunt, and the rounds that work them off (in the server, or in the CLI that asked).

Who may do what is checked here, once for every edge (model/clawback.py `may`). Manual jobs are audited
with who and why; automatic ones name the policy as their requester. docs/clawback.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from mailwarden.clawback import registry
from mailwarden.clawback.connector import ConnectorError, MailboxConnector
from mailwarden.clawback.engine import RetryRule
from mailwarden.clawback.secrets import SecretBox, load_keys, reveal
from mailwarden.errors import ConfigError, MailwardenError, NotFoundError
from mailwarden.ids import derive_id, new_id
from mailwarden.model import Category, Mode, Policy
from mailwarden.model.accounts import Principal
from mailwarden.model.clawback import (
    ClawbackAction,
    ConnectorInfo,
    JobKind,
    JobView,
    NewJob,
    Target,
    may,
)
from mailwarden.model.envelope import domain_of
from mailwarden.model.policy import AutoClawbackChoice
from mailwarden.model.quarantine import PermissionDeniedError
from mailwarden.model.trace import MessageRecord
from mailwarden.service.clawback_rounds import Rounds
from mailwarden.service.runtime import Runtime
from mailwarden.store import HistoryQuery
from mailwarden.store.clawback import ClawbackStore, ConnectorStore
from mailwarden.store.quarantine import QuarantineStore

log = structlog.get_logger(__name__)
POLICY_ACTOR = "policy"
CAMPAIGN_LIMIT = 20_000  # messages one campaign may take; a wider search is refused with its count


@dataclass(frozen=True)
class _Delivered:
    """What the automatic policy needs of a message the mail service delivered."""

    id: str
    organisation: str | None
    mode: Mode
    internet_message_id: str | None
    received_at: datetime
    recipients: tuple[str, ...]
    category: str


class ClawbackError(MailwardenError):
    """A clawback request cannot be made as asked (no Message-ID, nothing matched, too wide, a connector's
    settings or secret invalid); `field` names the input when one is at fault."""

    exit_code = 65

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


@dataclass(frozen=True)
class Preview:
    """What a campaign would touch, shown before the analyst confirms."""

    messages: int
    recipients: tuple[str, ...]
    targets: tuple[Target, ...]
    organisations: tuple[str, ...]


def check(principal: Principal, action: ClawbackAction) -> None:
    if not may(principal.role, action):
        raise PermissionDeniedError(
            "only administrators delete for good" if action.hard and principal.role.value == "analyst"
            else f"{principal.role.value}s may not claw back or restore mail"
        )  # fmt: skip


class Clawback(Rounds):
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        cfg = rt.config.clawback
        self.cfg = cfg
        self.jobs = ClawbackStore(rt.db)
        self.connectors = ConnectorStore(rt.db)
        self.retry = RetryRule(cfg.max_attempts, cfg.retry_first_seconds)
        self._box: SecretBox | None = None
        self._built: dict[tuple[str, str], tuple[datetime, MailboxConnector]] = {}
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def box(self) -> SecretBox:
        if self._box is None:
            key = self.cfg.key.get_secret_value() if self.cfg.key is not None else None
            key_file = self.cfg.key_file or self.rt.config.paths.data_dir / "clawback.key"
            self._box = SecretBox(load_keys(key, key_file))
        return self._box

    # ---- connectors ----------------------------------------------------------------------------
    def put_connector(
        self,
        organisation: str,
        name: str,
        *,
        kind: str,
        domains: Sequence[str],
        settings: dict[str, Any],
        secret: dict[str, Any] | None,
        actor: str,
    ) -> ConnectorInfo:
        """Add or change a connector. The secret is validated, sealed, and never returned."""
        org = self.rt.policies.get_organisation(organisation)
        known = {d.name for d in org.domains}
        for domain in domains:
            if domain.lower() not in known:
                raise ClawbackError(f"{domain} is not a domain of organisation {organisation}")
        try:
            stored = registry.settings_of(kind, settings)
            checked = registry.secret_of(kind, secret) if secret is not None else None
        except ConfigError as exc:
            raise ClawbackError(str(exc), field=exc.field) from None
        sealed = self.box.seal(reveal(checked)) if checked is not None else None
        return self.connectors.put(
            organisation, name, kind=kind, domains=domains, settings=stored, sealed_secret=sealed, actor=actor
        )

    def list_connectors(self, organisation: str | None = None) -> list[ConnectorInfo]:
        return [c.info for c in self.connectors.list(organisation)]

    def remove_connector(self, organisation: str, name: str, *, actor: str) -> None:
        self.connectors.remove(organisation, name, actor=actor)

    async def test_connector(self, organisation: str, name: str, mailbox: str) -> str:
        """Sign in and search one mailbox for a Message-ID nobody has: proves credentials and permissions."""
        sealed = self.connectors.get(organisation, name)
        connector = registry.build(sealed.info.kind, sealed.info.settings, self.box.open(sealed.sealed_secret))
        try:
            found = await connector.find(mailbox, f"<mailwarden-connector-test-{new_id()}@invalid>")
        except ConnectorError as exc:
            raise ClawbackError(f"{name}: {exc.reason}") from None
        finally:
            await connector.aclose()
        return f"{name}: signed in and searched {mailbox} ({len(found)} copies of a test Message-ID, as expected)"

    # ---- making jobs ---------------------------------------------------------------------------
    def message(
        self,
        message_id: str,
        principal: Principal,
        *,
        action: ClawbackAction = ClawbackAction.RECOVERABLE,
        recipients: Sequence[str] | None = None,
        reason: str = "",
    ) -> JobView:
        """Claw back (or restore) one message for every recipient, or the chosen ones."""
        check(principal, action)
        targets, organisation = self._targets(message_id, recipients, principal)
        return self._create(
            JobKind.MESSAGE, action, principal.name, reason, targets, organisation, {"message": message_id}
        )

    def preview(self, query: HistoryQuery, principal: Principal) -> Preview:
        """Every recipient's copy of every message the search finds (all pages, up to CAMPAIGN_LIMIT); the
        caller's query is left as it was (it pages through a copy)."""
        query = replace(query, limit=1000, cursor=None)
        if principal.organisation is not None:
            query.organisation = principal.organisation
        targets: list[Target] = []
        organisations: set[str] = set()
        messages = 0
        while True:
            page = self.rt.history.search(query)
            for m in page.items:
                messages += 1
                if messages > CAMPAIGN_LIMIT:
                    raise ClawbackError(f"the search finds more than {CAMPAIGN_LIMIT} messages: narrow it")
                if m.internet_message_id:
                    targets.extend(Target(m.id, m.internet_message_id, r) for r in m.recipients)
                    organisations.add(m.organisation or "")
            if page.next_cursor is None:
                break
            query.cursor = page.next_cursor
        recipients = tuple(sorted({t.recipient for t in targets}))
        return Preview(messages, recipients, tuple(targets), tuple(sorted(organisations)))

    def campaign(
        self, query: HistoryQuery, principal: Principal, *, action: ClawbackAction, reason: str, expect: int | None
    ) -> JobView:
        """The previewed campaign; `expect` (the count the analyst saw) must still hold, or nothing starts."""
        check(principal, action)
        preview = self.preview(query, principal)
        if not preview.targets:
            raise ClawbackError("the search finds no message with a Message-ID to claw back")
        if expect is not None and expect != preview.messages:
            raise ClawbackError(f"the search now finds {preview.messages} messages, not {expect}: look again")
        organisation = preview.organisations[0] if len(preview.organisations) == 1 else None
        described = {k: str(v) for k, v in vars(query).items() if v is not None and k not in ("limit", "cursor")}
        return self._create(
            JobKind.CAMPAIGN, action, principal.name, reason, list(preview.targets), organisation or None, described
        )

    def quarantine(
        self, entry_ids: Sequence[str], principal: Principal, *, action: ClawbackAction, reason: str
    ) -> JobView:
        """Claw back the copies monitor-mode quarantine entries stand for (what would have been held)."""
        check(principal, action)
        store = QuarantineStore(self.rt.db)
        targets: list[Target] = []
        organisations = set()
        for entry_id in entry_ids:
            entry = store.get(entry_id)
            if principal.organisation is not None and entry.organisation != principal.organisation:
                raise NotFoundError(f"no quarantine entry {entry_id}")
            message, _ = self._targets(entry.message_id, [entry.recipient], principal)
            targets.extend(message)
            organisations.add(entry.organisation)
        organisation = organisations.pop() if len(organisations) == 1 else None
        return self._create(
            JobKind.QUARANTINE, action, principal.name, reason, targets, organisation, {"entries": list(entry_ids)}
        )

    def messages(
        self,
        message_ids: Iterable[str],
        principal: Principal,
        *,
        action: ClawbackAction,
        reason: str,
        kind: JobKind = JobKind.HUNT,
        query: dict[str, Any] | None = None,
    ) -> JobView:
        """Several messages at once (a hunt's results), every recipient of each."""
        check(principal, action)
        targets: list[Target] = []
        organisations = set()
        for message_id in message_ids:
            found, organisation = self._targets(message_id, None, principal, missing_ok=True)
            targets.extend(found)
            organisations.add(organisation)
        if not targets:
            raise ClawbackError("none of these messages has a Message-ID and a recipient to claw back")
        organisation = organisations.pop() if len(organisations) == 1 else None
        return self._create(kind, action, principal.name, reason, targets, organisation, query or {})

    def _targets(
        self, message_id: str, recipients: Sequence[str] | None, principal: Principal, *, missing_ok: bool = False
    ) -> tuple[list[Target], str | None]:
        detail = self.rt.history.get(message_id)
        organisation = detail.summary.organisation
        if principal.organisation is not None and organisation != principal.organisation:
            raise NotFoundError(f"no message {message_id}")
        imid = detail.summary.internet_message_id
        if not imid:
            if missing_ok:
                return [], organisation
            raise ClawbackError(f"message {message_id} has no Message-ID: mailbox providers cannot search for it")
        known = [r.address for r in detail.recipients]
        if recipients:
            unknown = sorted({r.lower() for r in recipients} - {k.lower() for k in known})
            if unknown:
                raise ClawbackError(f"not recipients of message {message_id}: {', '.join(unknown)}")
            known = [r for r in known if r.lower() in {x.lower() for x in recipients}]
        return [Target(message_id, imid, r) for r in known], organisation

    def _create(
        self,
        kind: JobKind,
        action: ClawbackAction,
        actor: str,
        reason: str,
        targets: Sequence[Target],
        organisation: str | None,
        query: dict[str, Any],
        *,
        job_id: str | None = None,
    ) -> JobView:
        job = NewJob(
            job_id or new_id(), organisation, kind, action, actor, reason.strip()[:2000], tuple(targets), query
        )
        self.jobs.create(job, audit=kind is not JobKind.AUTO)
        log.info("clawback_job", job=job.id, kind=kind.value, action=action.value, recipients=len(targets), by=actor)
        self.notify()
        return self.jobs.job(job.id, items=False)

    # ---- the automatic policy ------------------------------------------------------------------
    def auto(
        self, records: Iterable[MessageRecord], policy_for: Callable[[str | None], Policy], *, why: str = "verdict"
    ) -> list[str]:
        """Jobs for the delivered messages whose verdict the organisation's policy claws back. Job ids are
        derived from the message and the reason, so a replay after a crash makes no second job."""
        return self._auto(
            [
                _Delivered(r.id, r.organisation, r.mode, r.internet_message_id, r.received_at,
                           tuple(x.address for x in r.recipients), r.verdict.category.value)
                for r in records
            ],
            policy_for,
            why,
        )  # fmt: skip

    def after_rescan(
        self, changes: Iterable[tuple[str, Category]], policy_for: Callable[[str | None], Policy]
    ) -> list[str]:
        """Jobs for messages a rescan judged differently (today's category), as the policy says."""
        delivered = []
        for message_id, category in changes:
            try:
                d = self.rt.history.get(message_id)
            except NotFoundError:
                continue
            s = d.summary
            recipients = tuple(r.address for r in d.recipients)
            delivered.append(
                _Delivered(
                    s.id, s.organisation, s.mode, s.internet_message_id, s.received_at, recipients, category.value
                )
            )
        return self._auto(delivered, policy_for, "rescan")

    def _auto(self, delivered: list[_Delivered], policy_for: Callable[[str | None], Policy], why: str) -> list[str]:
        made = []
        now = datetime.now(UTC)
        for d in delivered:
            job = self._auto_job(d, policy_for(d.organisation), now, why)
            if job is not None and self.jobs.create(job, audit=False):
                made.append(job.id)
                log.info("clawback_auto", job=job.id, message=d.id, category=d.category, why=why)
        if made:
            self.notify()
        return made

    def _auto_job(self, d: _Delivered, policy: Policy, now: datetime, why: str) -> NewJob | None:
        choice = policy.clawback.choice(d.category)
        if choice is AutoClawbackChoice.OFF or d.mode is not Mode.MONITOR or not d.internet_message_id:
            return None
        if now - d.received_at > timedelta(hours=policy.clawback.window_hours):
            return None
        served = self._served_domains(d.organisation)
        targets = tuple(Target(d.id, d.internet_message_id, r) for r in d.recipients if served(domain_of(r) or ""))
        if not targets:
            return None
        key = f"clawback/auto/{why}/{d.category}/" + ",".join(sorted(t.recipient for t in targets))
        reason = f"automatic: {d.category} ({why})"
        action = ClawbackAction(choice.value)
        return NewJob(derive_id(d.id, key), d.organisation, JobKind.AUTO, action, POLICY_ACTOR, reason, targets)

    def _served_domains(self, organisation: str | None) -> Callable[[str], bool]:
        infos = [c.info for c in self.connectors.list(organisation)] if organisation else []
        return lambda domain: any(info.serves(domain) for info in infos)
