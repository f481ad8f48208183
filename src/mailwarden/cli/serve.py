"""`mailwarden serve`: the mail server, with the web application (API and console) beside it.

The web application is wired here, at the top: the API, the console mounted on it, and a listener
that the mail server starts after its SMTP listeners and stops before them.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from mailwarden.cli.common import ConfigOption, runtime
from mailwarden.errors import MailwardenError


def serve(
    config: ConfigOption = None,
    drain_timeout: Annotated[float, typer.Option(help="Seconds to finish open work on SIGTERM.")] = 30.0,
) -> None:
    """Run the SMTP listeners, the scanner behind the spool and the delivery queue until SIGTERM."""
    # the server's and the web application's modules (SMTP, delivery, FastAPI) load for this command only
    from mailwarden.cli.web import WebListener
    from mailwarden.console import web_app
    from mailwarden.service.server import Server

    with runtime(config) as rt:
        if not rt.config.smtp.listeners:
            raise MailwardenError("no [[smtp.listeners]] in the config: nothing to serve (see `mailwarden init`)")
        app = web_app(rt) if rt.config.api.enabled else None
        server = Server(rt, drain_timeout=drain_timeout, web=WebListener(app, rt.config.api) if app else None)
        if app is not None:
            app.state.clawback = server.clawback  # a job made over the API wakes the server's clawback loop
            app.state.readiness = server.readiness  # /readyz: spool open, listeners listening
            app.state.operations = server.operations  # the operations views retry and delete through its agent
        asyncio.run(server.run())
