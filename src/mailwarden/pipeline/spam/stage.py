"""The spam filter stage: sender lists, the content classifier, heuristics and URI block lists.

Everything it finds is a named finding with a configurable weight (`[stages.spam.weights]`);
`pipeline/decide.py` adds the weights up into SCL, phish level and BCL by the symbol's family.
docs/spam-filter.md describes the symbols, the config and how a verdict is explained.

Order inside the stage, cheapest first:

1. The organisation's blocked senders / domains (`SENDER_BLOCKED`, high-confidence spam, nothing else is
   looked at) and allowed senders / domains (`SENDER_ALLOWED`: spam filtering is skipped, SCL -1, but
   phishing heuristics still run; an allowed From address whose DMARC check failed is not honoured,
   so a forged sender cannot use the allow list).
2. The Bayes classifier on the message's tokens: its calibrated probability becomes one `BAYES_*`
   band symbol.
3. Heuristics (header, HTML, URL, phishing, lookalike and bulk symbols; docs/heuristics.md).
4. URI block lists: the registered domains of the message's links asked of each configured zone.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import structlog
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mailwarden.dns import Resolver
from mailwarden.errors import ConfigError
from mailwarden.model import Direction, Finding, Message, Policy
from mailwarden.model.tokens import TokenStore
from mailwarden.pipeline.connection import DnsblZone, dnsbl_query_name, listing_codes
from mailwarden.pipeline.facts import ScanFacts
from mailwarden.pipeline.services import StageServices
from mailwarden.pipeline.spam.attached import AttachedLimits, attached_evidence
from mailwarden.pipeline.spam.classifier import DEFAULT_MODEL, Classifier, Score, model_header, read_model
from mailwarden.pipeline.spam.compromise import COMPROMISE_WEIGHTS, CompromiseSignals, compromise_findings
from mailwarden.pipeline.spam.heuristics import Heuristics
from mailwarden.pipeline.spam.heuristics.view import registered_domain
from mailwarden.pipeline.spam.statstore import CachedTokenStore, MemoryTokenStore
from mailwarden.pipeline.spam.tokens import LIST_POST, tokenize
from mailwarden.pipeline.spam.training import DEFAULT_SCORING, read_scoring
from mailwarden.pipeline.stage import Inspection, ScanContext

log = structlog.get_logger(__name__)

STAGE = "spam"

SENDER_BLOCKED = "SENDER_BLOCKED"
SENDER_ALLOWED = "SENDER_ALLOWED"
SENDER_ALLOW_IGNORED = "SENDER_ALLOW_IGNORED"
BAYES_UNTRAINED = "BAYES_UNTRAINED"
# the classifier bands below the model's own threshold (`BAYES_SPAM`): where it is unsure
UNSURE_BANDS = frozenset({"BAYES_SPAM_LOW", "BAYES_SPAM_MEDIUM", "BAYES_SPAM_MEDIUM_HIGH"})
URIBL_ERROR = "URIBL_ERROR"

# Classifier bands: the calibrated P(spam) → one symbol. `BAYES_SPAM` starts at the model's own
# threshold (chosen for <= 0.1 % ham false positives on held-out scores) unless configured.
BAYES_WEIGHTS: dict[str, float] = {
    "BAYES_HAM_HIGH": -3.0,
    "BAYES_HAM": -1.0,
    "BAYES_NEUTRAL": 0.0,
    BAYES_UNTRAINED: 0.0,
    # below the model's threshold the classifier never decides alone: LOW needs 2.5 more points of other
    # evidence, MEDIUM 1.5, MEDIUM_HIGH 1 (one weak header symbol of 0.5 is not enough)
    "BAYES_SPAM_LOW": 2.5,
    "BAYES_SPAM_MEDIUM": 3.5,
    "BAYES_SPAM_MEDIUM_HIGH": 4.0,
    "BAYES_SPAM": 5.5,
    "BAYES_SPAM_HIGH": 7.5,
}
# Sender list symbols: blocked is high-confidence spam by itself (SCL 9), as EOP's blocked senders.
LIST_WEIGHTS: dict[str, float] = {SENDER_BLOCKED: 15.0, SENDER_ALLOWED: 0.0, SENDER_ALLOW_IGNORED: 0.0}
# Phishing evidence on a message the classifier is sure is legitimate needs more of it: the organisation's
# own mail (newsletters with login links, password-reset notices) looks hammy, real phish rarely does.
PHISH_HAMLIKE = "PHISH_BAYES_HAM_HIGH"
STAGE_WEIGHTS = {**BAYES_WEIGHTS, **LIST_WEIGHTS, **COMPROMISE_WEIGHTS, PHISH_HAMLIKE: -3.0}

# Heuristic settings live in the same `[stages.spam]` table (docs/heuristics.md).
HEURISTIC_KEYS = ("brands", "url_shorteners", "suspicious_tlds", "free_hosting", "freemail", "click_trackers")
_DIGITS = re.compile(r"\d")


class BayesBands(BaseModel):
    """`[stages.spam.bayes]`: probability bands of the classifier's calibrated P(spam)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ham_high: float = Field(0.01, ge=0, le=1, description="P(spam) at or below: BAYES_HAM_HIGH")
    ham: float = Field(0.1, ge=0, le=1, description="P(spam) at or below: BAYES_HAM")
    spam_low: float = Field(0.4, ge=0, le=1, description="P(spam) at or above: BAYES_SPAM_LOW")
    spam_medium: float = Field(0.55, ge=0, le=1, description="P(spam) at or above: BAYES_SPAM_MEDIUM")
    spam_medium_high: float = Field(0.65, ge=0, le=1, description="P(spam) at or above: BAYES_SPAM_MEDIUM_HIGH")
    spam: float | None = Field(None, ge=0, le=1, description="at or above: BAYES_SPAM (default: the model's)")
    spam_high: float = Field(0.999, ge=0, le=1, description="P(spam) at or above: BAYES_SPAM_HIGH")

    @model_validator(mode="after")
    def _ordered(self) -> BayesBands:
        spam = self.spam if self.spam is not None else self.spam_low
        if not self.ham_high <= self.ham < self.spam_low <= self.spam_medium <= self.spam_medium_high <= self.spam_high:
            raise ValueError(
                "bands must satisfy ham_high <= ham < spam_low <= spam_medium <= spam_medium_high <= spam_high"
            )
        if not self.spam_low <= spam <= self.spam_high:
            raise ValueError("the spam band must lie between spam_low and spam_high")
        return self


class AttachmentsConfig(BaseModel):
    """`[stages.spam.attachments]`: how much of the attachments the filter reads (docs/spam-filter.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: bool = Field(True, description="read the text and links of PDF and Office attachments")
    qr: bool = Field(True, description="decode QR codes in images and in documents' pictures")
    max_text_kb: int = Field(16, ge=1, le=1024, description="attachment text kept per message, in KB")
    max_pdf_pages: int = Field(5, ge=1, le=100, description="pages read per PDF")
    max_files: int = Field(5, ge=1, le=50, description="PDF and Office files read per message")
    max_file_kb: int = Field(10240, ge=1, le=102400, description="larger documents are not opened")
    max_images: int = Field(4, ge=0, le=50, description="images decoded for QR codes per message")
    max_image_kb: int = Field(2048, ge=1, le=51200, description="larger image files are not decoded")
    max_image_megapixels: float = Field(4.0, gt=0, le=100, description="larger images (after cheap reduction) skipped")
    seconds: float = Field(0.25, gt=0, le=10, description="CPU time spent reading attachments per message")

    def limits(self) -> AttachedLimits:
        return AttachedLimits(
            text=self.text,
            qr=self.qr,
            max_chars=self.max_text_kb * 1024,
            max_pdf_pages=self.max_pdf_pages,
            max_files=self.max_files,
            max_file_bytes=self.max_file_kb * 1024,
            max_images=self.max_images,
            max_image_bytes=self.max_image_kb * 1024,
            max_image_pixels=int(self.max_image_megapixels * 1_000_000),
            seconds=self.seconds,
        )


class SpamConfig(BaseModel):
    """`[stages.spam]`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    statistics: Literal["sql", "redis"] = Field(
        "sql", description="where the classifier's token counts live: the product database or Redis"
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", pattern=r"^rediss?://")
    redis_prefix: str = Field("mailwarden:bayes:", min_length=1, max_length=64)
    model: Path | None = Field(None, description="model file loaded into an empty store (default: shipped)")
    scoring: Path | None = Field(
        None, description="learned symbol weights from `mailwarden train` (default: the shipped file, if any)"
    )
    learned_scoring: bool = Field(True, description="false: the hand weights, whatever scoring file exists")
    list_unsure_max: float = Field(
        4.0,
        description="the most a classifier band below the model's threshold weighs in a mailing-list post "
        "(the list's conversation is the ham the 2002 training mail knows least)",
    )
    statistics_cache_seconds: float = Field(
        10.0, ge=0, le=3600, description="how long a scanning process reuses token counts it read (0: never)"
    )
    bayes: BayesBands = BayesBands()
    attachments: AttachmentsConfig = AttachmentsConfig()
    uribl: tuple[DnsblZone, ...] = ()
    uribl_timeout: float = Field(1.5, gt=0, le=10, description="seconds to wait for all URI block lists")
    uribl_max_domains: int = Field(20, ge=1, le=200, description="distinct link domains asked per message")
    weights: dict[str, float] = Field(default_factory=dict)
    compromise: CompromiseSignals = CompromiseSignals()
    # heuristics' own settings, validated by HeuristicsSettings
    brands: dict[str, list[str]] | None = None
    url_shorteners: list[str] | None = None
    suspicious_tlds: list[str] | None = None
    free_hosting: list[str] | None = None
    freemail: list[str] | None = None
    click_trackers: list[str] | None = None

    def heuristics_section(self, learned: Mapping[str, float] | None = None) -> dict[str, Any]:
        """The heuristics' settings; learned weights under the configured ones."""
        section: dict[str, Any] = {"weights": {**(learned or {}), **self.weights}}
        for key in HEURISTIC_KEYS:
            value = getattr(self, key)
            if value is not None:
                section[key] = value
        return section


def learned_weights(config: SpamConfig) -> dict[str, float]:
    """The weights of the scoring file (`mailwarden train`): the configured one, else the shipped one when
    the package ships one; none (or `learned_scoring = false`): the hand weights apply."""
    if not config.learned_scoring:
        return {}
    path = config.scoring or DEFAULT_SCORING
    if config.scoring is None and not path.is_file():
        return {}
    try:
        return read_scoring(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the scoring file: {exc}", field="stages.spam.scoring") from None


def open_store(services: StageServices) -> TokenStore:
    """The token store the wiring layer opens for `[stages.spam] statistics` (the product database or
    Redis); offline (tests, benchmarks), the shipped model in memory."""
    if services.token_store is None:
        return MemoryTokenStore()
    return services.token_store()


def prepare_store(store: TokenStore, model: Path = DEFAULT_MODEL) -> bool:
    """Fill an empty store with the model file once (of several processes starting together, one loads)."""
    if store.totals() != (0, 0):
        return False
    loaded = read_model(model)
    return store.load_once(loaded.counts, loaded.spam_messages, loaded.ham_messages, f" model:{loaded.version}")


def open_configured_classifier(
    services: StageServices, config: SpamConfig | None = None, *, for_scanning: bool = False
) -> Classifier:
    """The classifier on the store `[stages.spam]` names, filled with the model file when empty; for
    scanning, with the short-lived count cache in front (`statistics_cache_seconds`)."""
    config = config or services.config_for(STAGE, SpamConfig)
    model = config.model or DEFAULT_MODEL
    try:
        calibration, threshold, _ = model_header(model)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the classifier model: {exc}", field="stages.spam.model") from None
    store = open_store(services)
    prepare_store(store, model)
    if for_scanning and config.statistics_cache_seconds > 0 and not isinstance(store, MemoryTokenStore):
        store = CachedTokenStore(store, ttl=config.statistics_cache_seconds)
    return Classifier(store, calibration=calibration, threshold=max(threshold, config.bayes.spam_low))


class SpamFilter:
    """The inbound spam and phishing filter; outbound mail gets the same score (its spam: the high-risk pool)."""

    name: ClassVar[str] = STAGE
    spam_filter: ClassVar[bool] = True

    def __init__(
        self,
        classifier: Classifier,
        heuristics: Heuristics,
        config: SpamConfig,
        resolver: Resolver | None = None,
        *,
        learned: Mapping[str, float] | None = None,
    ) -> None:
        self.classifier = classifier
        self.heuristics = heuristics
        self.config = config
        self.resolver = resolver
        # hand weights, then the learned ones (`scoring`), then the configured ones
        self.weights = {
            **STAGE_WEIGHTS,
            **{k: v for k, v in (learned or {}).items() if k in STAGE_WEIGHTS},
            **{k: v for k, v in config.weights.items() if k in STAGE_WEIGHTS},
        }
        self.spam_band = config.bayes.spam if config.bayes.spam is not None else classifier.threshold
        self.attachment_limits = config.attachments.limits()

    @classmethod
    def from_services(cls, services: StageServices) -> SpamFilter:
        config = services.config_for(cls.name, SpamConfig)
        classifier = open_configured_classifier(services, config, for_scanning=True)
        learned = learned_weights(config)
        return cls(
            classifier,
            Heuristics.from_config(config.heuristics_section(learned)),
            config,
            services.resolver,
            learned=learned,
        )

    async def close(self) -> None:
        return None

    async def inspect(self, ctx: ScanContext) -> list[Finding] | Inspection:
        message = ctx.message
        listed = sender_lists(message, ctx.envelope.mail_from, ctx.policy, ctx.facts)
        if listed is not None and listed.code == SENDER_BLOCKED:
            return [self._weighted(listed)]
        # read once with the configured limits; the heuristics and the tokenizer reuse it
        attached_evidence(message, self.attachment_limits)
        findings = self.heuristics.evaluate(message, ctx.facts, ctx.organisation)
        if listed is not None and listed.code == SENDER_ALLOWED:
            ctx.bypass_spam = listed.detail
            # an allowed sender skips spam filtering, not phishing detection
            return [listed, *(f for f in findings if f.code.startswith("PHISH_"))]
        if listed is not None:
            findings.append(listed)
        tokens = tokenize(message)
        bayes = self.bayes_finding(self.classifier.score(tokens, explain=5))
        if bayes.code in UNSURE_BANDS and bayes.score > self.config.list_unsure_max and LIST_POST in tokens:
            # a list post where the classifier is unsure: its band alone never makes it spam
            bayes = Finding(STAGE, bayes.code, self.config.list_unsure_max, bayes.detail + "; a list post")
        findings.append(bayes)
        hamlike = bayes.code == "BAYES_HAM_HIGH" and self.weights[PHISH_HAMLIKE]
        if hamlike and any(f.code.startswith("PHISH_") and f.score > 0 for f in findings):
            findings.append(
                Finding(STAGE, PHISH_HAMLIKE, self.weights[PHISH_HAMLIKE], "content is confidently legitimate")
            )
        if self.config.uribl and self.resolver is not None and ctx.direction is Direction.INBOUND:
            findings += await self.uribl(message, ctx)
        if ctx.direction is Direction.OUTBOUND and ctx.facts.sender is not None:
            findings += compromise_findings(ctx.facts.sender, self.config.compromise, self.weights, STAGE)
        return findings

    # ---- classifier ----------------------------------------------------------------------------
    def bayes(self, message: Message) -> Finding:
        score = self.classifier.score(tokenize(message), explain=5)
        return self.bayes_finding(score)

    def bayes_finding(self, score: Score) -> Finding:
        if not score.trained:
            return Finding(STAGE, BAYES_UNTRAINED, self.weights[BAYES_UNTRAINED], "too few messages learnt to judge")
        p = score.probability
        bands = self.config.bayes
        if p >= bands.spam_high:
            code = "BAYES_SPAM_HIGH"
        elif p >= self.spam_band:
            code = "BAYES_SPAM"
        elif p >= bands.spam_medium_high:
            code = "BAYES_SPAM_MEDIUM_HIGH"
        elif p >= bands.spam_medium:
            code = "BAYES_SPAM_MEDIUM"
        elif p >= bands.spam_low:
            code = "BAYES_SPAM_LOW"
        elif p <= bands.ham_high:
            code = "BAYES_HAM_HIGH"
        elif p <= bands.ham:
            code = "BAYES_HAM"
        else:
            return Finding(STAGE, "BAYES_NEUTRAL", self.weights["BAYES_NEUTRAL"], f"P(spam)={p:.4f}")
        # token text can hold numbers from the body (card numbers, phone numbers): digits are masked
        tokens = ", ".join(_DIGITS.sub("#", t)[:40] for t, _ in score.top_tokens[:5])
        return Finding(STAGE, code, self.weights[code], f"P(spam)={p:.4f}; strongest tokens: {tokens}")

    def _weighted(self, finding: Finding) -> Finding:
        return Finding(finding.stage, finding.code, self.weights.get(finding.code, finding.score), finding.detail)

    # ---- URI block lists -----------------------------------------------------------------------
    async def uribl(self, message: Message, ctx: ScanContext) -> list[Finding]:
        own = ctx.organisation.domain_names if ctx.organisation else frozenset()
        attached = attached_evidence(message)
        urls = (*message.urls, *attached.links, *attached.qr_links)
        names = link_domains(urls, own)[: self.config.uribl_max_domains]
        if not names:
            return []
        asks = [(name, zone) for name in names for zone in self.config.uribl]
        answers = await asyncio.gather(*(self._ask(name, zone) for name, zone in asks))
        findings: dict[str, Finding] = {}
        for (name, zone), answer in zip(asks, answers, strict=True):
            if isinstance(answer, str):
                log.warning("uribl_error", stage=STAGE, zone=zone.zone, name=name, error=answer)
                findings.setdefault(f"{URIBL_ERROR}_{zone.name}", Finding(STAGE, URIBL_ERROR, 0.0, answer))
                continue
            for code in answer:
                label = zone.codes.get(code, code.replace(".", "_"))
                symbol = f"URIBL_{zone.name}" + (f"_{label}" if zone.codes else "")
                if symbol not in findings:
                    weight = self.config.weights.get(symbol, zone.weight)
                    findings[symbol] = Finding(STAGE, symbol, weight, f"{name} listed in {zone.zone} ({code})")
        return list(findings.values())

    async def _ask(self, name: str, zone: DnsblZone) -> tuple[str, ...] | str:
        assert self.resolver is not None
        try:
            ip = ipaddress.ip_address(name)
        except ValueError:
            query = f"{name}.{zone.zone}"
        else:
            query = dnsbl_query_name(ip, zone.zone)
        codes = await listing_codes(self.resolver, query, self.config.uribl_timeout)
        return f"{zone.zone}: {codes}" if isinstance(codes, str) else codes


def sender_lists(message: Message, mail_from: str | None, policy: Policy, facts: ScanFacts) -> Finding | None:
    """The organisation's blocked and allowed senders and domains, on the From address and MAIL FROM.

    Blocked wins over allowed. Allowed is matched on the From address only (what the user sees) and is
    ignored when DMARC failed for it, so spoofing an allowed sender gains nothing.
    """
    lists = policy.lists
    if not (lists.blocked_senders or lists.blocked_domains or lists.allowed_senders or lists.allowed_domains):
        return None
    header_from = (message.from_address or "").lower()
    envelope_from = (mail_from or "").lower()
    blocked_senders = {a.lower() for a in lists.blocked_senders}
    blocked_domains = {d.lower() for d in lists.blocked_domains}
    for field, address in (("From", header_from), ("MAIL FROM", envelope_from)):
        if not address:
            continue
        if address in blocked_senders:
            detail = f"{field} {address} is a blocked sender"
            return Finding(STAGE, SENDER_BLOCKED, LIST_WEIGHTS[SENDER_BLOCKED], detail)
        domain = address.rpartition("@")[2]
        if _in_domains(domain, blocked_domains):
            return Finding(
                STAGE, SENDER_BLOCKED, LIST_WEIGHTS[SENDER_BLOCKED], f"{field} domain {domain} is a blocked domain"
            )
    if not header_from:
        return None
    domain = header_from.rpartition("@")[2]
    allowed = header_from in {a.lower() for a in lists.allowed_senders} or _in_domains(
        domain, {d.lower() for d in lists.allowed_domains}
    )
    if not allowed:
        return None
    dmarc = facts.auth.get("dmarc", "").lower()
    if dmarc == "fail":
        return Finding(STAGE, SENDER_ALLOW_IGNORED, 0.0, f"{header_from} is allowed but failed DMARC: not honoured")
    return Finding(STAGE, SENDER_ALLOWED, 0.0, f"From {header_from} is an allowed sender: spam filtering skipped")


def _in_domains(domain: str, domains: set[str]) -> bool:
    """The domain or any parent of it is listed."""
    labels = domain.split(".")
    return any(".".join(labels[i:]) in domains for i in range(len(labels) - 1))


def link_domains(urls: Iterable[str], own: Iterable[str] = ()) -> list[str]:
    """Distinct registered domains (and IP literals) of the links, in order of appearance, own domains left out."""
    skip = {d.lower() for d in own}
    out: dict[str, None] = {}
    for url in urls:
        try:
            host = (urlsplit(url).hostname or "").rstrip(".").lower()
        except ValueError:
            continue
        if not host:
            continue
        try:
            ipaddress.ip_address(host)
        except ValueError:
            name = registered_domain(host)
        else:
            name = host
        if name and name not in skip:
            out[name] = None
    return list(out)


def explain(findings: Sequence[Finding]) -> str:
    """`SYMBOL(weight) ...` for the symbols that scored, strongest first."""
    scored = sorted((f for f in findings if f.score), key=lambda f: -abs(f.score))
    return " ".join(f"{f.code}({f.score:g})" for f in scored)
