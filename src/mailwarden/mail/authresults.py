"""Authentication-Results (RFC 8601) and ARC-Authentication-Results: build and parse, no I/O.

The parser is lenient in the ways real mail needs: comments and quoted strings anywhere, no space after
`;`, a header without an authserv-id (Exchange Online writes `spf=fail (...) smtp.mailfrom=...; ...`),
the `i=N;` prefix of ARC-Authentication-Results, and non-standard tags such as Microsoft's
`action=none` (kept as properties under their own name).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

# characters that may stand in a value without quoting (RFC 2045 token plus the @ and / of addresses)
_VALUE_SAFE = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`{|}~@/:]+$")
_METHOD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*(/[0-9]+)?$")


@dataclass(frozen=True, slots=True)
class AuthResult:
    """One `method=result` resinfo: `dkim=pass (good) header.d=example.org header.s=sel`."""

    method: str
    result: str
    comment: str = ""
    reason: str = ""
    properties: tuple[tuple[str, str], ...] = ()

    def get(self, name: str) -> str | None:
        """A property by its `ptype.property` name (or a bare tag such as `action`), case-insensitive."""
        wanted = name.lower()
        for key, value in self.properties:
            if key.lower() == wanted:
                return value
        return None


@dataclass(frozen=True, slots=True)
class AuthenticationResults:
    """A parsed header value. `authserv_id` is None when the header carries none (Exchange Online)."""

    authserv_id: str | None
    results: tuple[AuthResult, ...] = ()
    instance: int | None = None  # the i= of an ARC-Authentication-Results
    version: str | None = None

    def first(self, method: str) -> AuthResult | None:
        return next((r for r in self.results if r.method.lower() == method.lower()), None)

    def all(self, method: str) -> list[AuthResult]:
        return [r for r in self.results if r.method.lower() == method.lower()]


@dataclass
class _Segment:
    """The tokens between two top-level `;`: words, `=` signs and the comments that followed them."""

    tokens: list[str] = field(default_factory=list)
    comments: list[tuple[int, str]] = field(default_factory=list)  # (index of the token before, text)


# ---- build ---------------------------------------------------------------------------------------


def build(authserv_id: str, results: Sequence[AuthResult]) -> str:
    """The header value (without the field name): `authserv-id; method=result ...; ...` or `; none`."""
    if not results:
        return f"{authserv_id}; none"
    return "; ".join([authserv_id, *(format_result(r) for r in results)])


def format_result(res: AuthResult) -> str:
    parts = [f"{res.method}={res.result}"]
    if res.comment:
        parts.append(f"({_comment_text(res.comment)})")
    if res.reason:
        parts.append(f"reason={_value(res.reason)}")
    parts.extend(f"{key}={_value(value)}" for key, value in res.properties)
    return " ".join(parts)


def _comment_text(text: str) -> str:
    # parentheses and backslashes inside a comment must be quoted-pairs
    return re.sub(r"([()\\])", r"\\\1", " ".join(text.split()))


def _value(value: str) -> str:
    if value and _VALUE_SAFE.match(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---- parse ---------------------------------------------------------------------------------------


def parse(value: str, *, arc: bool = False) -> AuthenticationResults:
    """Parse an Authentication-Results value (or, with `arc=True`, an ARC-Authentication-Results one).

    Never raises: what cannot be read is left out, so a mangled header yields fewer results.
    """
    segments = list(_segments(value))
    instance: int | None = None
    if arc and segments and _is_instance(segments[0]):
        instance = int(segments[0].tokens[2])
        segments = segments[1:]
    authserv_id: str | None = None
    version: str | None = None
    if segments and not _is_resinfo(segments[0]):
        head = segments.pop(0).tokens
        if head:
            authserv_id = head[0].lower()
            version = head[1] if len(head) > 1 and head[1].isdigit() else None
    results = tuple(r for r in (_resinfo(s) for s in segments) if r is not None)
    return AuthenticationResults(authserv_id, results, instance, version)


def _is_instance(seg: _Segment) -> bool:
    t = seg.tokens
    return len(t) == 3 and t[0].lower() == "i" and t[1] == "=" and t[2].isdigit()


def _is_resinfo(seg: _Segment) -> bool:
    t = seg.tokens
    return (len(t) >= 3 and t[1] == "=" and bool(_METHOD.match(t[0]))) or (len(t) == 1 and t[0].lower() == "none")


def _resinfo(seg: _Segment) -> AuthResult | None:
    t = seg.tokens
    if len(t) < 3 or t[1] != "=" or not _METHOD.match(t[0]):
        return None
    method = t[0].split("/", 1)[0].lower()
    result = t[2].lower()
    comment = " ".join(text for idx, text in seg.comments if idx == 2)
    reason = ""
    props: list[tuple[str, str]] = []
    i = 3
    while i < len(t):
        if i + 2 < len(t) and t[i + 1] == "=" and t[i] != "=":
            key, val = t[i].lower(), t[i + 2]
            if key == "reason":
                reason = val
            else:
                props.append((key, val))
            i += 3
        else:
            i += 1  # a stray word (a value split by an unquoted space): skip it
    return AuthResult(method, result, comment, reason, tuple(props))


def _segments(value: str) -> Iterator[_Segment]:
    seg = _Segment()
    for kind, text in _lex(value):
        if kind == ";":
            yield seg
            seg = _Segment()
        elif kind == "(":
            seg.comments.append((len(seg.tokens) - 1, text))
        else:
            seg.tokens.append(text)
    if seg.tokens or seg.comments:
        yield seg


def _lex(value: str) -> Iterable[tuple[str, str]]:
    """Tokens: ("w", word), ("w", quoted string content), ("=", "="), (";", ";"), ("(", comment text)."""
    i, n = 0, len(value)
    while i < n:
        ch = value[i]
        if ch.isspace():
            i += 1
        elif ch in ";=":
            yield ch, ch
            i += 1
        elif ch == "(":
            depth, j, buf = 1, i + 1, []
            while j < n and depth:
                c = value[j]
                if c == "\\" and j + 1 < n:
                    buf.append(value[j + 1])
                    j += 2
                    continue
                if c == "(":
                    depth += 1
                elif c == ")":
                    depth -= 1
                    if not depth:
                        break
                buf.append(c)
                j += 1
            yield "(", " ".join("".join(buf).split())
            i = j + 1
        elif ch == '"':
            j, buf = i + 1, []
            while j < n and value[j] != '"':
                if value[j] == "\\" and j + 1 < n:
                    j += 1
                buf.append(value[j])
                j += 1
            yield "w", "".join(buf)
            i = j + 1
        else:
            j = i
            while j < n and not value[j].isspace() and value[j] not in ';=()"':
                j += 1
            yield "w", value[i:j]
            i = j


def select_trusted(
    authentication_results: Sequence[str],
    arc_authentication_results: Sequence[str],
    trusted_ids: Iterable[str],
    *,
    trust_first: bool = False,
) -> AuthenticationResults | None:
    """The results the organisation's own mail service wrote on a journal copy, or None.

    Headers are given topmost first. Only the topmost Authentication-Results of a trusted authserv-id
    counts: anything below it may have been written by the sender. With `trust_first` the topmost header
    counts whatever its id (Exchange Online writes one without an authserv-id). Failing both, the newest
    ARC-Authentication-Results of a trusted id is used (Gmail journal copies carry only that).
    """
    trusted = {t.lower().rstrip(".") for t in trusted_ids}
    parsed = [parse(v) for v in authentication_results]
    if trust_first and parsed and parsed[0].results:
        return parsed[0]
    for header in parsed:
        if header.authserv_id is not None and header.authserv_id.rstrip(".") in trusted:
            return header
    sealed = [parse(v, arc=True) for v in arc_authentication_results]
    candidates = [h for h in sealed if h.authserv_id is not None and h.authserv_id.rstrip(".") in trusted]
    if not candidates:
        return None
    return max(candidates, key=lambda h: h.instance or 0)
