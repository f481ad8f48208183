"""Recipient verification for the inbound listeners: one verifier per domain, built from its settings.

The verifiers (`ingest/recipients.py`, `ingest/callahead.py`) are built when a domain is first asked
about and rebuilt when its settings change in the policy (the directory reloads them every
`processing.policy_refresh_seconds`), so their caches and connections live as long as the settings do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import structlog

from mailwarden.deliver import parse_next_hop
from mailwarden.ingest.callahead import CallAheadVerifier
from mailwarden.ingest.recipients import (
    CachedVerifier,
    Known,
    Ldap3Directory,
    LdapDirectory,
    LdapVerifier,
    RecipientList,
    RecipientVerifier,
    Unavailable,
    Unknown,
    Verification,
    refusal,
)
from mailwarden.ingest.replies import Reply
from mailwarden.model import Domain
from mailwarden.model.recipients import LdapLookup, RecipientVerification, VerificationMode

log = structlog.get_logger(__name__)

DirectoryFactory = Callable[[LdapLookup, str | None, float], LdapDirectory]
"""(settings, bind password, timeout) → an LDAP client; tests pass their own."""


class _Misconfigured:
    """A domain whose verifier cannot be built: every address is Unavailable (451), never accepted blind."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    async def verify(self, address: str) -> Verification:
        return Unavailable(self.reason)

    async def close(self) -> None:
        return None


class DomainVerifiers:
    """The verifier of each domain whose `recipient_verification` mode is not `none`."""

    def __init__(
        self,
        *,
        secrets: Mapping[str, str],
        helo: str,
        ldap_directory: DirectoryFactory = lambda lookup, password, timeout: Ldap3Directory(
            lookup, password, timeout=timeout
        ),
    ) -> None:
        self._secrets = dict(secrets)
        self._helo = helo
        self._ldap_directory = ldap_directory
        self._built: dict[str, tuple[Domain, RecipientVerifier]] = {}

    async def check(self, domain: Domain, address: str) -> Reply | None:
        """None to accept `address`, or the RCPT reply that refuses it (550 5.1.1 or 451 4.4.3)."""
        try:
            verifier = await self._verifier(domain)
            if verifier is None:
                return None
            verification = await verifier.verify(address)
        except Exception as exc:  # a verifier's bug must not end the session or let the address through
            log.exception("recipients.verifier_failed", domain=domain.name, rcpt=address)
            verification = Unavailable(f"verifier failed: {type(exc).__name__}")
        match verification:
            case Unknown(detail):
                log.info("recipients.unknown", domain=domain.name, rcpt=address, detail=detail)
            case Unavailable(detail):
                log.warning("recipients.unavailable", domain=domain.name, rcpt=address, reason=detail)
            case Known():
                pass
        return refusal(verification, address)

    async def close(self) -> None:
        built, self._built = self._built, {}
        for _, verifier in built.values():
            await verifier.close()

    async def _verifier(self, domain: Domain) -> RecipientVerifier | None:
        current = self._built.get(domain.name)
        if current is not None and current[0] == domain:
            return current[1]
        # swapped before any await, so two sessions asking at once cannot both build one
        verifier = self._build(domain)
        if verifier is None:
            self._built.pop(domain.name, None)
        else:
            self._built[domain.name] = (domain, verifier)
        if current is not None:  # the domain's settings changed: its cache and connections go with them
            await current[1].close()
        return verifier

    def _build(self, domain: Domain) -> RecipientVerifier | None:
        settings = domain.recipient_verification
        match settings.mode:
            case VerificationMode.NONE:
                return None
            case VerificationMode.LIST:
                return RecipientList(settings.addresses, delimiter=settings.recipient_delimiter)
            case VerificationMode.LDAP:
                return self._cached(settings, self._ldap(domain.name, settings))
            case VerificationMode.CALL_AHEAD:
                return self._cached(settings, self._call_ahead(domain))

    def _ldap(self, name: str, settings: RecipientVerification) -> RecipientVerifier:
        lookup = settings.ldap
        assert lookup is not None  # the model refuses mode ldap without its block
        password = None
        if lookup.bind_password_secret is not None:
            password = self._secrets.get(lookup.bind_password_secret)
            if password is None:
                reason = f"secret {lookup.bind_password_secret!r} (the LDAP bind password) is not in [secrets]"
                log.error("recipients.misconfigured", domain=name, reason=reason)
                return _Misconfigured(reason)
        directory = self._ldap_directory(lookup, password, settings.timeout_seconds)
        return LdapVerifier(lookup, directory, delimiter=settings.recipient_delimiter, timeout=settings.timeout_seconds)

    def _call_ahead(self, domain: Domain) -> RecipientVerifier:
        if not domain.next_hop:
            return _Misconfigured(f"domain {domain.name} has no next hop to call ahead to")
        route = parse_next_hop(domain.next_hop)
        timeout = domain.recipient_verification.timeout_seconds
        return CallAheadVerifier(
            route.host, route.port, helo=self._helo, timeout=timeout, require_tls=domain.require_tls
        )

    @staticmethod
    def _cached(settings: RecipientVerification, inner: RecipientVerifier) -> RecipientVerifier:
        return CachedVerifier(
            inner, known_seconds=settings.cache_known_seconds, unknown_seconds=settings.cache_unknown_seconds
        )
