"""The console's restricted senders: who may not send outbound mail, why and until when; admins release."""

from __future__ import annotations

from fastapi.responses import Response

from mailwarden.console.web import Console, Refusal, View
from mailwarden.errors import NotFoundError
from mailwarden.model.accounts import Role
from mailwarden.service.outbound import release_sender
from mailwarden.store.restricted import RestrictedSenders


class SenderPages:
    def __init__(self, console: Console) -> None:
        self.c = console
        self.store = RestrictedSenders(console.rt.db)

    def listing(self, view: View, *, flash: str | None = None) -> Response:
        rows = self.store.list(view.user.organisation)
        return self.c.render(view, "senders.html", rows=rows, flash=flash)

    def release(self, view: View) -> Response:
        if view.user.role is not Role.ADMIN:
            raise Refusal(403, "forbidden")
        organisation, sender = view.value("organisation"), view.value("sender")
        if view.user.organisation is not None and organisation != view.user.organisation:
            raise Refusal(404, "not_found")
        try:
            rt = self.c.rt
            release_sender(rt.db, rt.config.outbound.redis_url, organisation, sender, actor=view.user.name)
        except NotFoundError:
            raise Refusal(404, "not_found") from None
        return self.listing(view, flash=view.t("senders.released", sender=sender))
