"""Redacted forms of matched values: what history, traces and exports may hold.

A card keeps its first and last four digits (`4111 **** **** 1111`); other types keep at most four
characters of the value, and secrets keep only their public prefix.
"""

from __future__ import annotations

from typing import Final

_SECRET_PREFIXES: Final = (
    "github_pat_", "sk_live_", "sk_test_", "rk_live_", "rk_test_", "ghp_", "gho_", "ghu_", "ghs_", "ghr_",
    "xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-", "AIza",
)  # fmt: skip


def _stars(n: int) -> str:
    """`n` asterisks in groups of four."""
    groups = [4] * (n // 4) + ([n % 4] if n % 4 else [])
    return " ".join("*" * g for g in groups)


def redact(type: str, value: str) -> str:
    """The redacted form of one matched value of a type (values are in their canonical form)."""
    if type == "credit_card":
        return f"{value[:4]} {_stars(len(value) - 8)} {value[-4:]}"
    if type == "iban":
        return f"{value[:2]}** {_stars(len(value) - 6)} {value[-2:]}".replace("  ", " ")
    if type == "us_ssn":
        return f"***-**-{value[-4:]}"
    if type == "jp_my_number":
        return f"**** **** **{value[-2:]}"
    if type == "jp_corporate_number":
        return f"{value[:2]}*********{value[-2:]}"
    if type == "jp_phone":
        return f"{value[:2]}{'*' * (len(value) - 4)}{value[-2:]}"
    if type == "email":
        local, _, domain = value.partition("@")
        return f"{local[:1]}***@{domain}"
    if type == "aws_access_key_id":
        return f"{value[:4]}{'*' * (len(value) - 4)}"
    if type in ("aws_secret_access_key", "azure_storage_key"):
        return f"******** ({len(value)} characters)"
    if type == "private_key":
        return f"{value} [key material redacted]"
    for prefix in _SECRET_PREFIXES:
        if value.startswith(prefix):
            return f"{prefix}{'*' * 8}"
    if len(value) <= 6:
        return "*" * len(value)
    return f"{value[:2]}{'*' * min(len(value) - 2, 12)}"
