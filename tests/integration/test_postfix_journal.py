"""Real Postfix as the organisation's mail server, with `mailwarden serve` beside it.

1. Journaling: Postfix accepts mail for example.com and hands it to the mailbox server (an aiosmtpd
   sink); `recipient_bcc_maps` adds our encoded journal address (`journal+in.<local>=<domain>@…`,
   docs/journal.md) per recipient, routed by `transport_maps` to mailwarden's journal listener.
2. Outbound relay: Postfix relays its users' mail through mailwarden's outbound listener
   (`relayhost`), mailwarden delivers to its smart host (an aiosmtpd sink: the Internet).

Messages are submitted with the real `swaks` binary. Postfix runs as a private instance
(tests/integration/postfix.py). Without Postfix, swaks or root the tests skip (fail when CI=true).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from mailwarden.model.org import Mode
from mailwarden.model.trace import EventType, RecipientStatus
from tests.integration.conftest import unavailable
from tests.integration.harness import Mailwarden, eventually, free_port, organisation
from tests.integration.postfix import PrivatePostfix, postfix_binary, private_postfix

pytestmark = pytest.mark.integration

ALICE, BOB, CAROL, DAVE = "alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com"
PARTNER = "partner@example.org"


def journal_address(recipient: str, direction: str = "in") -> str:
    local, _, domain = recipient.rpartition("@")
    return f"journal+{direction}.{local}={domain}@mailwarden.test"


class Sink:
    """A next hop that accepts everything; its 250 reply names it and counts (`queued as INTERNET-1`)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.received: list[tuple[str, list[str], bytes]] = []
        self.replies: list[str] = []
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        reply = f"250 2.0.0 Ok: queued as {self.name}-{len(self.received)}"
        self.replies.append(reply)
        return reply


@pytest.fixture
def tools() -> tuple[str, str]:
    """(postfix, swaks) — or skip / fail (CI=true) when one is missing."""
    swaks = shutil.which("swaks")
    if swaks is None:
        unavailable("swaks is not installed (apt-get install swaks)")
    assert swaks is not None
    return postfix_binary(), swaks


@pytest.fixture
def mw(tmp_path: Path) -> Iterator[Mailwarden]:
    instance = Mailwarden(tmp_path)
    yield instance
    if instance.process is not None:
        instance.kill()


def sink(name: str) -> Iterator[Sink]:
    s = Sink(name)
    s.controller.start()
    try:
        yield s
    finally:
        s.controller.stop()


@pytest.fixture
def mailbox_server() -> Iterator[Sink]:
    yield from sink("MAILBOX")


@pytest.fixture
def internet() -> Iterator[Sink]:
    yield from sink("INTERNET")


def swaks(binary: str, port: int, *args: str) -> str:
    result = subprocess.run(
        [binary, "--server", f"127.0.0.1:{port}", "--ehlo", "client.test", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def sent_lines(postfix: PrivatePostfix, recipient: str, relay_port: int) -> list[str]:
    """Postfix's log lines saying `recipient` was delivered to 127.0.0.1:relay_port (waits for them)."""

    def check() -> list[str]:
        lines = postfix.deliveries(recipient)
        assert lines, f"postfix has not tried {recipient} yet:\n{postfix.log()}"
        assert all(f"relay=127.0.0.1[127.0.0.1]:{relay_port}," in x and " status=sent (250 " in x for x in lines), lines
        return lines

    lines: list[str] = eventually(check, timeout=30)
    return lines


def queued_as(line: str) -> str:
    found = re.search(r"queued as (\S+?)\)", line)
    assert found, line
    return found.group(1)


# ---- 1. journaling from Postfix ---------------------------------------------------------------------
JOURNAL_BCC_IN = "/^(.+)@([^@]+)$/    journal+in.${1}=${2}@mailwarden.test\n"

JOURNAL_MAIN_CF = """\
myhostname = mx.example.com
# the swaks client on loopback is "the Internet": not trusted to relay
mynetworks = 192.0.2.0/24
relay_domains = example.com
smtpd_relay_restrictions = reject_unauth_destination
recipient_bcc_maps = regexp:{conf}/journal_bcc_in
transport_maps = inline:{
    example.com=smtp:[127.0.0.1]:{mailbox_port},
    mailwarden.test=journal:[127.0.0.1]:{journal_port} }
journal_destination_recipient_limit = {journal_recipient_limit}
smtpd_tls_security_level = may
smtp_tls_security_level = may
"""

# the journal copies get their own smtp transport, so its recipient limit can differ
JOURNAL_MASTER_CF = "journal   unix  - - n - - smtp\n"


@pytest.mark.parametrize(
    "recipient_limit", [50, 1], ids=["postfix-default-one-transaction", "recipient-limit-1-one-copy-each"]
)
def test_postfix_bcc_journaling_is_recorded_once_with_the_bcc_recipients(
    tools: tuple[str, str], mw: Mailwarden, mailbox_server: Sink, recipient_limit: int
) -> None:
    postfix_bin, swaks_bin = tools
    mw.listeners = {"journal": free_port()}
    mw.write_config()
    mw.import_organisation(organisation(monitor_only=True, domains=[{"name": "example.com"}]))
    mw.start()
    journal_port = mw.listeners["journal"]
    main_cf = (
        JOURNAL_MAIN_CF.replace("{mailbox_port}", str(mailbox_server.port))
        .replace("{journal_port}", str(journal_port))
        .replace("{journal_recipient_limit}", str(recipient_limit))
    )
    subject = f"Contract v2 journaled with limit {recipient_limit}"
    everyone = sorted([ALICE, BOB, CAROL, DAVE])
    with private_postfix(
        postfix_bin, main_cf, files={"journal_bcc_in": JOURNAL_BCC_IN}, master_cf_extra=JOURNAL_MASTER_CF
    ) as postfix:
        transcript = swaks(
            swaks_bin, postfix.port,
            "--from", PARTNER,
            "--to", ",".join(everyone),
            "--header", f"To: {ALICE}",  # bob and dave are Bcc recipients: in no header
            "--header", f"Cc: {CAROL}",
            "--header", f"Subject: {subject}",
            "--body", "See attached.",
        )  # fmt: skip
        assert "250 2.0.0 Ok: queued as" in transcript

        # the mailbox server got the message for everyone, and nothing addressed to the journal
        eventually(lambda: sorted(r for _, rcpts, _ in mailbox_server.received for r in rcpts) == everyone)
        assert {mail_from for mail_from, _, _ in mailbox_server.received} == {PARTNER}
        delivered = mailbox_server.received[0][2]
        headers = delivered.split(b"\r\n\r\n", 1)[0]
        # the Bcc recipients can only be known from the journal copy's envelope
        assert BOB.encode() not in headers and DAVE.encode() not in headers
        message_id = message_from_bytes(delivered)["Message-Id"]
        assert message_id

        # mailwarden's journal listener accepted every encoded recipient
        lines = [sent_lines(postfix, journal_address(rcpt), journal_port)[0] for rcpt in everyone]
        transactions = {queued_as(line) for line in lines}
        # Postfix puts the BCC recipients into the one queue file and sends them in one transaction
        # with several RCPT TO; over the transport's recipient limit it sends separate copies
        assert len(transactions) == (1 if recipient_limit > 1 else len(everyone)), lines

    def recorded() -> Any:
        found = mw.messages(subject=subject)
        records = [(d.summary.id, sorted(r.address for r in d.recipients)) for d in found]
        assert len(found) == 1, f"{len(found)} records of one message: {records}"
        assert records[0][1] == everyone, records
        return found[0]

    detail = eventually(recorded, timeout=30)
    unwraps = [e.detail for e in detail.events if e.type is EventType.JOURNAL_UNWRAP]
    if recipient_limit > 1:
        assert unwraps == ["bcc_copy: 4 recipients, envelope confidence high"]
    else:
        assert unwraps == [
            "bcc_copy: 1 recipients, envelope confidence high",
            *["another journal copy merged: 1 new recipients"] * 3,
        ]
    # the merge is complete: no second record turned up meanwhile
    assert len(mw.messages(subject=subject)) == 1

    summary = detail.summary
    assert summary.id in transactions  # Postfix's log ("queued as <id>") leads to the record
    assert summary.direction.value == "inbound"
    assert summary.sender == PARTNER
    assert summary.internet_message_id == message_id
    assert summary.source == "journal"
    assert (summary.mode, summary.applied) == (Mode.MONITOR, False)
    assert {r.field for r in detail.recipients} == {"envelope"}  # decoded RCPT TO, not To/Cc headers
    assert all(r.status is RecipientStatus.RECORDED for r in detail.recipients)
    receives = [e.detail for e in detail.events if e.type is EventType.RECEIVE]
    assert receives and receives[0].startswith("listener journal from [127.0.0.1] helo=mx.example.com")
    assert " tls=TLSv1." in receives[0]  # Postfix took the STARTTLS mailwarden offered (smtp_tls_security_level=may)


# ---- 2. outbound relay through mailwarden ------------------------------------------------------------
OUTBOUND_MAIN_CF = """\
myhostname = mail.example.com
# the organisation's users (swaks on loopback) may relay; everything leaves through mailwarden
mynetworks = 127.0.0.0/8
relay_domains =
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
relayhost = [127.0.0.1]:{outbound_port}
smtp_tls_security_level = may
"""


def test_postfix_relays_outbound_mail_through_mailwarden_which_delivers_it(
    tools: tuple[str, str], mw: Mailwarden, internet: Sink
) -> None:
    postfix_bin, swaks_bin = tools
    postfix_port = free_port()
    mw.listeners = {"outbound": free_port()}
    mw.write_config(outbound_networks=("127.0.0.0/8",), smart_host=f"127.0.0.1:{internet.port}")
    mw.import_organisation(
        organisation(
            monitor_only=False,
            domains=[{"name": "example.com", "mode": "gateway", "next_hop": f"127.0.0.1:{postfix_port}"}],
        )
    )
    mw.start()
    outbound_port = mw.listeners["outbound"]
    subject = "Offer for partner via postfix"
    main_cf = OUTBOUND_MAIN_CF.replace("{outbound_port}", str(outbound_port))
    with private_postfix(postfix_bin, main_cf, port=postfix_port) as postfix:
        swaks(
            swaks_bin, postfix.port,
            "--from", ALICE,
            "--to", PARTNER,
            "--header", f"Subject: {subject}",
            "--body", "Our offer is attached.",
        )  # fmt: skip
        eventually(lambda: internet.received, timeout=30)
        [relay_line] = sent_lines(postfix, PARTNER, outbound_port)  # Postfix handed it to mailwarden

    [(mail_from, rcpts, content)] = internet.received
    assert (mail_from, rcpts) == (ALICE, [PARTNER])
    assert f"Subject: {subject}".encode() in content
    assert b"by mail.example.com (Postfix)" in content  # it went through Postfix first
    assert b"X-Mailwarden-Antispam: DIR:OUT;" in content  # and mailwarden stamped its verdict (enforce)

    def delivered() -> Any:
        [detail] = mw.messages(subject=subject)
        assert [r.status for r in detail.recipients] == [RecipientStatus.DELIVERED]
        return detail

    detail = eventually(delivered, timeout=30)
    summary = detail.summary
    assert summary.direction.value == "outbound"
    assert (summary.mode, summary.applied) == (Mode.ENFORCE, True)
    assert summary.sender == ALICE
    assert [r.address for r in detail.recipients] == [PARTNER]
    [receive] = [e.detail for e in detail.events if e.type is EventType.RECEIVE]
    assert receive.startswith("listener outbound from [127.0.0.1] helo=mail.example.com tls=TLSv1.")
    deliver = [e for e in detail.events if e.type is EventType.DELIVER]
    assert [e.smtp_reply for e in deliver] == [internet.replies[0]], detail.events
    assert summary.id == queued_as(relay_line)  # Postfix's log ("queued as <id>") leads to the record
