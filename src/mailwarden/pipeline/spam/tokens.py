"""A message as the set of tokens the content classifier counts.

Pure and single-pass. Header fields give tokens prefixed with their field (`subj:free`,
`fromdom:example.org`, `rcvd:from:example.net`, `charset:koi8-r`, `mime:multipart/alternative(...)`);
text parts and HTML parts stripped to text give words, HTML markup gives its tag and attribute names,
URLs give scheme, host, registered domain, TLD and path words, and a few shape tokens describe numbers,
money, capitals and sizes. Words are NFKC-normalised; a word written with capitals is kept as written
(`FREE`) and `degenerate()` names its case-folded fallback, used when the exact form was never learnt.
Numbers are bucketed by length, long words shortened, CJK runs become character bigrams (no segmenter).
Recipient addresses are never learnt: every e-mail address becomes its domain only, and the recipients'
own addresses (To/Cc, the honeypot placeholder) become `addr:rcpt`.
A mailing-list post's list mechanics are not the poster's words: the footer the list manager appends, the
links to the list's own pages and the list's subject tag give no tokens (`list:post` says it is one), so a
list's footer cannot vouch for the spam relayed through it.

Each group of tokens has a name in `FEATURES`; `tokenize(message, features=...)` leaves groups out, which
is how bench/accuracy.py measures what each one is worth.
"""

from __future__ import annotations

import html
import math
import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import urlsplit

from mailwarden.model import mime
from mailwarden.model.message import Message, bounded
from mailwarden.pipeline.auth.dmarc import organisational_domain
from mailwarden.pipeline.spam.attached import attached_evidence
from mailwarden.pipeline.spam.heuristics.view import LIST_MECHANICS

MAX_TEXT_CHARS = 100_000  # body text looked at per message (head and tail of an oversized body)
MAX_URLS = 50
MAX_HOPS = 8  # Received fields looked at, newest first
MAX_WORD = 24  # longer words are shortened to a stem plus a length bucket
OSB_WINDOW = 5
_OSB_SEPARATORS = tuple(" " + "_" * gap + (" " if gap else "") for gap in range(OSB_WINDOW - 1))
# Placeholders the public corpora put where the recipient's address was; treated like a recipient.
MASKED_ADDRESSES = frozenset({"phishing@pot"})
# Words of attachment text are kept apart from body words: phish pad PDFs with borrowed prose that reads
# as ham to a model trained on bodies (measured: bench/attachment_evidence.py, docs/classifier.md).
ATTACHMENT_PREFIX = "doc:"

# Token groups; all but "osb" and "case" are on by default (bench/accuracy.py measured both as worse).
FEATURES = frozenset({"sender", "received", "mua", "mime", "url", "html", "shape", "case", "osb"})
DEFAULT_FEATURES = FEATURES - {"osb", "case"}

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
# `(?i)\b(?:alt|title)\s*=…` spelt so that the engine can look for the first letter instead of trying
# the word boundary at every position: a third of the CPU, the same matches (`İ` and `ı` are the
# other letters (?i) takes for an i)
_ATTR_TEXT_RE = re.compile(
    r"""[aAtT](?<=\b[aAtT])(?:(?<=[aA])[lL][tT]|(?<=[tT])[iIİı][tT][lL][eE])\s*=\s*(?:"([^"]*)"|'([^']*)')"""
)
_TAG_RE = re.compile(r"(?s)<[^>]*>")
_TAG_NAME_RE = re.compile(r"<([a-zA-Z][a-zA-Z0-9]{0,15})\b([^>]{0,400})")
_ATTR_NAME_RE = re.compile(r"\s([a-zA-Z][a-zA-Z-]{0,20})\s*=")
# The skeleton every HTML document has: as tokens they would only repeat `html:yes`, and naive Bayes
# counts each repetition as independent evidence (measured: they pushed HTML newsletters over T).
_SKELETON_TAGS = frozenset({"html", "head", "body", "meta", "title"})
_SKELETON_ATTRS = frozenset({"content", "http-equiv", "charset", "name", "lang", "xmlns", "dir"})
_IMG_RE = re.compile(r"(?i)<img\b")
_FORM_RE = re.compile(r"(?i)<form\b")
_IPV4_RE = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")
_URL_WORD_RE = re.compile(r"[a-z0-9]{2,}")
_MUA_RE = re.compile(r"[a-z]+|\d+")
_RECEIVED_RE = re.compile(r"(?i)^\s*from\s+([^\s(;]+)(?:[^;]*?\bby\s+([^\s(;]+))?")
_FETCH_RE = re.compile(r"(?i)\bwith\s+(?:POP|IMAP)|fetchmail")
_MONEY_RE = re.compile(r"[$€£¥]\s?\d|\d\s?(?:usd|eur|dollars?)\b", re.IGNORECASE)
_PERCENT_RE = re.compile(r"\d\s?%")
_SHOUT_RE = re.compile(r"!!|\?\?")
_DIGITS3_RE = re.compile(r"\d{3}")
LIST_POST = "list:post"  # the token of a mailing-list post (`list_markers`)
_LIST_HEADERS = ("List-Post", "List-Help", "List-Subscribe", "List-Unsubscribe", "List-Archive", "List-Owner")
_LIST_TARGET_RE = re.compile(r"<([^<>\s]{4,500})>")
_LIST_TAG_RE = re.compile(r"^((?:\s*(?:re|fwd?|aw|sv)\s*:)*)\s*\[[^\]\s]{1,40}\]", re.IGNORECASE)
_FOOTER_TAIL = 1500  # a list footer is a few lines at the very end
_FOOTER_SEPARATOR_RE = re.compile(r"(?m)^(?:-- ?|[_=\-]{10,}|[*]{10,})[ \t]*$")


def tokenize(message: Message, *, osb: bool = False, features: frozenset[str] = DEFAULT_FEATURES) -> frozenset[str]:
    """Every distinct token of the message (presence counts, repetition does not).

    `osb` adds orthogonal sparse bigrams of the body words; measured on the corpus they make the naive
    Bayes model worse (correlated tokens crowd out the rest of the evidence), so they are off by default.
    """
    if osb:
        features = features | {"osb"}
    recipients = {a.lower() for a in (*message.to_addresses, *message.cc_addresses)} | MASKED_ADDRESSES
    out: set[str] = set()
    markers = list_markers(message)
    _header_tokens(message, out, recipients, features, list_post=bool(markers))
    if markers:
        out.add(LIST_POST)
    text_chars = 0
    budget = MAX_TEXT_CHARS
    for text in message.text_parts:
        if budget <= 0:
            break
        text = without_list_footer(bounded(text, budget), markers)
        budget -= len(text)
        text_chars += len(text)
        _body_tokens(text, out, recipients, "", features)
    for raw_html in message.html_parts:
        if budget <= 0:
            break
        raw_html = bounded(raw_html, budget * 3)  # markup is mostly tags; its text is capped below
        visible, hidden, markup_features = html_to_text(raw_html, tags="html" in features)
        out.update(markup_features)
        visible = without_list_footer(bounded(visible, budget), markers)
        budget -= len(visible)
        text_chars += len(visible)
        _body_tokens(visible, out, recipients, "", features)
        if hidden:
            _body_tokens(hidden[:budget], out, recipients, "hid:", frozenset())
    attached = attached_evidence(message)
    if attached.text:
        out.add("att:hastext")
        _body_tokens(attached.text, out, recipients, ATTACHMENT_PREFIX, features)
    if attached.qr_codes:
        out.add("att:qr")
    if "shape" in features:
        out.add(f"len:{_log2_bucket(text_chars)}")
        if not message.text_parts and message.html_parts:
            out.add("html:only")
    urls = message.urls
    if markers:
        urls = tuple(u for u in urls if not any(m in u.lower() for m in markers))
    _url_tokens(urls, message, out, features)
    # links in documents and QR codes give the same link tokens; `url:count` stays the body's
    _url_tokens((*attached.links, *attached.qr_links), message, out, features, counted=False)
    for attachment in message.attachments[:10]:
        out.add("att:" + attachment.real_type)
    return frozenset(out)


def degenerate(token: str) -> str | None:
    """The case-folded fallback of a word kept with its capitals (`FREE` → `free`), else None.

    Scoring uses the fallback's counts when the exact form was never learnt (Graham's degeneration)."""
    if ":" in token or " " in token:
        return None
    folded = token.casefold()
    return folded if folded != token else None


def html_to_text(markup: str, *, tags: bool = False) -> tuple[str, str, set[str]]:
    """(visible text, hidden text, markup features) of an HTML body; fast, tolerant, regex based.

    With `tags`, the features include the names of the tags (`tag:font`) and attributes (`attr:bgcolor`).
    """
    features = {"html:yes"}
    if _IMG_RE.search(markup):
        features.add("html:img")
    if _FORM_RE.search(markup):
        features.add("html:form")
    if tags:
        seen_tags: set[str] = set()
        seen_attrs: set[str] = set()
        count = 0
        for name, attrs in _TAG_NAME_RE.findall(markup):
            count += 1
            seen_tags.add(name.lower())
            if "=" in attrs:
                seen_attrs.update(_ATTR_NAME_RE.findall(attrs))
        features.update("tag:" + t for t in seen_tags - _SKELETON_TAGS)
        features.update("attr:" + a for a in {a.lower() for a in seen_attrs} - _SKELETON_ATTRS)
        features.add(f"html:tags:{_log2_bucket(count)}")
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


def cased_word_set(text: str) -> set[str]:
    """Like `word_set`, but a word written with capitals keeps them (`FREE`, `Click`); see `degenerate`."""
    return set(_normalise(set(_WORD_RE.findall(unicodedata.normalize("NFKC", text)))))


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
            out.append(f"L:{word[:12].casefold()}:{n // 10}")
        else:
            out.append(word)
    return out


def _log2_bucket(n: int) -> int:
    return 0 if n <= 0 else int(math.log2(n))


@lru_cache(maxsize=4096)
def _org(domain: str) -> str:
    return organisational_domain(domain)


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


def list_markers(message: Message) -> tuple[str, ...]:
    """The list's own addresses and page links when the message is a mailing-list post, else ().

    A post has a List-Id and what only a list manager adds beside it (List-Post, Mailman's or Google
    Groups' headers): List-Id or List-Unsubscribe alone is what an ESP's newsletter carries too, and a
    newsletter's footer is its sender's own words."""
    present = message.header_names()
    if "mailing-list" not in present and not ("list-id" in present and present & LIST_MECHANICS):
        return ()  # Mailing-List alone: only list managers (ezmlm, Yahoo Groups) write it
    markers: set[str] = set()
    for name in ("Mailing-List", "X-BeenThere"):  # the list's address, also where no List-* link is written
        for value in message.raw_headers(name)[:2]:
            markers.update(a.lower() for a in _EMAIL_RE.findall(value[:1000]) if len(a) >= 6)
    for name in _LIST_HEADERS:
        for value in message.raw_headers(name)[:4]:
            for target in _LIST_TARGET_RE.findall(value[:2000]):
                target = target.lower().split("?", 1)[0].removeprefix("mailto:")
                target = target.split("://", 1)[-1].rstrip("/")
                if len(target) >= 6:
                    markers.add(target)
    ident = _LIST_TARGET_RE.search(message.header("List-Id") or "")
    if ident and not markers:  # a post all the same; its identifier is what it can be known by
        markers.add(ident.group(1).lower())
    return tuple(sorted(markers))[:12]


def without_list_footer(text: str, markers: tuple[str, ...]) -> str:
    """The text without the footer a list manager appended: from the last separator line (or the first
    line naming the list's address or pages) in the text's tail, when what follows names the list."""
    if not markers or not text:
        return text
    start = max(0, len(text) - _FOOTER_TAIL)
    tail = text[start:].lower()
    first = min((i for i in (tail.find(m) for m in markers) if i >= 0), default=-1)
    if first < 0:
        return text
    cut = tail.rfind("\n", 0, first) + 1
    for sep in _FOOTER_SEPARATOR_RE.finditer(tail, 0, first):
        cut = sep.start()  # the last separator before the first mention
    return text[: start + cut]


def _body_tokens(text: str, out: set[str], recipients: set[str], prefix: str, features: frozenset[str]) -> None:
    text = _strip_addresses(text, out, recipients, prefix)
    if prefix:
        out.update(prefix + w for w in word_set(text))
        return
    if "shape" in features:
        if _MONEY_RE.search(text):
            out.add("shape:money")
        if _PERCENT_RE.search(text):
            out.add("shape:percent")
        if _SHOUT_RE.search(text):
            out.add("shape:shout")
    if "osb" not in features:
        out.update(cased_word_set(text) if "case" in features else word_set(text))
        return
    seq = words(text)
    out.update(seq)
    # orthogonal sparse bigrams: each word paired with each of the next four, the gap kept in the token
    for d, sep in enumerate(_OSB_SEPARATORS, start=1):
        out.update([a + sep + b for a, b in zip(seq, seq[d:], strict=False)])


def _subject_tokens(
    message: Message, out: set[str], recipients: set[str], features: frozenset[str], *, list_post: bool = False
) -> None:
    subject = message.subject
    if list_post:
        for _ in range(3):  # "[list] Re: [list] ...": every leading tag
            subject, found = _LIST_TAG_RE.subn(r"\1", subject, count=1)
            if not found:
                break
    subject = _strip_addresses(subject, out, recipients, "subj:")
    out.update("subj:" + w for w in words(subject))
    if "shape" not in features or not subject:
        return
    letters = [c for c in subject if c.isalpha()]
    if len(letters) >= 6 and sum(c.isupper() for c in letters) > 0.6 * len(letters):
        out.add("subj:shape:caps")
    if "!" in subject:
        out.add("subj:shape:bang")
    if _MONEY_RE.search(subject):
        out.add("subj:shape:money")
    if _DIGITS3_RE.search(subject):
        out.add("subj:shape:number")
    if subject.rstrip() != subject or "  " in subject:
        out.add("subj:shape:spaces")


def _header_tokens(
    message: Message, out: set[str], recipients: set[str], features: frozenset[str], *, list_post: bool = False
) -> None:
    _subject_tokens(message, out, recipients, features, list_post=list_post)
    out.update("fromname:" + w for w in words(message.from_display_name))
    from_domain = (message.from_address or "").rpartition("@")[2]
    from_org = _org(from_domain) if from_domain else ""
    if from_domain:
        out.add("fromdom:" + from_domain)
    else:
        out.add("from:none")
    reply_domain = (message.reply_to or "").rpartition("@")[2]
    if reply_domain:
        out.add("rtdom:" + reply_domain)
        if from_domain and _org(reply_domain) != from_org:
            out.add("rt:differs")
    if "sender" in features:
        _sender_tokens(message, out, from_domain, from_org)
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
            mua = str(value).lower()
        elif key == "message-id":
            has_message_id = True
    if mua is not None:
        _mua_tokens(mua, out, features)
    hops = len(received)
    out.add("rcvd:" + ("0" if hops == 0 else "1-2" if hops <= 2 else "3-5" if hops <= 5 else "many"))
    if any("TLS" in r or "ESMTPS" in r for r in received):
        out.add("rcvd:tls")
    if "received" in features:
        _received_tokens(received, out)
    if not has_message_id:
        out.add("msgid:none")
    if "mime" in features:
        _mime_tokens(message, out)


def _sender_tokens(message: Message, out: set[str], from_domain: str, from_org: str) -> None:
    """The sender's registered domain, Return-Path, Message-ID domain and the display name's shape."""
    if from_org:
        out.add("fromorg:" + from_org)
    display = message.from_display_name
    if not display:
        out.add("fromname:none")
    elif "@" in display:
        out.add("fromname:address")  # `"service@bank.example" <x@elsewhere.example>`
    return_domain = (message.return_path or "").rpartition("@")[2]
    if not return_domain:
        out.add("rp:none")
    else:
        out.add("rpdom:" + _org(return_domain))
        if from_org and _org(return_domain) != from_org:
            out.add("rp:differs")
    msgid = message.message_id or ""
    msgid_domain = msgid.rpartition("@")[2].rstrip(">").strip().lower()
    if msgid and from_org:
        if "." not in msgid_domain:
            out.add("msgid:nodomain")
        elif _org(msgid_domain) == from_org:
            out.add("msgid:fromdom")
        else:
            out.add("msgid:otherdom")


def _mua_tokens(value: str, out: set[str], features: frozenset[str]) -> None:
    """The mail program: its first word, and with "mua" its words and major version (`mua:outlook:6`)."""
    parts = _MUA_RE.findall(value)
    names = [p for p in parts if not p.isdigit()]
    out.add("mua:" + (names[0] if names else "other"))
    if "mua" not in features:
        return
    out.update("mua:w:" + w for w in names[1:4] if len(w) > 1)
    digits = [p for p in parts if p.isdigit()]
    if names and digits:
        out.add(f"mua:{names[0]}:{digits[0]}")


def _received_tokens(received: list[str], out: set[str]) -> None:
    """The registered domains of the relays on the sender's side of the Received chain.

    The receiving site's own hops (the newest ones, down to the hop where the message came in) say where
    the mail was collected, not who sent it, so they are skipped: walking down from the top, a hop is the
    receiver's while its `by` host is the top hop's domain, a bare or IP name, or a domain seen on the
    receiver's side already (a POP/IMAP fetch puts the mailbox provider there). The first hop whose `from`
    host lies outside is the one that handed the message in; its `from` host and those below it give
    `rcvd:from:<domain>` (or `rcvd:from:ip` / `rcvd:from:bare`).
    """
    receivers: set[str] = set()
    outside = False
    for value in received[:MAX_HOPS]:
        m = _RECEIVED_RE.match(value)
        if not m:
            continue
        sender = _relay_name(m.group(1))
        if not outside:
            by = _relay_name(m.group(2) or "")
            if not receivers or by in receivers or by in ("bare", "ip"):
                receivers.add(by)
                if sender in receivers or sender in ("bare", "ip") or _FETCH_RE.search(value):
                    receivers.add(sender)
                    continue
            outside = True
        out.add("rcvd:from:" + sender)


def _relay_name(host: str) -> str:
    host = host.strip("[]<>.").lower()
    if _IPV4_RE.match(host) or ":" in host:
        return "ip"
    return _org(host) if "." in host else "bare"


def _mime_tokens(message: Message, out: set[str]) -> None:
    """Charsets, transfer encodings and the shape of the MIME tree (`mime:multipart/alternative(...)`)."""
    shape: list[str] = []
    for count, part in enumerate(mime.parts(message.email)):
        if count >= 20:
            break
        ctype = part.get_content_type()
        if len(shape) < 6:
            shape.append(ctype)
        charset = part.get_param("charset")
        if isinstance(charset, str) and ctype.startswith("text/"):
            out.add("charset:" + charset.lower().strip('"')[:20])
        cte = part.get("Content-Transfer-Encoding")
        if cte is not None:
            out.add("cte:" + str(cte).strip().lower()[:20])
    out.add(f"mime:{shape[0]}({','.join(shape[1:])})" if len(shape) > 1 else f"mime:{shape[0] if shape else 'none'}")
    raw_subject = message.raw_headers("Subject")[:1]
    if raw_subject and "=?" in raw_subject[0]:
        encoded = raw_subject[0].split("=?", 1)[1].split("?", 2)
        if len(encoded) >= 2:
            out.add(f"subj:enc:{encoded[0].lower()[:20]}:{encoded[1].lower()}")


def _url_tokens(
    urls: tuple[str, ...], message: Message, out: set[str], features: frozenset[str], *, counted: bool = True
) -> None:
    extra = "url" in features
    from_org = ""
    if extra:
        if counted:
            out.add(f"url:count:{_log2_bucket(len(urls))}")
        from_domain = (message.from_address or "").rpartition("@")[2]
        from_org = _org(from_domain) if from_domain else ""
    for count, url in enumerate(urls):
        if count >= MAX_URLS:
            break
        if url.lower().startswith("www."):
            url = "http://" + url
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").rstrip(".")
            port = parts.port
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
        org = _org(host)
        out.add("url:host:" + host)
        out.add("url:dom:" + org)
        if "@" in parts.netloc:
            out.add("url:userinfo")  # http://bank.example@evil.example/: the host is what follows the @
        path = parts.path.lower()
        if extra:
            out.add("url:tld:" + host.rpartition(".")[2])
            if port is not None:
                out.add("url:port")
            if from_org:
                out.add("url:fromdom" if org == from_org else "url:otherdom")
            if host.count(".") >= 3:
                out.add("url:deephost")
            last = path.rpartition("/")[2]
            if "." in last:
                out.add("url:ext:" + last.rpartition(".")[2][:8])
        if "@" in path:
            path = _EMAIL_RE.sub(" ", path)  # an address in the path may be the recipient's
        for w in _URL_WORD_RE.findall(path)[:6]:
            out.add("url:path:" + (w if len(w) <= MAX_WORD else w[:12]))
        if parts.query:
            out.add("url:query")
