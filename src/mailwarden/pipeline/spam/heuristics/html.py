"""HTML heuristics: hidden and zero-size text, image-only mail, forms, scripts, obfuscation."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator

from mailwarden.model import Organisation
from mailwarden.pipeline.facts import ScanFacts
from mailwarden.pipeline.spam.heuristics.settings import HeuristicsSettings
from mailwarden.pipeline.spam.heuristics.view import INVISIBLE_IN_WORDS, View, host_of, registered_domain

Hit = tuple[str, str]

HIDDEN_CHARS = 60  # hidden text shorter than this is pre-header filler and tracking
ZERO_FONT_CHARS = 30
IMAGE_ONLY_TEXT = 80  # visible characters under which an image-carrying message counts as image-only
ENTITY_LETTERS = 8  # numeric references for plain ASCII letters: no editor writes them

_ENTITY_LETTER = re.compile(
    r"&#(?:x0*(?:4[1-9a-f]|5[0-9a]|6[1-9a-f]|7[0-9a])|0*(?:6[5-9]|[78]\d|9[07-9]|1[01]\d|12[0-2]));", re.IGNORECASE
)
_ZERO_WIDTH_IN_WORD = re.compile(rf"\w[{INVISIBLE_IN_WORDS}]+\w")
_ZERO_WIDTH = re.compile(f"[{INVISIBLE_IN_WORDS}]")  # the cheap test before the one above
# words of three or more letters with a letter outside ASCII (an ASCII word cannot mix scripts)
_NON_ASCII_WORD = re.compile(r"(?<!\w)(?=\w*?[^\W\x00-\x7f])\w{3,}")
_NON_ASCII_LETTER = re.compile(r"[^\W\x00-\x7f]")
_WORD_TAIL = re.compile(r"\w*")
LONG_WORD = 64  # a word longer than this sends mixed_script_words to the regex over the whole text


def _script(ch: str) -> str:
    if "a" <= ch.lower() <= "z":
        return "latin"
    try:
        name = unicodedata.name(ch)
    except ValueError:
        return ""
    for script in ("CYRILLIC", "GREEK", "LATIN"):
        if name.startswith(script):
            return script.lower()
    return ""


def _mixes(word: str) -> bool:
    scripts = {_script(c) for c in word if c.isalpha()} - {""}
    return "latin" in scripts and len(scripts) > 1


def mixed_script_words(text: str, limit: int = 3) -> list[str]:
    """Words that mix Latin letters with Cyrillic or Greek ones (homoglyph obfuscation)."""
    found: list[str] = []
    if text.isascii():
        return found
    # From each letter outside ASCII to the word around it, instead of a regex tried at every position.
    pos = 0
    while len(found) < limit:
        m = _NON_ASCII_LETTER.search(text, pos)
        if m is None:
            break
        start = m.start()
        stop = max(pos, start - LONG_WORD)
        while start > stop and (text[start - 1].isalnum() or text[start - 1] == "_"):  # what \w is
            start -= 1
        if start == stop > pos and (text[start - 1].isalnum() or text[start - 1] == "_"):
            return _mixed_script_words_slow(text, limit)
        end = _WORD_TAIL.match(text, m.end()).end()  # type: ignore[union-attr]  # \w* always matches
        word = text[start:end]
        if len(word) >= 3 and _mixes(word):
            found.append(word)
        pos = end
    return found


def _mixed_script_words_slow(text: str, limit: int) -> list[str]:
    found: list[str] = []
    for m in _NON_ASCII_WORD.finditer(text):
        if _mixes(m.group(0)):
            found.append(m.group(0))
            if len(found) >= limit:
                break
    return found


def check(view: View, facts: ScanFacts, org: Organisation | None, s: HeuristicsSettings) -> Iterator[Hit]:
    msg = view.message
    text = view.visible_text
    mixed = mixed_script_words(msg.subject + " " + text[:65536])
    if mixed:
        yield "MIXED_SCRIPT_WORD", ", ".join(mixed)[:80]
    head = msg.subject + " " + text[:65536]
    zw = _ZERO_WIDTH_IN_WORD.search(head) if _ZERO_WIDTH.search(head) else None
    if zw:
        yield "HTML_ZERO_WIDTH", repr(zw.group(0))[:40]
    if not view.html:
        return
    hidden = sum(h.hidden_chars for h in view.html)
    if hidden >= HIDDEN_CHARS:
        yield "HTML_HIDDEN_TEXT", f"{hidden} hidden characters"
    zero = sum(h.zero_font_chars for h in view.html)
    if zero >= ZERO_FONT_CHARS:
        yield "HTML_ZERO_FONT", f"{zero} characters in a 0/1px font"
    if not msg.text_parts:
        yield "HTML_ONLY", ""
    visible = sum(len(t) for h in view.html for t in h.visible)
    images = [i for h in view.html for i in h.images if i[0] and not i[3] and (i[1], i[2]) not in (("1", "1"),)]
    image_parts = [a for a in msg.attachments if a.declared_type.startswith("image/")]
    plain_chars = len("".join(msg.text_parts).strip())
    if (images or image_parts) and visible < IMAGE_ONLY_TEXT and plain_chars < IMAGE_ONLY_TEXT:
        yield "HTML_IMAGE_ONLY", f"{len(images) + len(image_parts)} images, {visible} characters"
    if view.password_forms:
        yield "PHISH_HTML_PASSWORD_FORM", view.password_forms[0][:80]
    for action in view.input_forms:
        if not action or action.lower().startswith(("http:", "https:", "//", "data:")):
            yield "PHISH_HTML_FORM", action[:80]
            break
    from_org = view.from_org_domain
    for src in (src for h in view.html for src in h.scripts):
        host = host_of(src if "//" in src else "")
        if host and registered_domain(host) != from_org:
            yield "HTML_EXTERNAL_SCRIPT", host
            break
    letters = len(_ENTITY_LETTER.findall(view.raw_html))
    if letters >= ENTITY_LETTERS:
        yield "HTML_ENTITY_OBFUSCATION", f"{letters} letters as numeric references"
