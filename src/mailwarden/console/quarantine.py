"""The quarantine pages: the list with bulk actions, an entry with its preview, and the download.

Every permission question goes to the quarantine service (`Quarantine.allowed`, which asks `can`),
so a button is shown exactly when pressing it would be accepted. The preview document is served on
its own URL with a CSP that allows no script and no remote content, inside an `<iframe sandbox>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from html import escape
from typing import Any

from fastapi.responses import HTMLResponse, Response

from mailwarden.console.security import PREVIEW_HEADERS
from mailwarden.console.web import Console, Refusal, View
from mailwarden.errors import NotFoundError
from mailwarden.model.accounts import Principal
from mailwarden.model.accounts import Role as AccountRole
from mailwarden.model.quarantine import (
    Actor,
    Entry,
    Operation,
    PermissionDeniedError,
    QuarantineError,
    Reason,
    Role,
    Status,
)
from mailwarden.quarantine import Quarantine
from mailwarden.quarantine.digest import Digests, LinkError
from mailwarden.service.quarantine_jobs import digests_for, quarantine_for
from mailwarden.store.quarantine import QuarantineQuery

PAGE = 100
# what the list offers, in button order; each maps to one service call per selected entry
BULK = (Operation.RELEASE, Operation.REQUEST_RELEASE, Operation.APPROVE, Operation.DENY, Operation.DELETE)
_LABELS = {
    Operation.RELEASE: "quarantine.release",
    Operation.REQUEST_RELEASE: "quarantine.request",
    Operation.APPROVE: "quarantine.approve",
    Operation.DENY: "quarantine.deny",
    Operation.DELETE: "quarantine.delete",
}


def actor_of(principal: Principal) -> Actor:
    return Actor(principal.name, Role(principal.role.value), address=principal.email)


@dataclass
class Row:
    entry: Entry
    operations: list[Operation]  # what this principal may do to it now


DETECTED_SHOWN = 6  # findings listed on a quarantine entry


class QuarantinePages:
    def __init__(self, console: Console) -> None:
        self.c = console
        self.rt = console.rt

    @cached_property
    def service(self) -> Quarantine:
        # Releases are queued for delivery by the server's release job (Quarantine.dispatch_releases).
        return quarantine_for(self.rt)

    @cached_property
    def digests(self) -> Digests:
        return digests_for(self.rt, self.service)

    def _visible(self, principal: Principal, entry: Entry) -> bool:
        return principal.organisation is None or entry.organisation == principal.organisation

    def _entry(self, view: View, entry_id: str) -> Entry:
        try:
            entry = self.service.get(entry_id.upper(), actor_of(view.user))
        except NotFoundError:
            raise Refusal(404, "not_found") from None
        if not self._visible(view.user, entry):
            raise Refusal(404, "not_found")
        return entry

    # -- the list ------------------------------------------------------------------------------

    def listing(self, view: View, *, flash: str | None = None, error: bool = False) -> Response:
        actor = actor_of(view.user)
        status = view.arg("status") or view.value("status")
        reason = view.arg("reason") or view.value("reason")
        query = QuarantineQuery(
            organisation=view.user.organisation,
            status=Status(status) if status in {s.value for s in Status} else None,
            reason=Reason(reason) if reason in {r.value for r in Reason} else None,
            limit=PAGE,
        )
        page = self.service.list(query, actor)
        rows = [Row(e, [op for op in BULK if self.service.allowed(actor, op, e)]) for e in page.items]
        offered = [op for op in BULK if any(op in row.operations for row in rows)]
        values: dict[str, Any] = {
            "rows": rows,
            "offered": offered,
            "labels": _LABELS,
            "statuses": [s.value for s in Status],
            "reasons": [r.value for r in Reason],
            "status": status,
            "reason": reason,
            "flash": flash,
            "flash_error": error,
        }
        if view.htmx and view.request.method == "POST":
            return self.c.render(view, "_quarantine_table.html", **values)
        return self.c.render(view, "quarantine.html", **values)

    def bulk(self, view: View) -> Response:
        single = view.value("single")
        if single:
            verb, _, one = single.partition(":")
            ids = [one]
        else:
            verb, ids = view.value("action"), view.values("ids")
        try:
            operation = Operation(verb)
        except ValueError:
            raise Refusal(400, "not_found") from None
        if operation not in BULK:
            raise Refusal(400, "not_found")
        actor = actor_of(view.user)
        if operation in (Operation.RELEASE, Operation.APPROVE) and view.value("confirm_malware") != "yes":
            entries = self._entries_quietly(view, ids)
            malware = [e for e in entries if e.reason is Reason.MALWARE and self.service.allowed(actor, operation, e)]
            if malware:  # releasing malware is never one click: say what it carries and ask again
                return self.c.render(
                    view, "_quarantine_confirm.html" if view.htmx else "quarantine_confirm.html", operation=operation,
                    label=view.t(_LABELS[operation]), ids=list(dict.fromkeys(ids)),
                    malware=[(e, self._detected(e, staff=True)) for e in malware],
                )  # fmt: skip
        done, refused = 0, []
        for entry_id in dict.fromkeys(ids):
            try:
                entry = self._entry(view, entry_id)
                self._apply(operation, entry, actor)
                done += 1
            except (Refusal, NotFoundError):
                refused.append(f"{entry_id}: {view.t('not_found')}")
            except PermissionDeniedError:
                refused.append(f"{entry_id}: {view.t('forbidden')}")
            except QuarantineError as exc:
                refused.append(f"{entry_id}: {exc}")
        label = view.t(_LABELS[operation])
        flash = view.t("quarantine.done", action=label, count=done)
        if refused:
            flash += " " + view.t("quarantine.refused", action=label, count=len(refused), reasons="; ".join(refused))
        return self.listing(view, flash=flash, error=bool(refused))

    def _entries_quietly(self, view: View, ids: list[str]) -> list[Entry]:
        """The entries of `ids` the user may see (the others are refused when the action is carried out)."""
        out = []
        for entry_id in dict.fromkeys(ids):
            try:
                out.append(self._entry(view, entry_id))
            except (Refusal, NotFoundError):
                continue
        return out

    def _apply(self, operation: Operation, entry: Entry, actor: Actor) -> None:
        if operation is Operation.RELEASE:
            self.service.release(entry.id, actor, [entry.recipient])
        elif operation is Operation.REQUEST_RELEASE:
            self.service.request_release(entry.id, actor)
        elif operation is Operation.APPROVE:
            self.service.approve(entry.id, actor)
        elif operation is Operation.DENY:
            self.service.deny(entry.id, actor)
        else:
            self.service.delete(entry.id, actor)

    # -- one entry -----------------------------------------------------------------------------

    def detail(self, view: View, entry_id: str) -> Response:
        entry = self._entry(view, entry_id)
        actor = actor_of(view.user)
        preview = None
        if self.service.allowed(actor, Operation.PREVIEW, entry):
            preview = self.service.preview(entry.id, actor)
        return self.c.render(
            view,
            "quarantine_entry.html",
            row=Row(entry, [op for op in BULK if self.service.allowed(actor, op, entry)]),
            detected=self._detected(entry, staff=view.user.role is not AccountRole.USER),
            preview=preview,
            labels=_LABELS,
            can_download=self.service.allowed(actor, Operation.DOWNLOAD, entry),
        )

    def _detected(self, entry: Entry, *, staff: bool) -> list[tuple[str, str]]:
        """What the scan found that put the message here: malware names first, then the findings that
        scored, strongest first (their explanations for staff; a user sees the names)."""
        try:
            verdict = self.rt.history.get(entry.message_id).verdict
        except NotFoundError:
            return []
        found = [("MALWARE", str(name)) for name in verdict.get("malware") or []]
        scored = [
            f for stage in verdict.get("stages") or [] for f in stage.get("findings") or [] if f.get("score", 0) > 0
        ]
        scored.sort(key=lambda f: -float(f["score"]))
        found += [(str(f["code"]), str(f.get("detail") or "") if staff else "") for f in scored[:DETECTED_SHOWN]]
        return found

    def preview_document(self, view: View, entry_id: str) -> Response:
        """The message body alone, for the sandboxed iframe: sanitised HTML, else the text part."""
        entry = self._entry(view, entry_id)
        try:
            preview = self.service.preview(entry.id, actor_of(view.user))
        except PermissionDeniedError:
            raise Refusal(403, "forbidden") from None
        body = preview.html or f'<pre style="white-space: pre-wrap; font: 13px monospace">{escape(preview.text)}</pre>'
        document = f'<!doctype html><html><head><meta charset="utf-8"></head><body>{body}</body></html>'
        return HTMLResponse(document, headers=PREVIEW_HEADERS)

    def download(self, view: View, entry_id: str) -> Response:
        entry = self._entry(view, entry_id)
        try:
            raw = self.service.download(entry.id, actor_of(view.user))
        except PermissionDeniedError:
            raise Refusal(403, "forbidden") from None
        return Response(
            raw,
            media_type="message/rfc822",
            headers={"Content-Disposition": f'attachment; filename="{entry.id}.eml"'},
        )

    # -- digest links --------------------------------------------------------------------------

    def link(self, view: View, token: str) -> Response:
        """A digest link: GET says what it will do, the button (POST) does it, once.

        Redeeming only on POST keeps mail scanners that fetch every link in a message from using
        up (or acting on) a single-use link before its recipient clicks it.
        """
        try:
            claim = self.digests.signer.check(token, datetime.now(UTC))
            entry = self.service.get(claim.entry_id)
        except LinkError as exc:
            return self.c.render(view, "link.html", 410 if exc.reason == "expired" else 400, error=f"link.{exc.reason}")
        except NotFoundError:
            return self.c.render(view, "link.html", 404, error="link.invalid")
        if view.request.method != "POST":
            return self.c.render(view, "link.html", entry=entry, action=claim.action.value, token=token)
        try:
            result = self.digests.redeem(token)
        except LinkError as exc:
            return self.c.render(view, "link.html", 410, entry=entry, error=f"link.{exc.reason}")
        except (PermissionDeniedError, QuarantineError):
            return self.c.render(view, "link.html", 409, entry=entry, error="forbidden")
        return self.c.render(
            view, "link.html", entry=result.entry, action=claim.action.value, done=True, preview=result.preview
        )
