"""Every console page in Japanese, in a real browser against one real `mailwarden serve` with data on every
page: the visible text holds no English phrase of the catalogue whose Japanese differs, and no raw key.

The server gets mail through its inbound listener (clean, blocked spam, malware; the clean message's next
hop defers it, so the delivery queue is not empty) and journal copies carrying Google's and Microsoft 365's
verdicts (for the provider report and the message page's provider verdict); a retro-hunt is queued. Text
that is data (subjects, addresses, the engines' details, replies) is marked `translate="no"` and left out.
The dashboard and a message page are saved as dashboard-ja.png and message-ja.png (SCREENSHOTS_DIR, as in
test_console.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mailwarden.i18n import catalogue
from mailwarden.model.accounts import Role
from mailwarden.model.policy import parse_organisation_document
from mailwarden.service.accounts import Accounts
from mailwarden.service.hunt import new_hunt
from mailwarden.service.indicators import Indicators
from mailwarden.store.hunts import HuntKind
from tests.dnsserver import DnsServer
from tests.integration.harness import Mailwarden, Sink, eventually, free_port, wait_for_port
from tests.integration.test_console import (
    BLOCKED,
    CLEAN_SUBJECT,
    MALWARE_SUBJECT,
    PASSWORD,
    SPAM_SUBJECT,
    _sync_playwright,
    chromium,
    message,
    signed_in,
)
from tests.integration.test_console_provider import MISSED_SUBJECT, exchange_report, gmail_copy
from tests.integration.test_serve import send
from tests.unit.pipeline.malware.builders import EICAR

pytestmark = pytest.mark.integration

WAIT = 60.0
# what is shown as it is (data), and where text is not words: left out of the visible text checked
DATA = "[translate=no], code, pre, textarea, script, style"
VISIBLE_TEXT = f"""() => {{
  for (const e of document.querySelectorAll({DATA!r})) e.textContent = " ";
  const shown = [...document.querySelectorAll("[title], [placeholder], [aria-label]")]
    .filter(e => !e.closest("[translate=no]")).flatMap(
    e => ["title", "placeholder", "aria-label"].map(a => e.getAttribute(a) || ""));
  return [document.title, document.body.innerText, ...shown].join("\\n");
}}"""
BOUNDED = r"(?<![\w@./-]){}(?![\w@./-])"  # a phrase as words, not part of an address, a path or a longer word


@dataclass
class Site:
    mw: Mailwarden
    url: str
    browser: Any
    hunt_id: str
    screenshots: Path


def english_phrases() -> dict[str, str]:
    """Phrase → key: the literal parts of every English entry whose Japanese differs, at least three letters
    long, and not used by the Japanese catalogue itself (a product or protocol name such as "Microsoft 365")."""
    english, japanese = catalogue("en"), catalogue("ja")
    japanese_text = "\n".join(japanese.values())
    phrases: dict[str, str] = {}
    for key, text in english.items():
        if japanese.get(key) == text:
            continue
        for part in re.split(r"\{[^}]*\}", text):
            phrase = part.strip(" .,:;·()/–-…'\"?!\n")
            if len(re.findall(r"[A-Za-z]", phrase)) < 3:
                continue
            if re.search(BOUNDED.format(re.escape(phrase)), japanese_text):
                continue
            phrases.setdefault(phrase, key)
    return phrases


def raw_keys() -> re.Pattern[str]:
    prefixes = sorted({key.split(".")[0] for key in catalogue("en") if "." in key})
    return re.compile(rf"(?<![\w@./-])(?:{'|'.join(prefixes)})\.[a-z_]+(?:\.[a-z0-9_]+)*(?![\w@/-])")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    _sync_playwright()  # skips (or fails with CI=true) before any server starts
    root = tmp_path_factory.mktemp("japanese")
    dns = DnsServer().start()
    sink = Sink(temporary_failures=1)  # the clean message is deferred once: the queue has a deferred job
    sink.controller.start()
    api_port = free_port()
    url = f"http://127.0.0.1:{api_port}"
    mw = Mailwarden(root, dns_port=dns.port)
    mw.listeners = {"inbound": free_port(), "journal": free_port()}
    mw.extra_config = f'[api]\nhost = "127.0.0.1"\nport = {api_port}\n[console]\npublic_url = "{url}"\n'
    mw.write_config(smart_host=f"127.0.0.1:{sink.port}")
    config = mw.config_path.read_text().replace("first_retry = 0.3\nmax_retry = 1\n", "first_retry = 3600\n")
    mw.config_path.write_text(config.replace("[processing]\n", "[processing]\nscan_processes = 0\n"))
    rt = mw.runtime()
    try:
        rt.db.migrate()
        document = {
            "name": "acme",
            "monitor_only": False,
            "domains": [
                {"name": "example.com", "mode": "gateway", "next_hop": f"127.0.0.1:{sink.port}"},
                {"name": "journal.example", "mode": "journal"},
            ],
            "policy": {
                "spam": {"actions": {"high_confidence_spam": "quarantine"}},
                "lists": {"blocked_senders": [BLOCKED]},
            },
        }
        rt.policies.import_document(parse_organisation_document(document), actor="test")
        accounts = Accounts(rt.db)
        accounts.add_user("aiko", role=Role.ADMIN, email="aiko@example.com", password=PASSWORD, actor="test")
        accounts.add_user("kenji", role=Role.ANALYST, email="soc@example.com", password=PASSWORD, actor="test")
        accounts.add_user("yui", role=Role.USER, email="alice@example.com", password=PASSWORD, actor="test")
        hunt = new_hunt(rt.db, HuntKind.SEARCH, created_by="aiko", indicators=Indicators(senders=(BLOCKED,)))
    finally:
        rt.close()
    mw.start()
    try:
        wait_for_port(api_port)
        for subject, sender, attachment in (
            (CLEAN_SUBJECT, "colleague@partner.example", None),
            (SPAM_SUBJECT, BLOCKED, None),
            (MALWARE_SUBJECT, "billing@partner.example", EICAR),
        ):
            raw = message(subject, sender=sender, to="alice@example.com", text=f"{subject}.\n", attachment=attachment)
            send(mw.listeners["inbound"], sender, ["alice@example.com"], raw)
        journal = mw.listeners["journal"]
        send(
            journal,
            "track@courier.example",
            [mw.journal_address],
            gmail_copy("bob@journal.example", spam="0", phishy="0"),
        )
        send(journal, "", [mw.journal_address], exchange_report("bob@journal.example"))
        eventually(lambda: len(mw.messages()) == 5, timeout=WAIT)
        eventually(lambda: sink.attempts >= 1, timeout=WAIT)
        with chromium(root) as (browser, screenshots):
            yield Site(mw, url, browser, hunt.id, screenshots)
    finally:
        if mw.process is not None:
            mw.stop()
        sink.controller.stop()
        dns.stop()


def test_every_page_in_japanese_has_no_english_phrase_and_no_raw_key(site: Site) -> None:
    page, violations = signed_in(site.browser, site.url, "aiko", locale="ja-JP")
    page.context.add_cookies([{"name": "mw_lang", "value": "ja", "url": site.url}])
    [malware] = site.mw.messages(subject=MALWARE_SUBJECT)
    [missed] = site.mw.messages(subject=MISSED_SUBJECT)
    page.goto(site.url + "/quarantine")
    entry = page.locator("table.quarantine tbody a").first.get_attribute("href")
    assert entry and entry.startswith("/quarantine/")
    paths = [
        "/",
        "/trace",
        f"/trace/{malware.summary.id}",
        f"/trace/{missed.summary.id}",
        "/quarantine",
        entry,
        "/policy",
        "/policy/yaml",
        "/policy/replay",
        "/rules",
        "/lists",
        "/domains",
        "/domains/preview?org=acme",
        "/domains/preview?org=acme&domain=journal.example",
        "/users",
        "/audit",
        "/clawback",
        f"/clawback/campaign?sender={BLOCKED}",
        "/hunts",
        f"/hunts/{site.hunt_id}",
        "/senders",
        "/operations",
        "/reports",
        "/reports/provider",
        "/timezone",
    ]
    phrases, keys = english_phrases(), raw_keys()
    shots = {"/": "dashboard-ja.png", f"/trace/{missed.summary.id}": "message-ja.png"}
    found: dict[str, list[str]] = {}
    for path in paths:
        response = page.goto(site.url + path)
        assert response is not None and response.status == 200, path
        assert page.locator("html").get_attribute("lang") == "ja", path
        if path in shots:  # the README shows the console in Japanese too (before the data is blanked)
            page.screenshot(path=str(site.screenshots / shots[path]), full_page=True)
        found.update(_untranslated(page, path, phrases, keys))
    # answers to forms are pages too: the replay's result, the policy form's inline errors, releasing malware
    page.goto(site.url + "/policy/replay")
    page.click("button[name=intent][value=replay]")
    page.locator("#replay-result").wait_for()
    found.update(_untranslated(page, "/policy/replay (result)", phrases, keys))
    page.goto(site.url + "/policy")
    page.fill("#f-spam-bcl_threshold", "15")
    page.fill("#f-malware-notify_admins", "soc-at-example")
    page.fill("#f-malware-notification_text", "{件名}")  # the placeholders allowed are named, as code
    page.fill("#f-spam-header_name", "Spam")
    page.click("form.policy-form button.primary")
    page.locator("[role=alert]").first.wait_for()
    assert page.locator(".field-error").count() == 4
    found.update(_untranslated(page, "/policy (errors)", phrases, keys))
    page.goto(site.url + "/quarantine")
    page.locator("tr[data-reason=malware] button[name=single][value^=release]").click()
    page.locator("#malware-confirm").wait_for()
    found.update(_untranslated(page, "/quarantine (confirm release)", phrases, keys))
    # an end user sees only the quarantine
    user, _ = signed_in(site.browser, site.url, "yui", locale="ja-JP")
    user.context.add_cookies([{"name": "mw_lang", "value": "ja", "url": site.url}])
    user.goto(site.url + "/quarantine")
    assert user.locator("table.quarantine tbody tr").count() >= 1
    found.update(_untranslated(user, "/quarantine (user)", phrases, keys))
    user.context.close()
    page.context.clear_cookies()
    page.context.add_cookies([{"name": "mw_lang", "value": "ja", "url": site.url}])
    page.goto(site.url + "/login")
    found.update(_untranslated(page, "/login", phrases, keys))
    assert found == {}, "\n".join(f"{path}: {shown}" for path, shown in found.items())
    assert violations == []
    page.context.close()


def _untranslated(page: Any, path: str, phrases: dict[str, str], keys: re.Pattern[str]) -> dict[str, list[str]]:
    """The English phrases (with their keys) and raw keys in the page's visible text, under the page's path."""
    text = page.evaluate(VISIBLE_TEXT)
    shown = [
        f"{phrase} ({key})" for phrase, key in phrases.items() if re.search(BOUNDED.format(re.escape(phrase)), text)
    ]
    shown += [f"raw key {k}" for k in sorted(set(keys.findall(text)))]
    return {path: shown} if shown else {}
