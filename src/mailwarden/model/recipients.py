"""A domain's recipient verification settings: how the inbound listener tells a mailbox from a typo at RCPT.

Pure pydantic models, part of a domain entry of the policy document (docs/recipients.md). The LDAP bind
password is never in the document: it names a secret of the service configuration (`[secrets]`).
"""

from __future__ import annotations

import re
import string
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
FILTER_FIELDS = ("address", "local", "domain")
CONFIG_KEY = r"^[a-z0-9_]{1,64}$"  # a key of [secrets]: lower case, so MAILWARDEN_SECRETS__<KEY> reaches it


class VerificationMode(StrEnum):
    """Where a domain's valid recipients are looked up."""

    NONE = "none"  # every address of the domain is accepted (and a catch-all domain needs nothing else)
    LIST = "list"  # the addresses listed in the policy document
    LDAP = "ldap"  # a directory search (Active Directory, OpenLDAP)
    CALL_AHEAD = "call_ahead"  # the domain's next hop is asked with RCPT TO


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LdapLookup(_Strict):
    """The directory that knows a domain's recipients. A match is any entry the filter finds under `base`."""

    url: Annotated[str, Field(pattern=r"^ldaps?://[A-Za-z0-9.\[\]:-]+(:\d{1,5})?/?$", max_length=300)]
    base: Annotated[str, Field(min_length=1, max_length=500)]
    filter: Annotated[str, Field(max_length=1000)] = "(|(mail={address})(proxyAddresses=smtp:{address}))"
    bind_dn: Annotated[str, Field(min_length=1, max_length=500)] | None = None
    bind_password_secret: Annotated[str, Field(pattern=CONFIG_KEY)] | None = None
    tls_verify: bool = Field(True, description="ldaps://: check the server's certificate against the system CAs")

    @field_validator("filter")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        if not (value.startswith("(") and value.endswith(")")) or value.count("(") != value.count(")"):
            raise ValueError("an LDAP filter is one parenthesised expression, e.g. (mail={address})")
        try:
            names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        except ValueError as exc:
            raise ValueError(f"malformed placeholder: {exc}") from None
        unknown = names - set(FILTER_FIELDS)
        if unknown:
            raise ValueError(
                f"unknown placeholder {{{sorted(unknown)[0]}}}; use {', '.join('{' + f + '}' for f in FILTER_FIELDS)}"
            )
        if not names & {"address", "local"}:
            raise ValueError("the filter must contain {address} or {local}")
        return value

    @model_validator(mode="after")
    def _bind_pair(self) -> LdapLookup:
        if (self.bind_dn is None) != (self.bind_password_secret is None):
            raise ValueError("bind_dn and bind_password_secret go together (neither: anonymous bind)")
        return self


class RecipientVerification(_Strict):
    """`recipient_verification` of one domain entry. Mode `none` (the default) accepts every address."""

    mode: VerificationMode = VerificationMode.NONE
    addresses: tuple[str, ...] = ()
    ldap: LdapLookup | None = None
    recipient_delimiter: Annotated[str, Field(pattern=r"^[+=_-]?$")] = "+"
    timeout_seconds: float = Field(10.0, gt=0, le=120, description="longest wait for the directory or next hop")
    cache_known_seconds: float = Field(3600.0, ge=0, le=7 * 86400, description="how long a found address is kept")
    cache_unknown_seconds: float = Field(300.0, ge=0, le=86400, description="how long a missing address is kept")

    @field_validator("addresses", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        if isinstance(value, list | tuple):
            return tuple(str(v).strip().strip("<>").lower() for v in value)
        return value

    @field_validator("addresses")
    @classmethod
    def _mailboxes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for address in value:
            if not _ADDRESS.match(address) or len(address) > 254:
                raise ValueError(f"{address!r} is not a mailbox address")
        return tuple(dict.fromkeys(value))

    @model_validator(mode="after")
    def _settings_of_the_mode(self) -> RecipientVerification:
        if self.mode is VerificationMode.LIST and not self.addresses:
            raise ValueError("mode 'list' needs at least one address in addresses")
        if self.mode is not VerificationMode.LIST and self.addresses:
            raise ValueError(f"addresses apply to mode 'list' only, not {self.mode.value!r}")
        if self.mode is VerificationMode.LDAP and self.ldap is None:
            raise ValueError("mode 'ldap' needs an ldap block (url, base, filter)")
        if self.mode is not VerificationMode.LDAP and self.ldap is not None:
            raise ValueError(f"the ldap block applies to mode 'ldap' only, not {self.mode.value!r}")
        return self

    def check_domain(self, domain: str) -> None:
        """ValueError naming the first listed address that is not in `domain`."""
        for address in self.addresses:
            if address.rpartition("@")[2] != domain:
                raise ValueError(f"recipient_verification.addresses: {address} is not an address of {domain}")
