"""Shared by the replay tests (service, API, CLI): a runtime whose pipeline is the rules stage alone, and
journal copies recorded (and kept) through the real processor and writer."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from mailwarden.ingest.spool import Spool
from mailwarden.model import Envelope
from mailwarden.service.config import load_config
from mailwarden.service.directory import OrgDirectory
from mailwarden.service.processor import Processor
from mailwarden.service.runtime import Runtime
from tests.factories import build_message
from tests.unit.deliver.helpers import eventually

_serial = itertools.count(1)
QUARANTINE_INVOICES = {
    "name": "Hold invoices",
    "conditions": {"subject_contains": ["invoice"]},
    "actions": {"quarantine": True},
}
REJECT_LOTTERY = {"name": "Refuse lottery", "conditions": {"subject_contains": ["lottery"]}, "actions": {"reject": {}}}


def document(*rules: dict[str, Any], domains: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "name": "acme",
        "monitor_only": True,
        "domains": domains or [{"name": "example.com", "mode": "journal"}, {"name": "example.net", "mode": "journal"}],
        "policy": {"rules": list(rules)},
    }


def runtime(tmp_path: Path) -> Runtime:
    config = tmp_path / "mailwarden.toml"
    config.write_text(
        'organisation = "acme"\n[paths]\ndata_dir = "var"\n'
        "[processing]\nscan_processes = 0\nbatch_delay_ms = 10\n"
        "[retention]\nkeep_days = 7\n"
        '[pipeline]\ninbound = ["rules"]\noutbound = ["rules"]\n'
    )
    rt = Runtime(load_config(config, environ={}))
    rt.db.migrate()
    return rt


def mail(subject: str, to: str = "alice@example.com") -> bytes:
    raw = build_message(sender="partner@example.org", to=to, subject=subject)
    return raw.replace(b"<test-1@example.org>", f"<{next(_serial)}@example.org>".encode())


async def record(rt: Runtime, tmp_path: Path, messages: list[tuple[bytes, str]]) -> list[str]:
    """Journal copies (monitor mode) through the real processor and writer; their history ids."""
    ids = []
    with Spool(tmp_path / "spool", fsync=False) as spool:
        processor = Processor(rt, spool, OrgDirectory(rt.policies, refresh_seconds=0), roles={"journal": "journal"})
        await processor.start()
        try:
            for raw, rcpt in messages:
                envelope = Envelope(mail_from="partner@example.org", rcpt_to=(rcpt,))
                ids.append((await spool.put_async("journal", envelope, raw)).id)
            await eventually(lambda: spool.backlog == 0, within=20)
        finally:
            await processor.stop(drain_timeout=5)
    return ids
