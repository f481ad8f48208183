"""Clawback through `mailwarden serve` in monitor mode, with the mailboxes in a real Dovecot (IMAP, master
user): the automatic policy takes a journaled EICAR copy out of the Inbox within seconds; an analyst claws
back a message from its page in a real browser and sees every recipient's status; the connector's secret
shows up in no log, API answer, console page or audit entry."""

from __future__ import annotations

import smtplib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import httpx
import pytest

from mailwarden.model.accounts import Role
from mailwarden.model.trace import EventType
from mailwarden.service.accounts import Accounts
from tests.dnsserver import DnsServer
from tests.integration.harness import Mailwarden, eventually, free_port, organisation, wait_for_port
from tests.integration.mailboxes import Mailboxes, add_connector, imap_mailboxes
from tests.integration.test_console import CHROMIUM, PASSWORD, _sync_playwright
from tests.unit.pipeline.malware.builders import EICAR

ALICE, BOB = "user0000@example.com", "user0001@example.com"


@dataclass
class Setup:
    mw: Mailwarden
    boxes: Mailboxes
    url: str
    token: str


def journal_copy(
    subject: str, to: list[str], *, attachment: bytes | None = None, filename: str = "invoice.com"
) -> tuple[bytes, str]:
    msg = EmailMessage()
    msg["From"] = "billing@partner.example"
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg["Message-ID"] = mid = make_msgid(domain="partner.example")
    msg.set_content(f"{subject}.\n")
    if attachment is not None:
        msg.add_attachment(attachment, maintype="application", subtype="octet-stream", filename=filename)
    return msg.as_bytes(policy=SMTP), mid


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("serve-clawback")
    dns = DnsServer().start()
    api_port = free_port()
    url = f"http://127.0.0.1:{api_port}"
    with imap_mailboxes(2) as boxes:
        mw = Mailwarden(root, dns_port=dns.port)
        mw.listeners = {"journal": free_port()}
        mw.extra_config = (
            f'[api]\nhost = "127.0.0.1"\nport = {api_port}\n[console]\npublic_url = "{url}"\n'
            "[clawback]\npoll_seconds = 0.5\n"
        )
        mw.write_config()
        mw.import_organisation(organisation(monitor_only=True, domains=[{"name": "example.com"}]))
        add_connector(mw, boxes, root)
        rt = mw.runtime()
        try:
            accounts = Accounts(rt.db)
            accounts.add_user("admin", role=Role.ADMIN, email="admin@example.com", password=PASSWORD, actor="test")
            accounts.add_user("analyst", role=Role.ANALYST, email="soc@example.com", password=PASSWORD, actor="test")
            token = accounts.create_token("admin", name="test", actor="test")[1]
        finally:
            rt.close()
        mw.start()
        try:
            wait_for_port(api_port)
            yield Setup(mw, boxes, url, token)
        finally:
            if mw.process is not None:
                mw.stop()
            dns.stop()


def send_journal(setup: Setup, raw: bytes) -> float:
    """Send the journal copy; the moment its 250 came."""
    with smtplib.SMTP("127.0.0.1", setup.mw.listeners["journal"], timeout=30) as client:
        client.sendmail("", [setup.mw.journal_address], raw)
    return time.monotonic()


def test_a_journaled_eicar_copy_is_out_of_the_inbox_within_ten_seconds(setup: Setup) -> None:
    raw, mid = journal_copy("Invoice with a payload", [ALICE, BOB], attachment=EICAR)
    setup.boxes.put([ALICE, BOB], mid)  # the provider delivered it
    assert setup.boxes.where(ALICE, mid) == ["inbox"]
    acknowledged = send_journal(setup, raw)
    eventually(
        lambda: setup.boxes.where(ALICE, mid) == ["trash"] and setup.boxes.where(BOB, mid) == ["trash"], timeout=10
    )
    took = time.monotonic() - acknowledged
    assert took < 10, took
    [detail] = setup.mw.messages(internet_message_id=mid)
    assert detail.summary.category.value == "malware"
    clawed = [e for e in detail.events if e.type is EventType.CLAWBACK]
    assert {e.recipient for e in clawed} == {ALICE, BOB}
    assert all("moved to Trash" in e.detail and "policy" in e.detail for e in clawed)


def test_an_analyst_claws_back_from_the_message_page_and_sees_every_recipient(setup: Setup) -> None:
    from playwright.sync_api import expect

    raw, mid = journal_copy("Quarterly bonus details", [ALICE, BOB])
    setup.boxes.put([ALICE, BOB], mid)
    send_journal(setup, raw)
    [detail] = eventually(lambda: setup.mw.messages(internet_message_id=mid), timeout=30)
    playwright = _sync_playwright()().start()
    try:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_context(locale="en-GB").new_page()
        page.goto(setup.url + "/login")
        page.fill("input[name=name]", "analyst")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit].primary")
        page.wait_for_url(setup.url + "/")
        page.goto(f"{setup.url}/trace/{detail.summary.id}")
        assert "delete" not in page.locator("#clawback select[name=action]").inner_text().lower().split()
        page.select_option("#clawback select[name=action]", "trash")
        page.fill("#clawback input[name=reason]", "reported by the finance team")
        page.click("#clawback button[type=submit]")
        rows = page.locator("#clawback-jobs tr[data-status=moved]")
        expect(rows).to_have_count(2, timeout=20_000)
        assert sorted(rows.evaluate_all("rs => rs.map(r => r.dataset.recipient)")) == [ALICE, BOB]
        assert "finished" in page.locator("#clawback-jobs .clawback-job").first.inner_text()
        browser.close()
    finally:
        playwright.stop()
    assert setup.boxes.where(ALICE, mid) == ["trash"] and setup.boxes.where(BOB, mid) == ["trash"]


def test_the_connector_secret_is_in_no_log_answer_page_or_audit_entry(setup: Setup) -> None:
    secret = setup.boxes.secret_text
    headers = {"Authorization": f"Bearer {setup.token}"}
    answers: list[Any] = []
    with httpx.Client(base_url=setup.url, headers=headers, timeout=30) as api:
        for path in (
            "/api/v1/organisations/acme/connectors",
            "/api/v1/audit",
            "/api/v1/clawback/jobs",
            "/api/v1/messages",
        ):
            r = api.get(path)
            assert r.status_code == 200, (path, r.text)
            answers.append(r.text)
    texts = [setup.mw.log(), *answers, *(p.read_text(errors="replace") for p in Path(setup.mw.root).rglob("*.log"))]
    assert all(secret not in t for t in texts)
    assert '"kind":"imap"' in answers[0] and "master_user" in answers[0]
