"""The time zone page: the zone the console shows times in (a cookie, like the language; docs/console.md)."""

from __future__ import annotations

from fastapi.responses import RedirectResponse, Response

from mailwarden.console.timezones import zone_names
from mailwarden.console.web import Console, View, local_redirect

BROWSER = "browser"  # the choice "follow my browser": the cookie goes, console.js sets it again


class PreferencePages:
    def __init__(self, console: Console) -> None:
        self.c = console

    def time_zone(self, view: View) -> Response:
        return self.c.render(view, "timezone.html", zones=zone_names(), back=local_redirect(view.arg("next"), "/"))

    def set_time_zone(self, view: View) -> Response:
        chosen = view.value("timezone")
        response = RedirectResponse(local_redirect(view.value("next"), "/"), status_code=303)
        if chosen == BROWSER:
            response.delete_cookie("mw_tz", path="/", secure=self.c.secure_cookies, samesite="strict")
        elif chosen in zone_names():
            self.c.remember_time_zone(response, chosen)
        return response
