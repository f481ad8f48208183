"""DMARC (RFC 7489): policy discovery, identifier alignment and the policy to apply.

The organisational domain comes from the Public Suffix List shipped with `publicsuffixlist` (offline;
updating it is updating the package). `pct` sampling is deterministic per message — the caller passes a
number in [0, 100) derived from the message — so scanning the same message twice gives the same verdict.

A From header field with no address, several addresses, or a message with several From fields gives
`permerror` (RFC 7489 §6.6.1 lets a receiver reject such mail; we record it and score it instead).
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass
from enum import StrEnum
from functools import cache

from publicsuffixlist import PublicSuffixList

from mailwarden.dns import DnsError, Resolver


class DmarcResult(StrEnum):
    PASS = "pass"  # noqa: S105 - a result word, not a password
    FAIL = "fail"
    NONE = "none"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


class DmarcPolicy(StrEnum):
    NONE = "none"
    QUARANTINE = "quarantine"
    REJECT = "reject"


_DOWNGRADE = {DmarcPolicy.REJECT: DmarcPolicy.QUARANTINE, DmarcPolicy.QUARANTINE: DmarcPolicy.NONE}


@dataclass(frozen=True, slots=True)
class DmarcRecord:
    """A published policy. `sp` is None when the record does not set one (p applies to subdomains)."""

    p: DmarcPolicy
    sp: DmarcPolicy | None = None
    pct: int = 100
    adkim: str = "r"
    aspf: str = "r"


@dataclass(frozen=True, slots=True)
class DmarcOutcome:
    result: DmarcResult
    policy: DmarcPolicy = DmarcPolicy.NONE  # the disposition to apply (after sp= and pct=)
    from_domain: str | None = None
    policy_domain: str | None = None  # where the record was found (From domain or organisational domain)
    record: DmarcRecord | None = None
    spf_aligned: bool = False
    dkim_aligned: bool = False
    reason: str = ""
    # who vouched that the original passed when our own check could not say so: "arc" or "provider"
    vouched_by: str = ""

    @property
    def published(self) -> DmarcPolicy | None:
        """The policy the domain asks for (p= or sp=), before pct= sampling."""
        if self.record is None:
            return None
        if self.policy_domain != self.from_domain and self.record.sp is not None:
            return self.record.sp
        return self.record.p


@cache
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


def organisational_domain(domain: str) -> str:
    """The registered domain (eTLD+1) of a name; the name itself when it is a public suffix."""
    domain = domain.lower().rstrip(".")
    return _psl().privatesuffix(domain) or domain


def aligned(a: str, b: str, mode: str) -> bool:
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    if mode == "s":
        return a == b
    return organisational_domain(a) == organisational_domain(b)


def from_domain(from_values: list[str]) -> tuple[str | None, str]:
    """The RFC5322.From domain, or (None, why) when there is not exactly one usable address."""
    if not from_values:
        return None, "no From header field"
    if len(from_values) > 1:
        return None, f"{len(from_values)} From header fields"
    addresses = [addr for _, addr in email.utils.getaddresses(from_values) if addr]
    if len(addresses) != 1:
        return None, f"From holds {len(addresses)} addresses"
    local, at, domain = addresses[0].rpartition("@")
    domain = domain.strip().strip(">").lower().rstrip(".")
    if not at or not local or not domain or "." not in domain:
        return None, f"From address {addresses[0]!r} has no usable domain"
    return domain, ""


def parse_record(text: str) -> DmarcRecord | None:
    """A `v=DMARC1` record; None when it is not one or unusable (RFC 7489 §6.6.3 step 6)."""
    tags: dict[str, str] = {}
    for i, part in enumerate(text.split(";")):
        key, eq, value = part.partition("=")
        key, value = key.strip().lower(), value.strip()
        if i == 0 and (key != "v" or value != "DMARC1"):
            return None
        if eq and key and key not in tags:
            tags[key] = value
    policy = _policy(tags.get("p"))
    sp = _policy(tags.get("sp")) if "sp" in tags else None
    if policy is None or ("sp" in tags and sp is None):
        if "mailto:" not in tags.get("rua", "").lower():
            return None
        policy, sp = DmarcPolicy.NONE, None  # act as if p=none was published
    try:
        pct = min(100, max(0, int(tags.get("pct", "100"))))
    except ValueError:
        pct = 100
    adkim = tags.get("adkim", "r").lower()
    aspf = tags.get("aspf", "r").lower()
    return DmarcRecord(policy, sp, pct, adkim if adkim in ("r", "s") else "r", aspf if aspf in ("r", "s") else "r")


def _policy(value: str | None) -> DmarcPolicy | None:
    try:
        return DmarcPolicy((value or "").lower())
    except ValueError:
        return None


async def discover(resolver: Resolver, domain: str) -> tuple[DmarcRecord | None, str | None]:
    """The record at `_dmarc.<domain>`, else at `_dmarc.<organisational domain>` (§6.6.3).

    Raises DnsError when a look-up fails.
    """
    candidates = [domain]
    org = organisational_domain(domain)
    if org != domain:
        candidates.append(org)
    for name in candidates:
        answer = await resolver.query(f"_dmarc.{name}", "TXT")
        records = [r for r in answer.records if r.replace(" ", "").upper().startswith("V=DMARC1")]
        if len(records) == 1:
            record = parse_record(records[0])
            if record is not None:
                return record, name
    return None, None


async def evaluate(
    resolver: Resolver,
    from_values: list[str],
    *,
    spf_pass_domain: str | None,
    dkim_pass_domains: list[str],
    sample: float = 0.0,
    spf_unchecked_domain: str | None = None,
    dkim_unchecked_domains: list[str] | None = None,
) -> DmarcOutcome:
    """Check the From domain against the SPF-authenticated and DKIM-authenticated domains.

    `spf_pass_domain` is the MAIL FROM (or HELO) domain when SPF passed, else None; `dkim_pass_domains`
    the d= of passing signatures; `sample` in [0, 100) decides pct= (policy applied when below pct).
    `spf_unchecked_domain` / `dkim_unchecked_domains`: the domains whose SPF or DKIM check was a temperror.
    When one of them is aligned and nothing aligned passed, the result is `temperror`, not `fail` (§6.6.2):
    it might have passed.
    """
    domain, why = from_domain(from_values)
    if domain is None:
        return DmarcOutcome(DmarcResult.PERMERROR, reason=why)
    try:
        record, policy_domain = await discover(resolver, domain)
    except DnsError as exc:
        return DmarcOutcome(DmarcResult.TEMPERROR, from_domain=domain, reason=str(exc))
    if record is None:
        return DmarcOutcome(DmarcResult.NONE, from_domain=domain, reason=f"{domain} publishes no DMARC policy")
    spf_ok = spf_pass_domain is not None and aligned(spf_pass_domain, domain, record.aspf)
    dkim_ok = any(aligned(d, domain, record.adkim) for d in dkim_pass_domains)
    outcome = DmarcOutcome(
        DmarcResult.PASS, DmarcPolicy.NONE, domain, policy_domain, record, spf_ok, dkim_ok, "aligned"
    )
    if spf_ok or dkim_ok:
        return outcome
    unchecked = [d for d in dkim_unchecked_domains or () if aligned(d, domain, record.adkim)]
    if spf_unchecked_domain is not None and aligned(spf_unchecked_domain, domain, record.aspf):
        unchecked.append(spf_unchecked_domain)
    if unchecked:
        reason = f"not aligned, but the check of {', '.join(dict.fromkeys(unchecked))} could not be made"
        return DmarcOutcome(DmarcResult.TEMPERROR, DmarcPolicy.NONE, domain, policy_domain, record, reason=reason)
    wanted = outcome.published or DmarcPolicy.NONE
    applied = wanted
    if sample >= record.pct and wanted in _DOWNGRADE:
        applied = _DOWNGRADE[wanted]  # not sampled: one step milder (§6.6.4)
    reason = "neither SPF nor DKIM aligned with " + domain
    if applied is not wanted:
        reason += f" (pct={record.pct}: {wanted.value} sampled out)"
    return DmarcOutcome(DmarcResult.FAIL, applied, domain, policy_domain, record, False, False, reason)
