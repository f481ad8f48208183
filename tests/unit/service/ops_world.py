"""A delivering process in miniature for the operations tests: a runtime, a delivery queue, a delivery
agent on its own event loop in a thread (as under `mailwarden serve`, where the console's handlers run
in worker threads), a scripted relay, and the operations service over them."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from mailwarden.deliver import DeliveryAgent, DeliveryConfig, DeliveryJob, DeliveryQueue, Outcome, Route
from mailwarden.deliver.relay import DeliveryResult, RecipientResult
from mailwarden.model.accounts import Role
from mailwarden.model.policy import parse_organisation_document
from mailwarden.service.accounts import Accounts
from mailwarden.service.config import load_config
from mailwarden.service.operations import Operations
from mailwarden.service.runtime import Runtime

PASSWORD = "correct horse battery staple"
MESSAGE = b"From: a@example.org\r\nTo: b@corp.example\r\nSubject: hi\r\n\r\nhello\r\n"


@dataclass
class ScriptedRelay:
    """Answers 451 until `accept` is set; `hold` makes an attempt wait (a job in flight)."""

    sent: list[str] = field(default_factory=list)
    accept: bool = False
    hold: threading.Event | None = None
    started: threading.Event = field(default_factory=threading.Event)

    async def send(self, job: DeliveryJob) -> DeliveryResult:
        self.sent.append(job.id)
        self.started.set()
        if self.hold is not None:  # a threading.Event: the test's thread lets the attempt end
            await asyncio.to_thread(self.hold.wait, 10)
        if self.accept:
            results = [RecipientResult(r, Outcome.DELIVERED, "2.0.0", "ok", 250, "mx.test") for r in job.recipients]
        else:
            results = [
                RecipientResult(r, Outcome.TEMPORARY, "4.2.0", "mailbox busy", 451, "mx.test") for r in job.recipients
            ]
        return DeliveryResult(tuple(results))


@dataclass
class Live:
    rt: Runtime
    accounts: Accounts
    queue: DeliveryQueue
    agent: DeliveryAgent
    relay: ScriptedRelay
    loop: asyncio.AbstractEventLoop
    ops: Operations

    def job(self, *, due_in: timedelta = timedelta(hours=1), attempts: int = 1, message_id: str = "") -> DeliveryJob:
        """A deferred job in the queue: tried `attempts` times, next attempt `due_in` from now."""
        now = datetime.now(UTC)
        job = DeliveryJob.create(
            message_id=message_id or "01TESTMESSAGE0000000000000",
            mail_from="a@example.org",
            recipients=["b@corp.example"],
            route=Route(host="mx.corp.example", port=25),
            message=MESSAGE,
            lifetime=timedelta(days=5),
            now=now,
        )
        job = replace(job, attempts=attempts, last_reply="451 4.2.0 mailbox busy", next_attempt_at=now + due_in)
        self.queue.enqueue(job)
        return job

    def call(self, coro: object) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)  # type: ignore[arg-type]


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    (tmp_path / "mw.toml").write_text('organisation = "corp"\n[paths]\ndata_dir = "var"\n')
    rt = Runtime(load_config(tmp_path / "mw.toml", environ={}))
    rt.db.migrate()
    rt.policies.import_document(parse_organisation_document({"name": "corp", "domains": [{"name": "corp.example"}]}))
    accounts = Accounts(rt.db, hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    accounts.add_user("admin", role=Role.ADMIN, password=PASSWORD, actor="test")
    accounts.add_user("analyst", role=Role.ANALYST, password=PASSWORD, actor="test")
    queue_dir = rt.config.paths.queue_dir
    queue = DeliveryQueue(queue_dir)
    relay = ScriptedRelay()
    config = DeliveryConfig(poll_interval=0.05)
    agent = DeliveryAgent(queue, relay, config, lambda *_: None)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(agent.start(), loop).result(10)
    ops = Operations(
        rt.db,
        spool_dir=rt.config.paths.spool_dir,
        queue_dir=queue_dir,
        queue_lifetime=timedelta(days=5),
        agent=agent,
        loop=loop,
    )
    world = Live(rt, accounts, queue, agent, relay, loop, ops)
    yield world
    if relay.hold is not None:
        relay.hold.set()
    asyncio.run_coroutine_threadsafe(agent.stop(drain_timeout=2), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()
    rt.close()
