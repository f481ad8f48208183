"""The policy as a form: every bad field shown next to its input at once, in the reader's language, nothing
saved while any is bad; the free-text settings (header, subject prefix, alert and notice texts, file types,
digests, scheduled reports) too; a stale form saves nothing; analysts read it only; the YAML editor stays
beside it."""

from __future__ import annotations

import html
import re

from fastapi.testclient import TestClient

from mailwarden.model.policy import (
    DEFAULT_NOTIFICATION_TEXT,
    EndUserAccess,
    NotificationFrequency,
    ReportFrequency,
    SpamVerdictAction,
)
from mailwarden.store.audit import AuditLog
from tests.unit.console.test_console import Setup, csrf_of, setup, sign_in

__all__ = ["setup"]  # the fixture, shared with test_console


def form_of(page: str) -> dict[str, str]:
    """What the browser would submit for the form as shown: every input's value, boxes when ticked."""
    form = page[page.index('class="policy-form"') :]
    data: dict[str, str] = {}
    for tag in re.findall(r"<input [^>]*>", form):
        name = re.search(r'name="([^"]+)"', tag)
        if name is None or ('type="checkbox"' in tag and " checked" not in tag):
            continue
        value = re.search(r'value="([^"]*)"', tag)
        data[name.group(1)] = html.unescape(value.group(1)) if value else "on"
    for name, options in re.findall(r'<select [^>]*name="([^"]+)"[^>]*>(.*?)</select>', form, re.S):
        data[name] = re.search(r'<option value="([^"]*)" selected', options).group(1)  # type: ignore[union-attr]
    for name, text in re.findall(r'<textarea [^>]*name="([^"]+)"[^>]*>(.*?)</textarea>', form, re.S):
        data[name] = html.unescape(text.removeprefix("\n"))  # the parser drops a newline right after the tag
    return data


def error_next_to(page: str, path: str) -> str:
    """The text of the inline error shown under the input of `path` ('' when none)."""
    found = re.search(r'id="f-{}-error">(.*?)</small>'.format(re.escape(path.replace(".", "-"))), page, re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(1))) if found else ""


def test_an_admin_changes_settings_through_the_form(setup: Setup) -> None:
    client = sign_in(setup.client(), "admin")
    page = client.get("/policy").text
    assert 'href="/policy/yaml?org=corp"' in page and "Advanced (YAML)" in page
    assert 'min="1" max="9"' in page  # the bounds come from the model
    data = form_of(page)
    data.update(
        {"spam.bcl_threshold": "5", "spam.actions.bulk": "quarantine", "quarantine_permissions.bulk": "request"}
    )
    data["malware.notify_admins"] = "soc@corp.example\nit@corp.example"
    data.pop("spam.mark_bulk_as_spam")  # the box unticked
    saved = client.post("/policy", data=data)
    assert "Saved (version" in saved.text
    policy = setup.rt.policies.get_policy("corp")
    assert policy.spam.bcl_threshold == 5 and policy.spam.actions.bulk is SpamVerdictAction.QUARANTINE
    assert policy.quarantine_permissions.bulk is EndUserAccess.REQUEST
    assert policy.malware.notify_admins == ("soc@corp.example", "it@corp.example")
    assert policy.spam.mark_bulk_as_spam is False
    assert policy.clawback == type(policy.clawback)()  # what the form did not change stays as it was
    (newest,) = AuditLog(setup.rt.db).newest(limit=1)
    assert newest["action"] == "organisation.import" and newest["actor"] == "admin"


def test_every_bad_field_is_shown_next_to_its_input_and_nothing_is_saved(setup: Setup) -> None:
    client = sign_in(setup.client(), "admin")
    before = setup.rt.policies.policy_version("corp")
    data = form_of(client.get("/policy").text)
    data.update({"spam.bcl_threshold": "12", "malware.notify_admins": "soc@corp.example\nnot-an-address",
                 "quarantine_retention.spam": "ten", "spam.actions.bulk": "junk"})  # fmt: skip
    page = client.post("/policy", data=data).text
    assert "Fix the 3 problems shown below" in page
    assert error_next_to(page, "spam.bcl_threshold") == "must be between 1 and 9"
    assert error_next_to(page, "malware.notify_admins") == "“not-an-address” is not an e-mail address"
    assert error_next_to(page, "quarantine_retention.spam").startswith("must be a whole number")
    assert error_next_to(page, "spam.actions.bulk") == ""
    assert 'value="12"' in page  # what was typed stays to be corrected
    assert setup.rt.policies.policy_version("corp") == before
    assert setup.rt.policies.get_policy("corp").spam.bcl_threshold == 7


def test_the_inline_errors_are_in_japanese_for_a_japanese_reader(setup: Setup) -> None:
    client = sign_in(setup.client(language="ja"), "admin")
    page = client.get("/policy").text
    assert "詳細 (YAML)" in page and "バルクのしきい値 (BCL)" in page
    data = form_of(page)
    data.update({"spam.bcl_threshold": "0", "outbound_spam.notify_admins": "admin@"})
    page = client.post("/policy", data=data).text
    assert error_next_to(page, "spam.bcl_threshold") == "1 から 9 までの値にしてください"
    assert error_next_to(page, "outbound_spam.notify_admins") == "「admin@」はメールアドレスではありません"
    assert "2 件の問題" in page


def test_the_form_sent_back_unchanged_changes_no_setting(setup: Setup) -> None:
    client = sign_in(setup.client(), "admin")
    before = setup.rt.policies.get_policy("corp")
    assert "Saved (version" in client.post("/policy", data=form_of(client.get("/policy").text)).text
    after = setup.rt.policies.get_policy("corp")
    assert after == before  # the texts too: the subject prefix's trailing space, the notice's lines
    assert after.spam.subject_prefix == "[SPAM] " and after.malware.notification_text == DEFAULT_NOTIFICATION_TEXT


def test_an_admin_changes_the_free_text_settings_through_the_form(setup: Setup) -> None:
    client = sign_in(setup.client(), "admin")
    page = client.get("/policy").text
    # a text the model lets be long is a text area, a short one a line; the help names the placeholders
    assert '<textarea id="f-malware-notification_text" name="malware.notification_text" rows="8"' in page
    assert '<textarea id="f-malware-alert_text" name="malware.alert_text" rows="8"' in page
    assert '<input type="text" id="f-malware-notification_subject"' in page
    assert '<input type="text" id="f-spam-header_name" name="spam.header_name" value="X-This-Is-Spam"' in page
    assert '<code translate="no">{subject}</code>, <code translate="no">{sender}</code>' in page
    assert "At most 8000 characters." in page
    assert (
        '<option value="ja" >日本語</option>' in page and '<option value="4h" selected>Every 4 hours</option>' in page
    )
    data = form_of(page)
    data.update(
        {
            "spam.header_name": "X-Corp-Spam",
            "spam.header_value": "yes",
            "spam.subject_prefix": "[JUNK] ",
            "malware.alert_text": "Removed: malware.",
            "malware.blocked_file_types": "EXE\r\n.iso\r\n\r\nzip",
            "malware.notification_subject": "Malware for {recipients}",
            "malware.notification_text": "Found {malware} in {subject}\r\nfrom {sender}\r\n",
            "notifications.frequency": "daily",
            "notifications.sender": "digest@corp.example",
            "notifications.language": "ja",
            "reports.recipients": "soc@corp.example\r\nboss@corp.example",
            "reports.every": "daily",
            "reports.language": "ja",
        }
    )
    data.pop("notifications.enabled")  # the box unticked
    assert "Saved (version" in client.post("/policy", data=data).text
    policy = setup.rt.policies.get_policy("corp")
    assert (policy.spam.header_name, policy.spam.header_value) == ("X-Corp-Spam", "yes")
    assert policy.spam.subject_prefix == "[JUNK] "  # as typed, its space kept
    assert policy.malware.alert_text == "Removed: malware."
    assert policy.malware.blocked_file_types == ("exe", "iso", "zip")
    assert policy.malware.notification_subject == "Malware for {recipients}"
    assert policy.malware.notification_text == "Found {malware} in {subject}\nfrom {sender}\n"  # CR LF as LF
    assert policy.notifications.enabled is False and policy.notifications.frequency is NotificationFrequency.DAILY
    assert (policy.notifications.sender, policy.notifications.language) == ("digest@corp.example", "ja")
    assert policy.reports.recipients == ("soc@corp.example", "boss@corp.example")
    assert policy.reports.every is ReportFrequency.DAILY and policy.reports.language == "ja"
    page = client.get("/policy").text
    assert "zip</textarea>" in page and 'value="Malware for {recipients}"' in page
    data = form_of(page) | {"notifications.sender": "  "}
    assert "Saved (version" in client.post("/policy", data=data).text
    assert setup.rt.policies.get_policy("corp").notifications.sender is None  # empty: the built-in sender


def test_every_bad_free_text_is_said_in_plain_words_next_to_its_input(setup: Setup) -> None:
    client = sign_in(setup.client(), "admin")
    before = setup.rt.policies.policy_version("corp")
    data = form_of(client.get("/policy").text)
    data.update(
        {
            "spam.header_name": "Spam Flag",
            "spam.header_value": "x" * 201,
            "malware.alert_text": "",
            "malware.notification_subject": "Malware {",
            "malware.notification_text": "Found {malware} for {recipient}",
            "notifications.sender": "digests",
            "reports.recipients": "soc@corp.example\nsoc",
        }
    )
    page = client.post("/policy", data=data).text
    assert "Fix the 7 problems shown below" in page
    assert error_next_to(page, "spam.header_name") == (
        "must be X- followed by letters, digits and hyphens (at most 60), such as X-This-Is-Spam"
    )
    assert error_next_to(page, "spam.header_value") == "is too long (at most 200 characters)"
    assert error_next_to(page, "malware.alert_text") == "must not be empty"
    allowed = "{subject}, {sender}, {recipients}, {malware}, {action}, {message_id}, {received}"
    assert error_next_to(page, "malware.notification_text") == (
        f"{{recipient}} cannot be used here; the placeholders are {allowed}"
    )
    assert error_next_to(page, "malware.notification_subject") == (
        f"has braces that do not make a placeholder; the placeholders are {allowed}, and a brace meant as text "
        "is written twice ({{, }})"
    )
    assert error_next_to(page, "notifications.sender") == "“digests” is not an e-mail address"
    assert error_next_to(page, "reports.recipients") == "“soc” is not an e-mail address"
    assert "Found {malware} for {recipient}</textarea>" in page  # what was typed stays to be corrected
    assert setup.rt.policies.policy_version("corp") == before


def test_the_free_text_errors_are_in_japanese_for_a_japanese_reader(setup: Setup) -> None:
    client = sign_in(setup.client(language="ja"), "admin")
    page = client.get("/policy").text
    assert "通知の本文" in page and "送信時に置き換えられるもの" in page and "検疫ダイジェスト" in page
    data = form_of(page) | {"malware.notification_text": "{件名}", "spam.header_name": "X_Spam"}
    page = client.post("/policy", data=data).text
    assert error_next_to(page, "malware.notification_text").startswith(
        "{件名} はここでは使えません。使えるプレースホルダーは {subject}, {sender},"
    )
    assert error_next_to(page, "spam.header_name").startswith("X- に続けて英字・数字・ハイフン")
    assert "2 件の問題" in page


def test_a_check_across_settings_is_listed_above_the_form(setup: Setup) -> None:
    client = sign_in(setup.client(), "admin")
    data = form_of(client.get("/policy").text) | {"spam.actions.spam": "redirect"}
    page = client.post("/policy", data=data).text
    assert "redirect_to must list at least one address" in page
    assert setup.rt.policies.get_policy("corp").spam.actions.spam is SpamVerdictAction.JUNK
    data["spam.redirect_to"] = "review@corp.example"
    assert "Saved (version" in client.post("/policy", data=data).text
    assert setup.rt.policies.get_policy("corp").spam.redirect_to == ("review@corp.example",)


def test_a_form_made_before_someone_elses_change_saves_nothing(setup: Setup) -> None:
    client = sign_in(setup.client(), "admin")
    data = form_of(client.get("/policy").text)
    other = sign_in(setup.client(), "admin")
    theirs = form_of(other.get("/policy").text) | {"spam.bcl_threshold": "4"}
    assert "Saved" in other.post("/policy", data=theirs).text
    data["spam.actions.spam"] = "quarantine"
    page = client.post("/policy", data=data).text
    assert "changed by someone else since" in page
    policy = setup.rt.policies.get_policy("corp")
    assert policy.spam.bcl_threshold == 4 and policy.spam.actions.spam is SpamVerdictAction.JUNK
    again = client.post("/policy", data=data).text  # sending the same stale form again still changes nothing
    assert "changed by someone else since" in again
    assert setup.rt.policies.get_policy("corp").spam.actions.spam is SpamVerdictAction.JUNK


def test_an_analyst_sees_the_form_read_only_and_cannot_save(setup: Setup) -> None:
    client: TestClient = sign_in(setup.client(), "analyst")
    page = client.get("/policy").text
    assert "only administrators change the policy" in page
    assert 'name="spam.bcl_threshold" value="7" step="1" min="1" max="9" readonly' in page
    assert re.search(r'<select id="f-spam-actions-bulk" name="spam.actions.bulk" disabled', page)
    assert ">Save</button>" not in page
    data = {"csrf_token": csrf_of(page), "version": "1", "spam.bcl_threshold": "3"}
    assert client.post("/policy", data=data).status_code == 403
    assert setup.rt.policies.get_policy("corp").spam.bcl_threshold == 7


def test_the_yaml_editor_stays_as_the_advanced_view(setup: Setup) -> None:
    client = sign_in(setup.client(), "admin")
    page = client.get("/policy/yaml").text
    assert "bcl_threshold: 7" in page and 'href="/policy?org=corp"' in page
    text = re.search(r'<textarea name="document"[^>]*>(.*?)</textarea>', page, re.S).group(1)  # type: ignore[union-attr]
    text = text.replace("bcl_threshold: 7", "bcl_threshold: 6").replace("&#39;", "'").replace("&#34;", '"')
    version = re.search(r'name="version" value="(\d+)"', page).group(1)  # type: ignore[union-attr]
    saved = client.post("/policy/yaml", data={"csrf_token": csrf_of(page), "version": version, "document": text})
    assert "Saved (version" in saved.text
    assert setup.rt.policies.get_policy("corp").spam.bcl_threshold == 6
