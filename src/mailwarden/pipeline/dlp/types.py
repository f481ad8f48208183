"""The built-in sensitive information types: patterns, validators, keywords and confidence rules.

Patterns run on NFKC-normalised text with dash-like characters folded to "-" (see `scanner`), so a
full-width `４１１１－１１１１…` is matched by the same pattern as `4111-1111…`. Every pattern is RE2
syntax (no look-around, no back-references) and is compiled by `scanner` with google-re2, which runs in
time linear in the text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from mailwarden.pipeline.dlp import checksums


class Confidence(StrEnum):
    """How sure a match is: a validated number alone, or one with a keyword near it."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK: Final = {Confidence.LOW: 0, Confidence.MEDIUM: 1, Confidence.HIGH: 2}

DEFAULT_PROXIMITY: Final = 300
"""Characters either side of a match searched for a keyword."""


@dataclass(frozen=True, slots=True)
class Detector:
    """One pattern of a type. `validate` turns the matched text (group 1 when the pattern has one) into
    the value's canonical form, or None to drop it; `alone` is the confidence without a keyword (None:
    reported only with a keyword), `with_keyword` the confidence with one."""

    pattern: str
    validate: Callable[[str], str | None]
    alone: Confidence | None
    with_keyword: Confidence


@dataclass(frozen=True, slots=True)
class InfoType:
    name: str
    detectors: tuple[Detector, ...]
    keywords: tuple[str, ...] = ()
    proximity: int = DEFAULT_PROXIMITY


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def _card(text: str) -> str | None:
    digits = _digits(text)
    return digits if checksums.card_valid(digits) else None


def _iban(text: str) -> str | None:
    """The IBAN at the start of `text`: space-separated groups taken until the country's length is met,
    so a word after the number does not spoil it."""
    expected = checksums.IBAN_LENGTHS.get(text[:2])
    if expected is None:
        return None
    compact = ""
    for token in text.split(" "):
        compact += token
        if len(compact) == expected:
            return compact if checksums.iban_valid(compact) else None
        if len(compact) > expected:
            return None
    return None


def _ssn(text: str) -> str | None:
    digits = _digits(text)
    return digits if checksums.ssn_valid(digits) else None


def _my_number(text: str) -> str | None:
    digits = _digits(text)  # the pattern swallows a following digit group, so a longer number fails here
    return digits if checksums.my_number_valid(digits) else None


def _corporate_number(text: str) -> str | None:
    digits = _digits(text)
    return digits if checksums.corporate_number_valid(digits) else None


_MOBILE_PREFIXES: Final = ("050", "070", "080", "090", "0800")


def _jp_phone(text: str) -> str | None:
    """A Japanese number in national form (0 + 9 or 10 digits); +81 numbers are brought to it."""
    digits = _digits(text)
    if text.startswith("+81"):
        digits = "0" + digits[2:].removeprefix("0")
    if not digits.startswith("0") or digits.startswith("00"):
        return None
    if len(digits) == 11 and digits.startswith(_MOBILE_PREFIXES):
        return digits
    if len(digits) == 10 and not digits.startswith(_MOBILE_PREFIXES[:4]):
        return digits
    return None


def _email(text: str) -> str | None:
    return text.lower()


def _same(text: str) -> str | None:
    return text


def _mixed_base64(text: str) -> str | None:
    """A random 40-character secret has upper case, lower case and digits; a hex digest or a word does
    not."""
    if any(c.isupper() for c in text) and any(c.islower() for c in text) and any(c.isdigit() for c in text):
        return text
    return None


def _pem_header(text: str) -> str | None:
    end = text.find("-----", 5)
    return text[: end + 5] if end > 0 else None


_SEP: Final = r"[ \-ー]"  # after folding: space, hyphen, or the katakana long-vowel mark typed as a dash
_H, _M, _L = Confidence.HIGH, Confidence.MEDIUM, Confidence.LOW

BUILTIN_TYPES: Final[tuple[InfoType, ...]] = (
    InfoType(
        "credit_card",
        (
            Detector(
                r"\b(?:\d{13,19}|\d{4}(?:-\d{4}){2}-\d{1,7}|\d{4}(?: \d{4}){2} \d{1,7}|\d{4}[ -]\d{6}[ -]\d{4,5})\b",
                _card,
                _M,
                _H,
            ),
        ),
        (
            "card number", "credit card", "debit card", "card no", "cc#", "cc num", "visa", "mastercard",
            "master card", "amex", "american express", "jcb", "discover", "diners", "unionpay", "cvv", "cvc",
            "expiry", "expiration date", "exp date", "cardholder", "card holder",
            "カード番号", "クレジットカード", "クレカ", "デビットカード", "有効期限", "セキュリティコード",
            "カード名義", "ご利用カード",
        ),
    ),
    InfoType(
        "iban",
        (Detector(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b", _iban, _M, _H),),
        (
            "iban", "bank account", "account number", "account no", "swift", "bic", "sepa", "wire transfer",
            "口座番号", "銀行口座", "振込先", "送金先",
        ),
    ),
    InfoType(
        "us_ssn",
        (
            Detector(r"\b\d{3}-\d{2}-\d{4}\b", _ssn, _L, _H),
            Detector(r"\b\d{3} \d{2} \d{4}\b", _ssn, _L, _H),
            Detector(r"\b\d{9}\b", _ssn, None, _M),
        ),
        ("ssn", "ss#", "ssn#", "social security", "soc sec", "ssa number", "社会保障番号"),
    ),
    InfoType(
        "jp_my_number",
        (Detector(r"\b\d{4}[ -]?\d{4}[ -]?\d{4}(?:[ -]\d+)*\b", _my_number, _L, _H),),
        (
            "マイナンバー", "個人番号", "通知カード", "個人番号カード", "マイナンバーカード",
            "my number", "mynumber", "individual number",
        ),
    ),
    InfoType(
        "jp_corporate_number",
        (
            Detector(r"\b\d{13}\b", _corporate_number, _L, _H),
            Detector(r"\bT\d{13}\b", _corporate_number, _M, _H),
        ),
        ("法人番号", "登録番号", "適格請求書", "インボイス", "corporate number", "invoice registration"),
    ),
    InfoType(
        "jp_phone",
        (
            Detector(rf"\b0\d{{1,4}}{_SEP}\d{{1,4}}{_SEP}\d{{3,4}}\b", _jp_phone, _M, _H),
            Detector(rf"\(0\d{{1,4}}\) ?\d{{1,4}}{_SEP}\d{{4}}\b", _jp_phone, _M, _H),
            Detector(rf"\+81{_SEP}?\d{{1,4}}{_SEP}\d{{1,4}}{_SEP}\d{{4}}\b", _jp_phone, _M, _H),
            Detector(r"\b0\d{9,10}\b", _jp_phone, None, _M),
        ),
        ("電話番号", "電話", "携帯", "連絡先", "tel", "phone", "mobile", "fax"),
    ),
    InfoType(
        "email",
        (
            Detector(
                r"\b[A-Za-z0-9._%+\-]{1,64}@(?:[A-Za-z0-9\-]{1,63}\.){1,8}[A-Za-z]{2,24}\b",
                _email,
                _L,
                _M,
            ),
        ),
        ("email", "e-mail", "mail address", "メールアドレス", "メアド", "電子メール"),
    ),
    InfoType(
        "aws_access_key_id",
        (Detector(r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}\b", _same, _M, _H),),
        ("aws", "access key", "aws access key id", "amazon web services"),
    ),
    InfoType(
        "aws_secret_access_key",
        (Detector(r"(?:^|[^A-Za-z0-9/+])([A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)", _mixed_base64, None, _H),),
        ("aws secret access key", "secret access key", "aws secret", "secretaccesskey", "aws_secret"),
        proximity=100,
    ),
    InfoType(
        "github_token",
        (
            Detector(r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}\b", _same, _H, _H),
            Detector(r"\bgithub_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}\b", _same, _H, _H),
        ),
    ),
    InfoType(
        "slack_token",
        (
            Detector(r"\bxox[abprs]-[A-Za-z0-9\-]{10,250}", _same, _H, _H),
            Detector(r"https://hooks\.slack\.com/services/T[A-Z0-9]{6,}/B[A-Z0-9]{6,}/[A-Za-z0-9]{20,}", _same, _H, _H),
        ),
    ),
    InfoType(
        "google_api_key",
        (Detector(r"(?:^|[^0-9A-Za-z_\-])(AIza[0-9A-Za-z_\-]{35})(?:[^0-9A-Za-z_\-]|$)", _same, _H, _H),),
    ),
    InfoType(
        "azure_storage_key",
        (
            Detector(r"AccountKey=([A-Za-z0-9+/]{86}==)", _same, _H, _H),
            Detector(r"(?:^|[^A-Za-z0-9+/])([A-Za-z0-9+/]{86}==)", _mixed_base64, None, _M),
        ),
        ("azure", "storage account", "account key", "accountkey", "access key"),
    ),
    InfoType(
        "stripe_key",
        (
            Detector(r"\b[sr]k_live_[0-9A-Za-z]{24,247}\b", _same, _H, _H),
            Detector(r"\b[sr]k_test_[0-9A-Za-z]{24,247}\b", _same, _M, _H),
        ),
        ("stripe",),
    ),
    InfoType(
        "private_key",
        (
            Detector(
                r"-----BEGIN (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----"
                r"\s+(?:[A-Za-z\-]+:[^\n]*\s+)*[A-Za-z0-9+/=]{40}",
                _pem_header,
                _H,
                _H,
            ),
        ),
    ),
)  # fmt: skip

BUILTIN_NAMES: Final = frozenset(t.name for t in BUILTIN_TYPES)
