"""From monitor to enforce in a real browser (Debian's chromium, headless, driven by Playwright) against a
real `mailwarden serve`: the mode-switch preview shows what enforcing would have done with links to the
messages, a domain and the organisation are switched from it, and a policy replay shows the diff of a
candidate before anything is saved.

Screenshots `mode-preview.png` and `policy-replay.png` go where SCREENSHOTS_DIR says, else into the test's
temporary directory. Without chromium or the playwright package the tests skip, or fail when CI=true.
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from mailwarden.model.accounts import Role
from mailwarden.model.org import ConnectionMode
from mailwarden.model.policy import parse_organisation_document
from mailwarden.service.accounts import Accounts
from tests.dnsserver import DnsServer
from tests.integration.harness import Mailwarden, Sink, eventually, free_port, wait_for_port
from tests.integration.test_console import PASSWORD, WAIT, _sync_playwright, chromium, message, signed_in

pytestmark = pytest.mark.integration

INVOICE = "Invoice 4411 overdue"
LOTTERY = "Lottery winner notice"
LUNCH = "Lunch on Friday"
HOLD_INVOICES = {
    "name": "Hold invoices",
    "conditions": {"subject_contains": ["invoice"]},
    "actions": {"quarantine": True},
}
REJECT_LOTTERY = {"name": "Refuse lottery", "conditions": {"subject_contains": ["lottery"]}, "actions": {"reject": {}}}


@dataclass
class Site:
    mw: Mailwarden
    url: str
    browser: Any
    screenshots: Path
    ids: dict[str, str]  # subject -> history id


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    _sync_playwright()  # skips (or fails with CI=true) before any server starts
    root = tmp_path_factory.mktemp("enforcing")
    dns = DnsServer().start()
    sink = Sink()
    sink.controller.start()
    api_port = free_port()
    url = f"http://127.0.0.1:{api_port}"
    mw = Mailwarden(root, dns_port=dns.port)
    mw.listeners = {"inbound": free_port()}
    mw.extra_config = f'[api]\nhost = "127.0.0.1"\nport = {api_port}\n[console]\npublic_url = "{url}"\n'
    mw.write_config(smart_host=f"127.0.0.1:{sink.port}")
    rt = mw.runtime()
    try:
        rt.db.migrate()
        document = {
            "name": "acme",
            "monitor_only": True,
            "domains": [
                {"name": "example.com", "mode": "gateway", "next_hop": f"127.0.0.1:{sink.port}"},
                {"name": "example.org", "mode": "journal"},
            ],
            "policy": {"rules": [HOLD_INVOICES]},
        }
        rt.policies.import_document(parse_organisation_document(document), actor="test")
        Accounts(rt.db).add_user("admin", role=Role.ADMIN, email="admin@example.com", password=PASSWORD, actor="test")
    finally:
        rt.close()
    mw.start()
    try:
        wait_for_port(api_port)
        for subject in (INVOICE, LOTTERY, LUNCH):
            raw = message(subject, sender="billing@partner.example", to="alice@example.com", text=f"{subject}.\n")
            with smtplib.SMTP("127.0.0.1", mw.listeners["inbound"], timeout=30) as client:
                client.sendmail("billing@partner.example", ["alice@example.com"], raw)
        eventually(lambda: len(mw.messages()) == 3, timeout=WAIT)
        ids = {m.summary.subject: m.summary.id for m in mw.messages()}
        with chromium(root) as (browser, screenshots):
            yield Site(mw, url, browser, screenshots, ids)
    finally:
        if mw.process is not None:
            mw.stop()
        sink.controller.stop()
        dns.stop()


def sign_in(site: Site) -> tuple[Any, list[str]]:
    page, violations = signed_in(site.browser, site.url)
    return page, violations


def test_a_policy_replay_shows_the_diff_of_a_candidate_before_saving(site: Site) -> None:
    page, violations = sign_in(site)
    page.click("nav >> text=Policy replay")
    assert "Hold invoices" in page.input_value("textarea[name=document]")
    page.fill("textarea[name=document]", yaml.safe_dump({"rules": [REJECT_LOTTERY]}))
    page.click("button[value=replay]")
    page.wait_for_selector("#replay-changes")
    assert "3 of 3 kept messages replayed; 2 would change." in page.inner_text("#replay-summary")
    rows = page.locator("#replay-changes tbody tr")
    assert rows.count() == 2
    lottery = page.locator("#replay-changes tbody tr", has_text=LOTTERY)
    assert lottery.locator("td.after").inner_text() == "rule / reject"
    invoice = page.locator("#replay-changes tbody tr", has_text=INVOICE)
    assert invoice.locator("td.after").inner_text() == "clean / deliver"
    page.screenshot(path=str(site.screenshots / "policy-replay.png"), full_page=True)
    # the diff links to the message's trace
    lottery.locator("a").click()
    page.wait_for_load_state()
    assert page.url.endswith(f"/trace/{site.ids[LOTTERY]}") and LOTTERY in page.content()
    rt = site.mw.runtime()
    try:
        assert [r.name for r in rt.policies.get_policy("acme").rules] == ["Hold invoices"]  # nothing saved
    finally:
        rt.close()
    assert violations == []


def test_the_mode_switch_preview_then_a_domain_and_the_organisation_are_switched(site: Site) -> None:
    page, violations = sign_in(site)
    page.click("nav >> text=Domains")
    page.click("text=Preview and switch to enforce")
    page.wait_for_selector("#preview")
    assert "3 messages were recorded in monitor mode in the last 7 days" in page.inner_text("#preview-summary")
    quarantine = page.locator('tr[data-action="quarantine"]')
    assert quarantine.locator("td.count").inner_text() == "1"
    assert "rule: 1" in quarantine.inner_text()
    assert page.locator('tr[data-action="reject"] td.count').inner_text() == "0"
    page.screenshot(path=str(site.screenshots / "mode-preview.png"), full_page=True)
    quarantine.locator(f'a[href="/trace/{site.ids[INVOICE]}"]').click()
    page.wait_for_load_state()
    assert INVOICE in page.content()

    # one domain: its own preview, then the switch with a next hop
    page.goto(site.url + "/domains")
    page.locator('tr[data-domain="example.org"] a').click()
    page.wait_for_selector("#preview")
    page.select_option("select[name=mode]", "mailflow")
    page.fill("input[name=next_hop]", "10.0.0.25")
    page.click("text=Switch the domain to enforce")
    page.wait_for_load_state()
    assert page.locator('tr[data-domain="example.org"] td.mode').inner_text() == "mailflow"

    # the organisation, from its preview
    page.click("text=Preview and switch to enforce")
    page.click("button:has-text('Switch to enforce')")
    page.wait_for_load_state()
    assert "enforce mode" in page.inner_text("main")
    rt = site.mw.runtime()
    try:
        org = rt.policies.get_organisation("acme")
        assert org.monitor_only is False
        assert org.domain("example.org").mode is ConnectionMode.MAILFLOW  # type: ignore[union-attr]
        actions = {e["action"] for e in rt.audit.newest(limit=10)}
        assert {"domain.set_mode", "organisation.set_monitor_only"} <= actions
    finally:
        rt.close()
    assert violations == []
