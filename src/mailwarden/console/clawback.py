"""The console's clawback: the card on a message's page (recipients, action, reason; every recipient's
status, refreshed while the job runs), campaigns from a trace search (count and recipients before the
confirmation), the quarantine view's monitor-mode entries, and the list of jobs.

Role rules are the service's (`service/clawback.py`): staff claw back and restore, admins alone delete.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import RedirectResponse, Response

from mailwarden.console.pages import day_end, day_start
from mailwarden.console.web import Console, Refusal, View
from mailwarden.errors import MailwardenError, NotFoundError
from mailwarden.model import Category
from mailwarden.model.accounts import Role
from mailwarden.model.clawback import ClawbackAction, JobView
from mailwarden.model.quarantine import PermissionDeniedError
from mailwarden.service.clawback import Clawback
from mailwarden.service.hunt import found_ids
from mailwarden.store import HistoryQuery
from mailwarden.store.hunts import HuntStore

CAMPAIGN_FILTERS = ("sender", "subject", "message_id", "category", "start", "end")


class ClawbackPages:
    def __init__(self, console: Console) -> None:
        self.c = console
        self.service = Clawback(console.rt)

    def actions(self, view: View) -> list[ClawbackAction]:
        hard = view.user.role is Role.ADMIN
        return [a for a in ClawbackAction if hard or not a.hard]

    def _action(self, view: View) -> ClawbackAction:
        try:
            return ClawbackAction(view.value("action", ClawbackAction.RECOVERABLE.value))
        except ValueError:
            raise Refusal(400, "not_found") from None

    # ---- one message ---------------------------------------------------------------------------
    def message_jobs(self, view: View, message_id: str, *, flash: str | None = None, error: bool = False) -> Response:
        """The jobs of one message with its recipients' status (the card's lower half, polled while running)."""
        message_id = message_id.upper()
        self._visible(view, message_id)
        jobs = self.service.jobs.jobs(message_id=message_id, limit=20)
        return self.c.render(
            view, "_clawback_jobs.html", jobs=jobs, message_id=message_id, flash=flash, flash_error=error,
            running=any(j.running for j in jobs),
        )  # fmt: skip

    def claw_message(self, view: View, message_id: str) -> Response:
        message_id = message_id.upper()
        self._visible(view, message_id)
        recipients = view.values("recipients") or None
        try:
            job = self.service.message(
                message_id, view.user, action=self._action(view), recipients=recipients, reason=view.value("reason")
            )
        except PermissionDeniedError:
            raise Refusal(403, "forbidden") from None
        except MailwardenError as exc:
            return self.message_jobs(view, message_id, flash=view.failure(exc), error=True)
        if not view.htmx:
            return RedirectResponse(f"/trace/{message_id}", status_code=303)
        return self.message_jobs(view, message_id, flash=view.t("clawback.started", count=job.total))

    def _visible(self, view: View, message_id: str) -> None:
        try:
            detail = self.c.rt.history.get(message_id)
        except NotFoundError:
            raise Refusal(404, "not_found") from None
        if view.user.organisation is not None and detail.summary.organisation != view.user.organisation:
            raise Refusal(404, "not_found")

    # ---- jobs ----------------------------------------------------------------------------------
    def jobs(self, view: View) -> Response:
        jobs = self.service.jobs.jobs(organisation=view.user.organisation, limit=100)
        return self.c.render(view, "clawback.html", jobs=jobs)

    def job(self, view: View, job_id: str) -> Response:
        job = self._job(view, job_id)
        template = "_clawback_job.html" if view.htmx else "clawback_job.html"
        return self.c.render(view, template, job=job)

    def _job(self, view: View, job_id: str) -> JobView:
        try:
            job = self.service.jobs.job(job_id.upper())
        except NotFoundError:
            raise Refusal(404, "not_found") from None
        if view.user.organisation is not None and job.organisation != view.user.organisation:
            raise Refusal(404, "not_found")
        return job

    # ---- campaigns -----------------------------------------------------------------------------
    def campaign(self, view: View) -> Response:
        """GET: the preview of a trace search's campaign; POST: start it (the count must still hold)."""
        source = {k: (view.value(k) if view.request.method == "POST" else view.arg(k)) for k in CAMPAIGN_FILTERS}
        try:
            query = _query(source)
            if view.request.method == "POST":
                expect = int(view.value("expect") or -1)
                job = self.service.campaign(
                    query, view.user, action=self._action(view), reason=view.value("reason"), expect=expect
                )
                return RedirectResponse(f"/clawback/{job.id}", status_code=303)
            preview = self.service.preview(query, view.user)
        except PermissionDeniedError:
            raise Refusal(403, "forbidden") from None
        except (MailwardenError, ValueError) as exc:
            return self.c.render(view, "clawback_campaign.html", filters=source, preview=None, error=view.failure(exc))
        return self.c.render(
            view, "clawback_campaign.html", filters=source, preview=preview, error=None, actions=self.actions(view)
        )

    # ---- a retro-hunt's results ----------------------------------------------------------------
    def hunt(self, view: View, hunt_id: str) -> Response:
        try:
            hunt = HuntStore(self.c.rt.db).get(hunt_id.upper())
        except NotFoundError:
            raise Refusal(404, "not_found") from None
        if view.user.organisation is not None and hunt.organisation != view.user.organisation:
            raise Refusal(404, "not_found")
        try:
            job = self.service.messages(
                found_ids(self.c.rt.db, hunt.id), view.user, action=ClawbackAction.RECOVERABLE,
                reason=f"hunt {hunt.id}", query={"hunt": hunt.id},
            )  # fmt: skip
        except PermissionDeniedError:
            raise Refusal(403, "forbidden") from None
        except MailwardenError:
            raise Refusal(400, "not_found") from None
        return RedirectResponse(f"/clawback/{job.id}", status_code=303)

    # ---- the quarantine view -------------------------------------------------------------------
    def quarantine(self, view: View) -> Response:
        ids = view.values("ids")
        if not ids:
            raise Refusal(400, "not_found")
        try:
            job = self.service.quarantine(ids, view.user, action=ClawbackAction.RECOVERABLE, reason="quarantine view")
        except PermissionDeniedError:
            raise Refusal(403, "forbidden") from None
        except NotFoundError:
            raise Refusal(404, "not_found") from None
        if view.htmx:
            return Response(status_code=200, headers={"HX-Redirect": f"/clawback/{job.id}"})
        return RedirectResponse(f"/clawback/{job.id}", status_code=303)


def _query(source: dict[str, str]) -> HistoryQuery:
    values: dict[str, Any] = {
        "sender": source["sender"] or None,
        "subject": source["subject"] or None,
        "internet_message_id": source["message_id"] or None,
        "category": Category(source["category"]) if source["category"] else None,
        "start": day_start(source["start"]) if source["start"] else None,
        "end": day_end(source["end"]) if source["end"] else None,
    }
    if not any(values[k] for k in ("sender", "subject", "internet_message_id", "category")):
        raise ValueError("give a sender, subject, Message-ID or verdict to search by")
    return HistoryQuery(**values)
