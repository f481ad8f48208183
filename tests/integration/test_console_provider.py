"""What the provider missed, in a real browser against a real `mailwarden serve`: journal copies carrying
Google's and Microsoft 365's verdicts go through the journal listener, and the report page shows the agreement
matrix and the message the provider passed that mailwarden judges malware, one click from its clawback card.

Screenshot `provider_report.png` as in test_console.py (SCREENSHOTS_DIR, else the test's directory).
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest

from mailwarden.model.accounts import Role
from mailwarden.model.policy import parse_organisation_document
from mailwarden.service.accounts import Accounts
from tests.dnsserver import DnsServer
from tests.integration.harness import Mailwarden, eventually, free_port, wait_for_port
from tests.integration.test_console import PASSWORD, _sync_playwright, chromium, signed_in
from tests.unit.pipeline.malware.builders import EICAR

pytestmark = pytest.mark.integration

MISSED_SUBJECT = "Your parcel could not be delivered"
PROVIDER_ONLY_SUBJECT = "Minutes of the Tuesday meeting"
MISSED_ID = "<parcel-7731@courier.example>"
WAIT = 60.0


@dataclass
class Site:
    mw: Mailwarden
    url: str
    browser: Any
    screenshots: Path


def gmail_copy(to: str, *, spam: str, phishy: str) -> bytes:
    """Google Workspace's "also deliver to" copy of a message with an EICAR attachment."""
    msg = EmailMessage()
    msg["X-Gm-Original-To"] = to
    msg["X-Gm-Spam"] = spam
    msg["X-Gm-Phishy"] = phishy
    msg["X-Journal-Direction"] = "inbound"
    msg["From"] = "Courier <track@courier.example>"
    msg["To"] = to
    msg["Subject"] = MISSED_SUBJECT
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = MISSED_ID
    msg.set_content("Open the attached label to arrange a new delivery.\n")
    msg.add_attachment(EICAR, maintype="application", subtype="octet-stream", filename="label.com")
    return msg.as_bytes(policy=SMTP)


def exchange_report(to: str) -> bytes:
    """An Exchange envelope journal report of a plain message Microsoft 365 called spam."""
    original = (
        "From: Colleague <colleague@partner.example>\r\n"
        f"To: {to}\r\n"
        f"Subject: {PROVIDER_ONLY_SUBJECT}\r\n"
        f"Date: {formatdate(localtime=False)}\r\n"
        "Message-ID: <minutes-42@partner.example>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "X-MS-Exchange-Organization-MessageDirectionality: Incoming\r\n"
        "X-MS-Exchange-Organization-AuthAs: Anonymous\r\n"
        "X-Forefront-Antispam-Report: CIP:198.51.100.20;CTRY:;LANG:en;SCL:6;SRV:;IPV:NLI;SFV:SPM;CAT:SPM;DIR:INB;\r\n"
        "X-MS-Exchange-Organization-SCL: 6\r\n"
        "X-Microsoft-Antispam: BCL:0;\r\n"
        "\r\n"
        "Attached are the minutes of Tuesday's meeting; the next one is on Thursday.\r\n"
    )
    body = (
        "Sender: colleague@partner.example\r\n"
        f"Subject: {PROVIDER_ONLY_SUBJECT}\r\n"
        "Message-Id: <minutes-42@partner.example>\r\n"
        f"Recipient: {to}\r\n"
    )
    return (
        "From: Microsoft Outlook <MicrosoftExchange0000@example.com>\r\n"
        "To: <journal@mailwarden.test>\r\n"
        f"Subject: {PROVIDER_ONLY_SUBJECT}\r\n"
        "Message-ID: <jr-minutes-42@example.com>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="JRB"\r\n'
        "X-MS-Journal-Report:\r\n"
        "\r\n"
        "--JRB\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n" + body + "\r\n"
        "--JRB\r\nContent-Type: message/rfc822\r\n\r\n" + original + "\r\n--JRB--\r\n"
    ).encode()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    _sync_playwright()  # skips (or fails with CI=true) before any server starts
    root = tmp_path_factory.mktemp("provider")
    dns = DnsServer().start()
    api_port = free_port()
    url = f"http://127.0.0.1:{api_port}"
    mw = Mailwarden(root, dns_port=dns.port)
    mw.listeners = {"journal": free_port()}
    mw.extra_config = f'[api]\nhost = "127.0.0.1"\nport = {api_port}\n[console]\npublic_url = "{url}"\n'
    mw.write_config()
    # one runtime, scanning in the server: less CPU for three messages
    mw.config_path.write_text(
        mw.config_path.read_text().replace("[processing]\n", "[processing]\nscan_processes = 0\n")
    )
    rt = mw.runtime()
    try:
        rt.db.migrate()
        document = {"name": "acme", "monitor_only": True, "domains": [{"name": "example.com"}]}
        rt.policies.import_document(parse_organisation_document(document), actor="test")
        Accounts(rt.db).add_user("admin", role=Role.ADMIN, email="admin@example.com", password=PASSWORD, actor="test")
    finally:
        rt.close()
    mw.start()
    try:
        wait_for_port(api_port)
        journal = mw.listeners["journal"]
        copies = (
            ("track@courier.example", gmail_copy("alice@example.com", spam="0", phishy="0")),
            # Gmail's copy for the second recipient of the same message: merged into the first's record
            ("track@courier.example", gmail_copy("bob@example.com", spam="0", phishy="0")),
            ("", exchange_report("carol@example.com")),
        )
        for sender, raw in copies:
            with smtplib.SMTP("127.0.0.1", journal, timeout=30) as client:
                client.sendmail(sender, [mw.journal_address], raw)

        def recorded() -> bool:
            found = mw.messages()
            assert len(found) == 2
            return sum(len(m.recipients) for m in found) == 3

        eventually(recorded, timeout=WAIT)
        with chromium(root) as (browser, screenshots):
            yield Site(mw, url, browser, screenshots)
    finally:
        if mw.process is not None:
            mw.stop()
        dns.stop()


def test_the_report_shows_the_matrix_and_the_missed_message_one_click_from_clawback(site: Site) -> None:
    page, violations = signed_in(site.browser, site.url)
    page.wait_for_url(site.url + "/")
    context = page.context
    panel = page.locator("#provider-panel")
    assert "Provider passed, mailwarden flagged: 1" in panel.inner_text()

    page.click("nav >> text=Provider agreement")
    page.wait_for_url("**/reports/provider")
    matrix = page.locator("#provider-matrix")
    # the two Gmail copies are one message with one provider verdict; Microsoft 365's spam mailwarden passed
    assert matrix.locator("tr[data-provider=clean] td[data-ours=malware]").inner_text() == "1"
    assert matrix.locator("tr[data-provider=spam] td[data-ours=clean]").inner_text() == "1"
    assert sum(int(n) for n in matrix.locator("td").all_inner_texts()) == 2
    assert "Provider flagged, mailwarden passed: 1" in page.locator("#provider-headline").inner_text()

    rows = page.locator("#provider-missed tbody tr")
    assert rows.count() == 1
    row = rows.first
    assert MISSED_SUBJECT in row.inner_text()
    assert "malware" in row.inner_text()
    assert "X-Gm-Spam:0 X-Gm-Phishy:0" in row.inner_text()
    page.screenshot(path=str(site.screenshots / "provider_report.png"), full_page=True)

    row.locator("a.clawback-link").click()
    page.wait_for_url("**/trace/*#clawback")
    card = page.locator("section#clawback")
    assert card.locator("button", has_text="Claw back").is_visible()
    assert {"alice@example.com", "bob@example.com"} <= set(card.locator("input[name=recipients]").evaluate_all(
        "inputs => inputs.map(i => i.value)"
    ))  # fmt: skip
    verdict = page.locator("#provider-verdict").inner_text()
    assert "Google Workspace" in verdict and "Provider passed, mailwarden flagged" in verdict
    assert violations == []
    context.close()
