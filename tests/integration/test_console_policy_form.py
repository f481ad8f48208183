"""Editing the policy through its form in a real browser (Debian's chromium, headless, driven by Playwright)
against a real `mailwarden serve`: a change is saved, then a bad value is refused with the reason shown next
to its input and nothing saved; a free text (the malware notice) with an unknown placeholder is refused in
plain words naming the placeholders allowed, then a right one is saved, its lines as typed, and the YAML
view shows it.

The screenshot `policy-form.png` goes where SCREENSHOTS_DIR says, else into the test's temporary directory.
Without chromium or the playwright package the test skips, or fails when CI=true.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from mailwarden.model.accounts import Role
from mailwarden.model.policy import Policy, SpamVerdictAction, parse_organisation_document
from mailwarden.service.accounts import Accounts
from tests.dnsserver import DnsServer
from tests.integration.harness import Mailwarden, free_port, wait_for_port
from tests.integration.test_console import PASSWORD, _sync_playwright, chromium, signed_in

pytestmark = pytest.mark.integration


@dataclass
class Site:
    mw: Mailwarden
    url: str
    browser: Any
    screenshots: Path

    def policy(self) -> Policy:
        rt = self.mw.runtime()
        try:
            return rt.policies.get_policy("acme")
        finally:
            rt.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    _sync_playwright()  # skips (or fails with CI=true) before any server starts
    root = tmp_path_factory.mktemp("policy-form")
    dns = DnsServer().start()
    api_port = free_port()
    url = f"http://127.0.0.1:{api_port}"
    mw = Mailwarden(root, dns_port=dns.port)
    mw.listeners = {"inbound": free_port()}
    mw.extra_config = f'[api]\nhost = "127.0.0.1"\nport = {api_port}\n[console]\npublic_url = "{url}"\n'
    mw.write_config()
    rt = mw.runtime()
    try:
        rt.db.migrate()
        document = {"name": "acme", "domains": [{"name": "example.com", "mode": "journal"}]}
        rt.policies.import_document(parse_organisation_document(document), actor="test")
        Accounts(rt.db).add_user("admin", role=Role.ADMIN, email="admin@example.com", password=PASSWORD, actor="test")
    finally:
        rt.close()
    mw.start()
    try:
        wait_for_port(api_port)
        with chromium(root) as (browser, screenshots):
            yield Site(mw, url, browser, screenshots)
    finally:
        if mw.process is not None:
            mw.stop()
        dns.stop()


def test_an_admin_edits_the_policy_form_and_sees_a_bad_value_refused_inline(site: Site) -> None:
    page, violations = signed_in(site.browser, site.url)
    page.click("nav a[href='/policy']")
    page.wait_for_load_state()
    assert page.is_visible("text=Advanced (YAML)")
    # a change that is right is saved
    page.select_option("#f-spam-actions-bulk", "quarantine")
    page.fill("#f-spam-bcl_threshold", "6")
    page.click("form.policy-form button.primary")
    page.wait_for_load_state()
    assert "Saved (version" in page.inner_text("main")
    policy = site.policy()
    assert policy.spam.actions.bulk is SpamVerdictAction.QUARANTINE and policy.spam.bcl_threshold == 6
    # a value out of range is shown next to its input, with a bad address elsewhere, and nothing is saved
    page.fill("#f-spam-bcl_threshold", "15")
    page.fill("#f-malware-notify_admins", "soc@example.com\nsoc-at-example")
    page.select_option("#f-spam-actions-spam", "quarantine")
    page.click("form.policy-form button.primary")
    page.wait_for_load_state()
    assert page.inner_text("#f-spam-bcl_threshold-error") == "must be between 1 and 9"
    assert page.inner_text("#f-malware-notify_admins-error") == "“soc-at-example” is not an e-mail address"
    assert page.get_attribute("#f-spam-bcl_threshold", "aria-invalid") == "true"
    assert page.input_value("#f-spam-bcl_threshold") == "15"  # what was typed stays to be corrected
    page.screenshot(path=str(site.screenshots / "policy-form.png"), full_page=True)
    policy = site.policy()
    assert policy.spam.bcl_threshold == 6 and policy.spam.actions.spam is SpamVerdictAction.JUNK
    assert policy.malware.notify_admins == ()
    assert violations == []
    page.context.close()


def test_an_admin_changes_the_notice_text_and_an_unknown_placeholder_is_refused_inline(site: Site) -> None:
    page, violations = signed_in(site.browser, site.url)
    page.goto(site.url + "/policy")
    assert "{subject}" in page.inner_text("#f-malware-notification_text + small.help")
    page.fill("#f-malware-notification_text", "Malware in {subject}\nfor {recipient}\n")
    page.fill("#f-spam-subject_prefix", "[JUNK] ")
    page.click("form.policy-form button.primary")
    page.wait_for_load_state()
    error = page.inner_text("#f-malware-notification_text-error")
    assert error.startswith("{recipient} cannot be used here; the placeholders are {subject}, {sender}, {recipients}")
    assert page.get_attribute("#f-malware-notification_text", "aria-invalid") == "true"
    assert page.input_value("#f-malware-notification_text") == "Malware in {subject}\nfor {recipient}\n"
    assert site.policy().spam.subject_prefix == "[SPAM] "  # nothing saved, the right field neither
    page.fill("#f-malware-notification_text", "Malware in {subject}\nfor {recipients}\n")
    page.click("form.policy-form button.primary")
    page.wait_for_load_state()
    assert "Saved (version" in page.inner_text("main")
    policy = site.policy()
    assert policy.malware.notification_text == "Malware in {subject}\nfor {recipients}\n"  # the browser's CR LF as LF
    assert policy.spam.subject_prefix == "[JUNK] "
    page.click("text=Advanced (YAML)")
    page.wait_for_load_state()
    shown = yaml.safe_load(page.input_value("textarea[name=document]"))
    assert shown["malware"]["notification_text"] == "Malware in {subject}\nfor {recipients}\n"
    assert violations == []
    page.context.close()
