"""The web console in a real browser (Debian's chromium, headless, driven by Playwright) against a real
`mailwarden serve`: sign in, trace a message and open its timeline, release a quarantined spam message
and see it arrive at an SMTP sink, an analyst sees no release button on malware, the UI in Japanese.

The tests take screenshots {dashboard,trace,quarantine}.png: into the directory SCREENSHOTS_DIR names
(`SCREENSHOTS_DIR=docs/screenshots` renews the README's), else into the test's temporary directory, so a
test run leaves the checkout as it was (not a MAILWARDEN_ name: those are config settings). Without
chromium or the playwright package they skip, or fail when CI=true.
"""

from __future__ import annotations

import os
import shutil
import smtplib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

import pytest

from mailwarden.model.accounts import Role
from mailwarden.model.policy import parse_organisation_document
from mailwarden.service.accounts import Accounts
from tests.dnsserver import DnsServer
from tests.integration.conftest import unavailable
from tests.integration.harness import Mailwarden, Sink, eventually, free_port, wait_for_port
from tests.unit.pipeline.malware.builders import EICAR

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "a long test password"
BLOCKED = "offers@spam.example"
SPAM_SUBJECT = "Exclusive offer just for you"
MALWARE_SUBJECT = "Invoice attached"
CLEAN_SUBJECT = "Minutes of the Tuesday meeting"
WAIT = 60.0


@dataclass
class Site:
    mw: Mailwarden
    sink: Sink
    url: str
    browser: Any
    screenshots: Path


def message(subject: str, *, sender: str, to: str, text: str, attachment: bytes | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    msg.set_content(text)
    if attachment is not None:
        msg.add_attachment(attachment, maintype="application", subtype="octet-stream", filename="invoice.com")
    return msg.as_bytes(policy=SMTP)


def _sync_playwright() -> Any:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package is not installed (test extra)")
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        unavailable(f"no chromium at {CHROMIUM} (Debian package chromium)")
    return sync_playwright


@contextmanager
def chromium(root: Path) -> Iterator[tuple[Any, Path]]:
    """A headless Chromium and where screenshots go (SCREENSHOTS_DIR, else under `root`); closed after."""
    playwright = _sync_playwright()().start()
    try:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        screenshots = Path(os.environ.get("SCREENSHOTS_DIR") or root / "screenshots")
        screenshots.mkdir(parents=True, exist_ok=True)
        try:
            yield browser, screenshots
        finally:
            browser.close()
    finally:
        playwright.stop()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    _sync_playwright()  # skips (or fails with CI=true) before any server starts
    root = tmp_path_factory.mktemp("console")
    dns = DnsServer().start()
    sink = Sink()
    sink.controller.start()
    api_port = free_port()
    url = f"http://127.0.0.1:{api_port}"
    mw = Mailwarden(root, dns_port=dns.port)
    mw.listeners = {"inbound": free_port()}
    mw.extra_config = (
        f'[api]\nhost = "127.0.0.1"\nport = {api_port}\n[console]\npublic_url = "{url}"\n'
        "[quarantine]\nrelease_interval_seconds = 0.5\n"
    )
    mw.write_config(smart_host=f"127.0.0.1:{sink.port}")
    rt = mw.runtime()
    try:
        rt.db.migrate()
        document = {
            "name": "acme",
            "monitor_only": False,
            "domains": [{"name": "example.com", "mode": "gateway", "next_hop": f"127.0.0.1:{sink.port}"}],
            "policy": {
                "spam": {"actions": {"high_confidence_spam": "quarantine"}},
                "lists": {"blocked_senders": [BLOCKED]},
            },
        }
        rt.policies.import_document(parse_organisation_document(document), actor="test")
        accounts = Accounts(rt.db)
        accounts.add_user("admin", role=Role.ADMIN, email="admin@example.com", password=PASSWORD, actor="test")
        accounts.add_user("analyst", role=Role.ANALYST, email="soc@example.com", password=PASSWORD, actor="test")
    finally:
        rt.close()
    mw.start()
    try:
        wait_for_port(api_port)
        inbound = mw.listeners["inbound"]
        for subject, sender, attachment in (
            (CLEAN_SUBJECT, "colleague@partner.example", None),
            (SPAM_SUBJECT, BLOCKED, None),
            (MALWARE_SUBJECT, "billing@partner.example", EICAR),
        ):
            raw = message(subject, sender=sender, to="alice@example.com", text=f"{subject}.\n", attachment=attachment)
            with smtplib.SMTP("127.0.0.1", inbound, timeout=30) as client:
                client.sendmail(sender, ["alice@example.com"], raw)
        eventually(lambda: len(mw.messages()) == 3, timeout=WAIT)
        eventually(lambda: any(CLEAN_SUBJECT.encode() in raw for _, _, raw in sink.received), timeout=WAIT)
        with chromium(root) as (browser, screenshots):
            yield Site(mw, sink, url, browser, screenshots)
    finally:
        if mw.process is not None:
            mw.stop()
        sink.controller.stop()
        dns.stop()


def signed_in(browser: Any, url: str, name: str = "admin", *, locale: str = "en-GB") -> tuple[Any, list[str]]:
    """A fresh browser context signed in as `name`: its page, on the landing page, and the CSP
    violations the browser reports on it from now on."""
    context = browser.new_context(locale=locale, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    violations: list[str] = []
    page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
    page.goto(url + "/")
    assert page.url.endswith("/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit].primary")
    page.wait_for_load_state()
    return page, violations


def sign_in(site: Site, name: str, *, locale: str = "en-GB") -> tuple[Any, list[str]]:
    return signed_in(site.browser, site.url, name, locale=locale)


def test_a_wrong_password_is_refused_and_the_cookie_is_httponly_strict(site: Site) -> None:
    context = site.browser.new_context()
    page = context.new_page()
    page.goto(site.url + "/login")
    page.fill("input[name=name]", "admin")
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit].primary")
    assert page.locator("[role=alert]").inner_text() == "Wrong user name or password."
    assert page.url.endswith("/login")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit].primary")
    page.wait_for_url(site.url + "/")
    session = next(c for c in context.cookies() if c["name"] == "mailwarden_session")
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    context.close()


def test_dashboard_then_trace_search_opens_the_timeline(site: Site) -> None:
    from playwright.sync_api import expect

    page, violations = sign_in(site, "admin")
    assert page.url == site.url + "/"
    assert page.locator("svg.chart").count() >= 3  # verdicts over time, monitor vs enforce, top recipients
    page.screenshot(path=str(site.screenshots / "dashboard.png"), full_page=True)

    page.click("nav >> text=Message trace")
    page.fill("input[name=subject]", "Tuesday")
    page.click("form.search button[type=submit]")
    # the answer replaces the table in place (htmx): wait for it, not for the unfiltered table still shown
    rows = page.locator("table.trace tbody tr")
    expect(rows).to_have_count(1)
    assert "colleague@partner.example" in rows.first.inner_text()
    page.fill("input[name=subject]", "")
    page.click("form.search button[type=submit]")
    expect(rows).to_have_count(3)
    page.screenshot(path=str(site.screenshots / "trace.png"), full_page=True)

    page.click(f"text={CLEAN_SUBJECT}")
    page.wait_for_url("**/trace/*")
    assert page.locator("h1").inner_text() == CLEAN_SUBJECT
    events = page.locator("ol.timeline li strong").all_inner_texts()
    assert events[0] == "receive" and "deliver" in events
    assert violations == []
    page.context.close()


def test_admin_releases_quarantined_spam_and_it_arrives(site: Site) -> None:
    page, violations = sign_in(site, "admin")
    page.click("nav >> text=Quarantine")
    spam_row = page.locator("tr", has_text=SPAM_SUBJECT)
    malware_row = page.locator("tr", has_text=MALWARE_SUBJECT)
    spam_row.wait_for()
    assert malware_row.locator("button", has_text="Release").count() == 1  # admins may release malware
    page.screenshot(path=str(site.screenshots / "quarantine.png"), full_page=True)
    assert not any(SPAM_SUBJECT in raw.decode() for _, _, raw in site.sink.received)

    spam_row.locator("button", has_text="Release").click()
    page.locator("p.flash", has_text="Release: 1 done.").wait_for()
    assert page.locator("tr", has_text=SPAM_SUBJECT).locator("td").nth(6).inner_text() == "released"

    def arrived() -> bytes:
        found = [raw for _, rcpts, raw in site.sink.received if SPAM_SUBJECT in raw.decode()]
        assert found, "the released message has not reached the sink"
        return found[0]

    assert b"alice@example.com" in eventually(arrived, timeout=WAIT)
    assert violations == []
    page.context.close()


def test_analyst_sees_no_release_button_on_malware(site: Site) -> None:
    page, _ = sign_in(site, "analyst")
    page.click("nav >> text=Quarantine")
    malware_row = page.locator("tr", has_text=MALWARE_SUBJECT)
    malware_row.wait_for()
    assert malware_row.get_attribute("data-reason") == "malware"
    assert malware_row.locator("button", has_text="Release").count() == 0
    malware_row.locator("a", has_text=MALWARE_SUBJECT).click()
    page.wait_for_url("**/quarantine/*")
    assert page.locator("button", has_text="Release").count() == 0
    # the preview is there, sandboxed, and lists the attachment with its hash
    assert page.locator("iframe.preview").get_attribute("sandbox") == ""
    assert "invoice.com" in page.locator("table").last.inner_text()
    page.context.close()


def test_the_ui_switches_to_japanese_and_follows_the_browser(site: Site) -> None:
    page, _ = sign_in(site, "admin")
    page.select_option("select#language", "ja")
    page.wait_for_load_state()
    page.locator("nav >> text=メッセージ追跡").wait_for()
    assert page.locator("html").get_attribute("lang") == "ja"
    page.click("nav >> text=検疫")
    assert page.locator("h1").inner_text() == "検疫"
    page.context.close()

    browser_ja = site.browser.new_context(locale="ja-JP")
    login = browser_ja.new_page()
    login.goto(site.url + "/login")
    assert login.locator("h1").inner_text() == "サインイン"
    browser_ja.close()


def test_admin_blocks_a_sender_from_the_message_page(site: Site) -> None:
    from playwright.sync_api import expect

    page, violations = sign_in(site, "admin")
    [malware] = site.mw.messages(subject=MALWARE_SUBJECT)
    page.goto(f"{site.url}/trace/{malware.summary.id}")
    page.click("#actions button[value=block_sender]")
    expect(page.locator("#actions [role=status]")).to_have_text("billing@partner.example added to Blocked senders.")
    page.goto(site.url + "/lists")
    assert "billing@partner.example" in page.locator("textarea[name=blocked_senders]").input_value()
    assert violations == []
    page.context.close()
