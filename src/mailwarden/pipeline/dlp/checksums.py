"""Check digits and number rules of the sensitive information types; pure functions on digit strings."""

from __future__ import annotations

from typing import Final


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check used by payment card numbers."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


# (lowest prefix, highest prefix, allowed lengths): prefixes compared on the same number of leading digits
_ISSUERS: Final[tuple[tuple[str, str, str, frozenset[int]], ...]] = (
    ("visa", "4", "4", frozenset({13, 16, 19})),
    ("mastercard", "51", "55", frozenset({16})),
    ("mastercard", "2221", "2720", frozenset({16})),
    ("amex", "34", "34", frozenset({15})),
    ("amex", "37", "37", frozenset({15})),
    ("jcb", "3528", "3589", frozenset({16, 17, 18, 19})),
    ("discover", "6011", "6011", frozenset({16, 17, 18, 19})),
    ("discover", "644", "649", frozenset({16, 17, 18, 19})),
    ("discover", "65", "65", frozenset({16, 17, 18, 19})),
    ("diners", "300", "305", frozenset({14, 15, 16, 17, 18, 19})),
    ("diners", "3095", "3095", frozenset({14, 15, 16, 17, 18, 19})),
    ("diners", "36", "36", frozenset({14, 15, 16, 17, 18, 19})),
    ("diners", "38", "39", frozenset({16, 17, 18, 19})),
    ("unionpay", "62", "62", frozenset({16, 17, 18, 19})),
)


def card_issuer(digits: str) -> str | None:
    """The card scheme whose number range and length `digits` fall in, or None."""
    for issuer, low, high, lengths in _ISSUERS:
        if len(digits) in lengths and low <= digits[: len(low)] <= high:
            return issuer
    return None


def card_valid(digits: str) -> bool:
    return card_issuer(digits) is not None and luhn_valid(digits)


IBAN_LENGTHS: Final[dict[str, int]] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25,
    "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18,
    "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33,
    "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


def iban_valid(iban: str) -> bool:
    """ISO 13616: a known country, that country's length, and mod 97 == 1 over the rearranged digits."""
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban[2:4].isdigit() or not iban.isalnum():
        return False
    rearranged = iban[4:] + iban[:4]
    try:
        number = int("".join(str(int(ch, 36)) for ch in rearranged))
    except ValueError:
        return False
    return number % 97 == 1


# numbers the SSA never issued but that appear in print (a wallet insert, advertising samples)
_SSN_NEVER_ISSUED: Final = frozenset({"078051120", "219099999", "123456789"})


def ssn_valid(digits: str) -> bool:
    """US SSN structure: area not 000, 666 or 900-999; group not 00; serial not 0000."""
    if len(digits) != 9 or not digits.isdigit() or digits in _SSN_NEVER_ISSUED:
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def my_number_check_digit(base11: str) -> int:
    """Japan's individual number (My Number): the check digit of the first 11 digits."""
    total = 0
    for n, ch in enumerate(reversed(base11), start=1):
        weight = n + 1 if n <= 6 else n - 5
        total += int(ch) * weight
    remainder = total % 11
    return 0 if remainder <= 1 else 11 - remainder


def my_number_valid(digits: str) -> bool:
    if len(digits) != 12 or not digits.isdigit():
        return False
    return my_number_check_digit(digits[:11]) == int(digits[11])


def corporate_number_check_digit(base12: str) -> int:
    """Japan's corporate number (法人番号): the leading check digit of the 12 digits after it."""
    total = 0
    for n, ch in enumerate(reversed(base12), start=1):
        total += int(ch) * (1 if n % 2 else 2)
    return 9 - total % 9


def corporate_number_valid(digits: str) -> bool:
    if len(digits) != 13 or not digits.isdigit():
        return False
    return corporate_number_check_digit(digits[1:]) == int(digits[0])
