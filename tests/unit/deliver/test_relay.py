from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest

from mailwarden.deliver import DeliveryConfig, DeliveryJob, MxLookupError, Outcome, Relay, Route
from mailwarden.deliver.relay import split_reply
from tests.unit.deliver.conftest import SinkFactory
from tests.unit.deliver.helpers import MESSAGE, make_job


async def test_message_reaches_the_next_hop_byte_for_byte(make_sink: SinkFactory, config: DeliveryConfig) -> None:
    sink = await make_sink()
    result = await Relay(config).send(make_job(sink.port))
    (r,) = result.recipients
    assert (r.recipient, r.outcome, r.code, r.status) == ("bob@example.com", Outcome.DELIVERED, 250, "2.0.0")
    assert r.reply == "250 2.0.0 Ok: queued as Q1"
    assert r.remote_mta == "127.0.0.1"
    (received,) = sink.messages
    assert received.content == MESSAGE  # no header added, dot-stuffing undone by the sink
    assert received.mail_from == "alice@example.org"
    assert received.rcpt_tos == ["bob@example.com"]


async def test_8bit_message_and_null_sender(make_sink: SinkFactory, config: DeliveryConfig) -> None:
    sink = await make_sink()
    message = MESSAGE.replace(b"quarterly figures", "Grüße".encode())
    result = await Relay(config).send(make_job(sink.port, mail_from="", message=message))
    assert result.recipients[0].outcome is Outcome.DELIVERED
    assert sink.messages[0].content == message
    assert sink.messages[0].mail_from == "<>"


async def test_some_recipients_accepted_and_others_refused_in_one_transaction(
    make_sink: SinkFactory, config: DeliveryConfig
) -> None:
    sink = await make_sink(
        rcpt_replies={
            "gone@example.com": "550 5.1.1 <gone@example.com>: Recipient address rejected: User unknown",
            "full@example.com": "452 4.2.2 mailbox full",
        }
    )
    job = make_job(sink.port, recipients=("bob@example.com", "gone@example.com", "full@example.com", "eve@example.com"))
    result = await Relay(config).send(job)
    outcomes = {r.recipient: (r.outcome, r.status) for r in result.recipients}
    assert outcomes == {
        "bob@example.com": (Outcome.DELIVERED, "2.0.0"),
        "gone@example.com": (Outcome.PERMANENT, "5.1.1"),
        "full@example.com": (Outcome.TEMPORARY, "4.2.2"),
        "eve@example.com": (Outcome.DELIVERED, "2.0.0"),
    }
    assert result.recipients[1].text == "<gone@example.com>: Recipient address rejected: User unknown"
    assert len(sink.messages) == 1
    assert sink.messages[0].rcpt_tos == ["bob@example.com", "eve@example.com"]


async def test_data_refused_applies_to_every_accepted_recipient(make_sink: SinkFactory, config: DeliveryConfig) -> None:
    sink = await make_sink(data_replies=["554 5.7.1 message content rejected"])
    result = await Relay(config).send(make_job(sink.port, recipients=("a@example.com", "b@example.com")))
    assert [(r.outcome, r.reply) for r in result.recipients] == [
        (Outcome.PERMANENT, "554 5.7.1 message content rejected")
    ] * 2


async def test_require_tls_without_starttls_defers_and_sends_nothing(
    make_sink: SinkFactory, config: DeliveryConfig
) -> None:
    sink = await make_sink()
    result = await Relay(config).send(make_job(sink.port, require_tls=True))
    (r,) = result.recipients
    assert r.outcome is Outcome.TEMPORARY
    assert r.status == "4.7.4"
    assert "does not offer STARTTLS" in r.text
    assert r.code is None
    assert sink.mail_commands == 0
    assert sink.messages == []


async def test_starttls_to_a_self_signed_certificate(
    make_sink: SinkFactory, config: DeliveryConfig, server_tls: ssl.SSLContext
) -> None:
    sink = await make_sink(tls_context=server_tls)
    for require_tls in (False, True):
        result = await Relay(config).send(make_job(sink.port, require_tls=require_tls))
        assert result.recipients[0].outcome is Outcome.DELIVERED
    assert [m.tls for m in sink.messages] == [True, True]
    assert sink.messages[1].content == MESSAGE


async def test_verified_tls_refuses_an_unknown_certificate(
    make_sink: SinkFactory, server_tls: ssl.SSLContext, config: DeliveryConfig
) -> None:
    sink = await make_sink(tls_context=server_tls)
    strict = config.model_copy(update={"tls_verify": True})
    result = await Relay(strict).send(make_job(sink.port, require_tls=True))
    (r,) = result.recipients
    assert (r.outcome, r.status) == (Outcome.TEMPORARY, "4.7.5")
    assert "certificate" in r.text.lower()
    assert sink.mail_commands == 0


async def test_verified_tls_with_the_right_ca_delivers(
    make_sink: SinkFactory, server_tls: ssl.SSLContext, config: DeliveryConfig, self_signed: tuple[object, object]
) -> None:
    sink = await make_sink(tls_context=server_tls)
    strict = config.model_copy(update={"tls_verify": True, "tls_ca_file": self_signed[0]})
    # the certificate names sink.test; reach the sink under that name through the MX path
    relay = Relay(strict, resolver=_mx({"example.com": ["sink.test"]}), mx_port=sink.port)
    real_getaddrinfo = socket.getaddrinfo

    def fake_getaddrinfo(host: str, *args: object, **kwargs: object) -> object:
        return real_getaddrinfo("127.0.0.1" if host == "sink.test" else host, *args, **kwargs)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket, "getaddrinfo", fake_getaddrinfo)
        job = make_job(sink.port)
        job = _with_route(job, Route(require_tls=True))
        result = await relay.send(job)
    assert result.recipients[0].outcome is Outcome.DELIVERED, result
    assert sink.messages[0].tls


async def test_connection_refused_is_temporary(config: DeliveryConfig) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    result = await Relay(config).send(make_job(port))
    (r,) = result.recipients
    assert (r.outcome, r.status, r.code) == (Outcome.TEMPORARY, "4.4.1", None)
    assert f"127.0.0.1:{port}" in r.text


async def test_silent_server_times_out_as_temporary(config: DeliveryConfig) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)  # accepts the connection, never sends a banner

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    quick = config.model_copy(update={"connect_timeout": 0.3})
    try:
        result = await Relay(quick).send(make_job(port))
    finally:
        server.close()
    assert result.recipients[0].outcome is Outcome.TEMPORARY
    assert result.recipients[0].status == "4.4.1"


async def test_pool_smart_host_and_mx_routes(make_sink: SinkFactory, config: DeliveryConfig) -> None:
    smart, mx_a = await make_sink(), await make_sink()
    pooled = config.model_copy(update={"pools": {"default": "", "high_risk": f"[127.0.0.1]:{smart.port}"}})
    relay = Relay(pooled, resolver=_mx({"a.example": ["127.0.0.1"]}), mx_port=mx_a.port)

    result = await relay.send(_with_route(make_job(0, recipients=("x@b.example",)), Route(pool="high_risk")))
    assert result.recipients[0].outcome is Outcome.DELIVERED
    assert smart.messages[0].rcpt_tos == ["x@b.example"]

    job = _with_route(make_job(0, recipients=("one@a.example", "gone@nx.example", "two@A.example")), Route())
    result = await relay.send(job)
    by = {r.recipient: r for r in result.recipients}
    assert by["one@a.example"].outcome is Outcome.DELIVERED
    assert by["two@A.example"].outcome is Outcome.DELIVERED
    assert (by["gone@nx.example"].outcome, by["gone@nx.example"].status) == (Outcome.PERMANENT, "5.1.2")
    assert mx_a.messages[0].rcpt_tos == ["one@a.example", "two@A.example"]

    result = await relay.send(_with_route(make_job(0), Route(pool="nowhere")))
    assert (result.recipients[0].outcome, result.recipients[0].status) == (Outcome.TEMPORARY, "4.3.5")


async def test_next_mx_is_tried_when_the_first_does_not_answer(make_sink: SinkFactory, config: DeliveryConfig) -> None:
    sink = await make_sink()
    # 127.0.0.2 is loopback on Linux too, but nothing listens on the sink's port there
    relay = Relay(config, resolver=_mx({"example.com": ["127.0.0.2", "127.0.0.1"]}), mx_port=sink.port)
    result = await relay.send(_with_route(make_job(0), Route()))
    assert result.recipients[0].outcome is Outcome.DELIVERED
    assert result.recipients[0].remote_mta == "127.0.0.1"


@pytest.mark.parametrize(
    ("code", "message", "status", "text"),
    [
        (550, "5.1.1 user unknown", "5.1.1", "user unknown"),
        (451, "4.7.1 try\nlater", "4.7.1", "try later"),
        (250, "Ok", "2.0.0", "Ok"),
        (550, "4.1.1 confused server", "5.0.0", "4.1.1 confused server"),
        (421, "", "4.0.0", ""),
        (354, "go ahead", "4.0.0", "go ahead"),
    ],
)
def test_split_reply(code: int, message: str, status: str, text: str) -> None:
    assert split_reply(code, message) == (status, text)


def _mx(table: dict[str, list[str]]) -> Callable[[str], Awaitable[list[str]]]:
    async def resolve(domain: str) -> list[str]:
        if domain.lower() not in table:
            raise MxLookupError(f"domain {domain} does not exist", permanent=True, status="5.1.2")
        return table[domain.lower()]

    return resolve


def _with_route(job: DeliveryJob, route: Route) -> DeliveryJob:
    return replace(job, route=route)


async def test_failed_opportunistic_tls_falls_back_to_clear_text_but_required_tls_does_not(
    make_sink: SinkFactory, config: DeliveryConfig, self_signed: tuple[object, object]
) -> None:
    # a server that demands a client certificate: our handshake fails
    picky = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    picky.load_cert_chain(*self_signed)  # type: ignore[arg-type]
    picky.verify_mode = ssl.CERT_REQUIRED
    picky.load_verify_locations(self_signed[0])  # type: ignore[arg-type]
    sink = await make_sink(tls_context=picky)

    required = await Relay(config).send(make_job(sink.port, require_tls=True))
    assert (required.recipients[0].outcome, required.recipients[0].status) == (Outcome.TEMPORARY, "4.7.5")
    assert sink.messages == []

    opportunistic = await Relay(config).send(make_job(sink.port))
    assert opportunistic.recipients[0].outcome is Outcome.DELIVERED
    assert [m.tls for m in sink.messages] == [False]
