"""The authentication stage: SPF, DKIM, DMARC and ARC results as findings and as an A-R header value."""

from __future__ import annotations

import asyncio
import hashlib
import socket
from dataclasses import dataclass, field, replace
from typing import ClassVar

import structlog
from pydantic import BaseModel, ConfigDict, Field, field_validator

from mailwarden.mail import authresults as results
from mailwarden.mail.authresults import AuthenticationResults, AuthResult
from mailwarden.model import Finding
from mailwarden.model.envelope import domain_of
from mailwarden.pipeline.auth import arc, dkim, dmarc
from mailwarden.pipeline.auth.arc import ArcOutcome, ArcResult
from mailwarden.pipeline.auth.dkim import DkimResult, DkimSignatureResult
from mailwarden.pipeline.auth.dmarc import DmarcOutcome, DmarcPolicy, DmarcResult, aligned
from mailwarden.pipeline.auth.spf import SpfChecker, SpfOutcome, SpfResult
from mailwarden.pipeline.services import StageServices
from mailwarden.pipeline.stage import ScanContext

log = structlog.get_logger(__name__)

# Symbol → weight. Positive is spammy, negative trustworthy; zero-weight symbols are recorded evidence.
# The scale is decide.SPAM_SCORE = 5 (spam) and 10 (SCL 8): a failed DMARC check whose domain asks for
# reject or quarantine makes a message spam on its own, as EOP's "honor DMARC policy" does.
DEFAULT_WEIGHTS: dict[str, float] = {
    "SPF_PASS": -0.2,
    "SPF_FAIL": 1.0,
    "SPF_SOFTFAIL": 0.3,
    "SPF_NEUTRAL": 0.0,
    "SPF_NONE": 0.0,
    "SPF_TEMPERROR": 0.0,
    "SPF_PERMERROR": 0.0,
    "DKIM_VALID": -0.2,
    "DKIM_INVALID": 1.0,
    "DKIM_NEUTRAL": 0.0,
    "DKIM_PERMERROR": 0.0,
    "DKIM_TEMPERROR": 0.0,
    "DKIM_NONE": 0.0,
    "DMARC_PASS": -0.5,
    "DMARC_ARC_OVERRIDE": 0.0,  # fail here, but a trusted forwarder's ARC results say the original passed
    "DMARC_POLICY_REJECT": 8.0,
    "DMARC_POLICY_QUARANTINE": 6.0,
    "DMARC_POLICY_SOFTFAIL": 0.1,  # fail with p=none (or reject/quarantine sampled out by pct=)
    "DMARC_NONE": 0.0,
    "DMARC_TEMPERROR": 0.0,
    "DMARC_PERMERROR": 1.0,  # no From, or several From addresses
    "ARC_PASS": -0.2,
    "ARC_FAIL": 1.0,
    "ARC_NONE": 0.0,
    "ARC_TEMPERROR": 0.0,
    "ARC_PERMERROR": 0.0,  # a key the chain needs is missing or unusable: not checked, not held against it
    "AUTH_PROVIDER_RESULTS": 0.0,  # journal copy: SPF taken from the provider's Authentication-Results
    "AUTH_PROVIDER_MISSING": 0.0,  # journal copy without a trusted Authentication-Results
}

_SPF_SYMBOL = {r: f"SPF_{r.value.upper()}" for r in SpfResult}
_DKIM_SYMBOL = {
    DkimResult.PASS: "DKIM_VALID",
    DkimResult.FAIL: "DKIM_INVALID",
    DkimResult.NEUTRAL: "DKIM_NEUTRAL",
    DkimResult.PERMERROR: "DKIM_PERMERROR",
    DkimResult.TEMPERROR: "DKIM_TEMPERROR",
    DkimResult.NONE: "DKIM_NONE",
}
# Forwarders that seal ARC for the mail they pass on: Google (Gmail forwarding, Google Groups) and
# Microsoft 365. A Mailman 3 server seals with its own domain, which the organisation adds itself.
KNOWN_FORWARDERS = ("google.com", "microsoft.com")

_DMARC_FAIL_SYMBOL = {
    DmarcPolicy.REJECT: "DMARC_POLICY_REJECT",
    DmarcPolicy.QUARANTINE: "DMARC_POLICY_QUARANTINE",
    DmarcPolicy.NONE: "DMARC_POLICY_SOFTFAIL",
}


class AuthConfig(BaseModel):
    """`[stages.auth]`."""

    model_config = ConfigDict(extra="forbid")

    authserv_id: str = Field(
        default_factory=socket.gethostname, min_length=1, description="our name in Authentication-Results"
    )
    trusted_authserv_ids: list[str] = Field(
        default_factory=list, description="journal mode: authserv-ids of the organisation's own mail service"
    )
    trust_first_authentication_results: bool = Field(
        False, description="journal mode: trust the topmost Authentication-Results even without an authserv-id"
    )
    trusted_arc_sealers: list[str] = Field(
        default_factory=lambda: list(KNOWN_FORWARDERS),
        description="ARC sealers (d= of ARC-Seal, subdomains included) whose results stand for the original",
    )
    dkim_min_key_bits: int = Field(1024, ge=512, le=8192)
    weights: dict[str, float] = Field(default_factory=dict, description="symbol → weight, over the defaults")

    @field_validator("weights")
    @classmethod
    def _known_symbols(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(DEFAULT_WEIGHTS))
        if unknown:
            raise ValueError(f"unknown symbol(s) {', '.join(unknown)} (known: {', '.join(DEFAULT_WEIGHTS)})")
        return value

    @field_validator("trusted_arc_sealers")
    @classmethod
    def _lower_sealers(cls, value: list[str]) -> list[str]:
        return [v.strip().lower().rstrip(".") for v in value if v.strip()]


@dataclass
class _Provider:
    """What a trusted provider's Authentication-Results said (journal mode)."""

    header: AuthenticationResults
    dkim_pass_domains: list[str] = field(default_factory=list)


class AuthenticationStage:
    """SPF, DKIM, DMARC and ARC. A DNS failure is a temperror result, never an exception."""

    name: ClassVar[str] = "auth"

    def __init__(self, config: AuthConfig, services: StageServices) -> None:
        self.config = config
        self.resolver = services.resolver
        self.spf = SpfChecker(services.resolver)
        self.weights = {**DEFAULT_WEIGHTS, **config.weights}

    @classmethod
    def from_services(cls, services: StageServices) -> AuthenticationStage:
        return cls(services.config_for("auth", AuthConfig), services)

    async def inspect(self, ctx: ScanContext) -> list[Finding]:
        raw = ctx.message.raw
        journal = ctx.facts.journal
        provider = self._provider(ctx) if journal else None
        spf_task = self._spf_local(ctx) if not journal else _done(_spf_from_provider(ctx, provider))
        spf_out, dkim_results, arc_out = await asyncio.gather(spf_task, self._dkim(raw), self._arc(raw, journal))
        dkim_word = dkim.summary(dkim_results)
        dkim_domains = [r.domain for r in dkim_results if r.result is DkimResult.PASS]
        dkim_note = ""
        if provider is not None and dkim_word is not DkimResult.PASS and provider.dkim_pass_domains:
            # the journal transport may have altered the copy; the provider saw the original
            dkim_word, dkim_domains = DkimResult.PASS, provider.dkim_pass_domains
            dkim_note = f"pass reported by {provider.header.authserv_id or 'provider'}"
        spf_pass_domain = spf_out.domain if spf_out.result is SpfResult.PASS else None
        dmarc_out = await dmarc.evaluate(
            self.resolver,
            ctx.message.raw_headers("From"),
            spf_pass_domain=spf_pass_domain,
            dkim_pass_domains=dkim_domains,
            sample=_sample(ctx),
            spf_unchecked_domain=spf_out.domain if spf_out.result is SpfResult.TEMPERROR else None,
            dkim_unchecked_domains=[r.domain for r in dkim_results if r.result is DkimResult.TEMPERROR and r.domain],
        )
        if journal and provider is None and dmarc_out.result is DmarcResult.FAIL:
            dmarc_out = DmarcOutcome(
                DmarcResult.NONE,
                from_domain=dmarc_out.from_domain,
                policy_domain=dmarc_out.policy_domain,
                record=dmarc_out.record,
                reason="not evaluated: journal copy without trusted SPF results and no aligned DKIM",
            )
        local_dmarc = dmarc_out
        dmarc_out = self._vouched(dmarc_out, arc_out, provider)
        findings = self._findings(spf_out, dkim_word, dkim_results, dkim_note, dmarc_out, arc_out, journal, provider)
        header = results.build(
            self.config.authserv_id, self._resinfos(ctx, spf_out, dkim_results, dkim_note, dmarc_out, arc_out, provider)
        )
        ctx.facts.auth = self._facts(spf_out, dkim_word, dkim_domains, dmarc_out, arc_out, provider, header)
        if dmarc_out.vouched_by:
            ctx.facts.auth["dmarc_local"] = local_dmarc.result.value
            ctx.facts.auth["dmarc_vouched_by"] = dmarc_out.reason
        return findings

    # ---- checks ----------------------------------------------------------------------------------

    async def _spf_local(self, ctx: ScanContext) -> SpfOutcome:
        mail_from, helo = ctx.envelope.mail_from, ctx.envelope.helo
        ip = _client_ip(ctx)
        identity = "mailfrom" if mail_from else "helo"
        domain = domain_of(mail_from) if mail_from else (helo or None)
        if ip is None:
            return SpfOutcome(SpfResult.NONE, identity, domain, mail_from, "no client IP known")
        return await self.spf.check(ip, mail_from, helo)

    async def _dkim(self, raw: bytes) -> list[DkimSignatureResult]:
        try:
            return await dkim.verify(raw, self.resolver, minkey=self.config.dkim_min_key_bits)
        except Exception as exc:  # a verifier bug must not hide SPF and DMARC
            log.warning("dkim_verifier_failed", stage=self.name, error=repr(exc))
            return [DkimSignatureResult(DkimResult.PERMERROR, reason=f"verifier error: {type(exc).__name__}")]

    async def _arc(self, raw: bytes, journal: bool) -> ArcOutcome:
        try:
            return await arc.verify(raw, self.resolver, unsealed_aar_is_none=journal)
        except Exception as exc:  # as above
            log.warning("arc_verifier_failed", stage=self.name, error=repr(exc))
            return ArcOutcome(ArcResult.PERMERROR, f"verifier error: {type(exc).__name__}")

    def _provider(self, ctx: ScanContext) -> _Provider | None:
        header = results.select_trusted(
            ctx.message.raw_headers("Authentication-Results"),
            ctx.message.raw_headers("ARC-Authentication-Results"),
            self.config.trusted_authserv_ids,
            trust_first=self.config.trust_first_authentication_results,
        )
        if header is None:
            return None
        domains = []
        for res in header.all("dkim"):
            if res.result == "pass":
                d = res.get("header.d") or domain_of(res.get("header.i"))
                if d and d != "none":
                    domains.append(d.lower())
        return _Provider(header, dkim_pass_domains=domains)

    # ---- results that stand for the original --------------------------------------------------------

    def _vouched(self, dmarc_out: DmarcOutcome, arc_out: ArcOutcome, provider: _Provider | None) -> DmarcOutcome:
        """The DMARC outcome, after what a trusted provider or trusted ARC sealers saw of the original.

        A journal copy's provider checked the original with working DNS: its `dmarc=pass` stands over our
        failure or temperror. A failure here also stands down when a passing ARC chain, sealed by trusted
        forwarders from the newest hop down, carries a trusted hop's report that the original passed.
        """
        if provider is not None and dmarc_out.result in (DmarcResult.FAIL, DmarcResult.TEMPERROR):
            reported = provider.header.first("dmarc")
            if reported is not None and reported.result.lower() == "pass":
                who = provider.header.authserv_id or "the provider"
                return replace(
                    dmarc_out,
                    result=DmarcResult.PASS,
                    policy=DmarcPolicy.NONE,
                    reason=f"pass reported by {who} (here: {dmarc_out.result.value})",
                    vouched_by="provider",
                )
        if dmarc_out.result is not DmarcResult.FAIL or arc_out.result is not ArcResult.PASS:
            return dmarc_out
        claim = self._arc_claim(arc_out, dmarc_out)
        if claim is None:
            return dmarc_out
        reason = f"{claim} (here: {dmarc_out.reason})"
        return replace(dmarc_out, result=DmarcResult.PASS, policy=DmarcPolicy.NONE, reason=reason, vouched_by="arc")

    def _arc_claim(self, arc_out: ArcOutcome, dmarc_out: DmarcOutcome) -> str | None:
        """What the oldest hop of the trusted run of sealers (newest first) says for the original, when
        it says DMARC passed or reports an aligned SPF or DKIM pass; None otherwise."""
        trusted = []
        for hop in arc_out.hops:
            if not _trusted_sealer(hop.sealer, self.config.trusted_arc_sealers):
                break
            trusted.append(hop)
        if not trusted or trusted[-1].aar is None:
            return None
        hop, aar = trusted[-1], trusted[-1].aar
        where = f"ARC i={hop.instance} sealed by {hop.sealer}"
        verdict = aar.first("dmarc")
        if verdict is not None:
            return f"{where}: dmarc=pass" if verdict.result.lower() == "pass" else None
        domain, record = dmarc_out.from_domain, dmarc_out.record
        if domain is None or record is None:
            return None
        for res in aar.all("dkim"):
            d = (res.get("header.d") or domain_of(res.get("header.i")) or "").lower()
            if res.result.lower() == "pass" and d and aligned(d, domain, record.adkim):
                return f"{where}: dkim=pass header.d={d}"
        spf = aar.first("spf")
        spf_domain = (domain_of(spf.get("smtp.mailfrom")) or "") if spf is not None else ""
        if spf is not None and spf.result.lower() == "pass" and spf_domain and aligned(spf_domain, domain, record.aspf):
            return f"{where}: spf=pass smtp.mailfrom domain {spf_domain}"
        return None

    # ---- output ----------------------------------------------------------------------------------

    def _finding(self, code: str, detail: str = "") -> Finding:
        return Finding(self.name, code, self.weights.get(code, 0.0), detail)

    def _findings(
        self,
        spf_out: SpfOutcome,
        dkim_word: DkimResult,
        dkim_results: list[DkimSignatureResult],
        dkim_note: str,
        dmarc_out: DmarcOutcome,
        arc_out: ArcOutcome,
        journal: bool,
        provider: _Provider | None,
    ) -> list[Finding]:
        out = []
        if journal:
            if provider is None:
                out.append(self._finding("AUTH_PROVIDER_MISSING", "journal copy: SPF not checked (wrong client IP)"))
            else:
                out.append(self._finding("AUTH_PROVIDER_RESULTS", provider.header.authserv_id or "topmost header"))
        out.append(self._finding(_SPF_SYMBOL[spf_out.result], spf_out.reason))
        dkim_detail = dkim_note or "; ".join(
            f"{r.domain or '?'}: {r.result.value}" + (f" ({r.reason})" if r.reason else "") for r in dkim_results
        )
        out.append(self._finding(_DKIM_SYMBOL[dkim_word], dkim_detail))
        if dmarc_out.vouched_by == "arc":
            out.append(self._finding("DMARC_ARC_OVERRIDE", dmarc_out.reason))
        elif dmarc_out.result is DmarcResult.FAIL:
            out.append(self._finding(_DMARC_FAIL_SYMBOL[dmarc_out.policy], dmarc_out.reason))
        else:
            out.append(self._finding(f"DMARC_{dmarc_out.result.value.upper()}", dmarc_out.reason))
        out.append(self._finding(f"ARC_{arc_out.result.value.upper()}", arc_out.reason))
        return out

    def _resinfos(
        self,
        ctx: ScanContext,
        spf_out: SpfOutcome,
        dkim_results: list[DkimSignatureResult],
        dkim_note: str,
        dmarc_out: DmarcOutcome,
        arc_out: ArcOutcome,
        provider: _Provider | None,
    ) -> list[AuthResult]:
        spf_comment = spf_out.reason
        if provider is not None:
            spf_comment = f"reported by {provider.header.authserv_id or 'the provider'}"
        spf_prop = (
            ("smtp.mailfrom", ctx.envelope.mail_from or spf_out.sender)
            if spf_out.identity == "mailfrom"
            else ("smtp.helo", spf_out.domain or "")
        )
        out = [AuthResult("spf", spf_out.result.value, spf_comment, properties=(spf_prop,) if spf_prop[1] else ())]
        for sig in dkim_results:
            props = [("header.d", sig.domain), ("header.s", sig.selector), ("header.a", sig.algorithm)]
            props.append(("header.b", sig.b))
            kept = tuple((k, v) for k, v in props if v)
            out.append(AuthResult("dkim", sig.result.value, sig.reason, properties=kept))
        if dkim_note:
            out.append(AuthResult("dkim", "pass", dkim_note))
        dmarc_comment = ""
        if dmarc_out.record is not None:
            rec = dmarc_out.record
            dmarc_comment = f"p={rec.p.value}" + (f" sp={rec.sp.value}" if rec.sp else "")
            dmarc_comment += f" pct={rec.pct} dis={dmarc_out.policy.value}"
        elif dmarc_out.reason:
            dmarc_comment = dmarc_out.reason
        if dmarc_out.vouched_by:
            dmarc_comment = f"{dmarc_comment}; {dmarc_out.reason}" if dmarc_out.record else dmarc_out.reason
        dmarc_props = (("header.from", dmarc_out.from_domain),) if dmarc_out.from_domain else ()
        out.append(AuthResult("dmarc", dmarc_out.result.value, dmarc_comment, properties=dmarc_props))
        arc_comment = arc_out.reason if arc_out.result is not ArcResult.PASS else ""
        if arc_out.result is ArcResult.PASS:
            arc_comment = f"i={arc_out.instances} sealed by {arc_out.sealer}"
        out.append(AuthResult("arc", arc_out.result.value, arc_comment))
        return out

    def _facts(
        self,
        spf_out: SpfOutcome,
        dkim_word: DkimResult,
        dkim_domains: list[str],
        dmarc_out: DmarcOutcome,
        arc_out: ArcOutcome,
        provider: _Provider | None,
        header: str,
    ) -> dict[str, str]:
        facts = {
            "spf": spf_out.result.value,
            "spf_identity": spf_out.identity,
            "spf_domain": spf_out.domain or "",
            "dkim": dkim_word.value,
            "dkim_domains": ",".join(dict.fromkeys(dkim_domains)),
            "dmarc": dmarc_out.result.value,
            "dmarc_policy": dmarc_out.policy.value,
            "dmarc_published": dmarc_out.published.value if dmarc_out.published else "",
            "arc": arc_out.result.value,
            "from_domain": dmarc_out.from_domain or "",
            "source": "local" if provider is None else "provider",
            "authentication_results": header,
        }
        if arc_out.result is ArcResult.PASS:
            facts["arc_sealer"] = arc_out.sealer
            if arc_out.oldest is not None:
                facts["arc_aar_authserv_id"] = arc_out.oldest.authserv_id or ""
            for method in ("spf", "dkim", "dmarc"):
                if method in arc_out.claims:
                    facts[f"arc_aar_{method}"] = arc_out.claims[method]
        if provider is not None:
            facts["provider_authserv_id"] = provider.header.authserv_id or ""
            for method in ("dmarc", "compauth"):
                res = provider.header.first(method)
                if res is not None:
                    facts[f"provider_{method}"] = res.result + (f" reason={res.reason}" if res.reason else "")
        return facts


async def _done(value: SpfOutcome) -> SpfOutcome:
    return value


def _trusted_sealer(sealer: str, trusted: list[str]) -> bool:
    sealer = sealer.lower().rstrip(".")
    return bool(sealer) and any(sealer == t or sealer.endswith("." + t) for t in trusted)


def _client_ip(ctx: ScanContext) -> str | None:
    connection = ctx.facts.connection
    if connection is not None and connection.ip:
        return connection.ip
    return ctx.envelope.client_ip


def _sample(ctx: ScanContext) -> float:
    """A number in [0, 100) fixed per message, for DMARC pct= sampling."""
    key = (ctx.message.message_id or "").encode() or ctx.message.raw
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "big") % 10000 / 100


def _spf_from_provider(ctx: ScanContext, provider: _Provider | None) -> SpfOutcome:
    mail_from = ctx.envelope.mail_from
    if provider is None:
        return SpfOutcome(
            SpfResult.NONE,
            "mailfrom",
            domain_of(mail_from),
            mail_from,
            "journal copy: no trusted Authentication-Results, and the journal client IP is not the sender's",
        )
    res = provider.header.first("spf")
    if res is None:
        return SpfOutcome(SpfResult.NONE, "mailfrom", domain_of(mail_from), mail_from, "provider reported no SPF")
    return _provider_spf(res, mail_from)


def _provider_spf(res: AuthResult, mail_from: str) -> SpfOutcome:
    try:
        result = SpfResult(res.result)
    except ValueError:
        result = SpfResult.NEUTRAL
    smtp_from = res.get("smtp.mailfrom")
    helo = res.get("smtp.helo")
    if smtp_from:
        domain = (domain_of(smtp_from) or smtp_from).lower()
        return SpfOutcome(result, "mailfrom", domain, smtp_from, res.comment)
    if helo:
        return SpfOutcome(result, "helo", helo.lower(), f"postmaster@{helo}", res.comment)
    return SpfOutcome(result, "mailfrom", domain_of(mail_from), mail_from, res.comment)
