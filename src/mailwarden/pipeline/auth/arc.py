"""ARC (RFC 8617) chain validation with dkimpy, key records prefetched through our resolver.

The chain validation status is none, pass or fail. When a key look-up fails we say `temperror` instead
of guessing (RFC 8617 has no such status; it is ours, and no finding of it carries weight).
When the chain passes, the claims of the oldest ARC-Authentication-Results (i=1, written by the first
ARC-aware hop) are exposed: a mailing list that broke DMARC but sealed a passing chain can be forgiven
later by the spam score, if its sealer is trusted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import dkim  # type: ignore[import-untyped]

from mailwarden.dns import DnsError, Resolver
from mailwarden.mail import authresults as results
from mailwarden.pipeline.auth.dkim import dnsfunc_for, has_header, key_name, prefetch_keys, signature_tags
from mailwarden.pipeline.cpu import offload

_ARC_HEADERS = (b"arc-seal", b"arc-message-signature")


class ArcResult(StrEnum):
    NONE = "none"
    PASS = "pass"  # noqa: S105 - a result word, not a password
    FAIL = "fail"
    TEMPERROR = "temperror"


@dataclass(frozen=True, slots=True)
class ArcOutcome:
    result: ArcResult
    reason: str = ""
    instances: int = 0
    sealer: str = ""  # d= of the newest ARC-Seal: who forwarded the message to us
    oldest: results.AuthenticationResults | None = None  # the i=1 AAR, only when the chain passes
    claims: dict[str, str] = field(default_factory=dict)  # method → result of the i=1 AAR


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
        return ArcOutcome(ArcResult.FAIL, f"message cannot be parsed: {exc}")
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
        return ArcOutcome(ArcResult.FAIL, str(reason), instances, sealer)
    oldest = _oldest_aar(headers)
    claims = {r.method: r.result for r in oldest.results} if oldest else {}
    return ArcOutcome(ArcResult.PASS, str(reason), instances, sealer, oldest, claims)


def _oldest_aar(headers: list[tuple[bytes, bytes]]) -> results.AuthenticationResults | None:
    for name, value in headers:
        if name.lower() == b"arc-authentication-results":
            parsed = results.parse(value.decode("utf-8", "replace"), arc=True)
            if parsed.instance == 1:
                return parsed
    return None
