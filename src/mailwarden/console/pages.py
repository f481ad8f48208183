"""The console's pages other than the quarantine: sign-in, dashboard, trace, policy editors, admin.

Each handler reads the stores directly (same process) and applies the API's role rules: `user` sees
only their own quarantine; `analyst` reads everything and changes nothing; `admin` changes policy,
domains, users and tokens. A principal bound to an organisation sees only that organisation.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

import yaml
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from mailwarden.console import charts
from mailwarden.console.i18n import LANGUAGES
from mailwarden.console.provider import provider_panel
from mailwarden.console.reports import build_dashboard
from mailwarden.console.web import Console, Refusal, View, client_ip, local_redirect
from mailwarden.errors import NotFoundError, PolicyError, StaleVersionError
from mailwarden.model import Action, Category, Direction, Policy
from mailwarden.model.accounts import AccountError, Role, Scope
from mailwarden.model.clawback import ClawbackAction
from mailwarden.model.policy import OrganisationDocument, parse_organisation_document, validation_messages
from mailwarden.model.provider import Agreement, ProviderCategory
from mailwarden.service.message_actions import ListAction, add_to_list, report
from mailwarden.store import HistoryQuery, HistoryQueryError, MessageDetail
from mailwarden.store.audit import changes
from mailwarden.store.kept import KeptStore
from mailwarden.store.outbox import Outbox

DASHBOARD_DAYS = 14
MB = 1024 * 1024
TRACE_PAGE = 50
TRACE_FILTERS = (
    "sender", "recipient", "subject", "message_id", "direction", "category", "action", "provider_category",
    "agreement", "start", "end",
)  # fmt: skip
LIST_FIELDS = ("allowed_senders", "blocked_senders", "allowed_domains", "blocked_domains", "ip_allow", "ip_block")


class Pages:
    """Handlers bound to one Console."""

    def __init__(self, console: Console) -> None:
        self.c = console
        self.rt = console.rt

    # -- sign-in -------------------------------------------------------------------------------

    def login_form(self, view: View) -> Response:
        if view.principal is not None:
            return RedirectResponse(self.home(view), status_code=303)
        return self.c.render(view, "login.html", name="", error=None)

    def login(self, view: View) -> Response:
        name, password = view.value("name").strip(), view.value("password")
        ip = client_ip(view.request)
        wait = math.ceil(self.c.limiter.admit(name, ip))
        if wait:
            limited = self.c.render(view, "login.html", 429, name=name, error=view.t("login.limited", seconds=wait))
            limited.headers["Retry-After"] = str(wait)
            return limited
        principal = self.c.accounts.authenticate(name, password) if name and password else None
        if principal is None:
            return self.c.render(view, "login.html", 401, name=name, error=view.t("login.failed"))
        self.c.limiter.succeeded(name, ip)
        if view.session_id:
            self.c.accounts.end_session(view.session_id)
        response = RedirectResponse("/" if principal.role is not Role.USER else "/quarantine", status_code=303)
        self.c.sign_in(response, self.c.accounts.create_session(principal))
        return response

    def logout(self, view: View) -> Response:
        if view.session_id:
            self.c.accounts.end_session(view.session_id)
        response = RedirectResponse("/login", status_code=303)
        self.c.sign_out(response)
        return response

    def language(self, view: View) -> Response:
        chosen = view.value("language")
        response = RedirectResponse(local_redirect(view.value("next"), "/"), status_code=303)
        if chosen in LANGUAGES:
            self.c.remember_language(response, chosen)
        return response

    def home(self, view: View) -> str:
        return "/quarantine" if view.principal and view.principal.role is Role.USER else "/"

    # -- dashboard -----------------------------------------------------------------------------

    def dashboard(self, view: View) -> Response:
        board = build_dashboard(self.rt.db, days=DASHBOARD_DAYS, organisation=view.user.organisation)
        t = view.t
        modes = [(t("dashboard.monitor"), board.modes["monitor"]), (t("dashboard.enforce"), board.modes["enforce"])]
        return self.c.render(
            view,
            "dashboard.html",
            board=board,
            verdict_chart=charts.stacked_days(
                board.days, board.by_verdict, title=t("dashboard.by_verdict"), label=lambda c: t.enum("category", c)
            ),
            recipients_chart=charts.bars(board.top_recipients, title=t("dashboard.top_recipients")),
            spam_chart=charts.bars(board.top_spam_senders, title=t("dashboard.top_spam_senders"), css="bar-bad"),
            malware_chart=charts.bars(
                board.top_malware_senders, title=t("dashboard.top_malware_senders"), css="bar-bad"
            ),
            dlp_chart=charts.bars(
                [(t.enum("dlp_type", name), n) for name, n in board.dlp_hits],
                title=t("dashboard.dlp_hits"),
                css="bar-dlp",
            ),
            modes_chart=charts.bars(modes, title=t("dashboard.modes")),
            provider=provider_panel(self.rt, days=DASHBOARD_DAYS, organisation=view.user.organisation),
            kept=self._kept(view),
            feed=self._feed(view),
        )

    def _feed(self, view: View) -> list[str]:
        """The event feed's state for staff: rows waiting, and each configured sink's lag and trouble (a sink
        that fails or lags is what makes the outbox drop rows: it should be seen before that happens)."""
        config = self.rt.config.export
        box = Outbox(self.rt.db)
        newest, rows = box.newest(), box.count()
        lines = [view.t("dashboard.feed", rows=rows, bound=config.max_backlog)]
        cursors = box.cursors()
        for sink in config.sinks:
            last, failures, error = cursors.get(sink.name, (0, 0, None))
            line = view.t("dashboard.feed_sink", sink=sink.name, lag=max(0, newest - last))
            if failures:
                line += " · " + view.t("dashboard.feed_failing", failures=failures, error=error or "")
            lines.append(line)
        return lines

    def _kept(self, view: View) -> str:
        """The dashboard's line on the messages kept for retro-hunt."""
        days = self.rt.config.retention.keep_days
        count, raw, stored = KeptStore(self.rt.db, self.rt.blobs).totals(view.user.organisation)
        if not days and not count:
            return view.t("dashboard.kept_off")
        return view.t(
            "dashboard.kept", count=count, raw=f"{raw / MB:.1f}", stored=f"{stored / MB:.1f}", days=f"{days:g}"
        )

    # -- message trace -------------------------------------------------------------------------

    def trace(self, view: View) -> Response:
        filters = {name: view.arg(name) for name in TRACE_FILTERS}
        error = None
        page = None
        try:
            query = HistoryQuery(
                start=day_start(filters["start"]),
                end=day_end(filters["end"]),
                sender=filters["sender"] or None,
                recipient=filters["recipient"] or None,
                subject=filters["subject"] or None,
                internet_message_id=filters["message_id"] or None,
                direction=Direction(filters["direction"]) if filters["direction"] else None,
                category=Category(filters["category"]) if filters["category"] else None,
                action=Action(filters["action"]) if filters["action"] else None,
                provider_category=ProviderCategory(filters["provider_category"])
                if filters["provider_category"]
                else None,
                agreement=Agreement(filters["agreement"]) if filters["agreement"] else None,
                organisation=view.user.organisation,
                limit=TRACE_PAGE,
                cursor=view.arg("cursor") or None,
            )
            page = self.rt.history.search(query)
        except (HistoryQueryError, ValueError) as exc:
            error = view.failure(exc)
        values: dict[str, Any] = {
            "filters": filters,
            "page": page,
            "error": error,
            "directions": [d.value for d in Direction],
            "categories": [c.value for c in Category],
            "actions": [a.value for a in Action],
            "provider_categories": [c.value for c in ProviderCategory],
            "agreements": [a.value for a in Agreement],
            "more_query": _query_string(filters, page.next_cursor if page else None),
            "campaign_query": _campaign_query(filters) if page and page.items else None,
        }
        if view.htmx and view.request.headers.get("HX-Target") == "results":
            return self.c.render(view, "_trace_results.html", **values)
        return self.c.render(view, "trace.html", **values)

    def _visible_message(self, view: View, message_id: str) -> MessageDetail:
        try:
            detail = self.rt.history.get(message_id.upper())
        except NotFoundError:
            raise Refusal(404, "not_found") from None
        if view.user.organisation is not None and detail.summary.organisation != view.user.organisation:
            raise Refusal(404, "not_found")
        return detail

    def message_action(self, view: View, message_id: str) -> Response:
        """Block or allow the sender or its domain (admins), report as spam or not spam (staff)."""
        detail = self._visible_message(view, message_id)
        m, verb, error = detail.summary, view.value("action"), False
        try:
            if verb in ("report_spam", "report_ham"):
                outcome = report(self.rt, m.id, spam=verb == "report_spam", actor=view.user.name)
                flash = view.t("actions.reported", what=view.t(f"actions.{verb}"), outcome=view.t(f"actions.{outcome}"))
            else:
                try:
                    action = ListAction(verb)
                except ValueError:
                    raise Refusal(400, "not_found") from None
                if view.user.role is not Role.ADMIN or not m.organisation:
                    raise Refusal(403, "forbidden")
                entry, new = add_to_list(self.rt, m.organisation, action, m.sender, actor=view.user.name)
                key = "actions.listed" if new else "actions.listed_already"
                flash = view.t(key, entry=entry, list=view.t(f"lists.{action.list_name}"))
        except (NotFoundError, PolicyError) as exc:
            flash, error = view.failure(exc), True
        return self.message(view, message_id, action_flash=flash, action_error=error)

    def message(
        self, view: View, message_id: str, *, action_flash: str | None = None, action_error: bool = False
    ) -> Response:
        detail = self._visible_message(view, message_id)
        findings = [
            {"stage": stage.get("stage"), "outcome": stage.get("outcome"), **finding}
            for stage in detail.verdict.get("stages", [])
            for finding in stage.get("findings", [])
        ]
        actions = [a for a in ClawbackAction if view.user.role is Role.ADMIN or not a.hard]
        return self.c.render(
            view, "message.html", detail=detail, findings=findings, clawback_actions=actions,
            list_actions=list(ListAction), action_flash=action_flash, action_error=action_error,
        )  # fmt: skip

    # -- policy, rules, lists ------------------------------------------------------------------

    def organisation_name(self, view: View) -> str:
        bound = view.user.organisation
        wanted = view.arg("org") or view.value("org") or bound or self.rt.config.organisation
        if bound is not None and wanted != bound:
            raise Refusal(403, "forbidden")
        return wanted

    def _document(self, view: View) -> OrganisationDocument:
        try:
            return self.rt.policies.export_document(self.organisation_name(view))
        except NotFoundError:
            raise Refusal(404, "not_found") from None

    def _save(self, view: View, doc: OrganisationDocument, policy: dict[str, Any]) -> list[str]:
        """Validate the whole document with `policy` and store it if the policy is still at the version the
        page was made from (its `version` field): the errors, or [] when saved. An editor saves the whole
        policy, so a save over someone else's newer change would undo it: that is refused instead."""
        if view.user.role is not Role.ADMIN:
            raise Refusal(403, "forbidden")
        data = doc.model_dump(mode="json")
        data["policy"] = policy
        try:
            expected = int(view.value("version"))
        except ValueError:
            return [view.t("pform.stale")]
        try:
            self.rt.policies.import_document(
                parse_organisation_document(data), actor=view.user.name, expected_version=expected
            )
        except StaleVersionError:
            return [view.t("pform.stale")]
        except PolicyError as exc:
            return [e.removeprefix("policy.") for e in exc.errors] or [str(exc)]
        return []

    def _version(self, view: View, doc: OrganisationDocument) -> int:
        """The version an editor's page is made from: after a refused save, still the one it was made from."""
        if view.request.method == "POST" and view.value("version").isdigit():
            return int(view.value("version"))
        return self.rt.policies.policy_version(doc.name)

    def policy_yaml(self, view: View) -> Response:
        """The whole policy (rules aside) as YAML: the advanced editor beside the form (`/policy`)."""
        doc = self._document(view)
        text = _yaml(doc.policy.model_dump(mode="json", exclude={"rules"}))
        errors: list[str] = []
        saved = None
        if view.request.method == "POST":
            text = view.value("document")
            parsed = _load_yaml(text, errors)
            if isinstance(parsed, dict):
                parsed["rules"] = [r.model_dump(mode="json") for r in doc.policy.rules]
                errors = self._save(view, doc, parsed)
            elif not errors:
                errors = ["(document): a policy document is a mapping"]
            if not errors:
                saved = self.rt.policies.policy_version(doc.name)
        return self.c.render(
            view,
            "policy_yaml.html",
            doc=doc,
            version=saved or self._version(view, doc),
            text=text,
            errors=errors,
            saved=saved,
            organisations=self.c.organisations(view),
        )

    def rules(self, view: View) -> Response:
        doc = self._document(view)
        rules = [r.model_dump(mode="json", exclude_defaults=True) for r in doc.policy.rules]
        text = _yaml(rules) if rules else ""
        errors: list[str] = []
        saved = None
        checked = False
        if view.request.method == "POST":
            text = view.value("document")
            parsed = _load_yaml(text, errors)
            if parsed is None and not errors:
                parsed = []
            if not errors and not isinstance(parsed, list):
                errors = ["(document): the rules are a YAML list"]
            if not errors:
                policy = doc.policy.model_dump(mode="json")
                policy["rules"] = parsed
                if view.value("intent") == "check":
                    errors = _policy_errors(policy)
                    checked = not errors
                else:
                    errors = self._save(view, doc, policy)
                    if not errors:
                        saved = self.rt.policies.policy_version(doc.name)
            if view.htmx:
                version = saved or self._version(view, doc)
                return self.c.render(
                    view, "_rules_result.html", errors=errors, saved=saved, checked=checked, version=version
                )
        return self.c.render(
            view,
            "rules.html",
            doc=doc,
            version=saved or self._version(view, doc),
            text=text,
            errors=errors,
            saved=saved,
            checked=checked,
            organisations=self.c.organisations(view),
        )

    def lists(self, view: View) -> Response:
        doc = self._document(view)
        current = doc.policy.lists.model_dump(mode="json")
        values = {name: "\n".join(current[name]) for name in LIST_FIELDS}
        errors: list[str] = []
        saved = None
        if view.request.method == "POST":
            values = {name: view.value(name) for name in LIST_FIELDS}
            policy = doc.policy.model_dump(mode="json")
            policy["lists"] = {
                name: [line.strip() for line in values[name].splitlines() if line.strip()] for name in LIST_FIELDS
            }
            errors = self._save(view, doc, policy)
            if not errors:
                saved = self.rt.policies.policy_version(doc.name)
        return self.c.render(
            view,
            "lists.html",
            doc=doc,
            version=saved or self._version(view, doc),
            values=values,
            fields=LIST_FIELDS,
            errors=errors,
            saved=saved,
            organisations=self.c.organisations(view),
        )

    # -- domains and the monitor / enforce switch ----------------------------------------------

    def domains(self, view: View) -> Response:
        names = self.c.organisations(view)
        organisations = [self.rt.policies.get_organisation(name) for name in names]
        return self.c.render(view, "domains.html", organisations=organisations)

    def switch_mode(self, view: View) -> Response:
        name = view.value("org")
        if view.user.organisation is not None and name != view.user.organisation:
            raise Refusal(403, "forbidden")
        try:
            self.rt.policies.set_monitor_only(name, view.value("monitor_only") == "true", actor=view.user.name)
        except NotFoundError:
            raise Refusal(404, "not_found") from None
        return RedirectResponse("/domains", status_code=303)

    # -- users and tokens ----------------------------------------------------------------------

    def users(self, view: View, *, message: str | None = None, error: str | None = None) -> Response:
        return self.c.render(
            view,
            "users.html",
            users=self.c.accounts.list_users(),
            tokens=self.c.accounts.list_tokens(),
            roles=[r.value for r in Role],
            message=message,
            error=error,
        )

    def add_user(self, view: View) -> Response:
        try:
            self.c.accounts.add_user(
                view.value("name").strip(),
                role=Role(view.value("role")),
                email=view.value("email").strip() or None,
                organisation=view.value("organisation").strip() or None,
                password=view.value("password") or None,
                actor=view.user.name,
            )
        except (AccountError, ValueError) as exc:
            return self.users(view, error=view.failure(exc))
        return RedirectResponse("/users", status_code=303)

    def disable_user(self, view: View) -> Response:
        try:
            self.c.accounts.disable_user(view.value("name"), actor=view.user.name)
        except NotFoundError:
            raise Refusal(404, "not_found") from None
        return RedirectResponse("/users", status_code=303)

    def create_token(self, view: View) -> Response:
        scopes = {Scope(s) for s in view.values("scope") if s in {x.value for x in Scope}} or {Scope.READ}
        try:
            _info, secret = self.c.accounts.create_token(
                view.value("user").strip() or view.user.name,
                name=view.value("token_name").strip() or "console",
                scopes=scopes,
                actor=view.user.name,
            )
        except (AccountError, NotFoundError) as exc:
            return self.users(view, error=view.failure(exc))
        return self.users(view, message=view.t("tokens.created", token=secret))

    def revoke_token(self, view: View) -> Response:
        try:
            self.c.accounts.revoke_token(view.value("prefix"), actor=view.user.name)
        except (AccountError, NotFoundError):
            raise Refusal(404, "not_found") from None
        return RedirectResponse("/users", status_code=303)

    # -- audit log -----------------------------------------------------------------------------

    def audit(self, view: View) -> Response:
        entries = self.rt.audit.newest(limit=200)
        bound = view.user.organisation
        if bound is not None:
            entries = [e for e in entries if e["object"] == f"organisation:{bound}"]
        for entry in entries:
            entry["change"] = _change(entry["before"], entry["after"])
        return self.c.render(view, "audit.html", entries=entries)


def day_start(value: str) -> datetime | None:
    return datetime.combine(date.fromisoformat(value), time.min, UTC) if value else None


def day_end(value: str) -> datetime | None:
    if not value:
        return None
    return datetime.combine(date.fromisoformat(value), time.min, UTC) + timedelta(days=1) - timedelta(microseconds=1)


def _campaign_query(filters: dict[str, str]) -> str | None:
    """The clawback campaign of this search, when the campaign's filters say the same thing as the search's
    (it searches by sender, subject, Message-ID, verdict and days only)."""
    if any(filters[k] for k in ("recipient", "direction", "action", "provider_category", "agreement")):
        return None
    if not any(filters[k] for k in ("sender", "subject", "message_id", "category")):
        return None
    return urlencode(
        {k: filters[k] for k in ("sender", "subject", "message_id", "category", "start", "end") if filters[k]}
    )


def _query_string(filters: dict[str, str], cursor: str | None) -> str:
    from urllib.parse import urlencode

    if cursor is None:
        return ""
    return urlencode({**{k: v for k, v in filters.items() if v}, "cursor": cursor})


def _yaml(value: Any) -> str:
    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True, default_flow_style=False)


def _load_yaml(text: str, errors: list[str]) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        errors.append(f"(document): {where}not valid YAML ({getattr(exc, 'problem', None) or exc})")
        return None


def _policy_errors(policy: dict[str, Any]) -> list[str]:
    try:
        Policy.model_validate(policy)
    except ValidationError as exc:
        return validation_messages(exc)
    return []


def _change(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """Every changed field of an audit entry, as (path, before, after), each value whole."""
    return [(c.path, _shown(c.before), _shown(c.after)) for c in changes(before, after)]


def _shown(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, (dict, list)):
        return yaml.safe_dump(value, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100).strip()
    return str(value)
