"""An organisation's policy: what to do per verdict, malware handling, quarantine, notifications, lists.

Pure pydantic models. Unknown fields are refused so a typo in a policy file never passes silently.
"""

from __future__ import annotations

import ipaddress
import string
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from mailwarden.errors import PolicyError
from mailwarden.model.org import ConnectionMode, Domain, Organisation
from mailwarden.model.outbound import OutboundSpamPolicy
from mailwarden.model.recipients import RecipientVerification, VerificationMode
from mailwarden.model.rules import DlpPolicy, Rule, check_rule_set, check_sensitive_types
from mailwarden.model.verdict import Action


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


class SpamVerdictAction(StrEnum):
    """Actions an anti-spam policy may take for a verdict (the EOP set)."""

    JUNK = "junk"
    ADD_HEADER = "add_header"
    PREPEND_SUBJECT = "prepend_subject"
    REDIRECT = "redirect"
    DROP = "drop"
    QUARANTINE = "quarantine"
    DELIVER = "deliver"

    @property
    def action(self) -> Action:
        return Action(self.value)


class SpamActions(_Strict):
    """Per-verdict actions; defaults follow EOP's default anti-spam policy."""

    spam: SpamVerdictAction = SpamVerdictAction.JUNK
    high_confidence_spam: SpamVerdictAction = SpamVerdictAction.JUNK
    phish: SpamVerdictAction = SpamVerdictAction.JUNK
    high_confidence_phish: SpamVerdictAction = SpamVerdictAction.QUARANTINE
    bulk: SpamVerdictAction = SpamVerdictAction.JUNK

    @field_validator("high_confidence_phish")
    @classmethod
    def _hcp_never_delivered(cls, value: SpamVerdictAction) -> SpamVerdictAction:
        if value in (
            SpamVerdictAction.DELIVER,
            SpamVerdictAction.ADD_HEADER,
            SpamVerdictAction.PREPEND_SUBJECT,
        ):
            raise ValueError("high-confidence phishing must be quarantined, junked, redirected or dropped")
        return value


EmailAddress = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]
DomainName = Annotated[str, Field(pattern=r"^([a-z0-9-]{1,63}\.)+[a-z0-9-]{2,63}$", max_length=253)]


class SpamPolicy(_Strict):
    actions: SpamActions = SpamActions()
    bcl_threshold: int = Field(7, ge=1, le=9, description="A message is bulk when its BCL is at or above this")
    mark_bulk_as_spam: bool = True
    header_name: str = Field("X-This-Is-Spam", pattern=r"^X-[A-Za-z0-9-]{1,60}$")
    header_value: str = Field("This message appears to be spam.", max_length=200)
    subject_prefix: str = Field("[SPAM] ", max_length=64)
    redirect_to: tuple[EmailAddress, ...] = ()

    @model_validator(mode="after")
    def _redirect_needs_address(self) -> SpamPolicy:
        used = {
            self.actions.spam,
            self.actions.high_confidence_spam,
            self.actions.phish,
            self.actions.high_confidence_phish,
            self.actions.bulk,
        }
        if SpamVerdictAction.REDIRECT in used and not self.redirect_to:
            raise ValueError("redirect_to must list at least one address when an action is 'redirect'")
        return self


class DmarcQuarantineAction(StrEnum):
    """What happens to a message whose sender domain publishes p=quarantine and that fails DMARC."""

    QUARANTINE = "quarantine"
    JUNK = "junk"

    @property
    def action(self) -> Action:
        return Action(self.value)


class DmarcRejectAction(StrEnum):
    """What happens to a message whose sender domain publishes p=reject and that fails DMARC."""

    REJECT = "reject"
    QUARANTINE = "quarantine"

    @property
    def action(self) -> Action:
        return Action(self.value)


class DmarcHonourPolicy(_Strict):
    """`dmarc`: honour the sender domain's DMARC policy as an action (EOP's "honor DMARC policy", on by
    default with its defaults: p=quarantine → quarantine, p=reject → reject). Off: a DMARC failure is only
    evidence in the spam score."""

    honour_policy: bool = True
    quarantine_action: DmarcQuarantineAction = DmarcQuarantineAction.QUARANTINE
    reject_action: DmarcRejectAction = DmarcRejectAction.REJECT


class MalwareAction(StrEnum):
    QUARANTINE = "quarantine"
    REPLACE_ATTACHMENTS = "replace_attachments"


# EOP's default "common attachments" list (file types blocked by the common attachment filter).
DEFAULT_BLOCKED_FILE_TYPES: tuple[str, ...] = tuple(
    sorted(
        (
            "ace",
            "apk",
            "app",
            "appx",
            "ani",
            "arj",
            "bat",
            "cab",
            "cmd",
            "com",
            "deb",
            "dex",
            "dll",
            "docm",
            "elf",
            "exe",
            "hta",
            "img",
            "iso",
            "jar",
            "jnlp",
            "kext",
            "lha",
            "lib",
            "library",
            "lnk",
            "lzh",
            "macho",
            "msc",
            "msi",
            "msix",
            "msp",
            "mst",
            "pif",
            "ppa",
            "ppam",
            "reg",
            "rev",
            "scf",
            "scr",
            "sct",
            "sys",
            "uif",
            "vb",
            "vbe",
            "vbs",
            "vxd",
            "wsc",
            "wsf",
            "wsh",
            "xll",
            "xz",
            "z",
        )
    )
)

DEFAULT_ALERT_TEXT = (
    "Malware was detected in one or more attachments of this message. "
    "The infected attachments were removed by mailwarden."
)


NOTIFICATION_FIELDS = ("subject", "sender", "recipients", "malware", "action", "message_id", "received")
DEFAULT_NOTIFICATION_SUBJECT = "Malware detected: {subject}"
DEFAULT_NOTIFICATION_TEXT = (
    "mailwarden found malware in a message.\n\n"
    "Subject:    {subject}\n"
    "From:       {sender}\n"
    "To:         {recipients}\n"
    "Received:   {received}\n"
    "Detections: {malware}\n"
    "Action:     {action}\n"
    "Trace id:   {message_id}\n"
)


def check_notification_placeholders(text: str) -> None:
    """Refuse a notification text whose placeholders are not exactly NOTIFICATION_FIELDS' names or whose braces
    are malformed. The error's type and context say which (the console words it in the reader's language)."""
    allowed = ", ".join("{" + f + "}" for f in NOTIFICATION_FIELDS)
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
        unknown = [name for name in names if name not in NOTIFICATION_FIELDS]
        if not unknown:
            text.format(**dict.fromkeys(NOTIFICATION_FIELDS, ""))  # a format spec a text value cannot take
    except ValueError as exc:
        raise PydanticCustomError(
            "placeholder_malformed",
            "malformed placeholder ({reason}); use {allowed}",
            {"reason": str(exc), "allowed": allowed},
        ) from None
    if unknown:
        raise PydanticCustomError(
            "placeholder_unknown",
            "unknown placeholder {placeholder}; use {allowed}",
            {"placeholder": "{" + unknown[0] + "}", "allowed": allowed},
        )


class MalwarePolicy(_Strict):
    """The malware filter cannot be switched off; `enabled: false` is refused."""

    enabled: Literal[True] = True
    action: MalwareAction = MalwareAction.QUARANTINE
    alert_text: str = Field(DEFAULT_ALERT_TEXT, min_length=1, max_length=4000)
    blocked_file_types: tuple[str, ...] = DEFAULT_BLOCKED_FILE_TYPES
    notify_admins: tuple[EmailAddress, ...] = ()
    notify_internal_sender: bool = False
    notification_subject: str = Field(DEFAULT_NOTIFICATION_SUBJECT, min_length=1, max_length=200)
    notification_text: str = Field(DEFAULT_NOTIFICATION_TEXT, min_length=1, max_length=8000)

    @field_validator("notification_subject", "notification_text")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        check_notification_placeholders(value)
        return value

    @field_validator("enabled", mode="before")
    @classmethod
    def _cannot_disable(cls, value: object) -> object:
        if value is not True:
            raise ValueError("the malware filter cannot be switched off")
        return value

    @field_validator("blocked_file_types")
    @classmethod
    def _normalise_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted({v.lower().lstrip(".") for v in value}))


class QuarantineRetention(_Strict):
    """Days a quarantined message is kept, per reason (EOP defaults; 1 to 30 days)."""

    spam: int = Field(15, ge=1, le=30)
    high_confidence_spam: int = Field(15, ge=1, le=30)
    bulk: int = Field(15, ge=1, le=30)
    phish: int = Field(15, ge=1, le=30)
    high_confidence_phish: int = Field(30, ge=1, le=30)
    malware: int = Field(30, ge=1, le=30)
    rule: int = Field(30, ge=1, le=30)
    dlp: int = Field(30, ge=1, le=30)


class EndUserAccess(StrEnum):
    """What a recipient may do with their own quarantined message (EOP's quarantine policy, simplified).

    `none` is AdminOnlyAccessPolicy: the user does not see the entry. `request`: see, preview, delete and
    ask an administrator to release. `release`: see, preview, delete and release.
    """

    NONE = "none"
    REQUEST = "request"
    RELEASE = "release"


class QuarantinePermissions(_Strict):
    """End-user access per quarantine reason. Malware, high-confidence phish, rule and DLP quarantines can
    at most be requested by users; administrators release everything."""

    spam: EndUserAccess = EndUserAccess.RELEASE
    high_confidence_spam: EndUserAccess = EndUserAccess.RELEASE
    bulk: EndUserAccess = EndUserAccess.RELEASE
    phish: EndUserAccess = EndUserAccess.REQUEST
    high_confidence_phish: EndUserAccess = EndUserAccess.NONE
    malware: EndUserAccess = EndUserAccess.NONE
    rule: EndUserAccess = EndUserAccess.NONE
    dlp: EndUserAccess = EndUserAccess.NONE

    @field_validator("high_confidence_phish", "malware", "rule", "dlp")
    @classmethod
    def _admin_release_only(cls, value: EndUserAccess) -> EndUserAccess:
        if value is EndUserAccess.RELEASE:
            raise ValueError("users may at most request release of this kind of quarantined message")
        return value


class NotificationFrequency(StrEnum):
    FOUR_HOURS = "4h"
    DAILY = "daily"
    WEEKLY = "weekly"


class NotificationPolicy(_Strict):
    """End-user quarantine digests; `language` is also that of the administrators' notices (mailwarden.i18n)."""

    enabled: bool = True
    frequency: NotificationFrequency = NotificationFrequency.FOUR_HOURS
    sender: EmailAddress | None = None
    language: Literal["en", "ja"] = "en"


class ReportFrequency(StrEnum):
    DAILY = "daily"  # the previous UTC day, sent once it has ended
    WEEKLY = "weekly"  # the previous Monday–Sunday (UTC), sent once the week has ended


class ReportSchedule(_Strict):
    """`reports`: the report e-mailed to `recipients` (none: no report mail) every day or week, in English
    or Japanese: its summary as text, each table as a CSV attachment (docs/console.md)."""

    recipients: tuple[EmailAddress, ...] = ()
    every: ReportFrequency = ReportFrequency.WEEKLY
    language: Literal["en", "ja"] = "en"


class SenderLists(_Strict):
    """Allowed / blocked senders, domains and connecting IPs."""

    allowed_senders: tuple[EmailAddress, ...] = ()
    blocked_senders: tuple[EmailAddress, ...] = ()
    allowed_domains: tuple[DomainName, ...] = ()
    blocked_domains: tuple[DomainName, ...] = ()
    ip_allow: tuple[str, ...] = ()
    ip_block: tuple[str, ...] = ()

    @field_validator("allowed_senders", "blocked_senders", "allowed_domains", "blocked_domains", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        if isinstance(value, list | tuple):
            return tuple(str(v).strip().lower() for v in value)
        return value

    @field_validator("ip_allow", "ip_block")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return normalise_networks(value)


def normalise_networks(entries: tuple[str, ...]) -> tuple[str, ...]:
    """IP addresses and CIDR ranges in canonical form; a bad entry is a ValueError naming it."""
    out = []
    for entry in entries:
        try:
            out.append(str(ipaddress.ip_network(entry.strip(), strict=False)))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or CIDR range") from None
    return tuple(out)


class ScanErrorAction(StrEnum):
    """The fail-safe: what happens to a message when a stage of the pipeline failed on it."""

    QUARANTINE = "quarantine"
    DELIVER = "deliver"
    REJECT = "reject"


class AutoClawbackChoice(StrEnum):
    """What the automatic clawback does with a journaled copy of a message of one verdict."""

    OFF = "off"
    JUNK = "junk"
    TRASH = "trash"
    RECOVERABLE = "recoverable"  # Microsoft 365: Recoverable Items (out of the user's sight); elsewhere Trash
    DELETE = "delete"


class AutoClawback(_Strict):
    """`clawback`: claw back delivered copies by verdict, seconds after the verdict and again when a rescan
    changes it (docs/clawback.md). On for malware and high-confidence phish, off for the rest by default;
    only messages received within `window_hours` are touched (48 like ZAP; any length)."""

    malware: AutoClawbackChoice = AutoClawbackChoice.RECOVERABLE
    high_confidence_phish: AutoClawbackChoice = AutoClawbackChoice.RECOVERABLE
    phish: AutoClawbackChoice = AutoClawbackChoice.OFF
    high_confidence_spam: AutoClawbackChoice = AutoClawbackChoice.OFF
    spam: AutoClawbackChoice = AutoClawbackChoice.OFF
    window_hours: float = Field(48.0, gt=0, le=24 * 365 * 10)

    def choice(self, category: str) -> AutoClawbackChoice:
        """The choice for a verdict category (`Category` value); OFF for categories it does not name."""
        value = getattr(self, category, AutoClawbackChoice.OFF)
        return value if isinstance(value, AutoClawbackChoice) else AutoClawbackChoice.OFF


class Policy(_Strict):
    """One organisation's whole policy document."""

    version: Literal[1] = 1
    spam: SpamPolicy = SpamPolicy()
    malware: MalwarePolicy = MalwarePolicy()
    quarantine_retention: QuarantineRetention = QuarantineRetention()
    quarantine_permissions: QuarantinePermissions = QuarantinePermissions()
    notifications: NotificationPolicy = NotificationPolicy()
    reports: ReportSchedule = ReportSchedule()
    lists: SenderLists = SenderLists()
    scan_error_action: ScanErrorAction = ScanErrorAction.QUARANTINE
    # transport (mail flow) rules, docs/rules.md; custom sensitive information types, docs/dlp.md
    rules: tuple[Rule, ...] = ()
    dlp: DlpPolicy = DlpPolicy()
    clawback: AutoClawback = AutoClawback()
    outbound_spam: OutboundSpamPolicy = OutboundSpamPolicy()  # docs/outbound.md
    dmarc: DmarcHonourPolicy = DmarcHonourPolicy()  # docs/authentication.md

    _rule_names = field_validator("rules")(check_rule_set)

    @model_validator(mode="after")
    def _known_sensitive_types(self) -> Policy:
        check_sensitive_types(self.rules, self.dlp)
        return self


class DomainDocument(_Strict):
    name: DomainName
    mode: ConnectionMode = ConnectionMode.JOURNAL
    next_hop: str | None = Field(None, pattern=r"^\[?[A-Za-z0-9.:-]+\]?(:\d{1,5})?$")
    require_tls: bool = False
    recipient_verification: RecipientVerification = RecipientVerification()

    @field_validator("name", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _enforce_needs_next_hop(self) -> DomainDocument:
        if self.mode is not ConnectionMode.JOURNAL and not self.next_hop:
            raise ValueError(f"domain {self.name}: mode {self.mode.value!r} needs a next_hop to deliver to")
        verification = self.recipient_verification
        if self.mode is ConnectionMode.JOURNAL and verification.mode is not VerificationMode.NONE:
            raise ValueError(
                f"domain {self.name}: recipient_verification applies to gateway and mailflow domains "
                "(journal copies are never refused)"
            )
        verification.check_domain(self.name)
        return self

    def to_domain(self) -> Domain:
        return Domain(self.name, self.mode, self.next_hop, self.require_tls, self.recipient_verification)


class OrganisationDocument(_Strict):
    """The import/export unit: one organisation, its domains and its policy, applied whole or not at all."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}$")
    monitor_only: bool = True
    domains: tuple[DomainDocument, ...] = ()
    policy: Policy = Policy()

    @model_validator(mode="after")
    def _unique_domains(self) -> OrganisationDocument:
        names = [d.name for d in self.domains]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"domain listed twice: {', '.join(dupes)}")
        return self

    def to_organisation(self) -> Organisation:
        return Organisation(self.name, tuple(d.to_domain() for d in self.domains), self.monitor_only)

    @classmethod
    def from_organisation(cls, org: Organisation, policy: Policy) -> OrganisationDocument:
        return cls(
            name=org.name,
            monitor_only=org.monitor_only,
            domains=tuple(
                DomainDocument(
                    name=d.name,
                    mode=d.mode,
                    next_hop=d.next_hop,
                    require_tls=d.require_tls,
                    recipient_verification=d.recipient_verification,
                )
                for d in org.domains
            ),
            policy=policy,
        )


def validation_messages(exc: ValidationError) -> list[str]:
    """Each pydantic error as `field.path: reason`, in the words an administrator reads."""
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(document)"
        msg = err["msg"].removeprefix("Value error, ")
        out.append(f"{loc}: {msg}")
    return out


def parse_organisation_document(data: object) -> OrganisationDocument:
    """Validate a whole document; a PolicyError lists every bad field, and nothing is applied."""
    if not isinstance(data, dict):
        raise PolicyError("a policy document must be a mapping with name, domains and policy")
    try:
        return OrganisationDocument.model_validate(data)
    except ValidationError as exc:
        messages = validation_messages(exc)
        raise PolicyError("invalid policy document: " + "; ".join(messages), errors=messages) from None


@dataclass(frozen=True, slots=True)
class Tenant:
    """An organisation with its policy: what a message is judged and handled by."""

    organisation: Organisation
    policy: Policy
