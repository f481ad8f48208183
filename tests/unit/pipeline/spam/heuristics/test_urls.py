from __future__ import annotations

from mailwarden.pipeline.spam.heuristics.urls import shown_domain
from tests.unit.pipeline.spam.heuristics.helpers import codes, mail


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


def test_free_hosting_and_form_builders() -> None:
    assert "PHISH_URL_FREE_HOSTING" in codes(mail(text="Open https://mailbox-upgrade.web.app/"))
    assert "PHISH_URL_FREE_HOSTING" in codes(mail(text="Fill in https://forms.gle/abc123"))
    assert "PHISH_URL_FREE_HOSTING" not in codes(mail(text="Open https://www.example.net/app"))


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
