"""The operations page: the spool backlog, the delivery queue (waiting, deferred with the last reply, being
delivered) and the deliveries given up lately; administrators retry a job now or delete it (audited).

The console asks the server's operations service (`app.state.operations` under `mailwarden serve`); a
console served alone reads the same directories and says that changes need the delivering process.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.responses import Response

from mailwarden.console.web import Console, Refusal, View
from mailwarden.errors import NotFoundError
from mailwarden.model.accounts import Role
from mailwarden.service.operations import (
    JobBusyError,
    Operations,
    OperationsUnavailableError,
    operations_for,
)


class OperationsPages:
    def __init__(self, console: Console) -> None:
        self.c = console
        self._fallback: Operations | None = None

    def _ops(self, view: View) -> Operations:
        found: Operations | None = getattr(view.request.app.state, "operations", None)
        if found is not None:
            return found
        if self._fallback is None:
            self._fallback = operations_for(self.c.rt)
        return self._fallback

    def page(self, view: View, *, flash: str | None = None, error: str | None = None, status: int = 200) -> Response:
        ops = self._ops(view)
        state = ops.view(view.user.organisation)
        now = datetime.now(UTC)
        oldest_minutes = None
        if state.spool_oldest_at is not None:
            oldest_minutes = max(0, int((now - state.spool_oldest_at).total_seconds() // 60))
        return self.c.render(
            view,
            "operations.html",
            status,
            ops=state,
            oldest_minutes=oldest_minutes,
            can_change=view.user.role is Role.ADMIN and state.live,
            flash=flash,
            error=error,
        )

    def retry(self, view: View, job_id: str) -> Response:
        return self._change(view, job_id, retry=True)

    def delete(self, view: View, job_id: str) -> Response:
        return self._change(view, job_id, retry=False)

    def _change(self, view: View, job_id: str, *, retry: bool) -> Response:
        if view.user.role is not Role.ADMIN:
            raise Refusal(403, "forbidden")
        ops = self._ops(view)
        change = ops.retry if retry else ops.delete
        try:
            change(job_id, actor=view.user.name, organisation=view.user.organisation)
        except NotFoundError:
            return self.page(view, error=view.t("ops.gone", job=job_id), status=404)
        except JobBusyError:
            return self.page(view, error=view.t("ops.busy", job=job_id), status=409)
        except OperationsUnavailableError:
            return self.page(view, error=view.t("ops.not_live"), status=503)
        flash = view.t("ops.retried", job=job_id) if retry else view.t("ops.deleted", job=job_id)
        return self.page(view, flash=flash)
