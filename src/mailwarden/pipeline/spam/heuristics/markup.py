"""One pass over an HTML body: visible and hidden text, anchors, forms, images, scripts.

A small tokenizer instead of `html.parser`: it splits the markup the way `html.parser` does (same text
chunks, same tags, same attribute values, `<script>`/`<style>` content skipped as raw text) but only
reads the attributes of a tag when a heuristic can use them, and never gives up half-way: where
`html.parser` raises on an unknown `<![keyword` section, this treats it as a comment and reads on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from html import unescape

from mailwarden.model.message import bounded

# Bounds the work a hostile message can cause.
MAX_HTML_CHARS = 512 * 1024
MAX_DEPTH = 256  # open elements remembered; deeper nesting inherits the innermost remembered style
MAX_ANCHORS = 2000
MAX_ITEMS = 1000  # forms, inputs, images, scripts

_HIDDEN_STYLE = re.compile(
    r"display\s*:\s*none|visibility\s*:\s*hidden"
    r"|opacity\s*:\s*0(?:\.0+)?\s*(?:;|$)|max-height\s*:\s*0(?:px)?\s*(?:;|$)",
    re.IGNORECASE,
)
_ZERO_FONT = re.compile(r"font-size\s*:\s*[01](?:\.\d+)?\s*(?:px|pt)?\s*(?:;|$|!)", re.IGNORECASE)
_COLOR = re.compile(r"(?<![-\w])color\s*:\s*([#\w]+)", re.IGNORECASE)
_BACKGROUND = re.compile(r"background(?:-color)?\s*:\s*([#\w]+)", re.IGNORECASE)
_SHORT_HEX = re.compile(r"#[0-9a-f]{3}")
_VOID = frozenset({"br", "img", "hr", "meta", "link", "input", "area", "base", "col", "wbr", "source", "embed"})
_CREDENTIAL_FIELD = re.compile(r"pass|pwd|email|e-mail|login|user|card|cvv|cvc|ssn|pin\b", re.IGNORECASE)
_SKIPPED = frozenset({"style", "script", "title", "head"})  # their text is not shown
_RAW_TEXT = frozenset({"style", "script"})  # their content is not markup
# tags whose attributes matter whatever they are; any other tag only for style, bgcolor or hidden
_ATTRIBUTE_TAGS = frozenset({"a", "form", "input", "img", "script", "font"})
_ATTRIBUTE_WORDS = re.compile(r"style|bgcolor|hidden", re.IGNORECASE)
# tags that do more than pass their parent's style on, whatever their attributes
_SPECIAL = _SKIPPED | _ATTRIBUTE_TAGS

# The tokenizer's grammar, after the HTML tokenizer states html.parser follows (tag open, tag name,
# attribute name, attribute value): a start tag is a name, then attributes, each name preceded by a
# quote, space or slash, with an optional value after one or more '='.
_START_TAG = re.compile(
    r"""<([a-zA-Z][^\t\n\r\f />\x00]*)
    ((?>(?:[\s/]*
      (?:(?<=['"\s/])[^\s/>][^\s/=>]*
         (?:\s*=+\s*(?:'[^']*'|"[^"]*"|(?!['"])[^>\s]*)\s*)?
         (?:\s|/(?!>))*
      )*
    )?))\s*""",
    re.VERBOSE,
)
# A start tag in the shape most markup has: attributes after white space, values quoted or plain
# words, no slash. Where it matches, the grammar above reads the same; possessive so that it never
# re-reads a tag name another way.
_SIMPLE_START_TAG = (
    r"""<([a-zA-Z][^\t\n\r\f />\x00]*+)"""
    r"""((?:\s++[^\s/>"'=]++(?:\s*+=\s*+(?:"[^"]*+"|'[^']*+'|[^\s"'=<>`/]++))?+)*+)\s*+>"""
)
# The common tokens in one search: a start tag (simple, else any complete one), an ordinary end
# tag, else any other '<' for the reader.
_FAST_TOKEN = re.compile(
    _SIMPLE_START_TAG + "|" + _START_TAG.pattern + r"(/?)>" + r"|</\s*([a-zA-Z][-.a-zA-Z0-9:_]*)\s*>|<",
    re.VERBOSE,
)
_ATTRIBUTE = re.compile(
    r"""((?<=['"\s/])[^\s/>][^\s/=>]*)(\s*=+\s*('[^']*'|"[^"]*"|(?![\'"])[^>\s]*))?(?:\s|/(?!>))*"""
)
_END_TAG = re.compile(r"</\s*([a-zA-Z][-.a-zA-Z0-9:_]*)\s*>")
_LOOSE_END_TAG = re.compile(r"</([a-zA-Z][^\t\n\r\f />\x00]*)")
_COMMENT_END = re.compile(r"--\s*>")
_SECTION_NAME = re.compile(r"[a-zA-Z][-_.a-zA-Z0-9]*\s*")
_SECTION_END = re.compile(r"]\s*]\s*>")
_OFFICE_SECTION_END = re.compile(r"]\s*>")  # <![if !mso]> ... <![endif]>
_TAG_END_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ=/")
_RAW_TEXT_END = {tag: re.compile(rf"</\s*{tag}\s*>", re.IGNORECASE) for tag in _RAW_TEXT}


def _norm_color(value: str) -> str:
    value = value.lower()
    if _SHORT_HEX.fullmatch(value):
        value = "#" + "".join(c * 2 for c in value[1:])
    return {"white": "#ffffff", "black": "#000000"}.get(value, value)


@dataclass
class Anchor:
    href: str
    text: str


@dataclass
class HtmlScan:
    """What one pass over an HTML body found."""

    visible: list[str] = field(default_factory=list)
    hidden_chars: int = 0
    zero_font_chars: int = 0
    anchors: list[Anchor] = field(default_factory=list)
    forms: list[str] = field(default_factory=list)
    # forms that post or ask for a password, e-mail address, card number (a search box does neither)
    input_forms: list[str] = field(default_factory=list)
    password_forms: list[str] = field(default_factory=list)
    scripts: list[str] = field(default_factory=list)
    images: list[tuple[str, str, str, bool]] = field(default_factory=list)  # src, width, height, hidden


# what an element passes on to its content: (hidden, zero_font, colour, background)
_State = tuple[bool, bool, str, str]
_ROOT: _State = (False, False, "", "#ffffff")


class _Scanner:
    """Turns tokens into an HtmlScan, tracking the style each open element passes on."""

    def __init__(self) -> None:
        self.out = HtmlScan()
        # the open elements: their names, and the style each passes on (shared, not copied, when a
        # tag changes nothing)
        self.names: list[str] = []
        self.states: list[_State] = []
        self.anchor: Anchor | None = None
        self.skip = 0  # inside <style>/<script>/<title>/<head>

    def push(self, name: str, state: _State) -> None:
        self.names.append(name)
        self.states.append(state)
        if len(self.names) > MAX_DEPTH:
            del self.names[0]
            del self.states[0]

    def start(self, tag: str, a: dict[str, str]) -> None:
        out = self.out
        if tag in _SKIPPED:
            if tag == "script" and a.get("src") and len(out.scripts) < MAX_ITEMS:
                out.scripts.append(a["src"])
            self.skip += 1
            return
        hidden, zero, colour, bg = self.states[-1] if self.states else _ROOT
        style = a.get("style", "")
        style_hidden = False
        if style:
            style_hidden, style_zero, style_bg, style_colour = _style_effects(style)
            hidden = hidden or style_hidden
            zero = zero or style_zero
            bg = bg if style_bg is None else style_bg
            colour = colour if style_colour is None else style_colour
        if a.get("bgcolor"):
            bg = _norm_color(a["bgcolor"])
        if tag == "font":
            if a.get("color"):
                colour = _norm_color(a["color"])
            if a.get("size", "").strip() == "0":
                zero = True
        if "hidden" in a and tag != "input":
            hidden = True
        if tag == "a":
            self.anchor = Anchor(a.get("href", "").strip(), "")
        elif tag == "form":
            if len(out.forms) < MAX_ITEMS:
                out.forms.append(a.get("action", "").strip())
                if a.get("method", "").lower() == "post":
                    out.input_forms.append(out.forms[-1])
        elif tag == "input" and out.forms:
            kind = a.get("type", "").lower()
            if len(out.input_forms) < MAX_ITEMS:
                if kind == "password":
                    out.password_forms.append(out.forms[-1])
                if kind in ("password", "email") or _CREDENTIAL_FIELD.search(a.get("name", "")):
                    out.input_forms.append(out.forms[-1])
        elif tag == "img" and len(out.images) < MAX_ITEMS:
            src = a.get("src", "").strip()
            w, h = a.get("width", "").strip().rstrip("px"), a.get("height", "").strip().rstrip("px")
            out.images.append((src, w, h, hidden or style_hidden))
        if tag not in _VOID:
            self.push(tag, (hidden, zero, colour, bg))

    def end(self, tag: str) -> None:
        if tag in _SKIPPED:
            self.skip = max(0, self.skip - 1)
            return
        if tag == "a" and self.anchor is not None:
            self.close_anchor()
        names = self.names
        for i in range(len(names) - 1, -1, -1):
            if names[i] == tag:
                del names[i:]
                del self.states[i:]
                break

    def data(self, chunk: str, raw: bool = False) -> None:
        """Text between tags; character references are resolved unless `raw`."""
        if self.skip:
            return
        if "&" in chunk and not raw:
            chunk = unescape(chunk)
        text = chunk.strip()
        if not text:
            return
        hidden, zero, colour, bg = self.states[-1] if self.states else _ROOT
        if hidden or (colour and colour == bg):
            self.out.hidden_chars += len(text)
        elif zero:
            self.out.zero_font_chars += len(text)
        else:
            self.out.visible.append(text)
        if self.anchor is not None:
            self.anchor.text += " " + text

    def close_anchor(self) -> None:
        if self.anchor is not None and len(self.out.anchors) < MAX_ANCHORS:
            self.out.anchors.append(self.anchor)
        self.anchor = None


def _attributes(raw: str) -> dict[str, str]:
    """The attributes in the text after a tag's name (callers must not change the dict it returns:
    short ones are shared); later duplicates win."""
    return _parse_attributes(raw) if len(raw) > _CACHED_CHARS else _cached_attributes(raw)


def _parse_attributes(raw: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, rest, value in _ATTRIBUTE.findall(raw):
        if not rest:
            value = ""
        elif value[:1] in ("'", '"') and value[:1] == value[-1:]:
            value = value[1:-1]
        if value and "&" in value:
            value = unescape(value)
        out[name.lower()] = value
    return out


# Messages repeat the same attributes and styles on tag after tag; short ones are parsed once.
_CACHED_CHARS = 400
_cached_attributes = lru_cache(maxsize=4096)(_parse_attributes)

_Effects = tuple[bool, bool, str | None, str | None]  # hides, zero font, background, colour (None: inherited)


def _parse_style(style: str) -> _Effects:
    bg = _BACKGROUND.search(style)
    colour = _COLOR.search(style)
    return (
        _HIDDEN_STYLE.search(style) is not None,
        _ZERO_FONT.search(style) is not None,
        _norm_color(bg.group(1)) if bg else None,
        _norm_color(colour.group(1)) if colour else None,
    )


_cached_style = lru_cache(maxsize=4096)(_parse_style)


def _style_effects(style: str) -> _Effects:
    return _parse_style(style) if len(style) > _CACHED_CHARS else _cached_style(style)


def _parse_plain(raw: str) -> _Effects | None:
    """What the attributes of a tag other than the special ones do to the style it passes on; None
    when they do nothing."""
    if not _ATTRIBUTE_WORDS.search(raw):
        return None
    a = _attributes(raw)
    hidden, zero, bg, colour = _style_effects(a["style"]) if a.get("style") else (False, False, None, None)
    if a.get("bgcolor"):
        bg = _norm_color(a["bgcolor"])
    return hidden or "hidden" in a, zero, bg, colour


_cached_plain = lru_cache(maxsize=4096)(_parse_plain)


@lru_cache(maxsize=4096)
def _inherit(parent: _State, effects: _Effects) -> _State:
    """The style an element with `effects` passes on inside a parent passing on `parent`."""
    hidden, zero, colour, bg = parent
    return (
        hidden or effects[0],
        zero or effects[1],
        colour if effects[3] is None else effects[3],
        bg if effects[2] is None else effects[2],
    )


def _plain_effects(raw: str) -> _Effects | None:
    return _parse_plain(raw) if len(raw) > _CACHED_CHARS else _cached_plain(raw)


class _Reader:
    """The tokenizer's rare paths: broken tags, comments, declarations, raw text. Searches that found
    nothing are remembered, so a body of a thousand unterminated comments is not read a thousand times."""

    def __init__(self, html: str, scanner: _Scanner) -> None:
        self.html = html
        self.scanner = scanner
        self.last_gt = html.rfind(">")
        self.last_lt = html.rfind("<")
        self.no_match: dict[re.Pattern[str], int] = {}  # pattern -> a position with no match after it

    def find_gt(self, i: int) -> int:
        return -1 if i > self.last_gt else self.html.find(">", i)

    def search(self, pattern: re.Pattern[str], i: int) -> re.Match[str] | None:
        if i >= self.no_match.get(pattern, len(self.html) + 1):
            return None
        m = pattern.search(self.html, i)
        if m is None:
            self.no_match[pattern] = i
        return m

    def as_text(self, i: int) -> int:
        """A construct that never ends is text up to the next '>' (html.parser's rule at end of input)."""
        k = self.find_gt(i + 1)
        if k >= 0:
            k += 1
        else:
            k = -1 if i + 1 > self.last_lt else self.html.find("<", i + 1)
            if k < 0:
                k = i + 1
        self.scanner.data(self.html[i:k])
        return k

    def markup(self, i: int) -> int:
        """Handle the construct that starts with '<' at `i`; return where the text after it starts."""
        html = self.html
        nxt = html[i + 1 : i + 2]
        if nxt.isascii() and nxt.isalpha():
            return self.start_tag(i)
        if nxt == "/":
            gt = self.find_gt(i + 1)
            if gt < 0:
                return self.as_text(i)
            m = _END_TAG.match(html, i)
            if m is not None:
                self.scanner.end(m.group(1).lower())
                return m.end()
            loose = _LOOSE_END_TAG.match(html, i)
            if loose is not None:
                self.scanner.end(loose.group(1).lower())
                return html.find(">", loose.end()) + 1
            return i + 3 if html.startswith("</>", i) else gt + 1  # a bogus comment
        if nxt == "!":
            return self.declaration(i)
        if nxt == "?":
            gt = self.find_gt(i + 2)
            return gt + 1 if gt >= 0 else self.as_text(i)
        self.scanner.data("<")
        return i + 1

    def declaration(self, i: int) -> int:
        html = self.html
        if html.startswith("<!--", i):
            m = self.search(_COMMENT_END, i + 4)
            return m.end() if m is not None else self.as_text(i)
        if html.startswith("<![", i):
            name = _SECTION_NAME.match(html, i + 3)
            keyword = name.group(0).strip().lower() if name is not None else ""
            if keyword in ("temp", "cdata", "ignore", "include", "rcdata"):
                m = self.search(_SECTION_END, i + 3)
                return m.end() if m is not None else self.as_text(i)
            if keyword in ("if", "else", "endif"):
                m = self.search(_OFFICE_SECTION_END, i + 3)
                return m.end() if m is not None else self.as_text(i)
            # html.parser raises here and the rest of the body went unread; read it as a comment instead
        gt = self.find_gt(i + 2)
        return gt + 1 if gt >= 0 else self.as_text(i)

    def start_tag(self, i: int) -> int:
        """A start tag the fast path did not take: one that never ends or ends in bogus input."""
        html = self.html
        m = _START_TAG.match(html, i)
        assert m is not None  # '<' and a letter always start one
        j = m.end()
        if html.startswith("/>", j):
            return self.tag(m.group(1).lower(), m.group(2), j + 2, closed=True)
        if j >= len(html) or html[j] in _TAG_END_CHARS:
            return self.as_text(i)  # the tag never ends
        if html[j] == ">":
            return self.tag(m.group(1).lower(), m.group(2), j + 1, closed=False)
        self.scanner.data(html[i:j], raw=True)  # bogus input: html.parser passes the tag on as text
        return j

    def tag(self, tag: str, raw: str, end: int, closed: bool) -> int:
        """A complete start tag (lower-case name, the text of its attributes) that ends at `end`."""
        if not closed and raw.endswith("/"):
            bare = raw.replace("/", "")  # `<br/>`: the slash went to an attribute part holding nothing else
            closed = not bare or bare.isspace()
        attrs = _attributes(raw) if raw and (tag in _ATTRIBUTE_TAGS or _ATTRIBUTE_WORDS.search(raw)) else {}
        self.scanner.start(tag, attrs)
        if closed:
            self.scanner.end(tag)
        elif tag in _RAW_TEXT:
            close = self.search(_RAW_TEXT_END[tag], end)
            if close is None:
                return len(self.html)  # an unclosed <script> or <style> hides the rest
            self.scanner.end(tag)
            return close.end()
        return end


# What the loop in scan_html does with a token it has read before: close `name`, open `name` with
# these effects, or nothing (a void element without style).
_CLOSE, _OPEN, _NOTHING = 0, 1, 2
_Action = tuple[int, str, "_Effects | None"]


def _action(m: re.Match[str]) -> _Action | None:
    """The action for a fast-token match, or None for one the scanner and the reader must handle."""
    last = m.lastindex
    if last == 6:
        return _CLOSE, m.group(6).lower(), None
    if last is None:
        return None
    if last == 2:
        name, raw, slash = m.group(1).lower(), m.group(2), ""
    else:
        name, raw, slash = m.group(3).lower(), m.group(4), m.group(5)
    if name in _SPECIAL or slash or raw.endswith("/"):
        return None
    if name in _VOID:
        return _NOTHING, name, None
    return _OPEN, name, (_plain_effects(raw) if raw else None)


def scan_html(html: str) -> HtmlScan:
    """Visible and hidden text, anchors, forms, images and scripts of `html` (at most MAX_HTML_CHARS: its
    head and its tail)."""
    html = bounded(html, MAX_HTML_CHARS)
    scanner = _Scanner()
    reader = _Reader(html, scanner)
    names, states = scanner.names, scanner.states
    data, end_tag, tag = scanner.data, scanner.end, reader.tag
    tokens = _FAST_TOKEN.finditer
    seen: dict[str, _Action | None] = {}  # token text -> action: bodies repeat their tags
    n = len(html)
    i = 0
    # The loop does the common tokens itself (layout tags and their end tags, text between them) and
    # hands everything else to the scanner and the reader, then goes on where they stopped.
    while i < n:
        for m in tokens(html, i):
            j = m.start()
            if j > i and not scanner.skip:
                chunk = html[i:j]
                if not chunk.isspace():
                    data(chunk)
            text = m.group()
            if text in seen:
                act = seen[text]
            else:
                act = seen[text] = _action(m)
            if act is not None:
                kind, name, effects = act
                if kind == _CLOSE:
                    if names and names[-1] == name and name != "a":
                        names.pop()
                        states.pop()
                    else:
                        end_tag(name)
                elif kind == _OPEN:
                    state = states[-1] if states else _ROOT
                    if effects is not None:
                        state = _inherit(state, effects)
                    names.append(name)
                    states.append(state)
                    if len(names) > MAX_DEPTH:
                        del names[0]
                        del states[0]
                i = m.end()
                continue
            if m.lastindex is None:
                i = reader.markup(j)
                break
            if m.lastindex == 2:
                name, raw, slash = m.group(1).lower(), m.group(2), ""
            else:
                name, raw, slash = m.group(3).lower(), m.group(4), m.group(5)
            i = tag(name, raw, m.end(), closed=bool(slash))
            if i != m.end():
                break  # raw text skipped
        else:
            if i < n:
                data(html[i:])
            break
    scanner.close_anchor()
    return scanner.out
