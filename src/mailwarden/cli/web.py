"""The web application's listener inside `mailwarden serve`: uvicorn on the mail server's event loop."""

from __future__ import annotations

import asyncio
import socket

import structlog
import uvicorn
from starlette.types import ASGIApp

from mailwarden.service.config import ApiConfig

log = structlog.get_logger(__name__)


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers: the mail server decides when the process stops."""

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        await self._serve(sockets)


class WebListener:
    """The web application on `[api]` host and port, run by uvicorn on the mail server's event loop.

    The mail server owns the process's signals (SIGTERM drains mail first), so uvicorn's own signal
    handling is switched off and the server stops the listener itself. A port that cannot be bound
    leaves the web application disabled with a logged reason; mail keeps flowing.
    """

    def __init__(self, app: ASGIApp, config: ApiConfig) -> None:
        self.app = app
        self.config = config
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self.port: int | None = None

    async def start(self) -> None:
        cfg = self.config
        try:
            sock = socket.create_server((cfg.host, cfg.port), reuse_port=False)
        except OSError as exc:
            log.error("api_disabled", reason=f"cannot listen on {cfg.host}:{cfg.port}: {exc.strerror}")
            return
        sock.setblocking(False)  # listening already: connections wait in the backlog until uvicorn takes over
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off", proxy_headers=False)
        self._server = _EmbeddedServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="api")
        log.info("api_ready", host=cfg.host, port=self.port)

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(self._task, timeout=10)
        except TimeoutError:
            self._task.cancel()
