"""Internal means the mail service or the submission path says so, never the From header: mail that only
claims the organisation's own domain is scanned as inbound, through `mailwarden serve`."""

from __future__ import annotations

import smtplib

import pytest

from mailwarden.model.trace import RecipientStatus
from mailwarden.store import MessageDetail
from tests.factories import build_message
from tests.integration.harness import Mailwarden, Sink, eventually, free_port, organisation
from tests.unit.pipeline.malware.builders import EICAR

pytestmark = pytest.mark.integration


def spoofed(subject: str) -> bytes:
    """Malware that claims to come from the organisation's own CEO."""
    return build_message(
        sender="CEO <ceo@example.com>",
        to="alice@example.com",
        subject=subject,
        attachments=[("invoice.com", "application/octet-stream", EICAR)],
    )


def send(port: int, sender: str, rcpts: list[str], raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail(sender, rcpts, raw)


def codes(detail: MessageDetail) -> set[str]:
    return {f["code"] for stage in detail.verdict["stages"] for f in stage["findings"]}


@pytest.fixture
def journal(mw: Mailwarden) -> Mailwarden:
    mw.listeners = {"journal": free_port()}
    mw.write_config()
    mw.import_organisation(organisation(monitor_only=True, domains=[{"name": "example.com"}]))
    mw.start()
    return mw


@pytest.mark.parametrize(
    "rcpt",
    ["journal+in.alice=example.com@mailwarden.test", "journal@mailwarden.test"],
    ids=["came-in-from-the-internet", "no-evidence"],
)
def test_a_bcc_journal_copy_with_a_spoofed_own_domain_sender_is_scanned(journal: Mailwarden, rcpt: str) -> None:
    send(journal.listeners["journal"], "ceo@example.com", [rcpt], spoofed("wire transfer"))

    detail = eventually(lambda: journal.messages(subject="wire transfer")[0], timeout=30)
    assert detail.summary.direction.value == "inbound"
    assert detail.summary.category.value == "malware"
    assert "MALWARE_YARA" in codes(detail)


def test_a_bcc_journal_copy_the_submission_door_encoded_is_internal(journal: Mailwarden) -> None:
    rcpt = "journal+out.alice=example.com@mailwarden.test"
    send(journal.listeners["journal"], "ceo@example.com", [rcpt], spoofed("board minutes"))

    detail = eventually(lambda: journal.messages(subject="board minutes")[0], timeout=30)
    assert detail.summary.direction.value == "internal"
    assert detail.summary.category.value == "internal"


def test_the_gateway_quarantines_malware_that_claims_the_own_domain(mw: Mailwarden, sink: Sink) -> None:
    mw.listeners = {"inbound": free_port()}
    mw.write_config()
    domain = {"name": "example.com", "mode": "gateway", "next_hop": f"127.0.0.1:{sink.port}"}
    mw.import_organisation(organisation(monitor_only=False, domains=[domain]))
    mw.start()
    send(mw.listeners["inbound"], "ceo@example.com", ["alice@example.com"], spoofed("urgent payment"))

    detail = eventually(lambda: mw.messages(subject="urgent payment")[0], timeout=30)
    assert detail.summary.direction.value == "inbound"
    assert detail.summary.action.value == "quarantine"
    assert [r.status for r in detail.recipients] == [RecipientStatus.QUARANTINED]
    assert sink.received == []
