"""The HTML tokenizer reads markup the way html.parser does, and reads on where html.parser gave up."""

from __future__ import annotations

from mailwarden.pipeline.spam.heuristics.markup import MAX_ANCHORS, MAX_DEPTH, MAX_HTML_CHARS, scan_html
from tests.unit.pipeline.spam.heuristics.helpers import codes, mail

HIDDEN = "<div style='display:none'>" + "hidden filler words " * 5 + "</div>"


def test_visible_text_skips_scripts_styles_comments_and_office_sections() -> None:
    scan = scan_html(
        "<html><head><title>T</title><style>p {color: red}</style></head><body>"
        "<!-- a comment --><![if !mso]><p>Hello&nbsp;Bob &amp; Carol</p><![endif]>"
        "<script>document.write('<p>not text</p>')</script><p>a < b</p></body></html>"
    )
    assert scan.visible == ["Hello\xa0Bob & Carol", "a", "<", "b"]


def test_quoted_angle_brackets_and_entities_in_attributes() -> None:
    scan = scan_html('<img alt="a > b" src="https://cdn.example.net/x.png?a=1&amp;b=2" width=1 height=1>')
    assert scan.images == [("https://cdn.example.net/x.png?a=1&b=2", "1", "1", False)]
    assert scan.visible == []


def test_self_closing_anchor_and_an_anchor_without_an_end() -> None:
    scan = scan_html('<a href="https://a.example.net/">one<a/> <a href="https://b.example.net/">two')
    assert [(a.href, a.text.strip()) for a in scan.anchors] == [("", ""), ("https://b.example.net/", "two")]


def test_a_tag_that_never_ends_is_text() -> None:
    scan = scan_html('<p>Pay</p><a href="https://x.example.net/ now')
    assert scan.visible == ["Pay", "<", 'a href="https://x.example.net/ now']
    assert scan.anchors == []


def test_an_unclosed_script_hides_the_rest() -> None:
    assert scan_html("<p>shown</p><script>var a = 1; <p>never shown</p>").visible == ["shown"]


def test_style_passes_to_nested_elements_and_ends_with_its_element() -> None:
    scan = scan_html(
        '<table bgcolor="#FFFFFF"><tr><td><font color="white">same colour as the table</font>'
        '<span style="font-size:0px">tiny</span> seen</td></tr></table>'
    )
    assert scan.hidden_chars == len("same colour as the table")
    assert scan.zero_font_chars == len("tiny")
    assert scan.visible == ["seen"]


def test_an_unknown_marked_section_does_not_stop_the_reading() -> None:
    # a quoted-printable soft break left `<![=` in a real phish; html.parser raised there and the
    # hidden text after it went unseen
    html = "<p>Your parcel</p><![=\nendif]-->" + HIDDEN
    assert scan_html(html).hidden_chars >= 60
    assert "HTML_HIDDEN_TEXT" in codes(mail(text=None, html=html))
    assert "HTML_HIDDEN_TEXT" not in codes(mail(text=None, html="<p>Your parcel</p><![=\nendif]-->"))


def test_a_thousand_unterminated_comments_are_read_once() -> None:
    scan = scan_html("<p>start</p>" + "<!-- x <b>" * 1000)
    assert scan.visible[0] == "start"
    assert len(scan.visible) == 1 + 1000  # each `<!-- x` is text up to its `>`


def test_bounds_on_hostile_markup() -> None:
    deep = scan_html("<div>" * 100_000 + '<span style="display:none">' + "x" * 80 + "</span>")
    assert deep.hidden_chars == 80
    many = scan_html('<a href="https://a.example.net/">x</a>' * (MAX_ANCHORS + 10))
    assert len(many.anchors) == MAX_ANCHORS
    assert len(scan_html("<p>" + "y" * (MAX_HTML_CHARS + 10)).visible[0]) == MAX_HTML_CHARS - 3
    assert MAX_DEPTH >= 64
