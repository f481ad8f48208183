"""Find sensitive information in extracted text: the built-in types plus custom types from policy.

Text is NFKC-normalised first (full-width digits and letters become ASCII) and dash-like characters are
folded to "-". Folding maps one character to one character; NFKC may lengthen a few compatibility
characters (㈱, ⑩), and matches, keywords and proximity windows are all measured in the same normalised
text, so distances stay honest. Only the redacted form of a value leaves this module.
"""

from __future__ import annotations

import bisect
import functools
import re
import unicodedata
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import re2
from pydantic import BaseModel, ConfigDict, Field, field_validator

from mailwarden.pipeline.dlp.redact import redact
from mailwarden.pipeline.dlp.types import (
    BUILTIN_NAMES,
    BUILTIN_TYPES,
    DEFAULT_PROXIMITY,
    Confidence,
    Detector,
    InfoType,
)
from mailwarden.pipeline.extract import TextSource

MAX_SAMPLES: Final = 3
MAX_TEXT_CHARS: Final = 2_000_000
"""Characters of one text source scanned; extraction already bounds whole messages."""
MAX_PATTERN_CHARS: Final = 1000

_DASHES: Final = {cp: "-" for cp in (0x2010, 0x2011, 0x2012, 0x2013, 0x2014, 0x2015, 0x2212, 0xFE63)}


def normalize(text: str) -> str:
    """NFKC with dash-like characters folded to "-": the form every pattern and keyword sees."""
    if text.isascii():
        return text
    return unicodedata.normalize("NFKC", text).translate(_DASHES)


def _options(*, case_sensitive: bool = True) -> re2.Options:
    options = re2.Options()
    options.log_errors = False
    options.case_sensitive = case_sensitive
    # a bound on the automaton's memory: a custom pattern too big for it fails to compile, on save
    options.max_mem = 8 << 20
    return options


def compile_pattern(pattern: str, *, case_sensitive: bool = True) -> re2._Regexp[str]:
    """Compile with RE2 (linear time); raises ValueError for syntax RE2 refuses (look-around,
    back-references) and for patterns that match the empty string."""
    try:
        compiled = re2.compile(pattern, _options(case_sensitive=case_sensitive))
    except re2.error as exc:
        raise ValueError(f"not a linear-time (RE2) pattern: {exc}") from exc
    if compiled.fullmatch("") is not None:
        raise ValueError("pattern matches the empty string")
    return compiled


def _keyword_pattern(keywords: Sequence[str]) -> str:
    """One case-insensitive alternation. An ASCII keyword must stand apart from other letters and digits
    ("tel" is not in "hotel") but "_" separates ("aws" in "aws_secret"); a space in a keyword also matches
    "_", "-" or nothing ("secret_access_key", "SecretAccessKey")."""
    parts = []
    for keyword in sorted({normalize(k).lower() for k in keywords if k.strip()}, key=len, reverse=True):
        body = r"[\s_\-]*".join(re2.escape(w) for w in keyword.split())
        if keyword[0].isascii() and keyword[0].isalnum():
            body = r"(?:^|[^a-z0-9])" + body
        if keyword[-1].isascii() and keyword[-1].isalnum():
            body += r"(?:[^a-z0-9]|$)"
        parts.append(body)
    return "|".join(parts)


class CustomType(BaseModel):
    """A sensitive information type defined in policy: a pattern and, optionally, keywords one of which
    must occur within `proximity` characters of a match for it to count."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.\-]{0,63}$")
    pattern: str = Field(min_length=1, max_length=MAX_PATTERN_CHARS)
    keywords: tuple[str, ...] = ()
    proximity: int = Field(default=DEFAULT_PROXIMITY, ge=0, le=10_000)
    min_count: int = Field(default=1, ge=1, le=10_000)
    confidence: Confidence = Confidence.MEDIUM

    @field_validator("name")
    @classmethod
    def _not_builtin(cls, value: str) -> str:
        if value in BUILTIN_NAMES:
            raise ValueError(f"{value!r} is a built-in type")
        return value

    @field_validator("pattern")
    @classmethod
    def _linear_time(cls, value: str) -> str:
        compile_pattern(value)
        return value

    def info_type(self) -> InfoType:
        level = self.confidence
        return InfoType(
            self.name,
            (Detector(self.pattern, _whole, None if self.keywords else level, level),),
            self.keywords,
            self.proximity,
        )


def _whole(text: str) -> str | None:
    return text or None


@dataclass(frozen=True, slots=True)
class DlpMatch:
    """Sensitive information of one type at one confidence level: how many distinct values, and a few
    of them redacted. A value seen at several levels is counted once, at its highest."""

    type: str
    count: int
    confidence: str
    samples: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "count": self.count, "confidence": self.confidence, "samples": list(self.samples)}


def count_at_least(matches: Iterable[DlpMatch], type: str, confidence: Confidence | str) -> int:
    """Distinct values of `type` found at `confidence` or above (what a rule's condition compares)."""
    floor = Confidence(confidence).rank
    return sum(m.count for m in matches if m.type == type and Confidence(m.confidence).rank >= floor)


@dataclass(slots=True)
class _Compiled:
    info: InfoType
    detectors: tuple[tuple[re2._Regexp[str], Detector], ...]
    keywords: re2._Regexp[str] | None
    min_count: int = 1


def _compile(info: InfoType, min_count: int = 1) -> _Compiled:
    detectors = tuple((compile_pattern(d.pattern), d) for d in info.detectors)
    keywords = compile_pattern(_keyword_pattern(info.keywords), case_sensitive=False) if info.keywords else None
    return _Compiled(info, detectors, keywords, min_count=min_count)


_BUILTIN_COMPILED: list[_Compiled] = []


def _builtins() -> list[_Compiled]:
    if not _BUILTIN_COMPILED:
        _BUILTIN_COMPILED.extend(_compile(t) for t in BUILTIN_TYPES)
    return _BUILTIN_COMPILED


class _Keywords:
    """Keyword positions of one type in one text, found on first need."""

    __slots__ = ("ends", "starts")

    def __init__(self, pattern: re2._Regexp[str], text: str) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        for m in pattern.finditer(text):
            self.starts.append(m.start())
            self.ends.append(m.end())

    def near(self, start: int, end: int, proximity: int) -> bool:
        # matches from finditer do not overlap, so starts and ends are both increasing
        i = bisect.bisect_left(self.ends, start - proximity)
        return i < len(self.starts) and self.starts[i] <= end + proximity


class DlpScanner:
    """Scans text sources for every built-in type and the custom types given."""

    def __init__(self, custom: Sequence[CustomType] = ()) -> None:
        names = [c.name for c in custom]
        if len(set(names)) != len(names):
            raise ValueError("custom sensitive information types must have distinct names")
        self._types = [*_builtins(), *(_compile(c.info_type(), c.min_count) for c in custom)]

    @property
    def type_names(self) -> tuple[str, ...]:
        return tuple(t.info.name for t in self._types)

    def scan(self, texts: Iterable[TextSource]) -> list[DlpMatch]:
        """Matches by type and confidence, strongest first within a type; values only in redacted form."""
        best: dict[str, dict[str, Confidence]] = {t.info.name: {} for t in self._types}
        for source in texts:
            text = normalize(source.text[:MAX_TEXT_CHARS])
            for compiled in self._types:
                self._scan_one(compiled, text, best[compiled.info.name])
        out: list[DlpMatch] = []
        for compiled in self._types:
            name = compiled.info.name
            found = best[name]
            if len(found) < compiled.min_count:
                continue
            for level in (Confidence.HIGH, Confidence.MEDIUM, Confidence.LOW):
                values = [v for v, c in found.items() if c is level]
                if values:
                    samples = tuple(dict.fromkeys(redact(name, v) for v in values))[:MAX_SAMPLES]
                    out.append(DlpMatch(name, len(values), level.value, samples))
        return out

    @staticmethod
    def _scan_one(compiled: _Compiled, text: str, found: dict[str, Confidence]) -> None:
        for _, _, value, level in _values(compiled, text):
            previous = found.get(value)
            if previous is None or level.rank > previous.rank:
                found[value] = level

    def redact_text(self, text: str, types: Collection[str]) -> str:
        """`text` with every value of `types` the scanner would report replaced by its redacted form;
        the rest of the text, original spelling included (full-width digits, dashes), is left as it was."""
        if not _may_hold_values(text):
            return text
        normal, origin = _normalize_mapped(text[:MAX_TEXT_CHARS])
        spans: list[tuple[int, int, str]] = []
        for compiled in self._types:
            if compiled.info.name in types:
                for start, end, value, _ in _values(compiled, normal):
                    end = _extent(compiled.info.name, normal, end)
                    spans.append((origin[start], origin[end - 1] + 1, redact(compiled.info.name, value)))
        out: list[str] = []
        done = 0
        for start, end, shown in sorted(spans, key=lambda span: (span[0], -span[1])):
            if start < done:  # inside a value already replaced (a number two types both take)
                continue
            out += [text[done:start], shown]
            done = end
        return "".join(out) + text[done:] if spans else text


def _values(compiled: _Compiled, text: str) -> Iterator[tuple[int, int, str, Confidence]]:
    """Every value of one type in normalised `text`: where it stands, its canonical form, its confidence."""
    keywords: _Keywords | None = None
    proximity = compiled.info.proximity
    for regex, detector in compiled.detectors:
        for m in regex.finditer(text):
            group = 1 if regex.groups else 0
            value = detector.validate(m.group(group))
            if value is None:
                continue
            level = detector.alone
            if compiled.keywords is not None and level is not detector.with_keyword:
                if keywords is None:
                    keywords = _Keywords(compiled.keywords, text)
                if keywords.near(m.start(group), m.end(group), proximity):
                    level = detector.with_keyword
            if level is not None:
                yield m.start(group), m.end(group), value, level


SHOWN_IN_FULL: Final = frozenset({"email", "jp_phone", "jp_corporate_number"})
"""Built-in types `redact_values` leaves readable: addresses are stored as routing data anyway, phone
numbers stand in every signature, corporate numbers are published by the tax agency."""
_REDACTED_TYPES: Final = BUILTIN_NAMES - SHOWN_IN_FULL


@functools.cache
def _builtin_scanner() -> DlpScanner:
    return DlpScanner()


_CACHED_TEXT_CHARS: Final = 1000


def redact_values(text: str) -> str:
    """`text` fit to store or show: every card number, IBAN, national id, key and token in it (every
    built-in type but those `SHOWN_IN_FULL`) replaced by its redacted form, as in `DlpMatch.samples`."""
    return (_redacted_short if len(text) <= _CACHED_TEXT_CHARS else _redacted)(text)


def _redacted(text: str) -> str:
    return _builtin_scanner().redact_text(text, _REDACTED_TYPES)


# Most texts a record redacts recur message after message (the filters' own finding details, list
# addresses, common file names): two thirds of them on the corpus are answered from here.
_redacted_short = functools.lru_cache(maxsize=4096)(_redacted)


# A private key's pattern takes its first line of key material; the redacted span runs to the END line.
_KEY_REST: Final = re.compile(r"[A-Za-z0-9+/=\s]*(?:-----END (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----)?")


def _extent(type: str, text: str, end: int) -> int:
    """Where a value found ending at `end` really ends, for redacting it whole."""
    if type == "private_key":
        found = _KEY_REST.match(text, end)
        if found is not None:
            return found.end()
    return end


# Every built-in value has 9 or more digits (cards, IBAN, SSN, My Number) or is a run of at least 15
# token characters (keys and tokens, a private key's material): text with neither is not scanned.
# The digit count is a regex anchored at the start (possessive, so linear): a Python loop over every
# character cost the record 0.5 ms a message, redacting the dozen texts of a verdict and its timeline.
_TOKEN_RUN: Final = re.compile(r"[A-Za-z0-9_+/=\-]{15}")
_NINE_DIGITS: Final = re.compile(r"(?:\D*+\d){9}")


def _may_hold_values(text: str) -> bool:
    text = normalize(text)
    return _NINE_DIGITS.match(text) is not None or _TOKEN_RUN.search(text) is not None


def _normalize_mapped(text: str) -> tuple[str, list[int]]:
    """`normalize` one character at a time, with the index in `text` each normalised character came
    from (NFKC may turn one character into several). Combining marks are not composed with the
    character before them, which no pattern or keyword of a value depends on."""
    if text.isascii():
        return text, list(range(len(text)))
    parts: list[str] = []
    origin: list[int] = []
    for index, ch in enumerate(text):
        normal = unicodedata.normalize("NFKC", ch).translate(_DASHES) if not ch.isascii() else ch
        parts.append(normal)
        origin.extend([index] * len(normal))
    return "".join(parts), origin
