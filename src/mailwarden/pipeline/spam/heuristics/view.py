"""What the heuristics look at, computed once per message: HTML as seen and as hidden, links, text."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from html.parser import HTMLParser
from urllib.parse import urlsplit

from mailwarden.model import Message
from mailwarden.pipeline.auth.dmarc import organisational_domain

# Bounds the work a hostile message can cause.
MAX_HTML_CHARS = 512 * 1024
MAX_TEXT_CHARS = 256 * 1024

_HIDDEN_STYLE = re.compile(
    r"display\s*:\s*none|visibility\s*:\s*hidden"
    r"|opacity\s*:\s*0(?:\.0+)?\s*(?:;|$)|max-height\s*:\s*0(?:px)?\s*(?:;|$)",
    re.IGNORECASE,
)
_ZERO_FONT = re.compile(r"font-size\s*:\s*[01](?:\.\d+)?\s*(?:px|pt)?\s*(?:;|$|!)", re.IGNORECASE)
_COLOR = re.compile(r"(?<![-\w])color\s*:\s*([#\w]+)", re.IGNORECASE)
_BACKGROUND = re.compile(r"background(?:-color)?\s*:\s*([#\w]+)", re.IGNORECASE)
_VOID = frozenset({"br", "img", "hr", "meta", "link", "input", "area", "base", "col", "wbr", "source", "embed"})
_CREDENTIAL_FIELD = re.compile(r"pass|pwd|email|e-mail|login|user|card|cvv|cvc|ssn|pin\b", re.IGNORECASE)
_WHITES = frozenset({"#fff", "#ffffff", "white", "#fefefe", "#fdfdfd"})


def host_of(url: str) -> str:
    """The lower-case host of a URL ('' when there is none); `www.` links count as http."""
    if url.lower().startswith("www."):
        url = "http://" + url
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return ""
    return host.rstrip(".").lower()


def authority_of(url: str) -> str:
    try:
        return urlsplit(url).netloc
    except ValueError:
        return ""


@lru_cache(maxsize=8192)
def registered_domain(host: str) -> str:
    return organisational_domain(host) if host else ""


def domain_of(address: str | None) -> str:
    if not address or "@" not in address:
        return ""
    return address.rsplit("@", 1)[1].strip().strip(">").rstrip(".").lower()


def fold(text: str) -> str:
    """Lower case without diacritics (`válidate` -> `validate`); a lone dot inside a word becomes a space."""
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return _DOT_IN_WORD.sub(" ", text)


_DOT_IN_WORD = re.compile(r"(?<=[a-z]{4})\.(?=[a-z]{2,}\b)")


def _norm_color(value: str) -> str:
    value = value.lower()
    if re.fullmatch(r"#[0-9a-f]{3}", value):
        value = "#" + "".join(c * 2 for c in value[1:])
    return {"white": "#ffffff", "black": "#000000"}.get(value, value)


@dataclass
class Anchor:
    href: str
    text: str


@dataclass
class HtmlScan:
    """One pass over an HTML body."""

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


class _Scanner(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out = HtmlScan()
        # one entry per open element: (tag, hidden, zero_font, colour, background)
        self._stack: list[tuple[str, bool, bool, str, str]] = []
        self._anchor: Anchor | None = None
        self._skip = 0  # inside <style>/<script>/<title>/<head>

    def _state(self) -> tuple[bool, bool, str, str]:
        if not self._stack:
            return False, False, "", "#ffffff"
        _, hidden, zero, colour, bg = self._stack[-1]
        return hidden, zero, colour, bg

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag in ("style", "script", "title", "head"):
            if tag == "script" and a.get("src"):
                self.out.scripts.append(a["src"])
            self._skip += 1
            return
        hidden, zero, colour, bg = self._state()
        style = a.get("style", "")
        if style:
            if _HIDDEN_STYLE.search(style):
                hidden = True
            if _ZERO_FONT.search(style):
                zero = True
            m = _BACKGROUND.search(style)
            if m:
                bg = _norm_color(m.group(1))
            m = _COLOR.search(style)
            if m:
                colour = _norm_color(m.group(1))
        if a.get("bgcolor"):
            bg = _norm_color(a["bgcolor"])
        if tag == "font":
            if a.get("color"):
                colour = _norm_color(a["color"])
            if a.get("size", "").strip() in ("0",):
                zero = True
        if "hidden" in a and tag not in ("input",):
            hidden = True
        if tag == "a":
            self._anchor = Anchor(a.get("href", "").strip(), "")
        elif tag == "form":
            self.out.forms.append(a.get("action", "").strip())
            if a.get("method", "").lower() == "post":
                self.out.input_forms.append(self.out.forms[-1])
        elif tag == "input" and self.out.forms:
            kind = a.get("type", "").lower()
            if kind == "password":
                self.out.password_forms.append(self.out.forms[-1])
            if kind in ("password", "email") or _CREDENTIAL_FIELD.search(a.get("name", "")):
                self.out.input_forms.append(self.out.forms[-1])
        elif tag == "img":
            src = a.get("src", "").strip()
            w, h = a.get("width", "").strip().rstrip("px"), a.get("height", "").strip().rstrip("px")
            self.out.images.append((src, w, h, hidden or bool(_HIDDEN_STYLE.search(style))))
        if tag not in _VOID:
            self._stack.append((tag, hidden, zero, colour, bg))
            if len(self._stack) > 256:
                del self._stack[0]

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "title", "head"):
            self._skip = max(0, self._skip - 1)
            return
        if tag == "a" and self._anchor is not None:
            self.out.anchors.append(self._anchor)
            self._anchor = None
        for i in range(len(self._stack) - 1, -1, -1):
            if self._stack[i][0] == tag:
                del self._stack[i:]
                break

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        text = data.strip()
        if not text:
            return
        hidden, zero, colour, bg = self._state()
        same_colour = bool(colour) and colour == bg
        if hidden or same_colour:
            self.out.hidden_chars += len(text)
        elif zero:
            self.out.zero_font_chars += len(text)
        else:
            self.out.visible.append(text)
        if self._anchor is not None:
            self._anchor.text += " " + text


def scan_html(html: str) -> HtmlScan:
    scanner = _Scanner()
    try:
        scanner.feed(html[:MAX_HTML_CHARS])
        scanner.close()
    except (AssertionError, ValueError):  # html.parser gives up on some broken markup
        pass
    if scanner._anchor is not None:
        scanner.out.anchors.append(scanner._anchor)
    return scanner.out


class View:
    """A message as the heuristics see it. Everything is computed on first use."""

    def __init__(self, message: Message) -> None:
        self.message = message

    @cached_property
    def html(self) -> list[HtmlScan]:
        return [scan_html(h) for h in self.message.html_parts]

    @cached_property
    def raw_html(self) -> str:
        return "\n".join(self.message.html_parts)[:MAX_HTML_CHARS]

    @cached_property
    def plain(self) -> str:
        return "\n".join(self.message.text_parts)[:MAX_TEXT_CHARS]

    @cached_property
    def visible_text(self) -> str:
        """What a reader sees: text parts, else the visible HTML text."""
        html_text = " ".join(t for s in self.html for t in s.visible)
        return (self.plain if self.plain.strip() else html_text)[:MAX_TEXT_CHARS]

    @cached_property
    def search_text(self) -> str:
        """Subject plus body text, NFKC-folded, lower case, whitespace collapsed, for phrase matching."""
        html_text = " ".join(t for s in self.html for t in s.visible)
        text = " ".join((self.message.subject, self.plain[:65536], html_text[:65536]))
        text = unicodedata.normalize("NFKC", text).replace("\u200b", "").replace("\u00ad", "")
        return " ".join(text.lower().split())

    @cached_property
    def folded_text(self) -> str:
        """`search_text` with accents dropped, for phrases that lures misspell with diacritics."""
        return fold(self.search_text)

    @cached_property
    def anchors(self) -> list[Anchor]:
        return [a for s in self.html for a in s.anchors]

    @cached_property
    def forms(self) -> list[str]:
        return [f for s in self.html for f in s.forms]

    @cached_property
    def password_forms(self) -> list[str]:
        return [f for s in self.html for f in s.password_forms]

    @cached_property
    def input_forms(self) -> list[str]:
        return [f for s in self.html for f in s.input_forms]

    @cached_property
    def links(self) -> list[str]:
        """Every link target: the message's URLs plus anchor hrefs that are web links."""
        seen = dict.fromkeys(self.message.urls)
        for a in self.anchors:
            if a.href.lower().startswith(("http://", "https://")):
                seen.setdefault(a.href, None)
        return list(seen)

    @cached_property
    def link_hosts(self) -> list[str]:
        return list(dict.fromkeys(h for h in (host_of(u) for u in self.links) if h))

    @cached_property
    def link_domains(self) -> list[str]:
        return list(dict.fromkeys(registered_domain(h) for h in self.link_hosts))

    @cached_property
    def from_domain(self) -> str:
        return domain_of(self.message.from_address)

    @cached_property
    def from_org_domain(self) -> str:
        return registered_domain(self.from_domain)

    @property
    def has_link_or_form(self) -> bool:
        return bool(self.links or self.forms)
