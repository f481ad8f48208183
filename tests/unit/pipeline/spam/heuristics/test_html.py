from __future__ import annotations

from mailwarden.pipeline.spam.heuristics.html import mixed_script_words
from tests.unit.pipeline.spam.heuristics.helpers import codes, mail

PLAIN_HTML = "<html><body><p>Hello Bob,</p><p>the minutes of Tuesday's meeting are below.</p></body></html>"


def test_ordinary_html_alternative_fires_nothing() -> None:
    found = codes(mail(text="Hello Bob, the minutes are below.", html=PLAIN_HTML))
    assert not {c for c in found if c.startswith(("HTML_", "PHISH_HTML", "MIXED"))}


def test_hidden_text_by_css_and_by_colour() -> None:
    filler = "lorem ipsum dolor sit amet " * 4
    by_css = f'<p>Pay now</p><div style="display:none">{filler}</div>'
    by_colour = f'<body style="background-color:#fff"><p>Pay now</p><span style="color:#ffffff">{filler}</span></body>'
    assert "HTML_HIDDEN_TEXT" in codes(mail(text=None, html=by_css))
    assert "HTML_HIDDEN_TEXT" in codes(mail(text=None, html=by_colour))
    short = '<p>Pay now</p><div style="display:none">preheader</div>'
    assert "HTML_HIDDEN_TEXT" not in codes(mail(text=None, html=short))


def test_zero_size_font() -> None:
    html = '<p>Invoice attached</p><span style="font-size:0px">' + "padding words here " * 3 + "</span>"
    assert "HTML_ZERO_FONT" in codes(mail(text=None, html=html))
    assert "HTML_ZERO_FONT" not in codes(mail(text=None, html='<p style="font-size:14px">Invoice attached</p>'))


def test_image_only_and_html_only() -> None:
    image = '<a href="https://shop.example.net/"><img src="https://cdn.example.net/offer.png" width="600"></a>'
    found = codes(mail(text=None, html=image))
    assert {"HTML_IMAGE_ONLY", "HTML_ONLY"} <= found
    assert not {"HTML_IMAGE_ONLY", "HTML_ONLY"} & codes(mail(text="Minutes below.", html=PLAIN_HTML))


def test_form_that_asks_for_a_password_but_not_a_search_box() -> None:
    login = '<form action="https://login.example.org/p" method="post"><input type="password" name="pw"></form>'
    search = '<form action="https://www.example.net/search" method="get"><input name="q"></form>'
    assert {"PHISH_HTML_FORM", "PHISH_HTML_PASSWORD_FORM"} <= codes(mail(text=None, html=login))
    assert not {"PHISH_HTML_FORM", "PHISH_HTML_PASSWORD_FORM"} & codes(mail(text=None, html=search))


def test_external_script() -> None:
    assert "HTML_EXTERNAL_SCRIPT" in codes(mail(html='<script src="https://cdn.example.org/x.js"></script><p>x</p>'))
    assert "HTML_EXTERNAL_SCRIPT" not in codes(mail(html="<p>no scripts</p>"))


def test_letters_as_numeric_entities() -> None:
    word = "".join(f"&#{ord(c)};" for c in "Password")
    assert "HTML_ENTITY_OBFUSCATION" in codes(mail(text=None, html=f"<p>{word} expired</p>"))
    assert "HTML_ENTITY_OBFUSCATION" not in codes(mail(text=None, html="<p>Caf&#233; &amp; bar &#8364;5</p>"))


def test_zero_width_characters_inside_words() -> None:
    assert "HTML_ZERO_WIDTH" in codes(mail(text="Your pass\u200bword exp\u200cires today"))
    assert "HTML_ZERO_WIDTH" not in codes(mail(text="Your password expires in the usual way"))


def test_mixed_scripts_in_one_word() -> None:
    assert mixed_script_words("Pay with P\u0430yPal now") == ["P\u0430yPal"]  # Cyrillic a
    assert mixed_script_words("Привет, Bob: καλημέρα") == []
    assert "MIXED_SCRIPT_WORD" in codes(mail(text="Sign in to your \u0430ccount"))
