"""The policy as a form: the settings an administrator changes most, one input each, drawn from the model.

Each input's kind, choices and bounds come from the pydantic `Policy` model (an enum is a select, a
number carries the model's minimum and maximum, a list is one value a line, a text longer than 200
characters is a text area, a text's maximum length is said in its help). A submission is
the current document with the form's values put in, validated whole by the model: every bad field is
shown next to its input at once, in the reader's language, and nothing is saved while any is bad. Saving
is conditional on the policy version the form was made from, so a change made since is never overwritten.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from fastapi.responses import Response
from markupsafe import Markup, escape
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from mailwarden.console.pages import Pages
from mailwarden.console.web import Console, Refusal, View
from mailwarden.errors import PolicyError, StaleVersionError
from mailwarden.i18n import DEFAULT_LANGUAGE, catalogue
from mailwarden.model.accounts import Role
from mailwarden.model.policy import NOTIFICATION_FIELDS, OrganisationDocument, Policy

# `text` is one line, `long` a text area (a text the model lets be longer than LONG_TEXT characters)
Kind = Literal["select", "check", "number", "lines", "text", "long"]
LONG_TEXT = 200

_VERDICTS = ("spam", "high_confidence_spam", "bulk", "phish", "high_confidence_phish", "malware", "rule", "dlp")

# The sections of the form and the settings in each, as paths in the policy document.
SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("spam", ("spam.actions.spam", "spam.actions.high_confidence_spam", "spam.actions.bulk",
              "spam.bcl_threshold", "spam.mark_bulk_as_spam", "spam.redirect_to", "spam.header_name",
              "spam.header_value", "spam.subject_prefix")),
    ("phish", ("spam.actions.phish", "spam.actions.high_confidence_phish")),
    ("malware", ("malware.action", "malware.alert_text", "malware.blocked_file_types", "malware.notify_admins",
                 "malware.notify_internal_sender", "malware.notification_subject", "malware.notification_text")),
    ("notifications", ("notifications.enabled", "notifications.frequency", "notifications.sender",
                       "notifications.language")),
    ("reports", ("reports.recipients", "reports.every", "reports.language")),
    ("quarantine_retention", tuple(f"quarantine_retention.{v}" for v in _VERDICTS)),
    ("quarantine_permissions", tuple(f"quarantine_permissions.{v}" for v in _VERDICTS)),
    ("outbound_spam", ("outbound_spam.external_per_hour", "outbound_spam.internal_per_hour",
                       "outbound_spam.per_day", "outbound_spam.action_at_limit", "outbound_spam.notify_admins",
                       "outbound_spam.restrict_after_spam")),
    ("dmarc", ("dmarc.honour_policy", "dmarc.quarantine_action", "dmarc.reject_action")),
    ("clawback", ("clawback.malware", "clawback.high_confidence_phish", "clawback.phish",
                  "clawback.high_confidence_spam", "clawback.spam", "clawback.window_hours")),
)  # fmt: skip

# The texts filled in with named values when they are used, and the names they may use (the model checks them).
PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "malware.notification_subject": NOTIFICATION_FIELDS,
    "malware.notification_text": NOTIFICATION_FIELDS,
}


@dataclass(frozen=True, slots=True)
class FormField:
    """One input: its policy path, kind, choices (select) and bounds (number) as the model declares them."""

    path: str
    kind: Kind
    options: tuple[str, ...] = ()
    low: float | None = None
    low_open: bool = False  # the model's bound is "greater than", not "at least"
    high: float | None = None
    whole: bool = True
    max_length: int | None = None  # a text's
    optional: bool = False  # a text that may be unset: empty is None
    placeholders: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.path

    @property
    def rows(self) -> int:
        return 8 if self.kind == "long" else 3


def describe(path: str) -> FormField:
    """The input for a policy path, from the model's annotation and constraints."""
    model: type[BaseModel] = Policy
    info: FieldInfo | None = None
    parts = path.split(".")
    for depth, part in enumerate(parts):
        info = model.model_fields[part]
        if depth < len(parts) - 1:
            assert isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)
            model = info.annotation
    assert info is not None
    annotation = info.annotation
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return FormField(path, "select", tuple(str(e.value) for e in annotation))
    if get_origin(annotation) is Literal:
        return FormField(path, "select", tuple(str(a) for a in get_args(annotation)))
    if annotation is bool:
        return FormField(path, "check")
    if annotation in (int, float):
        low = high = None
        low_open = False
        for bound in info.metadata:
            if isinstance(bound, annotated_types.Ge):
                low = float(bound.ge)  # type: ignore[arg-type]
            elif isinstance(bound, annotated_types.Gt):
                low, low_open = float(bound.gt), True  # type: ignore[arg-type]
            elif isinstance(bound, annotated_types.Le):
                high = float(bound.le)  # type: ignore[arg-type]
        return FormField(path, "number", low=low, low_open=low_open, high=high, whole=annotation is int)
    if get_origin(annotation) is tuple:
        return FormField(path, "lines")
    if get_origin(annotation) in (Union, types.UnionType):
        return FormField(path, "text", optional=True)
    if annotation is str:
        longest = min((m.max_length for m in info.metadata if isinstance(m, annotated_types.MaxLen)), default=None)
        kind: Kind = "long" if longest is not None and longest > LONG_TEXT else "text"
        return FormField(path, kind, max_length=longest, placeholders=PLACEHOLDERS.get(path, ()))
    raise TypeError(f"no form input for {path}")


FIELDS: dict[str, FormField] = {path: describe(path) for _, paths in SECTIONS for path in paths}


def _number(value: float) -> str:
    return f"{value:g}"


def label(t: Any, field: FormField) -> str:
    """The field's label: its own, else the verdict it is set per (the grids of one setting per verdict)."""
    own = f"pform.f.{field.path}"
    return str(t(own)) if own in catalogue(DEFAULT_LANGUAGE) else str(t(f"pform.v.{field.path.rsplit('.', 1)[1]}"))


def help_text(t: Any, field: FormField) -> Markup:
    """The field's help: its own words and, for a number, the range the model allows; for a text, the
    placeholders it may use and its longest length."""
    parts: list[str] = []
    if f"pform.h.{field.path}" in catalogue(DEFAULT_LANGUAGE):
        parts.append(str(t(f"pform.h.{field.path}")))
    if field.kind == "number" and field.high is not None and field.low is not None:
        key = "pform.range_open" if field.low_open else "pform.range"
        parts.append(str(t(key, low=_number(field.low), high=_number(field.high))))
    if field.placeholders:
        parts.append(_sentence(t, "pform.placeholders", names=_codes(field.placeholders)))
    if field.max_length is not None:
        parts.append(str(t("pform.max_length", max=field.max_length)))
    return Markup(" ").join(parts)


def _codes(names: tuple[str, ...]) -> Markup:
    """Placeholder names as they are written in a text (`{subject}`), marked as code, not words."""
    return Markup(", ").join(Markup('<code translate="no">{{{}}}</code>').format(name) for name in names)


def _sentence(t: Any, key: str, **values: object) -> Markup:
    """The words of `key` with markup values put in (other values escaped)."""
    return escape(str(t(key))).format(**values)


def option_label(t: Any, value: str) -> str:
    key = f"pform.o.{value}"
    return str(t(key)) if key in catalogue(DEFAULT_LANGUAGE) else value


def _get(data: dict[str, Any], path: str) -> Any:
    node: Any = data
    for part in path.split("."):
        node = node[part]
    return node


def _put(data: dict[str, Any], path: str, value: object) -> None:
    *parents, leaf = path.split(".")
    node = data
    for part in parents:
        node = node[part]
    node[leaf] = value


def shown_values(policy: dict[str, Any]) -> dict[str, Any]:
    """What each input shows for a policy (JSON form): a string, a bool for a box, lines for a list."""
    out: dict[str, Any] = {}
    for path, field in FIELDS.items():
        value = _get(policy, path)
        if field.kind == "check":
            out[path] = bool(value)
        elif field.kind == "lines":
            out[path] = "\n".join(value)
        elif field.kind == "number":
            out[path] = _number(value)
        else:
            out[path] = "" if value is None else str(value)
    return out


def read_form(view: View, policy: dict[str, Any]) -> dict[str, Any]:
    """Put the submitted values into `policy` (JSON form, changed in place); what the inputs show again."""
    shown: dict[str, Any] = {}
    for path, field in FIELDS.items():
        raw = view.value(path)
        if field.kind == "check":
            shown[path] = raw == "on"
            _put(policy, path, shown[path])
            continue
        shown[path] = raw
        if field.kind == "lines":
            _put(policy, path, [line.strip() for line in raw.splitlines() if line.strip()])
        elif field.optional:
            _put(policy, path, raw.strip() or None)
        elif field.kind == "long":  # a browser sends a text area's lines ended by CR LF
            _put(policy, path, raw.replace("\r\n", "\n"))
        elif field.kind == "text":  # as typed: a subject prefix's trailing space is part of it
            _put(policy, path, raw)
        else:  # the model parses numbers and choices from their text and says what is wrong
            _put(policy, path, raw.strip())
    return shown


def field_errors(exc: ValidationError, t: Any) -> tuple[dict[str, list[str]], list[str]]:
    """The model's errors in plain words: per form field, and the rest (settings the form does not show)."""
    by_field: dict[str, list[str]] = {}
    other: list[str] = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        if loc[:1] == ["policy"]:
            loc = loc[1:]
        at = [p for p in loc if not p.isdigit()]
        path = ".".join(at)
        field = FIELDS.get(path)
        if field is None:
            where = ".".join(loc) or "(document)"
            other.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
            continue
        by_field.setdefault(path, []).append(_plain(err, field, t))
    return by_field, other


def _plain(err: Any, field: FormField, t: Any) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "placeholder_unknown":
        shown = Markup('<code translate="no">{}</code>').format(ctx.get("placeholder", ""))
        return _sentence(t, "pform.e.placeholder_unknown", placeholder=shown, allowed=_codes(field.placeholders))
    if kind == "placeholder_malformed":
        braces = Markup('<code translate="no">{{</code>, <code translate="no">}}</code>')
        return _sentence(t, "pform.e.placeholder_malformed", allowed=_codes(field.placeholders), braces=braces)
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return _range(field, t)
    if kind in ("int_parsing", "int_from_float", "int_type"):
        return str(t("pform.e.whole")) + ("; " + _range(field, t) if field.high is not None else "")
    if kind in ("float_parsing", "float_type", "finite_number"):
        return str(t("pform.e.number")) + ("; " + _range(field, t) if field.high is not None else "")
    if kind in ("enum", "literal_error"):
        return str(t("pform.e.choice"))
    if kind == "string_pattern_mismatch" and "@" in str(ctx.get("pattern", "")):
        return str(t("pform.e.address", value=err.get("input", "")))
    if kind == "string_pattern_mismatch" and f"pform.ep.{field.path}" in catalogue(DEFAULT_LANGUAGE):
        return str(t(f"pform.ep.{field.path}"))  # what the pattern asks for, in words
    if kind == "string_too_long":
        return str(t("pform.e.too_long", max=ctx.get("max_length", "")))
    if kind == "string_too_short":
        return str(t("pform.e.empty"))
    return str(t("pform.e.other", reason=err["msg"].removeprefix("Value error, ")))


def _range(field: FormField, t: Any) -> str:
    low = _number(field.low) if field.low is not None else None
    high = _number(field.high) if field.high is not None else None
    if low is not None and high is not None:
        if field.low_open:
            return str(t("pform.e.range_open", low=low, high=high))
        return str(t("pform.e.range", low=low, high=high))
    if low is not None:
        return str(t("pform.e.above", low=low)) if field.low_open else str(t("pform.e.at_least", low=low))
    return str(t("pform.e.at_most", high=high))


class PolicyFormPages:
    """`/policy`: the form view of an organisation's policy (the YAML editor is `/policy/yaml`)."""

    def __init__(self, console: Console, pages: Pages) -> None:
        self.c = console
        self.rt = console.rt
        self.pages = pages

    def form(self, view: View) -> Response:
        name = self.pages.organisation_name(view)
        doc = self.pages._document(view)
        version = self.rt.policies.policy_version(name)
        shown = shown_values(doc.policy.model_dump(mode="json"))
        errors: dict[str, list[str]] = {}
        other: list[str] = []
        saved = stale = False
        if view.request.method == "POST":
            if view.user.role is not Role.ADMIN:
                raise Refusal(403, "forbidden")
            data = doc.model_dump(mode="json")
            shown = read_form(view, data["policy"])
            try:
                candidate = OrganisationDocument.model_validate(data)
            except ValidationError as exc:
                errors, other = field_errors(exc, view.t)
            else:
                saved, stale = self._save(view, candidate, other)
                if saved:
                    version = self.rt.policies.policy_version(name)
            if stale:
                version = int(view.value("version") or 0)  # the form stays tied to what it was made from
        sections = [(section, [FIELDS[p] for p in paths]) for section, paths in SECTIONS]
        return self.c.render(
            view, "policy.html",
            doc=doc, version=version, sections=sections, shown=shown, errors=errors, other=other,
            saved=saved, stale=stale, organisations=self.c.organisations(view),
            label=lambda f: label(view.t, f), help=lambda f: help_text(view.t, f),
            option=lambda v: option_label(view.t, v),
        )  # fmt: skip

    def _save(self, view: View, candidate: OrganisationDocument, other: list[str]) -> tuple[bool, bool]:
        """Store the candidate if the policy is still at the form's version: (saved, stale)."""
        try:
            expected = int(view.value("version"))
        except ValueError:
            return False, True
        try:
            self.rt.policies.import_document(candidate, actor=view.user.name, expected_version=expected)
        except StaleVersionError:
            return False, True
        except PolicyError as exc:
            other.extend(exc.errors or [str(exc)])
            return False, False
        return True, False
