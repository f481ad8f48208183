"""Administrators hear of release requests: one mail per round to each admin account with an address
(of the entry's organisation, or of all), listing the requests with a link to decide; never twice."""

from __future__ import annotations

import email
from email.policy import default
from pathlib import Path

from mailwarden.model.accounts import Role
from mailwarden.quarantine import Quarantine
from mailwarden.service.accounts import Accounts
from mailwarden.service.config import Config
from mailwarden.service.quarantine_jobs import QuarantineJobs
from mailwarden.service.runtime import Runtime
from mailwarden.store import History, LocalBlobStore
from tests.unit.quarantine.world import Dispatched, World


def test_admins_are_told_of_release_requests_once(tmp_path: Path) -> None:
    config = Config.model_validate(
        {"paths": {"data_dir": str(tmp_path)}, "console": {"public_url": "https://mw.corp.example"}}
    )
    rt = Runtime(config)
    rt.db.migrate()
    try:
        dispatched = Dispatched()
        history, blobs = History(rt.db), LocalBlobStore(tmp_path / "blobs")
        quarantine = Quarantine(rt.db, blobs, history, dispatcher=dispatched)
        world = World(rt.db, history, blobs, quarantine, dispatched, {})
        accounts = Accounts(rt.db)
        accounts.add_user("root", role=Role.ADMIN, email="root@corp.example", actor="test")
        accounts.add_user("elsewhere", role=Role.ADMIN, email="admin@other.example", organisation="other", actor="test")
        accounts.add_user("ana", role=Role.ANALYST, email="ana@corp.example", actor="test")
        jobs = QuarantineJobs(rt, dispatched)
        assert jobs.notify_requests() == 0  # the first round only marks where it starts
        (entry,) = world.quarantined(recipients=("bob@corp.example",), subject="Order confirmation")
        quarantine.request_release(entry.id, "bob@corp.example")
        assert jobs.notify_requests() == 1
        [(message_id, mail_from, rcpts, raw)] = dispatched.calls
        assert message_id.startswith("alert-") and mail_from == "" and rcpts == ("root@corp.example",)
        mail = email.message_from_bytes(raw, policy=default)
        assert mail["Subject"] == "Release requested: 1 quarantined message(s)"
        body = mail.get_content()
        assert "bob@corp.example asks for: Order confirmation" in body
        assert f"https://mw.corp.example/quarantine/{entry.id}" in body
        assert jobs.notify_requests() == 0 and len(dispatched.calls) == 1  # told once, across rounds
        assert QuarantineJobs(rt, dispatched).notify_requests() == 0  # and across a restart
    finally:
        rt.close()
