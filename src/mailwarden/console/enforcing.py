"""The console from monitor to enforce (docs/policy-replay.md): the mode-switch preview of an organisation
or one domain (what enforcing would have done over the last days, with its messages) and the switch
below it; the per-domain switch; and policy replay, where the admin edits a candidate policy and sees
what it would change over the kept messages before saving it.

Staff read the preview and run replays; only admins switch modes and save a candidate.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import yaml
from fastapi.responses import RedirectResponse, Response

from mailwarden.console.web import Console, Refusal, View
from mailwarden.errors import NotFoundError, PolicyError, StaleVersionError
from mailwarden.model.accounts import Role
from mailwarden.model.org import ConnectionMode, Domain, Organisation
from mailwarden.model.policy import OrganisationDocument
from mailwarden.service.replay import DEFAULT_LIMIT, MAX_LIMIT, ReplayReport, candidate_document, replay_blocking
from mailwarden.store.preview import ENFORCED_ACTIONS, mode_preview

PREVIEW_DAYS = (1, 7, 14, 30, 90)
REPLAY_DAYS = (1, 7, 14, 30)
ENFORCING_MODES = (ConnectionMode.GATEWAY, ConnectionMode.MAILFLOW)


class EnforcingPages:
    """Handlers bound to one Console."""

    def __init__(self, console: Console) -> None:
        self.c = console
        self.rt = console.rt

    def _organisation(self, view: View, name: str) -> Organisation:
        bound = view.user.organisation
        if bound is not None and name != bound:
            raise Refusal(403, "forbidden")
        try:
            return self.rt.policies.get_organisation(name)
        except NotFoundError:
            raise Refusal(404, "not_found") from None

    # -- the mode-switch preview ---------------------------------------------------------------

    def preview(self, view: View) -> Response:
        org = self._organisation(view, view.arg("org") or view.user.organisation or self.rt.config.organisation)
        domain = org.domain(view.arg("domain") or None)
        if view.arg("domain") and domain is None:
            raise Refusal(404, "not_found")
        return self._preview_page(view, org, domain, _int(view.arg("days"), 7, PREVIEW_DAYS))

    def _preview_page(
        self, view: View, org: Organisation, domain: Domain | None, days: int, errors: list[str] | None = None
    ) -> Response:
        start = datetime.now(UTC) - timedelta(days=days)
        p = mode_preview(self.rt.db, org.name, start, domain=domain.name if domain else None)
        rows = [
            {
                "action": a.value,
                "messages": p.total(a.value),
                "by_category": sorted(p.counts.get(a.value, {}).items()),
                "newest": p.messages.get(a.value, []),
            }
            for a in ENFORCED_ACTIONS
        ]
        return self.c.render(
            view,
            "mode_preview.html",
            422 if errors else 200,
            org=org,
            domain=domain,
            days=days,
            day_choices=PREVIEW_DAYS,
            start_day=start.date().isoformat(),
            monitored=p.monitored,
            rows=rows,
            enforcing_modes=[m.value for m in ENFORCING_MODES],
            errors=errors or [],
        )

    def switch_domain(self, view: View) -> Response:
        org = self._organisation(view, view.value("org"))
        domain = org.domain(view.value("domain") or None)
        if domain is None:
            raise Refusal(404, "not_found")
        try:
            mode = ConnectionMode(view.value("mode"))
            self.rt.policies.set_domain_mode(
                org.name, domain.name, mode, next_hop=view.value("next_hop").strip() or None, actor=view.user.name
            )
        except ValueError:
            return self._preview_page(view, org, domain, 7, [f"mode: {view.value('mode')!r} is not a connection mode"])
        except PolicyError as exc:
            return self._preview_page(view, org, domain, 7, exc.errors)
        return RedirectResponse("/domains", status_code=303)

    # -- policy replay -------------------------------------------------------------------------

    def replay(self, view: View) -> Response:
        org = self._organisation(
            view, view.arg("org") or view.value("org") or view.user.organisation or self.rt.config.organisation
        )
        current = self.rt.policies.export_document(org.name)
        text = _yaml(current.policy.model_dump(mode="json", exclude_defaults=True))
        days, limit = 7, DEFAULT_LIMIT
        errors: list[str] = []
        report: ReplayReport | None = None
        saved = None
        version = self.rt.policies.policy_version(org.name)  # the version the candidate is edited from
        if view.request.method == "POST":
            version = _int(view.value("version"), -1)
            text = view.value("document")
            days = _int(view.value("days"), 7, REPLAY_DAYS)
            limit = max(1, min(_int(view.value("limit"), DEFAULT_LIMIT), MAX_LIMIT))
            candidate = self._candidate(current, text, errors)
            if candidate is not None and view.value("intent") == "save":
                saved = self._save(view, candidate, version, errors)
                version = version if saved is None else saved
            elif candidate is not None:
                since = datetime.now(UTC) - timedelta(days=days)
                report = replay_blocking(self.rt, candidate, since=since, limit=limit)
        return self.c.render(
            view,
            "replay.html",
            422 if errors else 200,
            org=org,
            version=version,
            organisations=self.c.organisations(view),
            text=text,
            days=days,
            day_choices=REPLAY_DAYS,
            limit=limit,
            max_limit=MAX_LIMIT,
            errors=errors,
            report=report,
            saved=saved,
        )

    def _candidate(self, current: OrganisationDocument, text: str, errors: list[str]) -> OrganisationDocument | None:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}: " if mark is not None else ""
            errors.append(f"(document): {where}not valid YAML ({getattr(exc, 'problem', None) or exc})")
            return None
        try:
            return candidate_document(current, {} if data is None else data)
        except PolicyError as exc:
            errors.extend(e.removeprefix("policy.") for e in exc.errors)
            return None

    def _save(self, view: View, candidate: OrganisationDocument, version: int, errors: list[str]) -> int | None:
        """Save the candidate, if the policy is still the one it was edited from (else nothing changes)."""
        if view.user.role is not Role.ADMIN:
            raise Refusal(403, "forbidden")
        try:
            self.rt.policies.import_document(candidate, actor=view.user.name, expected_version=version)
        except PolicyError as exc:
            errors.extend(exc.errors)
            return None
        except StaleVersionError:
            errors.append(view.t("replay.stale"))
            return None
        return self.rt.policies.policy_version(candidate.name)


def _int(value: str, default: int, allowed: tuple[int, ...] | None = None) -> int:
    try:
        number = int(value)
    except ValueError:
        return default
    return number if allowed is None or number in allowed else default


def _yaml(value: Any) -> str:
    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True, default_flow_style=False)
