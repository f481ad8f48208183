"""Fixtures of the SMTP ingress tests: a spool, and servers on 127.0.0.1 that are stopped afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mailwarden.ingest.config import SmtpConfig
from mailwarden.ingest.smtp import SmtpServer
from mailwarden.ingest.spool import Spool
from tests.unit.ingest.smtp.helpers import JOURNAL, StartServer, org_domains_only


@pytest.fixture
def spool(tmp_path: Path) -> Any:
    with Spool(tmp_path / "spool") as s:
        yield s


@pytest.fixture
async def start_server(spool: Spool) -> AsyncIterator[StartServer]:
    servers: list[SmtpServer] = []

    async def start(*listeners: dict[str, Any], on_spooled: Any = None, **smtp: Any) -> SmtpServer:
        config = SmtpConfig.model_validate({"hostname": "mx.test", "listeners": list(listeners or [JOURNAL]), **smtp})
        server = SmtpServer(config, spool, org_domains_only, on_spooled=on_spooled)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop(drain_timeout=1)
