"""Authentication-Results: what we write parses back; what providers write parses at all."""

from __future__ import annotations

from mailwarden.mail.authresults import AuthResult, build, parse, select_trusted

EXCHANGE = (
    "spf=fail (sender IP is 198.51.100.7)\r\n smtp.mailfrom=vendor.example.net; dkim=none (message not signed)\r\n"
    " header.d=none;dmarc=fail action=none header.from=vendor.example.net;compauth=fail reason=001"
)
GMAIL_AAR = (
    "i=1; mx.google.com; spf=fail smtp.mailfrom=vendor.example.net;\r\n"
    "       dmarc=fail (p=NONE) header.from=vendor.example.net"
)


def test_round_trip() -> None:
    results = [
        AuthResult(
            "spf", "pass", "192.0.2.1 matched ip4:192.0.2.0/24", properties=(("smtp.mailfrom", "a@example.org"),)
        ),
        AuthResult(
            "dkim", "fail", "body hash (mismatch)", properties=(("header.d", "example.org"), ("header.s", "s1"))
        ),
        AuthResult("dmarc", "fail", "p=reject dis=reject", properties=(("header.from", "example.org"),)),
        AuthResult("arc", "none", 'a "quoted" word; and a semicolon'),
        AuthResult("x-odd", "pass", properties=(("header.x", "a value; with space"),)),
    ]
    text = build("mw.example.com", results)
    parsed = parse(text)
    assert parsed.authserv_id == "mw.example.com"
    assert parsed.results == tuple(results)
    assert parse(build("mw.example.com", [])).results == ()


def test_exchange_header_without_authserv_id() -> None:
    parsed = parse(EXCHANGE)
    assert parsed.authserv_id is None
    assert [(r.method, r.result) for r in parsed.results] == [
        ("spf", "fail"),
        ("dkim", "none"),
        ("dmarc", "fail"),
        ("compauth", "fail"),
    ]
    spf = parsed.first("spf")
    assert spf is not None and spf.comment == "sender IP is 198.51.100.7"
    assert spf.get("smtp.mailfrom") == "vendor.example.net"
    dmarc = parsed.first("dmarc")
    assert dmarc is not None and dmarc.get("action") == "none" and dmarc.get("header.from") == "vendor.example.net"
    compauth = parsed.first("compauth")
    assert compauth is not None and compauth.reason == "001"


def test_arc_authentication_results_and_versions() -> None:
    parsed = parse(GMAIL_AAR, arc=True)
    assert (parsed.instance, parsed.authserv_id) == (1, "mx.google.com")
    assert parsed.first("dmarc") is not None and parsed.first("dmarc").comment == "p=NONE"  # type: ignore[union-attr]
    versioned = parse("mx.example.com 1; auth=pass (cram-md5) smtp.auth=sender@example.com; spf/1=pass")
    assert (versioned.authserv_id, versioned.version) == ("mx.example.com", "1")
    assert [r.method for r in versioned.results] == ["auth", "spf"]
    assert parse("example.org; none").results == ()
    assert parse("garbage ((( unterminated").results == ()


def test_select_trusted_takes_only_the_topmost_trusted() -> None:
    headers = [
        "mx.untrusted.example; spf=pass smtp.mailfrom=evil.example",
        "mx.google.com; spf=softfail smtp.mailfrom=vendor.example.net",
        "mx.google.com; spf=pass smtp.mailfrom=vendor.example.net",  # lower: could be forged by the sender
    ]
    chosen = select_trusted(headers, [], ["mx.google.com"])
    assert chosen is not None and chosen.first("spf").result == "softfail"  # type: ignore[union-attr]
    assert select_trusted(headers[:1], [], ["mx.google.com"]) is None
    assert select_trusted([EXCHANGE], [], ["mx.microsoft.com"]) is None
    first = select_trusted([EXCHANGE, headers[0]], [], [], trust_first=True)
    assert first is not None and first.authserv_id is None
    sealed = select_trusted([], [GMAIL_AAR], ["mx.google.com"])
    assert sealed is not None and sealed.instance == 1
