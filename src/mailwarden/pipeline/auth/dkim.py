"""DKIM verification (RFC 6376) with dkimpy, its key look-ups answered by our asynchronous resolver.

dkimpy resolves synchronously by default. We never let it: the `selector._domainkey.domain` TXT records
of every signature are fetched first through `Resolver.query` (concurrently, cached), then dkimpy is
given a `dnsfunc` that answers from those prefetched records only. The CPU part (canonicalisation and
the RSA/Ed25519 check) runs in a worker thread so a large message does not stall the event loop.

Per-signature results follow RFC 8601 §2.7.1: pass, fail (bad signature or body hash), neutral (the
signature's tag list cannot be read), permerror (no key, revoked or unusable key, unknown algorithm,
expired, i= outside d=), temperror (the key look-up failed); a message without signatures is `none`.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

import dkim  # type: ignore[import-untyped]
import dkim.util  # type: ignore[import-untyped]

from mailwarden.dns import DnsError, Resolver
from mailwarden.pipeline.cpu import offload


class DkimResult(StrEnum):
    PASS = "pass"  # noqa: S105 - a result word, not a password
    FAIL = "fail"
    NEUTRAL = "neutral"
    PERMERROR = "permerror"
    TEMPERROR = "temperror"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class DkimSignatureResult:
    """The verdict on one DKIM-Signature (in header order, topmost first)."""

    result: DkimResult
    domain: str = ""  # d=
    selector: str = ""  # s=
    algorithm: str = ""  # a=
    identity: str = ""  # i=
    b: str = ""  # the first characters of b=, to tell signatures of one domain apart (RFC 6008)
    reason: str = ""


# name → TXT strings, or the DnsError its look-up raised
KeyRecords = dict[str, tuple[str, ...] | DnsError]


def key_name(selector: str, domain: str) -> str:
    return f"{selector}._domainkey.{domain}".lower().rstrip(".")


async def prefetch_keys(resolver: Resolver, names: Iterable[str]) -> KeyRecords:
    """Look up every key record once, concurrently; a failure is kept, not raised."""
    wanted = sorted({n.lower().rstrip(".") for n in names})

    async def one(name: str) -> tuple[str, tuple[str, ...] | DnsError]:
        try:
            return name, (await resolver.query(name, "TXT")).records
        except DnsError as exc:
            return name, exc

    return dict(await asyncio.gather(*(one(n) for n in wanted)))


def key_record(records: tuple[str, ...]) -> str | None:
    """The DKIM key among the TXT strings of a key name (ignoring unrelated TXT records)."""
    for text in records:
        tags = text.replace(" ", "")
        if "p=" in tags and (tags.startswith("v=DKIM1") or "v=" not in tags.split(";", 1)[0]):
            return text
    return None


def dnsfunc_for(keys: Mapping[str, tuple[str, ...] | DnsError]) -> object:
    """A dkimpy `dnsfunc` that answers from prefetched records and never touches the network."""

    def lookup(name: bytes | str, timeout: int = 5) -> bytes | None:
        text = name.decode("ascii", "replace") if isinstance(name, bytes) else name
        found = keys.get(text.lower().rstrip("."))
        if found is None or isinstance(found, DnsError):
            return None
        record = key_record(found)
        return None if record is None else record.encode()

    return lookup


def signature_tags(value: bytes) -> dict[bytes, bytes] | None:
    """The tag list of a DKIM-Signature or ARC header value; None when it cannot be read."""
    try:
        tags: dict[bytes, bytes] = dkim.util.parse_tag_value(value)
    except dkim.util.InvalidTagValueList:
        return None
    return tags


def _text(tags: Mapping[bytes, bytes], key: bytes) -> str:
    return tags.get(key, b"").decode("utf-8", "replace").strip()


def has_header(raw: bytes, name: bytes) -> bool:
    """Cheap test whether the header block has a field of that (lower-case) name."""
    end = raw.find(b"\n\n")
    crlf = raw.find(b"\r\n\r\n")
    if crlf != -1 and (end == -1 or crlf < end):
        end = crlf
    head = (raw if end == -1 else raw[:end]).lower()
    return head.startswith(name + b":") or (b"\n" + name + b":") in head


@functools.lru_cache(maxsize=32)
def _headers(raw: bytes) -> tuple[tuple[bytes, bytes], ...]:
    """The DKIM-Signature fields; cached, as the key look-up and the verification both need them."""
    return tuple((k, v) for k, v in dkim.DKIM(raw).headers if k.lower() == b"dkim-signature")


def signature_key_names(raw: bytes) -> list[str]:
    names = []
    for _, value in _headers(raw):
        tags = signature_tags(value)
        if tags and b"s" in tags and b"d" in tags:
            names.append(key_name(_text(tags, b"s"), _text(tags, b"d")))
    return names


async def verify(raw: bytes, resolver: Resolver, *, minkey: int = 1024) -> list[DkimSignatureResult]:
    """Verify every DKIM-Signature of a message; `[none]` when it has no signature."""
    if not has_header(raw, b"dkim-signature"):  # most mail: skip dkimpy's parse and the thread hop
        return [DkimSignatureResult(DkimResult.NONE, reason="message not signed")]
    try:
        names = signature_key_names(raw)
    except dkim.DKIMException as exc:
        return [DkimSignatureResult(DkimResult.NEUTRAL, reason=f"message cannot be parsed: {exc}")]
    keys = await prefetch_keys(resolver, names)
    return await offload(verify_with_keys, raw, keys, minkey=minkey)


def verify_with_keys(
    raw: bytes, keys: Mapping[str, tuple[str, ...] | DnsError], *, minkey: int = 1024
) -> list[DkimSignatureResult]:
    """The synchronous part: every signature checked against prefetched key records."""
    signatures = _headers(raw)
    if not signatures:
        return [DkimSignatureResult(DkimResult.NONE, reason="message not signed")]
    lookup = dnsfunc_for(keys)
    out = []
    for idx, (_, value) in enumerate(signatures):
        out.append(_verify_one(raw, idx, value, keys, lookup, minkey))
    return out


def _verify_one(
    raw: bytes,
    idx: int,
    value: bytes,
    keys: Mapping[str, tuple[str, ...] | DnsError],
    lookup: object,
    minkey: int,
) -> DkimSignatureResult:
    tags = signature_tags(value)
    if tags is None:
        return DkimSignatureResult(DkimResult.NEUTRAL, reason="signature tag list cannot be parsed")
    b_tag = "".join(_text(tags, b"b").split())[:8]

    def result(res: DkimResult, reason: str = "") -> DkimSignatureResult:
        return DkimSignatureResult(
            res, _text(tags, b"d").lower(), _text(tags, b"s"), _text(tags, b"a"), _text(tags, b"i"), b_tag, reason
        )

    try:
        dkim.validate_signature_fields(tags)
    except dkim.ValidationError as exc:
        missing = str(exc).startswith("missing")
        return result(DkimResult.NEUTRAL if missing else DkimResult.PERMERROR, str(exc))
    name = key_name(_text(tags, b"s"), _text(tags, b"d"))
    found = keys.get(name)
    if isinstance(found, DnsError):
        return result(DkimResult.TEMPERROR, f"key look-up failed: {found}")
    record = key_record(found or ())
    if record is None:
        return result(DkimResult.PERMERROR, f"no key for signature at {name}")
    try:
        dkim.evaluate_pk(name, record.encode())
    except (dkim.KeyFormatError, ValueError) as exc:
        return result(DkimResult.PERMERROR, f"unusable key at {name}: {exc}")
    verifier = dkim.DKIM(raw, minkey=minkey)
    try:
        valid = verifier.verify(idx=idx, dnsfunc=lookup)
    except dkim.KeyFormatError as exc:
        return result(DkimResult.PERMERROR, str(exc))
    except dkim.ValidationError as exc:  # the tags were validated above: this is a body hash mismatch
        return result(DkimResult.FAIL, str(exc))
    except dkim.DKIMException as exc:
        return result(DkimResult.PERMERROR, str(exc))
    if valid:
        return result(DkimResult.PASS)
    return result(DkimResult.FAIL, "signature did not verify")


_PRECEDENCE = (
    DkimResult.PASS,
    DkimResult.FAIL,
    DkimResult.PERMERROR,
    DkimResult.TEMPERROR,
    DkimResult.NEUTRAL,
    DkimResult.NONE,
)


def summary(results: Iterable[DkimSignatureResult]) -> DkimResult:
    """One word for the message: pass if any signature passes, else the most telling failure."""
    found = {r.result for r in results}
    return next((r for r in _PRECEDENCE if r in found), DkimResult.NONE)
