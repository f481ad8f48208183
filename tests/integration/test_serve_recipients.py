"""Recipient verification at RCPT time through `mailwarden serve` (issue 11, item 12: no backscatter).

The next hop is a real Postfix that knows its users (`relay_recipient_maps`) and refuses everybody else
itself, relaying the rest to an aiosmtpd sink standing in for the mailboxes. Unknown recipients must be
refused by mailwarden at RCPT with 550 5.1.1 (the sending server bounces, not we), known ones delivered,
and a verifier that cannot answer must give 451, never accept-and-bounce.
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailwarden.model.trace import EventType, RecipientStatus
from tests.integration.harness import Mailwarden, Sink, eventually, free_port, organisation
from tests.integration.postfix import PrivatePostfix, postfix_binary, private_postfix
from tests.integration.test_serve import simple

pytestmark = pytest.mark.integration

# the organisation's mail server: it knows alice and carol, refuses anybody else at RCPT (its own
# smtpd_reject_unlisted_recipient), and hands accepted mail to the sink
NEXT_HOP_CF = """\
myhostname = next-hop.test
mynetworks = 192.0.2.0/24
relay_domains = example.com
relay_recipient_maps = inline:{alice@example.com=ok, carol@example.com=ok}
relayhost = [127.0.0.1]:{sink_port}
smtpd_relay_restrictions = reject_unauth_destination
smtpd_tls_security_level = may
smtp_tls_security_level = none
"""


@pytest.fixture
def next_hop(sink: Sink) -> Iterator[PrivatePostfix]:
    with private_postfix(postfix_binary(), NEXT_HOP_CF.replace("{sink_port}", str(sink.port))) as instance:
        yield instance


def start(mw: Mailwarden, next_hop: str, verification: dict[str, Any], *, monitor_only: bool = False) -> None:
    mw.listeners = {"inbound": free_port()}
    mw.write_config()
    domain = {"name": "example.com", "mode": "gateway", "next_hop": next_hop, "recipient_verification": verification}
    mw.import_organisation(organisation(monitor_only=monitor_only, domains=[domain]))
    mw.start()


def rcpt_replies(mw: Mailwarden, rcpts: list[str]) -> dict[str, tuple[int, str]]:
    """Each recipient's RCPT reply in one session that then gives up (RSET, QUIT): nothing is sent."""
    with smtplib.SMTP("127.0.0.1", mw.listeners["inbound"], timeout=30) as client:
        client.ehlo("client.example.org")
        client.mail("partner@example.org")
        out = {}
        for rcpt in rcpts:
            code, text = client.rcpt(rcpt)
            out[rcpt] = (code, text.decode())
        client.rset()
    return out


def test_call_ahead_refuses_unknown_users_at_rcpt_and_never_bounces(
    mw: Mailwarden, next_hop: PrivatePostfix, sink: Sink
) -> None:
    start(mw, f"127.0.0.1:{next_hop.port}", {"mode": "call_ahead"})
    with smtplib.SMTP("127.0.0.1", mw.listeners["inbound"], timeout=30) as client:
        client.ehlo("client.example.org")
        client.mail("partner@example.org")
        assert client.rcpt("alice@example.com")[0] == 250
        code, text = client.rcpt("nobody@example.com")
        assert (code, text.decode()) == (550, "5.1.1 <nobody@example.com>: Recipient address rejected: User unknown")
        assert client.rcpt("carol@example.com")[0] == 250
        code, _ = client.data(simple("for the known ones"))
        assert code == 250

    eventually(lambda: sink.received, timeout=60)
    assert sorted(sink.received[0][1]) == ["alice@example.com", "carol@example.com"]

    def delivered() -> Any:
        detail = mw.messages(subject="for the known ones")[0]
        assert {r.address: r.status for r in detail.recipients} == {
            "alice@example.com": RecipientStatus.DELIVERED,
            "carol@example.com": RecipientStatus.DELIVERED,
        }
        return detail

    detail = eventually(delivered, timeout=30)
    # the unknown recipient never entered: nothing failed, no NDR was made, here or at the next hop
    assert not [e for e in detail.events if e.type in (EventType.FAIL, EventType.DSN)]
    assert "sender non-delivery notification" not in next_hop.log()


def test_call_ahead_answers_are_cached_and_one_connection_checks_several(
    mw: Mailwarden, next_hop: PrivatePostfix
) -> None:
    start(mw, f"127.0.0.1:{next_hop.port}", {"mode": "call_ahead"})
    rcpts = ["alice@example.com", "ghost1@example.com", "carol@example.com", "ghost2@example.com"]
    first = rcpt_replies(mw, rcpts)
    assert [first[r][0] for r in rcpts] == [250, 550, 250, 550]
    assert rcpt_replies(mw, rcpts) == first  # the second time from the cache
    # four addresses asked in one call-ahead transaction (Postfix logs `<queue id>: client=` for each), once each
    transactions = [line for line in next_hop.log().splitlines() if "postfix/smtpd" in line and ": client=" in line]
    assert len(transactions) == 1, next_hop.log()
    assert next_hop.log().count("<ghost1@example.com>: Recipient address rejected") == 1


def test_next_hop_down_is_a_temporary_failure_not_a_bounce(mw: Mailwarden) -> None:
    start(mw, f"127.0.0.1:{free_port()}", {"mode": "call_ahead", "timeout_seconds": 2})
    code, text = rcpt_replies(mw, ["alice@example.com"])["alice@example.com"]
    assert code == 451
    assert text.startswith("4.4.3 ")
    assert mw.messages() == []


def test_the_list_refuses_others_in_enforce_and_monitor_mode(mw: Mailwarden, sink: Sink, tmp_path: Path) -> None:
    listed = {"mode": "list", "addresses": ["alice@example.com", "Bob@Example.com"]}
    for monitor_only in (False, True):
        instance = Mailwarden(tmp_path / f"monitor-{monitor_only}", dns_port=mw.dns_port)
        instance.root.mkdir()
        start(instance, f"127.0.0.1:{sink.port}", listed, monitor_only=monitor_only)
        try:
            replies = rcpt_replies(
                instance,
                [
                    "alice@example.com",
                    "bob@example.com",
                    "alice+news@example.com",
                    "postmaster@example.com",
                    "eve@example.com",
                ],
            )
        finally:
            instance.kill()
        assert {r: code for r, (code, _) in replies.items()} == {
            "alice@example.com": 250,
            "bob@example.com": 250,
            "alice+news@example.com": 250,
            "postmaster@example.com": 250,
            "eve@example.com": 550,
        }, (monitor_only, replies)
        assert replies["eve@example.com"][1].startswith("5.1.1 <eve@example.com>")
