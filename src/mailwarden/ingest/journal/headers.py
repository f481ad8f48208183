"""Header values as journal reports carry them: unfolded text, Message-IDs, addresses and address lists."""

from __future__ import annotations

import email.utils
import re
from email.message import Message as MimePart

from mailwarden.model.envelope import normalise_address

_FOLD = re.compile(r"\r?\n(?=[ \t])")


def header_text(value: object) -> str:
    """A header value unfolded, white space collapsed, raw 8-bit bytes read as UTF-8."""
    text = " ".join(_FOLD.sub("", str(value)).split())
    if any("\udc80" <= ch <= "\udcff" for ch in text):
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text


def first_header(headers: MimePart, name: str) -> str | None:
    """The first value of a header field as text, or None when it is absent or empty."""
    value = headers.get(name)
    if value is None:
        return None
    return header_text(value) or None


def parse_message_id(value: str | None) -> str | None:
    """A Message-ID with any folding white space removed, or None."""
    if value is None:
        return None
    return "".join(value.split()) or None


def header_addresses(headers: MimePart, name: str) -> list[str]:
    """The valid addresses of every occurrence of an address field (From, To, Cc), in order."""
    values = [str(v) for v in headers.get_all(name, [])]
    out = []
    for _, addr in email.utils.getaddresses(values):
        address = valid_address(addr)
        if address:
            out.append(address)
    return out


def valid_address(text: str) -> str | None:
    """The address normalised, or None unless it has a local part, an @ and a domain, and no white space."""
    address = normalise_address(text)
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or any(ch.isspace() for ch in address):
        return None
    return address


def find_address(text: str) -> str | None:
    """The address in a report value: `a@b`, `<a@b>` or `Name <a@b>`."""
    if "<" in text:
        return valid_address(text[text.rfind("<") + 1 :].split(">", 1)[0])
    for token in text.split():
        if "@" in token:
            return valid_address(token)
    return None


def split_list(value: str) -> list[str]:
    """Comma-separated items, ignoring commas inside quotes or angle brackets."""
    if '"' not in value and "<" not in value:
        return [item for item in (part.strip() for part in value.split(",")) if item]
    items: list[str] = []
    current: list[str] = []
    quoted = angle = False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        elif ch == "<" and not quoted:
            angle = True
        elif ch == ">" and not quoted:
            angle = False
        elif ch == "," and not quoted and not angle:
            items.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    items.append("".join(current).strip())
    return [item for item in items if item]
