"""The classifier's tokenizer on messages built for each case."""

from __future__ import annotations

from mailwarden.model.message import Message
from mailwarden.pipeline.spam.tokens import DEFAULT_FEATURES, degenerate, html_to_text, tokenize, words
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


def test_sender_tokens_name_return_path_and_message_id_domains() -> None:
    toks = tokens_of(
        sender='"service@bank.example" <alerts@mailer.example.net>',
        headers={"Return-Path": "<bounce@bulk.example.org>"},
    )
    assert {"fromorg:example.net", "fromname:address", "rpdom:example.org", "rp:differs"} <= toks
    assert "msgid:otherdom" in toks  # the factory's Message-ID is @example.org
    own = tokens_of(sender="Alice <alice@example.org>", headers={"Return-Path": "<alice@example.org>"})
    assert {"msgid:fromdom", "rpdom:example.org"} <= own and "rp:differs" not in own


def test_received_tokens_skip_the_receiving_site_and_keep_the_senders_relays() -> None:
    received = [
        "from mail.provider.example (mail.provider.example [192.0.2.1]) by localhost with POP3 (fetchmail-5.9)",
        "from smtp.bulk-sender.example (smtp.bulk-sender.example [198.51.100.7]) by mx.provider.example",
        "from workstation (10.0.0.5) by smtp.bulk-sender.example with SMTP",
    ]
    raw = "".join(f"Received: {r}\n" for r in received).encode() + build_message()
    toks = tokenize(Message(raw))
    assert {"rcvd:from:bulk-sender.example", "rcvd:from:bare"} <= toks
    assert not any("provider" in t for t in toks)  # where the mail was collected says nothing of the sender


def test_mail_program_mime_shape_charset_and_encoding() -> None:
    toks = tokens_of(
        text="plain part",
        html="<p>html part</p>",
        headers={"X-Mailer": "Microsoft Outlook Express 6.00.2600.0000"},
    )
    assert {"mua:microsoft", "mua:w:outlook", "mua:microsoft:6"} <= toks
    assert "mime:multipart/alternative(text/plain,text/html)" in toks
    assert {"charset:utf-8", "cte:7bit"} <= toks
    assert not any(t.startswith("subj:enc:") for t in toks)  # a plain ASCII subject
    encoded = tokenize(Message(b"Subject: =?koi8-r?B?8NLJ18XU?=\nFrom: a@example.org\n\nbody text\n"))
    assert "subj:enc:koi8-r:b" in encoded


def test_url_tld_extension_and_link_to_the_senders_own_domain() -> None:
    toks = tokens_of(
        sender="Shop <news@shop.example.com>",
        text="See https://www.shop.example.com/sale and http://a.b.c.login-verify.example.top:8080/x/update.php",
    )
    assert {"url:tld:com", "url:tld:top", "url:fromdom", "url:otherdom", "url:port", "url:ext:php"} <= toks
    assert {"url:deephost", "url:count:1"} <= toks


def test_html_tags_and_attributes_but_not_the_document_skeleton() -> None:
    toks = tokens_of(
        text=None,
        html='<html><head><meta charset="utf-8"></head><body bgcolor="#fff"><font color="red">Act now'
        '</font><form action="https://x.example/p"><input type="password"></form></body></html>',
    )
    assert {"tag:font", "tag:form", "tag:input", "attr:bgcolor", "attr:color", "attr:type", "html:only"} <= toks
    assert not {"tag:html", "tag:head", "tag:body", "tag:meta", "attr:charset"} & toks


def test_shape_tokens_for_money_percent_shouting_and_subject_capitals() -> None:
    toks = tokens_of(subject="FREE CASH INSIDE!!!", text="Earn $500 a day, 100% guaranteed!!")
    assert {"shape:money", "shape:percent", "shape:shout", "subj:shape:caps", "subj:shape:bang"} <= toks
    calm = tokens_of(subject="Minutes of Tuesday's meeting", text="See you then.")
    assert not any(t.startswith(("shape:", "subj:shape:")) for t in calm)


def test_token_groups_can_be_left_out_and_case_kept_on_request() -> None:
    message = Message(build_message(subject="Hello", text="Click HERE for the Offer"))
    plain = tokenize(message, features=frozenset())
    assert not any(t.startswith(("fromorg:", "mime:", "url:count", "len:")) for t in plain)
    assert {"click", "here", "offer"} <= plain
    cased = tokenize(message, features=DEFAULT_FEATURES | {"case"})
    assert {"Click", "HERE", "Offer", "for"} <= cased and "here" not in cased
    assert degenerate("HERE") == "here" and degenerate("here") is None and degenerate("subj:Re") is None


def test_words_after_padding_are_still_tokens() -> None:
    from mailwarden.model import Message
    from mailwarden.pipeline.spam.tokens import tokenize
    from tests.factories import build_message

    text = "filler " * 100_000 + "zorblaxian viagra offer\n"
    tokens = tokenize(Message(build_message(text=text)))
    assert "zorblaxian" in tokens and "filler" in tokens


def test_bounded_keeps_head_and_tail_within_the_limit() -> None:
    from mailwarden.model.message import bounded

    assert bounded("short", 10) == "short"
    cut = bounded("a" * 50 + "b" * 50, 21)
    assert len(cut) == 21 and cut.startswith("a" * 10) and cut.endswith("b" * 10)
    assert bounded("abcdef", 1) == "a" and bounded("abcdef", 0) == ""


LIST_HEADERS = {
    "List-Id": "Example users <users.lists.example.org>",
    "List-Post": "<mailto:users@lists.example.org>",
    "List-Unsubscribe": "<https://lists.example.org/mailman/listinfo/users>, <mailto:users-leave@lists.example.org>",
}
LIST_FOOTER = (
    "\n_______________________________________________\n"
    "users mailing list -- users@lists.example.org\n"
    "maintainer manual: https://lists.example.org/mailman/listinfo/users\n"
)


def test_a_list_posts_footer_subject_tag_and_list_links_give_no_tokens() -> None:
    """Spam relayed through a list must not read as ham because of the footer every post of the list has."""
    body = "Cheap watches, best replica prices\n-- \nJoe\n" + LIST_FOOTER
    toks = tokens_of(subject="[Users] Re: [Users] replica offer", text=body, headers=LIST_HEADERS)
    assert {"list:post", "cheap", "replica", "joe", "subj:replica", "subj:offer"} <= toks  # signature kept
    assert (
        not {"maintainer", "manual", "mailing", "subj:users", "url:path:listinfo", "url:host:lists.example.org"} & toks
    )


def test_list_id_alone_is_not_a_list_post_and_keeps_its_footer() -> None:
    """An ESP's newsletter carries List-Id and List-Unsubscribe too; its footer is the sender's own words."""
    headers = {"List-Id": "<news.shop.example>", "List-Unsubscribe": "<https://shop.example/unsub>"}
    toks = tokens_of(
        subject="[Shop] news", text="Our offers\n--\nunsubscribe at https://shop.example/unsub\n", headers=headers
    )
    assert "list:post" not in toks
    assert {"unsubscribe", "subj:shop", "url:host:shop.example"} <= toks


def test_a_footer_that_does_not_name_the_list_is_kept() -> None:
    toks = tokens_of(text="Meeting at noon\n__________\nAcme Ltd, registered in Nowhere\n", headers=LIST_HEADERS)
    assert {"list:post", "acme", "registered"} <= toks


def test_a_post_of_a_list_that_writes_no_list_links_loses_its_footer_too() -> None:
    """Mailman 1 wrote List-Id and X-BeenThere but no List-Post; Yahoo Groups wrote Mailing-List only."""
    footer = "\n-- \nUsers group: users@lists.example.org\nhttp://lists.example.org/ for subscription information\n"
    mailman1 = {
        "List-Id": "<users.lists.example.org>",
        "X-Mailman-Version": "1.1",
        "X-BeenThere": "users@lists.example.org",
    }
    yahoo = {"Mailing-List": "list users@lists.example.org; contact users-owner@lists.example.org"}
    for headers in (mailman1, yahoo):
        toks = tokens_of(text="Cheap replica watches\n" + footer, headers=headers)
        assert {"list:post", "cheap", "replica"} <= toks
        assert not {"subscription", "information", "group"} & toks
