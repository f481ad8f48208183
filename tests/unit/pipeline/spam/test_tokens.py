"""The classifier's tokenizer on messages built for each case."""

from __future__ import annotations

from mailwarden.model.message import Message
from mailwarden.pipeline.spam.tokens import html_to_text, tokenize, words
from tests.factories import build_message


def tokens_of(**kwargs: object) -> frozenset[str]:
    return tokenize(Message(build_message(**kwargs)))  # type: ignore[arg-type]


def test_full_width_text_is_nfkc_normalised_and_case_folded() -> None:
    assert words("ＦＲＥＥ Ｍｏｎｅｙ") == ["free", "money"]


def test_numbers_are_bucketed_and_long_words_shortened() -> None:
    assert words("call 5551234 now") == ["call", "N:7d", "now"]
    (long_word,) = words("a" * 40)
    assert long_word.startswith("L:aaaaaaaaaaaa:") and len(long_word) < 20


def test_japanese_text_gives_character_bigrams() -> None:
    assert words("口座を確認") == ["口座", "座を", "を確", "確認"]
    toks = tokens_of(subject="ご確認ください", text="お客様の口座を確認してください。")
    assert {"口座", "確認", "subj:確認"} <= toks


def test_header_tokens_are_prefixed_with_their_field() -> None:
    toks = tokens_of(
        sender="Big Winner <promo@deals.example.net>",
        subject="You won a prize",
        headers={"Reply-To": "claims@other.example", "X-Mailer": "Microsoft Outlook Express 6.0"},
    )
    assert {"subj:won", "subj:prize", "fromname:winner", "fromdom:deals.example.net"} <= toks
    assert {"rtdom:other.example", "rt:differs", "mua:microsoft", "rcpts:1"} <= toks
    assert "won" not in toks  # subject words are not body words


def test_url_tokens_host_domain_path_and_ip_literals() -> None:
    toks = tokens_of(text="Log in at https://secure.login.example.co.uk/account/verify?id=1 or http://192.0.2.7/x")
    assert {"url:host:secure.login.example.co.uk", "url:dom:example.co.uk", "url:path:verify", "url:query"} <= toks
    assert {"url:https", "url:http", "url:ip"} <= toks
    assert not any(t.startswith("url:host:192") for t in toks)


def test_hidden_html_text_is_marked_and_kept_apart() -> None:
    visible, hidden, features = html_to_text(
        "<html><head><style>p{color:red}</style></head><body><p>Your invoice</p>"
        '<div style="display:none">lorem ipsum filler</div><img src="x.png" alt="Pay now">'
        "<script>var stolen = 1;</script></body></html>"
    )
    assert "invoice" in visible and "Pay now" in visible
    assert "filler" in hidden and "filler" not in visible
    assert "stolen" not in visible and "color" not in visible
    assert {"html:hidden", "html:img"} <= features
    toks = tokens_of(text=None, html='<p>Hello</p><span style="font-size:0;">cheap pills</span>')
    assert {"hello", "hid:cheap", "html:hidden"} <= toks
    assert "cheap" not in toks


def test_recipient_addresses_are_never_learnt() -> None:
    toks = tokens_of(
        to="victim.person@corp.example",
        subject="For phishing@pot only",
        text="Dear victim.person@corp.example, write to help@bank.example or phishing@pot today.",
        html='<a href="https://evil.example/login?user=phishing@pot">here</a>',
    )
    joined = " ".join(toks)
    assert "victim" not in joined and "phishing" not in joined and "pot" not in toks
    assert {"addr:rcpt", "addr:bank.example", "subj:addr:rcpt"} <= toks


def test_osb_pairs_are_optional() -> None:
    message = Message(build_message(text="cheap meds online now"))
    assert not any(" " in t for t in tokenize(message))
    with_osb = tokenize(message, osb=True)
    assert {"cheap meds", "cheap _ online", "cheap __ now"} <= with_osb


def test_userinfo_urls_keep_their_real_host() -> None:
    toks = tokens_of(text="Sign in: http://bank.example@evil.example/phishing@pot/login")
    assert {"url:host:evil.example", "url:userinfo", "url:path:login"} <= toks
    assert not any("bank" in t or "phishing" in t for t in toks if t.startswith("url:"))
