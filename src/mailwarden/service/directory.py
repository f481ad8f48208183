"""Organisations, their domains and policies in memory, reloaded from the store every few seconds.

The SMTP listeners and the processor ask it per recipient and per message; the store is read at
most once per refresh interval, so a policy change applies within `processing.policy_refresh_seconds`.
"""

from __future__ import annotations

import time

import structlog
from sqlalchemy.exc import SQLAlchemyError

from mailwarden.errors import DependencyUnavailable
from mailwarden.model import Domain
from mailwarden.model.envelope import domain_of
from mailwarden.model.policy import Policy, Tenant
from mailwarden.store import PolicyStore
from mailwarden.store.db import unavailable

log = structlog.get_logger(__name__)
LONGEST_PAUSE = 30.0  # seconds between reload attempts while the database cannot be reached


class OrgDirectory:
    def __init__(self, policies: PolicyStore, *, refresh_seconds: float = 10.0) -> None:
        self._policies = policies
        self._refresh = refresh_seconds
        self._loaded_at = float("-inf")
        self._loaded_once = False
        self._next_try = float("-inf")  # while the database is away: when to try again
        self._pause = 1.0
        self._by_domain: dict[str, tuple[Tenant, Domain]] = {}

    def refresh(self, *, force: bool = False) -> None:
        """Reload when the copy is older than the refresh interval (or always with `force`).

        While the database cannot be reached the last copy stays in use, and a reload is tried again
        after growing pauses (one log line each). With no copy at all, DependencyUnavailable is raised:
        mail for unknown organisations must not be handled as if nobody had a policy."""
        now = time.monotonic()
        if not force and (now - self._loaded_at < self._refresh or now < self._next_try):
            if not self._loaded_once:
                raise DependencyUnavailable("the organisation directory has not been loaded yet")
            return
        try:
            by_domain = self._load()
        except SQLAlchemyError as exc:
            # any database error, not only a refused connection: a pooled connection the outage left in
            # a bad state fails differently, and a reload that fails must never stop mail for everyone
            reason = unavailable(exc) or f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"
            self._next_try = now + self._pause
            log.error("directory_reload_failed", error=reason, retry_in_seconds=self._pause, kept="the last copy")
            self._pause = min(self._pause * 2, LONGEST_PAUSE)
            if not self._loaded_once:
                raise DependencyUnavailable(f"the organisation directory cannot be loaded: {reason}") from None
            return
        self._by_domain = by_domain
        self._loaded_at = now
        self._loaded_once = True
        self._pause = 1.0

    def _load(self) -> dict[str, tuple[Tenant, Domain]]:
        by_domain: dict[str, tuple[Tenant, Domain]] = {}
        for org in self._policies.list_organisations():
            tenant = Tenant(org, self._policies.get_policy(org.name))
            for domain in org.domains:
                by_domain[domain.name] = (tenant, domain)
        return by_domain

    @property
    def domains(self) -> frozenset[str]:
        self.refresh()
        return frozenset(self._by_domain)

    def lookup(self, address_or_domain: str | None) -> tuple[Tenant, Domain] | None:
        """The tenant and domain entry an address (or bare domain) belongs to, if any."""
        if not address_or_domain:
            return None
        self.refresh()
        domain = domain_of(address_or_domain) if "@" in address_or_domain else address_or_domain.lower()
        return self._by_domain.get(domain) if domain else None

    def policy_of(self, organisation: str | None) -> Policy:
        """The organisation's policy (the defaults for none or one unknown)."""
        self.refresh()
        for tenant, _ in self._by_domain.values():
            if tenant.organisation.name == organisation:
                return tenant.policy
        return Policy()

    def domains_of(self, organisation: str | None) -> frozenset[str]:
        """The organisation's domains (none for an unknown one)."""
        self.refresh()
        return frozenset(
            name for name, (tenant, _) in self._by_domain.items() if tenant.organisation.name == organisation
        )

    def tenant_for(self, addresses: list[str] | tuple[str, ...]) -> Tenant | None:
        """The first tenant any of the addresses belongs to."""
        for address in addresses:
            found = self.lookup(address)
            if found:
                return found[0]
        return None
