"""The relay against a real Postfix as next hop.

Postfix runs as a private instance: its own config_directory, queue_directory and data_directory in a
temporary directory, listening on a free loopback port, relaying `example.com` on to an aiosmtpd sink.
The system Postfix is never touched. Without Postfix the tests skip, or fail when CI=true.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from aiosmtpd.smtp import SMTP

from mailwarden.deliver import DeliveryConfig, Outcome, Relay
from tests.integration.postfix import postfix_binary, private_postfix
from tests.unit.deliver.helpers import MESSAGE, Sink, eventually, make_job

pytestmark = pytest.mark.integration

MAIN_CF = """\
myhostname = next-hop.test
mynetworks = 192.0.2.0/24
relay_domains = example.com
relayhost = [127.0.0.1]:{sink_port}
smtpd_relay_restrictions = reject_unauth_destination
smtpd_tls_security_level = may
smtpd_tls_received_header = yes
smtp_tls_security_level = none
"""


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    handler = Sink()
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(handler, hostname="final.test", decode_data=False), "127.0.0.1", 0
    )
    handler.port = server.sockets[0].getsockname()[1]
    yield handler
    server.close()


@pytest.fixture
def postfix(sink: Sink) -> Iterator[int]:
    """A private Postfix on a free loopback port; yields the port."""
    with private_postfix(postfix_binary(), MAIN_CF.replace("{sink_port}", str(sink.port))) as instance:
        yield instance.port


@pytest.fixture
def config() -> DeliveryConfig:
    return DeliveryConfig(hostname="gw.mailwarden.test", connect_timeout=5, command_timeout=10, data_timeout=20)


async def test_postfix_accepts_over_starttls_and_passes_the_message_on_unchanged(
    postfix: int, sink: Sink, config: DeliveryConfig
) -> None:
    job = make_job(postfix, recipients=("bob@example.com", "carol@example.com"), require_tls=True)
    result = await Relay(config).send(job)
    assert [r.outcome for r in result.recipients] == [Outcome.DELIVERED] * 2, result
    assert result.recipients[0].status == "2.0.0"
    assert "queued as" in result.recipients[0].text

    await eventually(lambda: len(sink.messages) == 1, within=30)
    received = sink.messages[0]
    assert sorted(received.rcpt_tos) == ["bob@example.com", "carol@example.com"]
    assert received.mail_from == "alice@example.org"
    # Postfix adds its Received header (naming our EHLO and the TLS session); the rest arrives as sent
    first, _, rest = received.content.partition(b"\r\n")
    while rest[:1] in (b" ", b"\t"):
        more, _, rest = rest.partition(b"\r\n")
        first += b"\r\n" + more
    assert first.startswith(b"Received: from gw.mailwarden.test")
    assert b"using TLS" in first
    assert rest == MESSAGE


async def test_postfix_refusal_is_permanent_per_recipient(postfix: int, sink: Sink, config: DeliveryConfig) -> None:
    job = make_job(postfix, recipients=("bob@example.com", "mallory@elsewhere.test"))
    result = await Relay(config).send(job)
    ok, refused = result.recipients
    assert ok.outcome is Outcome.DELIVERED
    assert (refused.outcome, refused.code, refused.status) == (Outcome.PERMANENT, 554, "5.7.1")
    assert "Relay access denied" in refused.text
    await eventually(lambda: len(sink.messages) == 1, within=30)
    assert sink.messages[0].rcpt_tos == ["bob@example.com"]
