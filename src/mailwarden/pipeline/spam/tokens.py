"""A message as the set of tokens the content classifier counts.

Pure and single-pass: header fields (each token prefixed with its field, `subj:free`), text parts, HTML
parts stripped to text, URLs (host, registered domain, path words, `url:ip`). Body words give unigrams
and, optionally, orthogonal sparse bigrams (OSB, window 5, as in CRM114 and rspamd); CJK runs give character bigrams,
so Japanese needs no segmenter. Text is NFKC-normalised and case-folded, numbers are bucketed by length
and long words shortened. Recipient addresses are never learnt: every e-mail address becomes its domain
only, and the recipients' own addresses (To/Cc, the honeypot placeholder) become `addr:rcpt`.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable
from urllib.parse import urlsplit

from mailwarden.model.message import Message
from mailwarden.pipeline.auth.dmarc import organisational_domain

MAX_TEXT_CHARS = 100_000  # body text looked at per message (the first 100 KB or so)
MAX_URLS = 50
MAX_WORD = 24  # longer words are shortened to a stem plus a length bucket
OSB_WINDOW = 5
_OSB_SEPARATORS = tuple(" " + "_" * gap + (" " if gap else "") for gap in range(OSB_WINDOW - 1))
# Placeholders the public corpora put where the recipient's address was; treated like a recipient.
MASKED_ADDRESSES = frozenset({"phishing@pot"})

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_WORD_RE = re.compile(r"[^\W_]+(?:['.][^\W_]+)*")
_HAS_CJK = re.compile(f"[{_CJK}]")
_CJK_SPLIT = re.compile(f"([{_CJK}]+)|([^{_CJK}]+)")
_EMAIL_RE = re.compile(r"[\w.+-]+@(?:[\w-]+\.)*[\w-]+", re.ASCII)
_LOCAL_END_RE = re.compile(r"[\w.+-]+\Z", re.ASCII)
_DOMAIN_START_RE = re.compile(r"(?:[\w-]+\.)*[\w-]+", re.ASCII)
_SCRIPT_RE = re.compile(r"(?is)<(script|style|head)\b.*?</\1\s*>|<!--.*?-->")
_HIDDEN_RE = re.compile(
    r"(?is)<(\w+)\b[^>]*style\s*=\s*[\"'][^\"']*"
    r"(?:display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0(?:px|pt|em)?\s*[;\"'])[^>]*>(.*?)</\1\s*>"
)
_ATTR_TEXT_RE = re.compile(r"""(?i)\b(?:alt|title)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_TAG_RE = re.compile(r"(?s)<[^>]*>")
_IMG_RE = re.compile(r"(?i)<img\b")
_FORM_RE = re.compile(r"(?i)<form\b")
_IPV4_RE = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")
_URL_WORD_RE = re.compile(r"[a-z0-9]{2,}")
_MUA_RE = re.compile(r"[a-z]+")


def tokenize(message: Message, *, osb: bool = False) -> frozenset[str]:
    """Every distinct token of the message (presence counts, repetition does not).

    `osb` adds orthogonal sparse bigrams of the body words; measured on the corpus they make the naive
    Bayes model worse (correlated tokens crowd out the rest of the evidence), so they are off by default.
    """
    recipients = {a.lower() for a in (*message.to_addresses, *message.cc_addresses)} | MASKED_ADDRESSES
    out: set[str] = set()
    _header_tokens(message, out, recipients)
    budget = MAX_TEXT_CHARS
    for text in message.text_parts:
        if budget <= 0:
            break
        text = text[:budget]
        budget -= len(text)
        _body_tokens(text, out, recipients, "", osb)
    for raw_html in message.html_parts:
        if budget <= 0:
            break
        raw_html = raw_html[: budget * 3]  # markup is mostly tags; its text is capped below
        visible, hidden, features = html_to_text(raw_html)
        out.update(features)
        visible = visible[:budget]
        budget -= len(visible)
        _body_tokens(visible, out, recipients, "", osb)
        if hidden:
            _body_tokens(hidden[:budget], out, recipients, "hid:", False)
    _url_tokens(message.urls, out, recipients)
    for attachment in message.attachments[:10]:
        out.add("att:" + attachment.real_type)
    return frozenset(out)


def html_to_text(markup: str) -> tuple[str, str, set[str]]:
    """(visible text, hidden text, markup features) of an HTML body; fast, tolerant, regex based."""
    features = {"html:yes"}
    if _IMG_RE.search(markup):
        features.add("html:img")
    if _FORM_RE.search(markup):
        features.add("html:form")
    markup = _SCRIPT_RE.sub(" ", markup)
    hidden_parts: list[str] = []

    def _hide(m: re.Match[str]) -> str:
        hidden_parts.append(m.group(2))
        return " "

    markup = _HIDDEN_RE.sub(_hide, markup)
    if hidden_parts:
        features.add("html:hidden")
    attr_text = " ".join(a or b for a, b in _ATTR_TEXT_RE.findall(markup))
    visible = html.unescape(_TAG_RE.sub(" ", markup)) + " " + html.unescape(attr_text)
    hidden = html.unescape(_TAG_RE.sub(" ", " ".join(hidden_parts)))
    return visible, hidden, features


def words(text: str) -> list[str]:
    """Normalised words of a text in order: NFKC, case-folded, numbers bucketed, CJK as character bigrams."""
    return _normalise(_WORD_RE.findall(unicodedata.normalize("NFKC", text).casefold()))


def word_set(text: str) -> set[str]:
    """The distinct words of a text, as `words` makes them; each distinct raw word is normalised once."""
    return set(_normalise(set(_WORD_RE.findall(unicodedata.normalize("NFKC", text).casefold()))))


def _normalise(matches: Iterable[str]) -> list[str]:
    out: list[str] = []
    for word in matches:
        if not word.isascii() and _HAS_CJK.search(word):
            for cjk, other in _CJK_SPLIT.findall(word):
                if len(cjk) == 1:
                    out.append(cjk)
                elif cjk:
                    out.extend(cjk[i : i + 2] for i in range(len(cjk) - 1))
                else:
                    out.extend(_normalise([other.strip("'.")]))
            continue
        n = len(word)
        if n < 2:
            continue
        if word.isdigit():
            out.append(f"N:{n}d" if n < 10 else "N:long")
        elif n > MAX_WORD:
            out.append(f"L:{word[:12]}:{n // 10}")
        else:
            out.append(word)
    return out


def _address_token(address: str, recipients: set[str]) -> str:
    address = address.lower()
    return "addr:rcpt" if address in recipients else "addr:" + address.rpartition("@")[2]


def _strip_addresses(text: str, out: set[str], recipients: set[str], prefix: str) -> str:
    """The text without its e-mail addresses; each address is added as its domain (or `addr:rcpt`).

    Works from each `@` outwards: a regular expression for addresses would be retried at every position
    of the text, which measured as the tokenizer's most expensive step.
    """
    if "@" not in text:
        return text
    pieces = text.split("@")
    kept: list[str] = []
    current = pieces[0]
    for following in pieces[1:]:
        local = _LOCAL_END_RE.search(current, max(0, len(current) - 64))
        domain = _DOMAIN_START_RE.match(following)
        if local and domain:
            out.add(prefix + _address_token(local.group(0) + "@" + domain.group(0), recipients))
            kept += (current[: local.start()], " ")
            current = following[domain.end() :]
        else:
            kept += (current, "@")
            current = following
    kept.append(current)
    return "".join(kept)


def _body_tokens(text: str, out: set[str], recipients: set[str], prefix: str, osb: bool) -> None:
    text = _strip_addresses(text, out, recipients, prefix)
    if prefix:
        out.update(prefix + w for w in word_set(text))
        return
    if not osb:
        out.update(word_set(text))
        return
    seq = words(text)
    out.update(seq)
    # orthogonal sparse bigrams: each word paired with each of the next four, the gap kept in the token
    for d, sep in enumerate(_OSB_SEPARATORS, start=1):
        out.update([a + sep + b for a, b in zip(seq, seq[d:], strict=False)])


def _header_tokens(message: Message, out: set[str], recipients: set[str]) -> None:
    out.update("subj:" + w for w in words(_strip_addresses(message.subject, out, recipients, "subj:")))
    out.update("fromname:" + w for w in words(message.from_display_name))
    from_domain = (message.from_address or "").rpartition("@")[2]
    if from_domain:
        out.add("fromdom:" + from_domain)
    else:
        out.add("from:none")
    reply_domain = (message.reply_to or "").rpartition("@")[2]
    if reply_domain:
        out.add("rtdom:" + reply_domain)
        if from_domain and organisational_domain(reply_domain) != organisational_domain(from_domain):
            out.add("rt:differs")
    to_count = len(message.to_addresses) + len(message.cc_addresses)
    out.add("rcpts:" + ("0" if to_count == 0 else "1" if to_count == 1 else "2-5" if to_count <= 5 else "many"))
    out.add("ct:" + message.email.get_content_type())
    # one pass over the header block instead of one case-insensitive scan per field
    mua: str | None = None
    received: list[str] = []
    has_message_id = False
    for name, value in message.email.items():
        key = name.lower()
        if key == "received":
            received.append(str(value))
        elif key in ("x-mailer", "user-agent") and mua is None:
            family = _MUA_RE.findall(str(value).lower())
            mua = family[0] if family else "other"
        elif key == "message-id":
            has_message_id = True
    if mua is not None:
        out.add("mua:" + mua)
    hops = len(received)
    out.add("rcvd:" + ("0" if hops == 0 else "1-2" if hops <= 2 else "3-5" if hops <= 5 else "many"))
    if any("TLS" in r or "ESMTPS" in r for r in received):
        out.add("rcvd:tls")
    if not has_message_id:
        out.add("msgid:none")


def _url_tokens(urls: Iterable[str], out: set[str], recipients: set[str]) -> None:
    for count, url in enumerate(urls):
        if count >= MAX_URLS:
            break
        if url.lower().startswith("www."):
            url = "http://" + url
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").rstrip(".")
        except ValueError:
            out.add("url:bad")
            continue
        if not host:
            continue
        out.add("url:" + parts.scheme.lower())
        if _IPV4_RE.match(host) or ":" in host:
            out.add("url:ip")
            continue
        host = host.encode("ascii", "replace").decode() if host.isascii() else "xn:" + host
        out.add("url:host:" + host)
        out.add("url:dom:" + organisational_domain(host))
        if "@" in parts.netloc:
            out.add("url:userinfo")  # http://bank.example@evil.example/: the host is what follows the @
        path = parts.path.lower()
        if "@" in path:
            path = _EMAIL_RE.sub(" ", path)  # an address in the path may be the recipient's
        for w in _URL_WORD_RE.findall(path)[:6]:
            out.add("url:path:" + (w if len(w) <= MAX_WORD else w[:12]))
        if parts.query:
            out.add("url:query")
