from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest

from mailwarden.deliver import (
    DeliveryAgent,
    DeliveryConfig,
    DeliveryEventType,
    DeliveryJob,
    DeliveryQueue,
    DeliveryResult,
    JobKind,
    Relay,
    Route,
)
from mailwarden.deliver.queue import FinishedEvent
from tests.unit.deliver.conftest import SinkFactory
from tests.unit.deliver.helpers import MESSAGE, Sink, eventually, make_job


@dataclass(frozen=True)
class Event:
    message_id: str
    type: DeliveryEventType
    recipient: str
    detail: str
    reply: str


@dataclass
class Events:
    items: list[Event] = field(default_factory=list)

    async def __call__(self, message_id: str, kind: DeliveryEventType, recipient: str, detail: str, reply: str) -> None:
        self.items.append(Event(message_id, kind, recipient, detail, reply))

    def of(self, kind: DeliveryEventType) -> list[Event]:
        return [e for e in self.items if e.type is kind]


@dataclass
class Harness:
    queue: DeliveryQueue
    events: Events
    agent: DeliveryAgent
    sender_sink: Sink


StartAgent = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def start_agent(tmp_path: Path, make_sink: SinkFactory, config: DeliveryConfig) -> AsyncIterator[StartAgent]:
    """Starts an agent whose DSNs go to a sink of their own (the original sender's mail server)."""
    agents: list[DeliveryAgent] = []

    async def factory(**overrides: object) -> Harness:
        sender_sink = await make_sink()
        queue = DeliveryQueue(tmp_path / "queue")
        events = Events()
        cfg = config.model_copy(update=overrides)
        agent = DeliveryAgent(
            queue, Relay(cfg), cfg, events, dsn_route=lambda _sender: Route("127.0.0.1", sender_sink.port)
        )
        await agent.start()
        agents.append(agent)
        return Harness(queue, events, agent, sender_sink)

    yield factory
    for agent in agents:
        await agent.stop(drain_timeout=1)


def _dsn_parts(raw: bytes) -> list[email.message.Message]:
    """The three parts of a DSN; the delivery-status part's payload is its list of field groups."""
    top = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert top.get_content_type() == "multipart/report"
    parts = top.get_payload()
    assert isinstance(parts, list)
    return parts


async def test_job_is_delivered_and_traced(start_agent: StartAgent, make_sink: SinkFactory) -> None:
    sink = await make_sink()
    h = await start_agent()
    job = make_job(sink.port, recipients=("bob@example.com", "carol@example.com"))
    await h.agent.submit(job)
    await eventually(lambda: h.queue.pending_count() == 0)
    assert sink.messages[0].content == MESSAGE
    assert [(e.type, e.recipient, e.reply) for e in h.events.items] == [
        (DeliveryEventType.DELIVER, "bob@example.com", "250 2.0.0 Ok: queued as Q1"),
        (DeliveryEventType.DELIVER, "carol@example.com", "250 2.0.0 Ok: queued as Q1"),
    ]
    assert h.events.items[0].message_id == job.message_id
    assert h.sender_sink.messages == []


async def test_try_later_is_retried_until_accepted(start_agent: StartAgent, make_sink: SinkFactory) -> None:
    sink = await make_sink(data_replies=["451 4.7.1 try later"] * 3)
    h = await start_agent()
    await h.agent.submit(make_job(sink.port))
    await eventually(lambda: h.queue.pending_count() == 0)
    assert len(sink.messages) == 1
    defers = h.events.of(DeliveryEventType.DEFER)
    assert [e.reply for e in defers] == ["451 4.7.1 try later"] * 3
    assert all("next attempt at" in e.detail for e in defers)
    assert [e.type for e in h.events.items][-1] is DeliveryEventType.DELIVER
    assert h.sender_sink.messages == []


async def test_backoff_grows_by_the_factor_up_to_the_maximum(config: DeliveryConfig, tmp_path: Path) -> None:
    cfg = config.model_copy(
        update={"first_retry": timedelta(minutes=1), "retry_factor": 2.0, "max_retry": timedelta(hours=1)}
    )
    agent = DeliveryAgent(DeliveryQueue(tmp_path), Relay(cfg), cfg, Events())
    waits = [agent._backoff(n) for n in range(9)]
    assert waits[:4] == [timedelta(minutes=m) for m in (1, 2, 4, 8)]
    assert waits[-1] == timedelta(hours=1)
    assert agent._backoff(10_000) == timedelta(hours=1)


async def test_refused_recipient_bounces_to_the_sender(start_agent: StartAgent, make_sink: SinkFactory) -> None:
    sink = await make_sink(rcpt_replies={"gone@example.com": "550 5.1.1 <gone@example.com>: User unknown"})
    h = await start_agent()
    job = make_job(sink.port, recipients=("bob@example.com", "gone@example.com"))
    await h.agent.submit(job)
    await eventually(lambda: len(h.sender_sink.messages) == 1 and h.queue.pending_count() == 0)

    assert sink.messages[0].rcpt_tos == ["bob@example.com"]
    (fail,) = h.events.of(DeliveryEventType.FAIL)
    assert (fail.recipient, fail.reply) == ("gone@example.com", "550 5.1.1 <gone@example.com>: User unknown")
    (dsn_event,) = h.events.of(DeliveryEventType.DSN)
    assert dsn_event.recipient == "alice@example.org"
    assert "gone@example.com" in dsn_event.detail

    dsn = h.sender_sink.messages[0]
    assert dsn.mail_from == "<>"
    assert dsn.rcpt_tos == ["alice@example.org"]
    _, status, headers = _dsn_parts(dsn.content)
    groups: list[email.message.Message] = status.get_payload()
    assert len(groups) == 2, "only the refused recipient is reported"
    assert groups[1]["Final-Recipient"] == "rfc822; gone@example.com"
    assert groups[1]["Action"] == "failed"
    assert groups[1]["Status"] == "5.1.1"
    assert groups[1]["Diagnostic-Code"] == "smtp; 550 5.1.1 <gone@example.com>: User unknown"
    assert groups[1]["Remote-MTA"] == "dns; 127.0.0.1"
    assert b"Subject: quarterly figures" in headers.get_payload(decode=True)
    # the DSN's own delivery is traced on the original message
    assert any(e.type is DeliveryEventType.DELIVER and e.detail.startswith("DSN:") for e in h.events.items)


async def test_mixed_temporary_and_accepted_recipients(start_agent: StartAgent, make_sink: SinkFactory) -> None:
    sink = await make_sink(rcpt_replies={"full@example.com": "452 4.2.2 mailbox full"})
    h = await start_agent()
    await h.agent.submit(make_job(sink.port, recipients=("bob@example.com", "full@example.com")))
    await eventually(lambda: len(h.events.of(DeliveryEventType.DEFER)) >= 2)
    sink.rcpt_replies.clear()
    await eventually(lambda: h.queue.pending_count() == 0)
    assert [m.rcpt_tos for m in sink.messages] == [["bob@example.com"], ["full@example.com"]]
    delivered = [e.recipient for e in h.events.of(DeliveryEventType.DELIVER)]
    assert delivered == ["bob@example.com", "full@example.com"]


async def test_expiry_bounces_with_the_last_reply(start_agent: StartAgent, make_sink: SinkFactory) -> None:
    sink = await make_sink(data_replies=["451 4.7.1 try later"] * 1000)
    h = await start_agent()
    await h.agent.submit(make_job(sink.port, lifetime=timedelta(milliseconds=300)))
    await eventually(lambda: len(h.sender_sink.messages) == 1 and h.queue.pending_count() == 0)
    (fail,) = h.events.of(DeliveryEventType.FAIL)
    attempts = len(h.events.of(DeliveryEventType.DEFER)) + 1
    assert attempts >= 2
    assert fail.detail == f"expired after {attempts} attempts: 451 4.7.1 try later"
    assert fail.reply == "451 4.7.1 try later"
    _, status, _ = _dsn_parts(h.sender_sink.messages[0].content)
    groups: list[email.message.Message] = status.get_payload()
    assert groups[1]["Status"] == "4.4.7"
    assert groups[1]["Diagnostic-Code"] == "smtp; 451 4.7.1 try later"
    assert sink.messages == []


async def test_null_sender_failure_makes_no_dsn(start_agent: StartAgent, make_sink: SinkFactory) -> None:
    sink = await make_sink(rcpt_replies={"bob@example.com": "550 5.1.1 User unknown"})
    h = await start_agent()
    await h.agent.submit(make_job(sink.port, mail_from=""))
    await eventually(lambda: h.queue.pending_count() == 0)
    await asyncio.sleep(0.2)  # a DSN, were one made, would be sent by now
    assert len(h.events.of(DeliveryEventType.FAIL)) == 1
    assert h.events.of(DeliveryEventType.DSN) == []
    assert h.sender_sink.messages == []
    assert h.sender_sink.mail_commands == 0


async def test_dsn_that_fails_is_dropped(start_agent: StartAgent, make_sink: SinkFactory) -> None:
    sink = await make_sink(rcpt_replies={"gone@example.com": "550 5.1.1 User unknown"})
    h = await start_agent()
    h.sender_sink.rcpt_replies["alice@example.org"] = "550 5.1.1 sender unknown here"
    await h.agent.submit(make_job(sink.port, recipients=("gone@example.com",)))
    await eventually(lambda: len(h.events.of(DeliveryEventType.FAIL)) == 2 and h.queue.pending_count() == 0)
    dsn_fail = h.events.of(DeliveryEventType.FAIL)[1]
    assert dsn_fail.recipient == "alice@example.org"
    assert dsn_fail.detail.startswith("DSN:")
    await asyncio.sleep(0.2)
    assert h.queue.pending_count() == 0, "no DSN about a DSN"
    assert len(h.events.of(DeliveryEventType.DSN)) == 1


async def test_require_tls_to_a_hop_without_starttls_is_deferred(
    start_agent: StartAgent, make_sink: SinkFactory
) -> None:
    sink = await make_sink()
    h = await start_agent()
    await h.agent.submit(make_job(sink.port, require_tls=True))
    await eventually(lambda: len(h.events.of(DeliveryEventType.DEFER)) >= 2)
    defer = h.events.of(DeliveryEventType.DEFER)[0]
    assert "TLS is required" in defer.detail
    assert defer.reply == ""
    assert sink.mail_commands == 0
    assert h.queue.pending_count() == 1


async def test_stop_lets_the_attempt_in_flight_finish(start_agent: StartAgent, make_sink: SinkFactory) -> None:
    sink = await make_sink(data_delay=0.5)
    h = await start_agent()
    await h.agent.submit(make_job(sink.port))
    await eventually(lambda: h.agent.in_flight == 1)
    await h.agent.stop(drain_timeout=5)
    assert len(sink.messages) == 1
    assert h.queue.pending_count() == 0
    assert not h.agent.running


async def test_stop_after_drain_timeout_leaves_the_job_queued_for_the_next_start(
    start_agent: StartAgent,
    make_sink: SinkFactory,
) -> None:
    sink = await make_sink(data_delay=1.0)
    h = await start_agent()
    job = make_job(sink.port)
    await h.agent.submit(job)
    await eventually(lambda: h.agent.in_flight == 1)
    await h.agent.stop(drain_timeout=0.1)
    assert h.queue.pending_count() == 1

    sink.data_delay = 0
    again = await start_agent()  # a new process: new queue object on the same directory
    assert again.queue.pending_count() == 1
    await eventually(lambda: again.queue.pending_count() == 0)
    assert again.events.of(DeliveryEventType.DELIVER)[0].message_id == job.message_id


async def test_concurrency_is_bounded(start_agent: StartAgent, make_sink: SinkFactory) -> None:
    sink = await make_sink(data_delay=0.2)
    h = await start_agent(concurrency=2)
    for _ in range(5):
        await h.agent.submit(make_job(sink.port))
    peak = 0
    while h.queue.pending_count():
        peak = max(peak, h.agent.in_flight)
        await asyncio.sleep(0.01)
    assert peak == 2
    assert len(sink.messages) == 5


async def test_a_slow_high_risk_pool_waits_alone(start_agent: StartAgent, make_sink: SinkFactory) -> None:
    """The high-risk pool's relay is slow; its jobs take at most a quarter of the slots, and the
    organisation's normal mail goes past them."""
    slow, fast = await make_sink(data_delay=0.5), await make_sink()
    h = await start_agent(concurrency=4, pools={"default": "", "high_risk": ""})
    for _ in range(4):
        await h.agent.submit(make_job(slow.port, pool="high_risk"))
    await eventually(lambda: h.agent.in_flight == 1)
    await h.agent.submit(make_job(fast.port))
    await eventually(lambda: len(fast.messages) == 1)
    assert len(slow.messages) <= 1  # the normal message did not wait for the high-risk queue
    # the normal job ends (its relay has the message a moment before the agent is done with it); from
    # then on only high-risk jobs are in flight, never more than one at a time
    await eventually(lambda: h.agent.in_flight == 1)
    peak = 0
    while h.queue.pending_count():
        peak = max(peak, h.agent.in_flight)
        await asyncio.sleep(0.01)
    assert peak == 1 and len(slow.messages) == 4


async def test_a_pool_sends_from_its_own_source_address(start_agent: StartAgent, make_sink: SinkFactory) -> None:
    sink = await make_sink()
    h = await start_agent(pools={"default": "", "high_risk": ""}, source_addresses={"high_risk": "127.0.0.2"})
    await h.agent.submit(make_job(sink.port, pool="high_risk"))
    await h.agent.submit(make_job(sink.port))
    await eventually(lambda: len(sink.messages) == 2)
    assert sorted(m.peer for m in sink.messages) == ["127.0.0.1", "127.0.0.2"]


def test_pool_settings_name_configured_pools() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="source_addresses names pools that are not in pools: risky"):
        DeliveryConfig(pools={"default": ""}, source_addresses={"risky": "192.0.2.1"})
    with pytest.raises(ValidationError, match=r"'high_risk': 'relay\.example' is not an IP address"):
        DeliveryConfig(pools={"default": "", "high_risk": ""}, source_addresses={"high_risk": "relay.example"})
    cfg = DeliveryConfig(pools={"default": "", "high_risk": ""}, concurrency=20)
    assert (cfg.pool_limit("high_risk"), cfg.pool_limit("default")) == (5, 20)


class _Broken:
    async def send(self, job: DeliveryJob) -> DeliveryResult:
        raise RuntimeError("bug")


async def test_relay_bug_defers_instead_of_losing_the_job(tmp_path: Path, config: DeliveryConfig) -> None:
    queue, events = DeliveryQueue(tmp_path), Events()
    agent = DeliveryAgent(queue, _Broken(), config, events)
    await agent.start()
    await agent.submit(make_job(25))
    await eventually(lambda: len(events.of(DeliveryEventType.DEFER)) >= 1)
    await agent.stop(drain_timeout=1)
    assert queue.pending_count() == 1
    assert "internal error" in events.items[0].detail


async def test_a_failing_callback_stops_no_delivery_and_the_event_is_reported_once_it_works(
    tmp_path: Path, config: DeliveryConfig, make_sink: SinkFactory
) -> None:
    sink = await make_sink()
    seen: list[str] = []

    def callback(message_id: str, kind: DeliveryEventType, recipient: str, detail: str, reply: str) -> None:
        seen.append(kind)
        if len(seen) == 1:
            raise RuntimeError("history database is down")

    queue = DeliveryQueue(tmp_path)
    agent = DeliveryAgent(queue, Relay(config), config, callback)
    await agent.start()
    await agent.submit(make_job(sink.port))
    await eventually(lambda: queue.pending_count() == 0)
    await agent.stop()
    assert seen == ["deliver", "deliver"]  # failed once, kept, reported when the receiver was back
    assert len(sink.messages) == 1  # and never sent again


def test_dsn_job_kind_is_stored() -> None:
    job = make_job(25)
    assert job.kind is JobKind.MESSAGE


async def test_events_of_a_job_finished_just_before_a_crash_are_reported_at_the_next_start(
    tmp_path: Path, start_agent: StartAgent
) -> None:
    queue = DeliveryQueue(tmp_path / "queue")
    job = make_job(9)
    queue.enqueue(job)
    delivered = FinishedEvent(job.message_id, "deliver", "bob@example.com", "delivered to 127.0.0.1", "250 ok")
    queue.finish(job.id, [delivered])  # the crash came before the trace had the event
    h = await start_agent()
    assert [(e.type, e.recipient) for e in h.events.items] == [(DeliveryEventType.DELIVER, "bob@example.com")]
    assert h.queue.pending_count() == 0 and h.queue.finished() == {}
