"""Transport (mail flow) rules as policy data: conditions, exceptions, actions (docs/rules.md).

Pure pydantic, part of the organisation's policy document (`policy.rules`). Patterns are compiled with
RE2 when a rule is validated, so a pattern that RE2 refuses (or that is too large) is refused on save,
and every pattern that is saved runs in linear time. Errors name the rule, the field and the reason.
"""

from __future__ import annotations

import ipaddress
import unicodedata
from enum import StrEnum
from typing import Annotated, Any

import re2
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

MAX_PATTERN_LENGTH = 1000
# RE2's memory budget per compiled pattern: a pattern that needs more is refused on save
PATTERN_MAX_MEM = 8 << 20
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.max_mem = PATTERN_MAX_MEM
_RE2_OPTIONS.log_errors = False


def normalise(text: str) -> str:
    """The form words are compared in: NFKC (full-width → half-width, compatibility forms) then casefold."""
    return unicodedata.normalize("NFKC", text).casefold()


def compile_pattern(pattern: str) -> Any:
    """An RE2 pattern, matched case-insensitively; ValueError with RE2's reason when it is refused."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError(f"pattern longer than {MAX_PATTERN_LENGTH} characters")
    try:
        return re2.compile("(?i)" + pattern, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ValueError(f"pattern {pattern!r} refused: {reason}") from None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Word = Annotated[str, Field(min_length=1, max_length=200)]
Words = Annotated[tuple[Word, ...], Field(min_length=1, max_length=1000)]
Address = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]


def _check_patterns(value: tuple[str, ...]) -> tuple[str, ...]:
    for pattern in value:
        compile_pattern(pattern)
    return value


class Location(StrEnum):
    INSIDE = "inside"
    OUTSIDE = "outside"


class Confidence(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


CONFIDENCE_ORDER = {Confidence.LOW.value: 1, Confidence.MEDIUM.value: 2, Confidence.HIGH.value: 3}


class HeaderWords(_Strict):
    name: str = Field(pattern=r"^[!-9;-~]{1,76}$")
    words: Words


class HeaderPatterns(_Strict):
    name: str = Field(pattern=r"^[!-9;-~]{1,76}$")
    patterns: Words

    _patterns = field_validator("patterns")(_check_patterns)


class SensitiveInfo(_Strict):
    """A DLP type found at least `min_count` times with at least `min_confidence`."""

    type: str = Field(min_length=1, max_length=100)
    min_count: int = Field(1, ge=1, le=10_000)
    min_confidence: Confidence = Confidence.MEDIUM


class Conditions(_Strict):
    """Every condition that is set must match (AND); the values inside one condition are alternatives (OR).

    As exceptions, any one condition that matches skips the rule.
    """

    sender_address: tuple[Address, ...] = ()
    sender_domain: tuple[str, ...] = ()
    sender_matches: tuple[str, ...] = ()
    recipient_address: tuple[Address, ...] = ()
    recipient_domain: tuple[str, ...] = ()
    recipient_matches: tuple[str, ...] = ()
    sender_location: Location | None = None
    recipient_location: Location | None = None
    header_exists: tuple[str, ...] = ()
    header_contains: HeaderWords | None = None
    header_matches: HeaderPatterns | None = None
    subject_contains: tuple[Word, ...] = ()
    subject_matches: tuple[str, ...] = ()
    body_contains: tuple[Word, ...] = ()
    body_matches: tuple[str, ...] = ()
    subject_or_body_contains: tuple[Word, ...] = ()
    attachment_name_matches: tuple[str, ...] = ()
    attachment_extension: tuple[str, ...] = ()
    attachment_type: tuple[str, ...] = ()
    attachment_size_over: int | None = Field(None, ge=0)
    attachment_contains: tuple[Word, ...] = ()
    attachment_matches: tuple[str, ...] = ()
    message_size_over: int | None = Field(None, ge=0)
    sender_ip_in: tuple[str, ...] = ()
    scl_at_least: int | None = Field(None, ge=-1, le=9)
    sensitive_info: tuple[SensitiveInfo, ...] = ()

    _patterns = field_validator(
        "sender_matches",
        "recipient_matches",
        "subject_matches",
        "body_matches",
        "attachment_name_matches",
        "attachment_matches",
    )(_check_patterns)

    @field_validator("sender_address", "recipient_address", "sender_domain", "recipient_domain", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        if isinstance(value, list | tuple):
            return tuple(str(v).strip().lower().lstrip("@") for v in value)
        return value

    @field_validator("attachment_extension", mode="before")
    @classmethod
    def _extensions(cls, value: object) -> object:
        if isinstance(value, list | tuple):
            return tuple(str(v).strip().lower().lstrip(".") for v in value)
        return value

    @field_validator("sender_ip_in")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        out = []
        for entry in value:
            try:
                out.append(str(ipaddress.ip_network(entry.strip(), strict=False)))
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or CIDR range") from None
        return tuple(out)

    def is_empty(self) -> bool:
        return not any(getattr(self, name) not in (None, ()) for name in type(self).model_fields)


class Reject(_Strict):
    """Reject with an NDR to the sender: enhanced status 5.7.1 or 5.7.900–5.7.999 (as Exchange allows)."""

    status: str = Field("5.7.1", pattern=r"^5\.7\.(1|9\d\d)$")
    text: str = Field("Delivery not authorized, message refused", min_length=1, max_length=500)

    @field_validator("text")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if any(ch in value for ch in "\r\n"):
            raise ValueError("the rejection text must be one line")
        return value


class HeaderValue(_Strict):
    name: str = Field(pattern=r"^[!-9;-~]{1,76}$")
    value: str = Field(max_length=998)

    @field_validator("value")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if any(ch in value for ch in "\r\n"):
            raise ValueError("a header value must be one line")
        return value


class Disclaimer(_Strict):
    """Text appended to text/plain parts and (as given, or escaped text) to text/html parts."""

    text: str = Field(min_length=1, max_length=8000)
    html: str | None = Field(None, max_length=16000)


class RuleActions(_Strict):
    """What a matching rule does. At most one of reject / delete / quarantine / redirect_to (they exclude)."""

    reject: Reject | None = None
    delete: bool = False
    quarantine: bool = False
    redirect_to: tuple[Address, ...] = ()
    add_to: tuple[Address, ...] = ()
    add_cc: tuple[Address, ...] = ()
    add_bcc: tuple[Address, ...] = ()
    add_header: tuple[HeaderValue, ...] = ()
    set_header: tuple[HeaderValue, ...] = ()
    remove_header: tuple[Annotated[str, Field(pattern=r"^[!-9;-~]{1,76}$")], ...] = ()
    set_scl: int | None = Field(None, ge=-1, le=9)
    prepend_subject: str | None = Field(None, min_length=1, max_length=100)
    append_disclaimer: Disclaimer | None = None
    incident_report_to: tuple[Address, ...] = ()
    delivery_pool: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,64}$")

    @model_validator(mode="after")
    def _exclusive(self) -> RuleActions:
        terminal = [
            n
            for n, on in (
                ("reject", self.reject is not None),
                ("delete", self.delete),
                ("quarantine", self.quarantine),
                ("redirect_to", bool(self.redirect_to)),
            )
            if on
        ]
        if len(terminal) > 1:
            raise ValueError(f"{' and '.join(terminal)} exclude each other; choose one")
        if self.is_empty():
            raise ValueError("a rule needs at least one action")
        return self

    def is_empty(self) -> bool:
        return not any(getattr(self, name) not in (None, (), False) for name in type(self).model_fields)


class RuleMode(StrEnum):
    ENFORCE = "enforce"
    AUDIT = "audit"  # record what the rule would have done, do nothing


class RuleScope(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    BOTH = "both"


class Rule(_Strict):
    """One mail flow rule. Priority 0 runs first; ties run in the order the rules are listed."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[^\r\n]+$")
    priority: int = Field(0, ge=0, le=100_000)
    enabled: bool = True
    mode: RuleMode = RuleMode.ENFORCE
    direction: RuleScope = RuleScope.BOTH
    conditions: Conditions = Conditions()
    exceptions: Conditions = Conditions()
    actions: RuleActions
    stop_processing: bool = False
    comments: str = Field("", max_length=1000)

    @model_validator(mode="wrap")
    @classmethod
    def _name_the_rule(cls, data: Any, handler: Any) -> Any:
        """Errors inside a rule come out as one error that starts with the rule's name."""
        return _named_errors("rule", data, handler)

    @model_validator(mode="after")
    def _pool_is_outbound(self) -> Rule:
        if self.actions.delivery_pool and self.direction is RuleScope.INBOUND:
            raise ValueError("actions.delivery_pool: a delivery pool routes outbound mail; scope the rule outbound")
        return self


def check_rule_set(rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
    """Names are unique within an organisation's rule set."""
    names = [r.name for r in rules]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"rule name used twice: {', '.join(dupes)}")
    return rules


# ---- DLP: the type names a `sensitive_info` condition may use ----------------------------------

# The built-in sensitive information types of `pipeline/dlp` (model/ may not import pipeline/; a unit
# test keeps the two lists equal).
DLP_BUILTIN_TYPES = frozenset(
    {
        "aws_access_key_id",
        "aws_secret_access_key",
        "azure_storage_key",
        "credit_card",
        "email",
        "github_token",
        "google_api_key",
        "iban",
        "jp_corporate_number",
        "jp_my_number",
        "jp_phone",
        "private_key",
        "slack_token",
        "stripe_key",
        "us_ssn",
    }
)
DLP_DEFAULT_PROXIMITY = 300


class CustomSensitiveType(_Strict):
    """A sensitive information type defined in policy (`policy.dlp.custom_types`); `pipeline/dlp`
    turns it into its scanner's `CustomType`. The pattern is RE2, case-sensitive, and must not match
    the empty string; with keywords, a match counts only with one within `proximity` characters."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.\-]{0,63}$")
    pattern: str = Field(min_length=1, max_length=MAX_PATTERN_LENGTH)
    keywords: tuple[Word, ...] = ()
    proximity: int = Field(DLP_DEFAULT_PROXIMITY, ge=0, le=10_000)
    min_count: int = Field(1, ge=1, le=10_000)
    confidence: Confidence = Confidence.MEDIUM

    @model_validator(mode="wrap")
    @classmethod
    def _name_the_type(cls, data: Any, handler: Any) -> Any:
        """Errors inside a custom type come out as one error that starts with the type's name."""
        return _named_errors("custom type", data, handler)

    @field_validator("name")
    @classmethod
    def _not_builtin(cls, value: str) -> str:
        if value in DLP_BUILTIN_TYPES:
            raise ValueError(f"{value!r} is a built-in type; choose another name")
        return value

    @field_validator("pattern")
    @classmethod
    def _linear_time(cls, value: str) -> str:
        try:
            compiled = re2.compile(value, _RE2_OPTIONS)
        except re2.error as exc:
            reason = exc.args[0] if exc.args else exc
            if isinstance(reason, bytes):
                reason = reason.decode("utf-8", "replace")
            raise ValueError(f"pattern {value!r} refused: {reason}") from None
        if compiled.fullmatch("") is not None:
            raise ValueError(f"pattern {value!r} refused: it matches the empty string")
        return value


class DlpPolicy(_Strict):
    """`policy.dlp`: the organisation's own sensitive information types, usable in `sensitive_info`."""

    custom_types: tuple[CustomSensitiveType, ...] = Field((), max_length=200)

    @field_validator("custom_types")
    @classmethod
    def _distinct(cls, value: tuple[CustomSensitiveType, ...]) -> tuple[CustomSensitiveType, ...]:
        names = [t.name for t in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"custom type name used twice: {', '.join(dupes)}")
        return value

    def type_names(self) -> frozenset[str]:
        return DLP_BUILTIN_TYPES | {t.name for t in self.custom_types}


def check_sensitive_types(rules: tuple[Rule, ...], dlp: DlpPolicy) -> None:
    """Every `sensitive_info` type a rule names is built in or a custom type; the error names the rule
    and the field."""
    known = dlp.type_names()
    for index, rule in enumerate(rules):
        for part in ("conditions", "exceptions"):
            conditions: Conditions = getattr(rule, part)
            for n, info in enumerate(conditions.sensitive_info):
                if info.type not in known:
                    custom = ", ".join(t.name for t in dlp.custom_types) or "none"
                    raise ValueError(
                        f"rules.{index}: rule {rule.name!r}: {part}.sensitive_info.{n}.type: unknown sensitive "
                        f"information type {info.type!r} (built-in: {', '.join(sorted(DLP_BUILTIN_TYPES))}; "
                        f"custom: {custom})"
                    )


def _named_errors(kind: str, data: Any, handler: Any) -> Any:
    """Validate with `handler`; errors come out as one `ValueError` led by `<kind> '<name>':`."""
    try:
        return handler(data)
    except ValidationError as exc:
        name = data.get("name") if isinstance(data, dict) else None
        fallback = "(" + kind.rsplit(" ", 1)[-1] + ")"
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or fallback
            parts.append(f"{loc}: {err['msg'].removeprefix('Value error, ')}")
        raise ValueError(f"{kind} {name!r}: " + "; ".join(parts)) from None
