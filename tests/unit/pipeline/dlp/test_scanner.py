"""Each sensitive information type found and not found, keywords in English and Japanese, full-width text,
custom types, and matches that never carry a full value."""

from __future__ import annotations

import json
import time

import pytest
from pydantic import ValidationError

from mailwarden.model.message import Message
from mailwarden.pipeline.dlp import Confidence, CustomType, DlpMatch, DlpScanner, checksums, count_at_least, normalize
from mailwarden.pipeline.extract import TextSource, message_texts
from tests.factories import build_message

SCANNER = DlpScanner()


def scan(text: str, scanner: DlpScanner = SCANNER) -> dict[str, DlpMatch]:
    """The strongest match per type (tests put one value of a type in a text)."""
    out: dict[str, DlpMatch] = {}
    for m in scanner.scan([TextSource("body", text)]):
        out.setdefault(m.type, m)
    return out


def level(text: str, type_: str) -> str | None:
    found = scan(text).get(type_)
    return found.confidence if found else None


# ---- payment cards -------------------------------------------------------------------------------

CARDS = {
    "visa": "4111 1111 1111 1111",
    "mastercard": "5555-5555-5555-4444",
    "mastercard 2-series": "2223003122003222",
    "amex": "3782 822463 10005",
    "jcb": "3530111333300000",
    "discover": "6011 1111 1111 1117",
    "diners": "30569309025904",
    "unionpay": "6200000000000005",
}


@pytest.mark.parametrize("number", CARDS.values(), ids=CARDS.keys())
def test_card_alone_is_medium_and_with_keyword_high(number: str) -> None:
    assert level(f"here it is {number} thanks", "credit_card") == "medium"
    assert level(f"card number: {number}", "credit_card") == "high"
    assert level(f"カード番号：{number}", "credit_card") == "high"


@pytest.mark.parametrize(
    "text",
    [
        "card number 4111 1111 1111 1112",  # Luhn fails
        "card number 9111 1111 1111 1115",  # no issuer starts with 9
        "order 41111111111111111111111",  # too long to be a card
        "card number 4111 1111 1111",  # too short
    ],
)
def test_not_a_card(text: str) -> None:
    assert "credit_card" not in scan(text)


def test_full_width_card_with_japanese_keyword() -> None:
    found = scan("クレジットカード番号は４１１１－１１１１－１１１１－１１１１です")["credit_card"]
    assert (found.confidence, found.samples) == ("high", ("4111 **** **** 1111",))


def test_keyword_too_far_away_does_not_raise_confidence() -> None:
    assert level("card number" + " filler" * 60 + " 4111111111111111", "credit_card") == "medium"
    assert level("card number" + " filler" * 30 + " 4111111111111111", "credit_card") == "high"


def test_card_in_a_longer_digit_run_is_not_taken_apart() -> None:
    assert "credit_card" not in scan("tracking 94111111111111111")


def test_card_next_to_other_numbers_is_found() -> None:
    assert level("order 12 card number 4111 1111 1111 1111 exp 12/29", "credit_card") == "high"


# ---- IBAN ----------------------------------------------------------------------------------------


def test_iban_found_with_and_without_keyword() -> None:
    assert level("Please pay to DE89 3704 0044 0532 0130 00 today", "iban") == "medium"
    assert level("IBAN: GB82 WEST 1234 5698 7654 32 BIC WESTGB22", "iban") == "high"
    assert level("振込先 口座 GB82WEST12345698765432", "iban") == "high"


def test_iban_wrong_check_digits_or_country() -> None:
    assert "iban" not in scan("IBAN DE88 3704 0044 0532 0130 00")
    assert "iban" not in scan("IBAN XX89 3704 0044 0532 0130 00")


# ---- US SSN --------------------------------------------------------------------------------------


def test_ssn_confidence_by_form_and_keyword() -> None:
    assert level("ref 123-45-6788", "us_ssn") == "low"
    assert level("SSN: 123-45-6788", "us_ssn") == "high"
    assert level("social security number 123456788", "us_ssn") == "medium"
    assert "us_ssn" not in scan("invoice 123456788")  # bare nine digits need a keyword


@pytest.mark.parametrize(
    "ssn", ["000-12-3456", "666-12-3456", "923-12-3456", "123-00-3456", "123-45-0000", "078-05-1120"]
)
def test_ssn_never_issued(ssn: str) -> None:
    assert "us_ssn" not in scan(f"SSN {ssn}")


# ---- Japan ---------------------------------------------------------------------------------------


def test_my_number_low_alone_high_with_keyword() -> None:
    assert level("番号 1234 5678 9018", "jp_my_number") == "low"
    assert level("マイナンバー：1234-5678-9018", "jp_my_number") == "high"
    assert level("個人番号 ｉｓ １２３４５６７８９０１８", "jp_my_number") == "high"
    assert "jp_my_number" not in scan("マイナンバー 1234 5678 9017")  # wrong check digit


def test_my_number_is_not_cut_out_of_a_card_number() -> None:
    # a card whose first 12 digits carry a valid My Number check digit
    head = "41111111111" + str(checksums.my_number_check_digit("41111111111"))
    card = next(c for c in (f"{head}{n:04d}" for n in range(10_000)) if checksums.card_valid(c))
    assert level(f"マイナンバー {card[:12]}", "jp_my_number") == "high"
    assert "jp_my_number" not in scan(f"マイナンバー {card[:4]} {card[4:8]} {card[8:12]} {card[12:]}")


def test_corporate_number() -> None:
    assert level("No. 7000012050002", "jp_corporate_number") == "low"
    assert level("法人番号：7000012050002", "jp_corporate_number") == "high"
    assert level("登録番号 T7000012050002", "jp_corporate_number") == "high"
    assert level("T7000012050002", "jp_corporate_number") == "medium"
    assert "jp_corporate_number" not in scan("法人番号 7000012050003")


@pytest.mark.parametrize(
    "phone",
    ["03-1234-5678", "090-1234-5678", "０９０－１２３４－５６７８", "080ー1234ー5678", "(03) 1234-5678",
     "+81 3 1234 5678", "0120-123-456", "+81-90-1234-5678"],
)  # fmt: skip
def test_japanese_phone_formats(phone: str) -> None:
    assert level(f"お問い合わせ {phone} まで", "jp_phone") == "medium"
    assert level(f"電話番号：{phone}", "jp_phone") == "high"


@pytest.mark.parametrize("text", ["TEL 0012-345-678", "TEL 2024-01-15", "TEL 090-1234-567", "date 0312345678"])
def test_not_a_japanese_phone(text: str) -> None:
    assert "jp_phone" not in scan(text)


def test_compact_phone_needs_a_keyword() -> None:
    assert level("携帯 09012345678", "jp_phone") == "medium"


# ---- e-mail, keys, tokens ------------------------------------------------------------------------


def test_email_addresses() -> None:
    assert level("write to taro.yamada+x@example.co.jp", "email") == "low"
    assert level("メールアドレス：ｔａｒｏ＠ｅｘａｍｐｌｅ．ｊｐ", "email") == "medium"
    assert "email" not in scan("not an address: taro@localhost or @example.com")


AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
KEYS = {
    "aws_access_key_id": "AKIAIOSFODNN7EXAMPLE",
    "github_token": "ghp_" + "a1B2c3D4e5" * 3 + "f6G7h8",
    "slack_token": "xoxb-123456789012-abcdefABCDEF",
    "google_api_key": "AIzaSy" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6q",
    "stripe_key": "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "azure_storage_key": "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=" + "Ab1+" * 21 + "Xy==",
}


@pytest.mark.parametrize(("type_", "text"), KEYS.items(), ids=KEYS.keys())
def test_cloud_keys_found_and_redacted(type_: str, text: str) -> None:
    found = scan(f"config:\n{text}\n")[type_]
    assert found.confidence in ("medium", "high")
    secret = text.split("AccountKey=")[-1]
    assert all(secret[-10:] not in s for s in found.samples)


@pytest.mark.parametrize(
    ("type_", "text"),
    [
        ("aws_access_key_id", "AKIAIOSFODNN7EXAMPL"),  # one short
        ("github_token", "ghp_tooShort123"),
        ("google_api_key", "AIzaTooShort"),
        ("stripe_key", "pk_live_4eC39HqLyjWDarjtT1zdp7dc"),  # publishable keys are public
        ("slack_token", "xoxz-123456789012-abcdef"),
    ],
)
def test_not_a_key(type_: str, text: str) -> None:
    assert type_ not in scan(text)


def test_aws_secret_needs_its_keyword_and_mixed_case() -> None:
    assert "aws_secret_access_key" not in scan(f"blob {AWS_SECRET} blob")
    assert level(f"aws_secret_access_key = {AWS_SECRET}", "aws_secret_access_key") == "high"
    assert "aws_secret_access_key" not in scan(f"aws_secret_access_key = {'0123456789abcdef' * 2 + 'deadbeef'}")


def test_private_key_block() -> None:
    body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7" * 3
    found = scan(f"-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----")["private_key"]
    assert found.confidence == "high"
    assert found.samples == ("-----BEGIN PRIVATE KEY----- [key material redacted]",)
    assert "private_key" not in scan("Paste it after the -----BEGIN PRIVATE KEY----- line.")


# ---- counting and custom types -------------------------------------------------------------------


def test_values_counted_once_per_message_at_their_best_level() -> None:
    texts = [
        TextSource("body", "4111 1111 1111 1111 and 5555555555554444"),
        TextSource("body", "card number 4111-1111-1111-1111"),  # the HTML alternative of the same body
    ]
    matches = SCANNER.scan(texts)
    cards = [m for m in matches if m.type == "credit_card"]
    assert [(m.confidence, m.count) for m in cards] == [("high", 1), ("medium", 1)]
    assert count_at_least(matches, "credit_card", "medium") == 2
    assert count_at_least(matches, "credit_card", Confidence.HIGH) == 1


def test_custom_type_with_keyword_proximity_and_min_count() -> None:
    custom = CustomType(name="employee_id", pattern=r"EMP-\d{6}", keywords=("社員番号",), proximity=20, min_count=2)
    scanner = DlpScanner([custom])
    one = "社員番号 EMP-123456"
    assert "employee_id" not in scan(one, scanner)  # below min_count
    two = "社員番号 EMP-123456 / EMP-654321"
    assert scan(two, scanner)["employee_id"].count == 2
    far = "社員番号" + "。" * 40 + "EMP-123456 EMP-654321"
    assert "employee_id" not in scan(far, scanner)


def test_custom_type_without_keywords_counts_every_match() -> None:
    scanner = DlpScanner([CustomType(name="project", pattern=r"(?i)project\s+(falcon|osprey)", confidence="high")])
    found = scan("PROJECT FALCON and Project Osprey", scanner)["project"]
    assert (found.count, found.confidence) == (2, "high")


@pytest.mark.parametrize(
    "pattern",
    [r"(a+)+\1", r"(?=x)y", r"(?<!x)y", "a*", "(unclosed", "x" * 1001],
)
def test_custom_pattern_that_is_not_linear_time_or_is_empty_is_refused(pattern: str) -> None:
    with pytest.raises(ValidationError):
        CustomType(name="bad", pattern=pattern)


def test_custom_type_cannot_shadow_a_builtin() -> None:
    with pytest.raises(ValidationError):
        CustomType(name="credit_card", pattern=r"\d+")


def test_catastrophic_pattern_runs_in_linear_time() -> None:
    # (a|aa)*$-style patterns backtrack exponentially in re; RE2 stays linear
    scanner = DlpScanner([CustomType(name="evil", pattern=r"(a|aa)*b")])
    start = time.process_time()
    scanner.scan([TextSource("body", "a" * 50_000)])
    assert time.process_time() - start < 2.0  # CPU seconds


# ---- redaction end to end ------------------------------------------------------------------------


def test_no_full_value_leaves_the_scanner() -> None:
    secrets = ["4111111111111111", "DE89370400440532013000", "123456789018", "123456788", *KEYS.values()]
    raw = build_message(
        text="カード番号 4111 1111 1111 1111\nIBAN DE89 3704 0044 0532 0130 00\n"
        "マイナンバー 123456789018\nSSN 123-45-6788\n" + "\n".join(KEYS.values()),
        attachments=[("c.csv", "text/csv", b"name,card\nTaro,4111111111111111\n")],
    )
    matches = SCANNER.scan(message_texts(Message(raw)))
    exported = json.dumps([m.as_dict() for m in matches])
    assert {m.type for m in matches} >= {"credit_card", "iban", "jp_my_number", "us_ssn", *KEYS}
    for value in secrets:
        assert value not in exported.replace(" ", "").replace("-", "")
        assert value[-12:] not in exported


def test_normalize_folds_full_width_and_dashes_without_touching_ascii() -> None:
    assert normalize("４１１１－１１１１‐２２２２−３") == "4111-1111-2222-3"
    assert normalize("ｶｰﾄﾞ番号") == "カード番号"
    text = "plain ascii 123"
    assert normalize(text) is text
