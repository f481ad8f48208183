"""The language choice, the catalogues, and the SVG charts' escaping."""

from __future__ import annotations

import re
import string

from mailwarden.console import charts
from mailwarden.console.i18n import Translator, negotiate
from mailwarden.i18n import catalogue

EN, JA = catalogue("en"), catalogue("ja")


def test_the_cookie_wins_then_the_browsers_preference() -> None:
    assert negotiate("ja-JP,ja;q=0.9,en;q=0.8", None) == "ja"
    assert negotiate("fr-FR, en-GB;q=0.5, ja;q=0.4", None) == "en"
    assert negotiate("en;q=0.3, ja;q=0.7", None) == "ja"
    assert negotiate("de, fr", None) == "en"
    assert negotiate(None, None) == "en"
    assert negotiate("en", "ja") == "ja"
    assert negotiate("ja", "xx") == "ja"  # a cookie naming no language of ours is ignored


def test_both_catalogues_have_the_same_keys_and_placeholders() -> None:
    assert EN.keys() == JA.keys()
    fields = string.Formatter()
    for key in EN:
        assert {f for _, f, _, _ in fields.parse(EN[key]) if f} == {f for _, f, _, _ in fields.parse(JA[key]) if f}, key


def test_a_translator_fills_placeholders_and_falls_back_to_english() -> None:
    assert (
        Translator("ja")("login.limited", seconds=30)
        == "サインインの失敗が多すぎます。30 秒後にもう一度お試しください。"
    )
    assert Translator("xx")("nav.trace") == "Message trace"
    assert Translator("en")("no.such.key") == "no.such.key"


def test_chart_labels_are_escaped_and_bars_scale_to_the_largest() -> None:
    svg = str(charts.bars([("<script>alert(1)</script>@x.example", 10), ("b@x.example", 5)], title="Top <senders>"))
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "<title>Top &lt;senders&gt;</title>" in svg
    widths = [float(w) for w in re.findall(r'<rect class="bar" x="\d+" y="[\d.]+" width="([\d.]+)"', svg)]
    assert widths[0] == 2 * widths[1]


def test_stacked_days_draw_one_segment_per_non_zero_count() -> None:
    svg = str(charts.stacked_days(["2026-11-01", "2026-11-02"], {"clean": [3, 0], "spam": [1, 2]}, title="t"))
    assert svg.count('class="series-clean" x=') == 1 + 1  # one segment and its legend swatch
    assert svg.count('class="series-spam" x=') == 2 + 1
    assert "11-01" in svg and "11-02" in svg
