"""Phishing wording and impersonation: credential harvest phrases, urgency, brand and organisation names
in display names and subjects, DMARC failure of the From domain."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from functools import lru_cache

from mailwarden.model import Organisation
from mailwarden.pipeline.facts import ScanFacts
from mailwarden.pipeline.spam.heuristics.patterns import PhraseList
from mailwarden.pipeline.spam.heuristics.settings import HeuristicsSettings
from mailwarden.pipeline.spam.heuristics.view import View, domain_of, fold, registered_domain, visible_only

Hit = tuple[str, str]

# Phrases a credential-harvest lure uses; matched on NFKC-folded lower-case text.
CREDENTIAL_PHRASES: tuple[str, ...] = (
    # English
    "verify your account", "verify your identity", "verify your email", "confirm your account",
    "confirm your identity", "confirm your email address", "validate your account", "validate your mailbox",
    "reactivate your account", "re-activate your account", "update your account", "update your payment",
    "update your billing", "password expires", "password will expire", "password has expired",
    "password is about to expire", "keep your current password", "keep same password", "keep my password",
    "unusual sign-in", "unusual sign in", "unusual login", "unusual activity", "suspicious activity",
    "suspicious login", "mailbox is full", "mailbox full", "mailbox quota", "storage is full",
    "storage quota", "account will be suspended", "account has been suspended", "account will be closed",
    "account will be deactivated", "account has been locked", "account is locked", "account has been limited",
    "account has been restricted", "pending messages", "messages are pending", "messages on hold",
    "undelivered messages", "incoming messages were", "failed to deliver", "shared a document with you",
    "shared a file with you", "has shared a file", "view shared document", "payment was declined",
    "payment failed", "payment information", "billing information", "confirm your details",
    "confirm your information", "log in to your account", "login to your account", "sign in to your account",
    "security verification", "verify now", "authenticate your account", "wallet has been",
    "validate your wallet", "verify your wallet", "recovery phrase", "seed phrase", "secret phrase",
    "12 word", "12-word", "24-word", "new sign-in", "new login", "sign-in attempt", "login attempt",
    "your password", "reset your password", "expired password", "email account", "mail account",
    # German
    "konto bestätigen", "konto verifizieren", "bestätigen sie ihr konto", "verifizieren sie ihr konto",
    "ihr konto wurde gesperrt", "konto wurde eingeschränkt", "konto gesperrt", "passwort läuft ab",
    "passwort ist abgelaufen", "ungewöhnliche anmeldeaktivität", "ungewöhnliche aktivität",
    "verdächtige aktivität", "postfach ist voll", "speicherplatz ist voll", "zahlungsinformationen",
    "identität bestätigen", "daten aktualisieren", "daten bestätigen", "sicherheitsüberprüfung",
    "aktualisieren sie ihre", "bestätigen sie ihre",
    # Portuguese
    "verifique sua conta", "confirme sua conta", "atualize seus dados", "atualizar seus dados",
    "sua conta foi bloqueada", "sua conta será bloqueada", "conta suspensa", "sua senha expira",
    "senha expira", "senha expirou", "atividade incomum", "atividade suspeita", "caixa de correio cheia",
    "confirme seus dados", "atualizar cadastro", "atualize seu cadastro", "confirme sua identidade",
    "regularize", "pendencia", "novo acesso", "acesso a sua conta", "sua conta",
    # Dutch
    "verifieer uw account", "bevestig uw account", "uw account is geblokkeerd", "account is opgeschort",
    "wachtwoord verloopt", "wachtwoord is verlopen", "ongebruikelijke aanmeldactiviteit",
    "verdachte activiteit", "mailbox is vol", "gegevens bijwerken", "bevestig uw gegevens",
    "verifieer uw gegevens", "uw pas verloopt",
    # French
    "vérifiez votre compte", "confirmez votre compte", "votre compte a été suspendu",
    "votre compte sera suspendu", "votre compte a été bloqué", "mot de passe expire", "mot de passe a expiré",
    "activité inhabituelle", "activité suspecte", "boîte aux lettres est pleine", "boîte de réception est pleine",
    "mettre à jour vos informations", "confirmez votre identité", "vérifier votre identité",
    "mettre à jour vos coordonnées",
    # Japanese
    "パスワードの有効期限", "アカウントの確認", "アカウントを確認", "本人確認", "不正アクセス",
    "異常なサインイン", "不審なサインイン", "アカウントが停止", "アカウントを停止", "アカウントがロック",
    "お支払い情報", "支払い方法の更新", "メールボックスがいっぱい", "アカウント情報の更新", "ご利用確認",
)  # fmt: skip

URGENCY: tuple[str, ...] = (
    "urgent", "immediately", "within 24 hours", "within 48 hours", "within 24h", "final notice",
    "final reminder", "last warning", "last reminder", "action required", "action needed", "expires today",
    "will be suspended", "will be deleted", "will be closed", "sofort", "dringend", "umgehend",
    "innerhalb von 24 stunden", "letzte mahnung", "letzte erinnerung", "urgente", "imediatamente",
    "em 24 horas", "último aviso", "onmiddellijk", "binnen 24 uur", "laatste herinnering", "immédiatement",
    "sous 24 heures", "dans les 24 heures", "dernier avis", "dernier rappel", "至急", "緊急", "24時間以内",
    "本日中",
)  # fmt: skip

ACCOUNT: tuple[str, ...] = (
    "account", "password", "payment", "invoice", "billing", "credit card", "bank", "login", "sign in",
    "konto", "passwort", "zahlung", "rechnung", "kreditkarte", "conta", "senha", "pagamento", "fatura",
    "cartão", "rekening", "wachtwoord", "betaling", "factuur", "compte", "mot de passe", "paiement",
    "facture", "carte bancaire", "アカウント", "パスワード", "支払", "請求", "カード",
)  # fmt: skip


# Prize, lottery and gift lures (spam family: the money goes the other way, no credentials asked)
PRIZE: tuple[str, ...] = (
    "you have won", "you've won", "you won", "winner", "claim your", "free spins", "giveaway", "congratulations",
    "gift card", "your reward", "exclusive reward", "sie haben gewonnen", "freispiele", "gewinnspiel",
    "gutschein", "voce ganhou", "parabens", "premio", "brinde", "je hebt gewonnen", "cadeaukaart",
    "gefeliciteerd", "vous avez gagne", "felicitations", "当選", "プレゼント",
)  # fmt: skip
# Advance-fee fraud: a sum of money offered for a favour
ADVANCE_FEE: tuple[str, ...] = (
    "next of kin", "beneficiary", "inheritance", "million usd", "million dollars", "million euros",
    "donate the sum", "compensation fund", "barrister", "transfer the sum", "late client", "atm card",
    "consignment box", "diplomat", "lottery", "united nations", "business proposal", "investment proposal",
    "sum of $", "sum of us$", "fund transfer", "my late husband", "charity work", "dear beneficiary",
)  # fmt: skip


def _folded(phrases: tuple[str, ...]) -> PhraseList:
    """One regex for a phrase list (a trie: the longest phrase matching at a position first),
    alphabetic phrases on word boundaries, CJK phrases anywhere."""
    return PhraseList(fold(unicodedata.normalize("NFKC", p)) for p in phrases)


_CREDENTIAL = _folded(CREDENTIAL_PHRASES)
_URGENCY = _folded(URGENCY)
_ACCOUNT = _folded(ACCOUNT)
_PRIZE = _folded(PRIZE)
_ADVANCE_FEE = _folded(ADVANCE_FEE)


# brand names that are also people's names or common words: they count only next to a service word
AMBIGUOUS_BRANDS = frozenset(
    {"chase", "norton", "ledger", "apple", "ing", "ups", "caixa", "outlook", "adobe", "visa", "steam", "zoom",
     "hermes", "kraken", "gls", "irs", "lloyds", "amex", "costco"}
)  # fmt: skip
_SERVICE_WORDS = re.compile(
    r"(?<!\w)(?:bank|banking|support|security|team|service|services|online|account|accounts|alert|alerts|id|"
    r"card|notification|notifications|billing|help|helpdesk|customer|care|secure|mail|store|pay|express)(?!\w)"
)


@lru_cache(maxsize=1024)
def _brand_word(brand: str) -> re.Pattern[str]:
    return re.compile(r"(?<![\w.@-])" + re.escape(brand) + r"(?![\w@-]|\.\w)")


def _brand_named(text: str, s: HeuristicsSettings) -> str | None:
    low = " ".join(visible_only(unicodedata.normalize("NFKC", text)).lower().split())
    service: bool | None = None  # looked up once, and only when an ambiguous brand is in the text
    for brand, _ in s.brand_tokens:
        if brand not in low:  # the cheap test first: most texts name no brand at all
            continue
        if brand in AMBIGUOUS_BRANDS:
            if service is None:
                service = _SERVICE_WORDS.search(low) is not None
            if not service:
                continue
        if _brand_word(brand).search(low):
            return brand
    return None


def _owns(brand: str, domain: str, s: HeuristicsSettings) -> bool:
    domains = s.brands.get(brand, frozenset())
    reg = registered_domain(domain)
    return reg in domains or domain in domains or reg.split(".", 1)[0] == brand.replace(" ", "")


def check(view: View, facts: ScanFacts, org: Organisation | None, s: HeuristicsSettings) -> Iterator[Hit]:
    msg = view.message
    text = view.folded_text
    words = view.folded_words
    linked = view.has_link_or_form or any(a.declared_type == "text/html" for a in msg.attachments)
    prize = _PRIZE.search(text, words)
    if prize:
        yield "PRIZE_WORDING", prize
    fee = _ADVANCE_FEE.findall(text, words)
    if len(set(fee)) >= 2:
        yield "ADVANCE_FEE_WORDING", ", ".join(sorted(set(fee)))[:80]
    if linked:
        credential = _CREDENTIAL.search(text, words)
        if credential:
            yield "PHISH_CREDENTIAL_WORDING", credential
        urgency = _URGENCY.search(text, words)
        if urgency and _ACCOUNT.search(text, words):
            yield "PHISH_URGENCY_ACCOUNT", urgency
    domain = view.from_domain
    name = msg.from_display_name
    if view.from_list and domain_of(msg.reply_to):
        domain = domain_of(msg.reply_to)  # the list rewrote From: the name is the poster's, so is Reply-To
    if domain:
        brand = _brand_named(name, s)
        if brand and not _owns(brand, domain, s):
            yield "PHISH_BRAND_DISPLAY_NAME", f"{brand} from {domain}"
        else:
            brand = _brand_named(msg.subject, s)
            if brand and not _owns(brand, domain, s) and linked:
                yield "PHISH_BRAND_SUBJECT", f"{brand} from {domain}"
    if org is not None and domain and registered_domain(domain) not in {registered_domain(d) for d in org.domain_names}:
        shown = _org_named(name, org)
        if shown:
            yield "PHISH_ORG_DISPLAY_NAME", shown
    auth = facts.auth
    # a list that relays a post under the poster's own From breaks its DKIM (subject tag, footer): the
    # failure is the list's mechanics, not a forgery (the auth stage still scores p=reject/quarantine)
    relayed = bool(view.list_id) and not view.from_list
    if auth.get("dmarc") == "fail" and not relayed:
        yield "PHISH_DMARC_FAIL", f"{auth.get('from_domain', '')} p={auth.get('dmarc_policy', '')}"


def _org_named(name: str, org: Organisation) -> str | None:
    """The organisation's domain or name as it appears in a display name, if it does."""
    low = name.lower()
    for d in sorted(org.domain_names):
        if d.lower() in low:
            return d
    if len(org.name) >= 4 and re.search(r"(?<!\w)" + re.escape(org.name.lower()) + r"(?!\w)", low):
        return org.name
    return None
