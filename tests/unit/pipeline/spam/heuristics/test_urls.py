from __future__ import annotations

import pytest

from mailwarden.errors import ConfigError
from mailwarden.pipeline.spam.heuristics import Heuristics
from mailwarden.pipeline.spam.heuristics.urls import shown_domain
from tests.unit.pipeline.spam.heuristics.helpers import LIST_POST, codes, mail


def link(href: str, text: str = "click here") -> str:
    return f'<p>Details: <a href="{href}">{text}</a></p>'


def test_ordinary_link_fires_no_url_symbol() -> None:
    found = codes(mail(html=link("https://www.example.net/minutes", "www.example.net/minutes")))
    assert not {c for c in found if "URL" in c or c == "PHISH_ANCHOR_MISMATCH"}


def test_ip_literal_host() -> None:
    assert "PHISH_URL_IP_HOST" in codes(mail(text="Log in: http://192.0.2.44/login"))
    assert "PHISH_URL_IP_HOST" not in codes(mail(text="Log in: https://portal.example.net/login"))


def test_shortener() -> None:
    assert "PHISH_URL_SHORTENER" in codes(mail(text="See https://bit.ly/3abcdef"))
    assert "PHISH_URL_SHORTENER" not in codes(mail(text="See https://bitly.example.net/3abcdef"))


def test_anchor_text_showing_another_domain() -> None:
    bad = link("https://collect.example.org/x", "https://www.example.com/account")
    good = link("https://www.example.com/account?utm=1", "www.example.com")
    assert "PHISH_ANCHOR_MISMATCH" in codes(mail(html=bad))
    assert "PHISH_ANCHOR_MISMATCH" not in codes(mail(html=good))
    assert shown_domain("invoice.pdf") is None
    assert shown_domain("Click here") is None


def test_suspicious_tld_and_punycode() -> None:
    assert "PHISH_URL_SUSPICIOUS_TLD" in codes(mail(text="https://secure-update.example.top/"))
    assert "PHISH_URL_PUNYCODE" in codes(mail(text="https://xn--exmple-cua.com/"))
    assert not {"PHISH_URL_SUSPICIOUS_TLD", "PHISH_URL_PUNYCODE"} & codes(mail(text="https://www.example.org/"))


def test_many_domains() -> None:
    many = " ".join(f"https://site{i}.example{i}.net/" for i in range(12))
    assert "URL_MANY_DOMAINS" in codes(mail(text=many))
    assert "URL_MANY_DOMAINS" not in codes(mail(text="https://a.example.net/ https://b.example.net/"))


def test_userinfo_trick() -> None:
    assert "PHISH_URL_USERINFO" in codes(mail(text="https://www.example.com@collect.example.org/login"))
    assert "PHISH_URL_USERINFO" not in codes(mail(text="https://www.example.com/login?user=bob"))


def test_data_uri() -> None:
    assert "PHISH_URL_DATA_URI" in codes(mail(html=link("data:text/html;base64,PGgxPg==")))
    assert "PHISH_URL_DATA_URI" not in codes(mail(html=link("https://www.example.net/")))


def test_free_hosting_counts_only_beside_a_lure_or_concealment() -> None:
    survey = "Please fill in our user survey: https://forms.office.com/r/abc123"
    assert codes(mail(text=survey)) & {"URL_FREE_HOSTING", "PHISH_URL_FREE_HOSTING"} == {"URL_FREE_HOSTING"}
    lure = "Your mailbox is full. Verify your account at https://mailbox-upgrade.web.app/ within 24 hours."
    assert "PHISH_URL_FREE_HOSTING" in codes(mail(text=lure))
    shared = mail(text="See the document https://docs.google.com/document/d/1abc", headers={"From": "a@gmail.com"})
    found = dict(Heuristics().symbols(shared))
    assert found["PHISH_URL_FREE_HOSTING"] == "docs.google.com with a freemail sender"
    assert not {"URL_FREE_HOSTING", "PHISH_URL_FREE_HOSTING"} & codes(mail(text="Open https://www.example.net/app"))


def test_free_hosting_link_of_a_list_member_is_list_business() -> None:
    post = mail(
        text="Slides from the meeting: https://drive.google.com/file/d/1abc/view",
        headers={"From": "Bob <bob@gmail.com>", **LIST_POST},
    )
    assert "PHISH_URL_FREE_HOSTING" not in codes(post)


def test_free_hosting_turned_off_context_is_no_context() -> None:
    lure = mail(text="Verify your account at https://mailbox-upgrade.web.app/")
    h = Heuristics.from_config({"weights": {"PHISH_CREDENTIAL_WORDING": 0}})
    assert "PHISH_URL_FREE_HOSTING" not in {f.code for f in h.evaluate(lure)}


def test_links_through_a_tracker_are_judged_by_their_target() -> None:
    google = link("https://www.google.com/url?q=https://collect.example.org/login&sa=D", "www.example.com")
    safelinks = link(
        "https://eur01.safelinks.protection.outlook.com/?url=https%3A%2F%2Fwww.example.com%2Fdocs&data=05",
        "https://www.example.com/docs",
    )
    ses = link("https://abc.r.us-east-1.awstrack.me/L0/https:%2F%2Fcollect.example.org%2Fx/1/0100abc=", "example.com")
    assert "PHISH_ANCHOR_MISMATCH" in codes(mail(html=google))
    assert "PHISH_ANCHOR_MISMATCH" not in codes(mail(html=safelinks))
    assert dict(Heuristics().symbols(mail(html=ses)))["PHISH_ANCHOR_MISMATCH"] == "example.com -> collect.example.org"
    # the target's own host is judged like any link's
    via_google = mail(text="https://www.google.com/url?q=https://bit.ly/3abcdef")
    assert "PHISH_URL_SHORTENER" in codes(via_google)


def test_opaque_tracker_links_are_no_mismatch() -> None:
    mailchimp = link("https://example.us1.list-manage.com/track/click?u=1a2b&id=3c4d&e=5e6f", "www.example.org")
    sendgrid = link("https://u123.ct.sendgrid.net/ls/click?upn=opaque-token-AbCdEf", "https://www.example.org/")
    assert "PHISH_ANCHOR_MISMATCH" not in codes(mail(html=mailchimp))
    assert "PHISH_ANCHOR_MISMATCH" not in codes(mail(html=sendgrid))
    # google.com is a tracker only under /url: elsewhere it is an ordinary host
    assert "PHISH_ANCHOR_MISMATCH" in codes(mail(html=link("https://www.google.com/maps", "www.example.org")))


def test_click_trackers_are_a_setting() -> None:
    href = link("https://click.tracker.example.net/c/opaque123", "www.example.org")
    assert "PHISH_ANCHOR_MISMATCH" in codes(mail(html=href))
    h = Heuristics.from_config({"click_trackers": ["tracker.example.net"]})
    assert "PHISH_ANCHOR_MISMATCH" not in {f.code for f in h.evaluate(mail(html=href))}
    with pytest.raises(ConfigError):
        Heuristics.from_config({"click_trackers": "tracker.example.net"})


def test_link_protection_rewrites_and_file_names_are_not_mismatches() -> None:
    rewritten = link("https://url.eu.m.mimecastprotect.com/s/abc", "https://www.example.com/docs")
    file_name = link("https://git.example.net/tree/worker.js", "worker.js")
    assert "PHISH_ANCHOR_MISMATCH" not in codes(mail(html=rewritten))
    assert "PHISH_ANCHOR_MISMATCH" not in codes(mail(html=file_name))
    assert shown_domain("example.com") == "example.com"
    assert shown_domain("detector.sv") is None


def test_hosts_of_links_in_their_many_spellings() -> None:
    from mailwarden.pipeline.spam.heuristics.view import host_of

    assert host_of("HTTPS://WWW.Example.NET:8443/a?b#c") == "www.example.net"
    assert host_of("http://example.net.") == "example.net"
    assert host_of("www.example.net/x") == "www.example.net"
    assert host_of("https://user:pw@login.example.org/") == "login.example.org"
    assert host_of("http://[2001:db8::1]:80/") == "2001:db8::1"
    assert host_of("http://[::1/") == ""  # urlsplit refuses it
    assert "PHISH_URL_IP_HOST" in codes(mail(html=link("http://[2001:db8::1]/invoice")))
    assert "PHISH_URL_USERINFO" in codes(mail(text="Open https://paypal.com@login.example.org/"))


def test_click_trackers_from_the_spam_stage_config() -> None:
    from mailwarden.pipeline.spam.stage import SpamConfig

    section = SpamConfig.model_validate({"click_trackers": ["tracker.example.net"]}).heuristics_section()
    assert Heuristics.from_config(section).settings.click_trackers == frozenset({"tracker.example.net"})
