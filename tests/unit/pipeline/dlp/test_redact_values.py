"""`redact_values`: text fit to store or show (subjects, file names, trace details) keeps only the redacted
form of a sensitive value, in place, and every other character as it was."""

from __future__ import annotations

import pytest

from mailwarden.pipeline.dlp import redact_values
from tests.unit.pipeline.dlp.test_scanner import AWS_SECRET, CARDS, KEYS


@pytest.mark.parametrize("number", CARDS.values(), ids=CARDS.keys())
def test_a_card_number_in_a_subject_keeps_only_its_first_and_last_four_digits(number: str) -> None:
    digits = number.replace(" ", "").replace("-", "")
    shown = redact_values(f"Re: payment with {number} failed")
    assert shown.startswith(f"Re: payment with {digits[:4]} ") and shown.endswith(f" {digits[-4:]} failed")
    assert digits[4:-4] not in shown.replace(" ", "").replace("*", "")


def test_japanese_text_around_full_width_numbers_is_kept_as_written() -> None:
    subject = "【至急】マイナンバー：１２３４－５６７８－９０１８　カード番号４１１１−１１１１−１１１１−１１１１の件"
    assert redact_values(subject) == "【至急】マイナンバー：**** **** **18　カード番号4111 **** **** 1111の件"


SECRETS = {
    "us_ssn": ("SSN 123-45-6788 on file", "123-45-6788"),
    "iban": ("IBAN DE89 3704 0044 0532 0130 00 please", "3704 0044 0532"),
    "aws_secret_access_key": (f"aws_secret_access_key = {AWS_SECRET}", AWS_SECRET),
    **{name: (f"config {key}", key.split("AccountKey=")[-1]) for name, key in KEYS.items()},
}


@pytest.mark.parametrize(("text", "value"), SECRETS.values(), ids=SECRETS.keys())
def test_national_ids_accounts_keys_and_tokens_never_stay_whole(text: str, value: str) -> None:
    assert value not in redact_values(text)


def test_a_private_key_is_redacted_to_its_begin_line_whole() -> None:
    material = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n" * 3
    text = f"see\n-----BEGIN RSA PRIVATE KEY-----\n{material}-----END RSA PRIVATE KEY-----\nthanks"
    assert redact_values(text) == "see\n-----BEGIN RSA PRIVATE KEY----- [key material redacted]\nthanks"


@pytest.mark.parametrize(
    "text",
    [
        "Quarterly numbers",
        "Order 2025-10-14 #4711, 3 items",
        "call 03-1234-5678 or write to bob@example.com",  # contact details stay readable
        "Invoice from 法人番号 7000012050002",  # corporate numbers are public
        "Card 4111 1111 1111 1112 is not a card (Luhn)",
        "",
    ],
)
def test_text_without_a_sensitive_value_is_left_alone(text: str) -> None:
    assert redact_values(text) == text
