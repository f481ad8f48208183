"""The policy as a form: the settings an administrator changes most, one input each, drawn from the model.

Each input's kind, choices and bounds come from the pydantic `Policy` model (an enum is a select, a
number carries the model's minimum and maximum, an address list is one address a line). A submission is
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
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from mailwarden.console.pages import Pages
from mailwarden.console.web import Console, Refusal, View
from mailwarden.errors import PolicyError, StaleVersionError
from mailwarden.i18n import DEFAULT_LANGUAGE, catalogue
from mailwarden.model.accounts import Role
from mailwarden.model.policy import OrganisationDocument, Policy

Kind = Literal["select", "check", "number", "lines", "text"]

_VERDICTS = ("spam", "high_confidence_spam", "bulk", "phish", "high_confidence_phish", "malware", "rule", "dlp")

# The sections of the form and the settings in each, as paths in the policy document.
SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("spam", ("spam.actions.spam", "spam.actions.high_confidence_spam", "spam.actions.bulk",
              "spam.bcl_threshold", "spam.mark_bulk_as_spam", "spam.redirect_to")),
    ("phish", ("spam.actions.phish", "spam.actions.high_confidence_phish")),
    ("malware", ("malware.action", "malware.notify_admins", "malware.notify_internal_sender")),
    ("quarantine_retention", tuple(f"quarantine_retention.{v}" for v in _VERDICTS)),
    ("quarantine_permissions", tuple(f"quarantine_permissions.{v}" for v in _VERDICTS)),
    ("outbound_spam", ("outbound_spam.external_per_hour", "outbound_spam.internal_per_hour",
                       "outbound_spam.per_day", "outbound_spam.action_at_limit", "outbound_spam.notify_admins",
                       "outbound_spam.restrict_after_spam")),
    ("dmarc", ("dmarc.honour_policy", "dmarc.quarantine_action", "dmarc.reject_action")),
    ("clawback", ("clawback.malware", "clawback.high_confidence_phish", "clawback.phish",
                  "clawback.high_confidence_spam", "clawback.spam", "clawback.window_hours")),
)  # fmt: skip


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

    @property
    def name(self) -> str:
        return self.path


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
        return FormField(path, "text")
    raise TypeError(f"no form input for {path}")


FIELDS: dict[str, FormField] = {path: describe(path) for _, paths in SECTIONS for path in paths}


def _number(value: float) -> str:
    return f"{value:g}"


def label(t: Any, field: FormField) -> str:
    """The field's label: its own, else the verdict it is set per (the grids of one setting per verdict)."""
    own = f"pform.f.{field.path}"
    return str(t(own)) if own in catalogue(DEFAULT_LANGUAGE) else str(t(f"pform.v.{field.path.rsplit('.', 1)[1]}"))


def help_text(t: Any, field: FormField) -> str:
    """The field's help: its own words and, for a number, the range the model allows."""
    parts = [str(t(f"pform.h.{field.path}"))] if f"pform.h.{field.path}" in catalogue(DEFAULT_LANGUAGE) else []
    if field.kind == "number" and field.high is not None and field.low is not None:
        key = "pform.range_open" if field.low_open else "pform.range"
        parts.append(str(t(key, low=_number(field.low), high=_number(field.high))))
    return " ".join(parts)


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
        elif field.kind == "text":
            _put(policy, path, raw.strip() or None)
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
    if kind == "string_too_long":
        return str(t("pform.e.too_long", max=ctx.get("max_length", "")))
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
