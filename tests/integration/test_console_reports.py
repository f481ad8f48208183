"""The report over a chosen period in a real browser against a real `mailwarden serve`: the period is
chosen in the form, the totals and refused connections show, and a table downloads as CSV whose rows are
checked (a formula-like sender defused, Japanese headings with the BOM Excel needs).

Screenshot `reports.png` as in test_console.py (SCREENSHOTS_DIR, else the test's directory).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mailwarden.model import Action, Category, Mode
from mailwarden.model.accounts import Role
from mailwarden.model.policy import parse_organisation_document
from mailwarden.service.accounts import Accounts
from mailwarden.store.connections import BlockReason, ConnectionStats
from tests.dnsserver import DnsServer
from tests.integration.harness import Mailwarden, free_port, wait_for_port
from tests.integration.test_console import PASSWORD, _sync_playwright, chromium
from tests.unit.store.records import build_record

pytestmark = pytest.mark.integration

FORMULA_SENDER = "=cmd@evil.example"


@dataclass
class Site:
    url: str
    browser: Any
    screenshots: Path
    day: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    _sync_playwright()  # skips (or fails with CI=true) before any server starts
    root = tmp_path_factory.mktemp("reports")
    dns = DnsServer().start()
    api_port = free_port()
    url = f"http://127.0.0.1:{api_port}"
    mw = Mailwarden(root, dns_port=dns.port)
    mw.listeners = {"journal": free_port()}  # serve needs a listener; no mail is sent in this test
    mw.extra_config = f'[api]\nhost = "127.0.0.1"\nport = {api_port}\n[console]\npublic_url = "{url}"\n'
    mw.write_config()
    mw.config_path.write_text(
        mw.config_path.read_text().replace("[processing]\n", "[processing]\nscan_processes = 0\n")
    )
    now = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    rt = mw.runtime()
    try:
        rt.db.migrate()
        document = {"name": "acme", "monitor_only": True, "domains": [{"name": "example.com"}]}
        rt.policies.import_document(parse_organisation_document(document), actor="test")
        Accounts(rt.db).add_user("admin", role=Role.ADMIN, email="admin@example.com", password=PASSWORD, actor="test")
        records = [
            (0, Category.SPAM, FORMULA_SENDER, Action.JUNK),
            (1, Category.SPAM, FORMULA_SENDER, Action.JUNK),
            (2, Category.MALWARE, "x@bad.example", Action.QUARANTINE),
            (3, Category.CLEAN, "colleague@partner.example", Action.DELIVER),
            (-60 * 24 * 2, Category.PHISH, "p@old.example", Action.QUARANTINE),  # two days before: outside
        ]
        for minutes, category, sender, action in records:
            rt.history.record(
                build_record(
                    at=now,
                    minutes=minutes,
                    category=category,
                    sender=sender,
                    action=action,
                    organisation="acme",
                    mode=Mode.MONITOR,
                    recipients=("alice@example.com",),
                )
            )
        ConnectionStats(rt.db).count_blocked("acme", "198.51.100.7", BlockReason.IP_BLOCK_LIST, now, count=12)
        ConnectionStats(rt.db).count_blocked("acme", "203.0.113.9", BlockReason.IP_BLOCK_LIST, now, count=3)
    finally:
        rt.close()
    mw.start()
    try:
        wait_for_port(api_port)
        with chromium(root) as (browser, screenshots):
            yield Site(url, browser, screenshots, now.date().isoformat())
    finally:
        if mw.process is not None:
            mw.stop()
        dns.stop()


def sign_in(site: Site, locale: str) -> tuple[Any, Any]:
    context = site.browser.new_context(locale=locale, viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.goto(site.url + "/login")
    page.fill("input[name=name]", "admin")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit].primary")
    page.wait_for_url(site.url + "/")
    return context, page


def read_download(download: Any) -> tuple[bytes, list[list[str]]]:
    data = Path(download.path()).read_bytes()
    return data, list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def test_a_report_for_a_chosen_period_downloads_as_csv(site: Site) -> None:
    context, page = sign_in(site, "en-GB")
    violations: list[str] = []
    page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
    page.click("nav >> text=Reports")
    page.wait_for_url("**/reports")
    page.fill("#report-period input[name=start]", site.day)
    page.fill("#report-period input[name=end]", site.day)
    page.click("#report-period button[type=submit]")
    page.wait_for_url(f"**/reports?start={site.day}*")

    headline = page.locator("#report-headline").inner_text()
    assert "messages: 4" in headline and "connections refused: 15" in headline  # the phish is outside
    refused = page.locator("#report-refused_ips tbody tr")
    assert refused.count() == 2 and "198.51.100.7" in refused.first.inner_text()
    page.screenshot(path=str(site.screenshots / "reports.png"), full_page=True)

    with page.expect_download() as info:
        page.click("#report-top_senders a[download]")
    download = info.value
    assert download.suggested_filename == f"report-all-{site.day}-{site.day}-top_senders.csv"
    data, rows = read_download(download)
    assert data.startswith(b"\xef\xbb\xbf")
    assert rows == [["Sender", "Messages"], ["'" + FORMULA_SENDER, "2"], ["x@bad.example", "1"]]

    with page.expect_download() as info:
        page.click("#report-actions a[download]")
    _, rows = read_download(info.value)
    assert rows[0] == ["Day (UTC)", "Total", "deliver (would have)", "junk (would have)", "quarantine (would have)"]
    assert rows[1:] == [[site.day, "4", "1", "2", "1"]]
    assert violations == []
    context.close()


def test_the_csv_is_in_japanese_for_a_japanese_user(site: Site) -> None:
    context, page = sign_in(site, "ja-JP")
    page.goto(f"{site.url}/reports?start={site.day}&end={site.day}")
    assert "拒否した接続: 15 件" in page.locator("#report-headline").inner_text()
    with page.expect_download() as info:
        page.click("#report-refused_ips a[download]")
    _, rows = read_download(info.value)
    assert rows == [
        ["IP アドレス", "理由", "拒否した接続"],
        ["198.51.100.7", "IP ブロック リスト", "12"],
        ["203.0.113.9", "IP ブロック リスト", "3"],
    ]
    context.close()
