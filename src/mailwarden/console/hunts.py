"""The console's retro-hunt pages: the hunts with their progress, a form to start one, what each found.

A hunt started here is queued, and `mailwarden serve` runs it in the background; the page of a hunt
that is still running reloads its progress every two seconds. Administrators and analysts hunt; a
principal bound to an organisation hunts in its own messages only.
"""

from __future__ import annotations

from datetime import UTC, datetime, time

from fastapi.responses import RedirectResponse, Response

from mailwarden.console.web import Console, Refusal, View
from mailwarden.errors import NotFoundError
from mailwarden.service.hunt import new_hunt
from mailwarden.service.indicators import IndicatorError, Indicators
from mailwarden.store.hunts import FINISHED, Hunt, HuntKind, HuntStore

LISTED = 50


class HuntPages:
    """Handlers bound to one Console."""

    def __init__(self, console: Console) -> None:
        self.c = console
        self.store = HuntStore(console.rt.db)

    def listing(self, view: View, *, error: str | None = None, status: int = 200) -> Response:
        hunts = self.store.newest(organisation=view.user.organisation, limit=LISTED)
        return self.c.render(view, "hunts.html", status, hunts=hunts, error=error, form=dict(view.form))

    def start(self, view: View) -> Response:
        kind = HuntKind.SEARCH if view.value("kind") == HuntKind.SEARCH.value else HuntKind.RESCAN
        try:
            since, until = _day(view.value("since"), time.min), _day(view.value("until"), time.max)
            indicators = _indicators(view) if kind is HuntKind.SEARCH else None
        except (IndicatorError, ValueError) as exc:
            return self.listing(view, error=view.failure(exc), status=422)
        hunt = new_hunt(
            self.c.rt.db,
            kind,
            created_by=view.user.name,
            organisation=view.user.organisation,
            since=since,
            until=until,
            indicators=indicators,
        )
        return RedirectResponse(f"/hunts/{hunt.id}", status_code=303)

    def detail(self, view: View, hunt_id: str) -> Response:
        hunt = self._visible(view, hunt_id)
        results = self.store.results(hunt.id)
        running = hunt.state not in FINISHED
        return self.c.render(view, "hunt.html", hunt=hunt, results=results, running=running)

    def cancel(self, view: View, hunt_id: str) -> Response:
        hunt = self._visible(view, hunt_id)
        self.store.cancel(hunt.id)
        return RedirectResponse(f"/hunts/{hunt.id}", status_code=303)

    def _visible(self, view: View, hunt_id: str) -> Hunt:
        try:
            hunt = self.store.get(hunt_id.upper())
        except NotFoundError:
            raise Refusal(404, "not_found") from None
        if view.user.organisation is not None and hunt.organisation != view.user.organisation:
            raise Refusal(404, "not_found")
        return hunt


def _indicators(view: View) -> Indicators:
    def lines(name: str) -> tuple[str, ...]:
        return tuple(line.strip() for line in view.value(name).splitlines() if line.strip())

    return Indicators(
        senders=lines("senders"),
        domains=lines("domains"),
        urls=lines("urls"),
        sha256=lines("sha256"),
        subject=view.value("subject").strip() or None,
    )


def _day(value: str, at: time) -> datetime | None:
    """A form's date as the start or end of that UTC day; None when empty."""
    return datetime.combine(datetime.strptime(value, "%Y-%m-%d").date(), at, UTC) if value.strip() else None
