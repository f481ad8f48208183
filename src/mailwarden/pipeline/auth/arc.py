"""ARC (RFC 8617) chain validation with dkimpy, key records prefetched through our resolver.

The chain validation status is none, pass or fail. When the chain cannot be checked we say so instead of
guessing: `temperror` when a key look-up failed, `permerror` when a key the verdict depends on is missing
or unusable, or the message cannot be read (RFC 8617 has neither status; they are ours, and no finding of
them carries weight). A missing key is not evidence of forgery: a resolver outage or an old archived
message fails the same way.
When the chain passes, every hop's sealer and ARC-Authentication-Results are exposed: the stage lets the
results of trusted forwarders stand for the original message's DMARC.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import dkim  # type: ignore[import-untyped]

from mailwarden.dns import DnsError, Resolver
from mailwarden.mail import authresults as results
from mailwarden.pipeline.auth.dkim import (
    dnsfunc_for,
    has_header,
    key_name,
    key_record,
    prefetch_keys,
    signature_tags,
)
from mailwarden.pipeline.cpu import offload

_ARC_HEADERS = (b"arc-seal", b"arc-message-signature")


class ArcResult(StrEnum):
    NONE = "none"
    PASS = "pass"  # noqa: S105 - a result word, not a password
    FAIL = "fail"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


@dataclass(frozen=True, slots=True)
class ArcHop:
    """One ARC set of a passing chain: its instance, who sealed it and what that hop reported."""

    instance: int
    sealer: str  # d= of its ARC-Seal
    aar: results.AuthenticationResults | None


@dataclass(frozen=True, slots=True)
class ArcOutcome:
    result: ArcResult
    reason: str = ""
    instances: int = 0
    sealer: str = ""  # d= of the newest ARC-Seal: who forwarded the message to us
    oldest: results.AuthenticationResults | None = None  # the i=1 AAR, only when the chain passes
    claims: dict[str, str] = field(default_factory=dict)  # method → result of the i=1 AAR
    hops: tuple[ArcHop, ...] = ()  # newest first, only when the chain passes


def _arc_headers(raw: bytes) -> list[tuple[bytes, bytes]]:
    return list(dkim.ARC(raw).headers)


def key_names(headers: list[tuple[bytes, bytes]]) -> list[str]:
    names = []
    for name, value in headers:
        if name.lower() in _ARC_HEADERS:
            tags = signature_tags(value)
            if tags and b"s" in tags and b"d" in tags:
                names.append(key_name(tags[b"s"].decode("ascii", "replace"), tags[b"d"].decode("ascii", "replace")))
    return names


async def verify(raw: bytes, resolver: Resolver, *, unsealed_aar_is_none: bool = False) -> ArcOutcome:
    """Validate the ARC chain of a message.

    `unsealed_aar_is_none`: an ARC-Authentication-Results with no seal or signature at all counts as no
    chain rather than a broken one. Journal copies need it: Gmail stamps its results that way.
    """
    if not (
        has_header(raw, b"arc-seal")
        or has_header(raw, b"arc-authentication-results")
        or has_header(raw, b"arc-message-signature")
    ):
        return ArcOutcome(ArcResult.NONE, "message has no ARC sets")
    try:
        headers = _arc_headers(raw)
    except dkim.DKIMException as exc:
        return ArcOutcome(ArcResult.PERMERROR, f"message cannot be parsed: {exc}")
    if not any(name.lower() in (*_ARC_HEADERS, b"arc-authentication-results") for name, _ in headers):
        return ArcOutcome(ArcResult.NONE, "message has no ARC sets")
    if unsealed_aar_is_none and not any(name.lower() in _ARC_HEADERS for name, _ in headers):
        return ArcOutcome(ArcResult.NONE, "only an unsealed ARC-Authentication-Results")
    keys = await prefetch_keys(resolver, key_names(headers))
    failed = [f"{name}: {err}" for name, err in keys.items() if isinstance(err, DnsError)]
    if failed:
        return ArcOutcome(ArcResult.TEMPERROR, "key look-up failed: " + "; ".join(failed))
    return await offload(verify_with_keys, raw, headers, keys)


def verify_with_keys(
    raw: bytes, headers: list[tuple[bytes, bytes]], keys: Mapping[str, tuple[str, ...] | DnsError]
) -> ArcOutcome:
    cv, data, reason = dkim.arc_verify(raw, dnsfunc=dnsfunc_for(keys))
    instances = max((int(d.get("instance", 0)) for d in data), default=0)
    sealer = next((str(d.get("as-domain", b""), "ascii", "replace") for d in data), "") if data else ""
    if cv == dkim.CV_None:
        return ArcOutcome(ArcResult.NONE, str(reason))
    if cv != dkim.CV_Pass:  # CV_Fail, or None: a seal in the chain already said fail
        missing = _missing_keys(data, keys) if cv == dkim.CV_Fail else []
        if missing:
            return ArcOutcome(ArcResult.PERMERROR, "cannot be checked: " + "; ".join(missing), instances, sealer)
        return ArcOutcome(ArcResult.FAIL, str(reason), instances, sealer)
    aars = _aars(headers)
    oldest = aars.get(1)
    claims = {r.method: r.result for r in oldest.results} if oldest else {}
    hops = tuple(
        ArcHop(int(d.get("instance", 0)), _text(d.get("as-domain", b"")), aars.get(int(d.get("instance", 0))))
        for d in data
    )
    return ArcOutcome(ArcResult.PASS, str(reason), instances, sealer, oldest, claims, hops)


def _text(value: object) -> str:
    return value.decode("ascii", "replace").lower() if isinstance(value, bytes) else str(value).lower()


def _missing_keys(data: list[dict[str, object]], keys: Mapping[str, tuple[str, ...] | DnsError]) -> list[str]:
    """The keys the failed verdict rests on that are missing or unusable; empty when the failure is real.

    A seal that reported cv=fail makes the chain fail whatever our keys say. Otherwise the newest
    message signature and every seal are what the verdict needs; an invalid one without a usable key
    was never checked.
    """
    if any(d.get("cv") == b"fail" for d in data):
        return []
    needed = []
    if data and data[0].get("ams-valid") is False:
        needed.append((data[0].get("ams-selector"), data[0].get("ams-domain")))
    needed += [(d.get("as-selector"), d.get("as-domain")) for d in data if d.get("as-valid") is False]
    problems = []
    for selector, domain in needed:
        if isinstance(selector, bytes) and isinstance(domain, bytes):
            problem = _key_problem(keys, key_name(_text(selector), _text(domain)))
            if problem:
                problems.append(problem)
    return list(dict.fromkeys(problems))


def _key_problem(keys: Mapping[str, tuple[str, ...] | DnsError], name: str) -> str | None:
    found = keys.get(name)
    record = None if isinstance(found, DnsError) else key_record(found or ())
    if record is None:
        return f"no key at {name}"
    try:
        dkim.evaluate_pk(name, record.encode())
    except (dkim.KeyFormatError, ValueError) as exc:
        return f"unusable key at {name}: {exc}"
    return None


def _aars(headers: list[tuple[bytes, bytes]]) -> dict[int, results.AuthenticationResults]:
    """Every ARC-Authentication-Results by instance."""
    out: dict[int, results.AuthenticationResults] = {}
    for name, value in headers:
        if name.lower() == b"arc-authentication-results":
            parsed = results.parse(value.decode("utf-8", "replace"), arc=True)
            if parsed.instance is not None and parsed.instance not in out:
                out[parsed.instance] = parsed
    return out
