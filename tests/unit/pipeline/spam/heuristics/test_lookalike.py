from __future__ import annotations

from mailwarden.pipeline.spam.heuristics.lookalike import brand_token_in, distance, looks_like, skeleton, to_unicode
from tests.unit.pipeline.spam.heuristics.helpers import ORG, codes, mail


def test_skeleton_folds_homoglyphs() -> None:
    assert skeleton("p\u0430yp\u0430l") == skeleton("paypal")  # Cyrillic a
    assert skeleton("rnicrosoft") == skeleton("microsoft")
    assert skeleton("paypa1") == skeleton("paypal")
    assert skeleton("example") != skeleton("sample")


def test_damerau_levenshtein() -> None:
    assert distance("microsoft", "microsfot") == 1  # transposition
    assert distance("microsoft", "micosoft") == 1
    assert distance("example", "exampel") == 1
    assert distance("paypal", "ebay") == 3  # capped


def test_looks_like() -> None:
    assert looks_like("examp1e.com", "example.com")
    assert looks_like("exarnple.com", "example.com")
    assert looks_like("microsfot.com", "microsoft.com")
    assert not looks_like("example.com", "example.com")
    assert not looks_like("mail.example.com", "example.com")  # same registered domain
    assert not looks_like("sample.net", "example.com")


def test_punycode_decodes() -> None:
    assert to_unicode("xn--pypal-4ve.com") == "p\u0430ypal.com"
    assert looks_like("xn--pypal-4ve.com", "paypal.com")


def test_brand_embedded_in_a_longer_domain() -> None:
    assert brand_token_in("paypal-secure-login.example.net", "paypal")
    assert brand_token_in("login.paypal.com.example.net", "paypal")
    assert brand_token_in("dhl-tracking.example.net", "dhl")
    assert not brand_token_in("groups.example.net", "ups")
    assert not brand_token_in("example.net", "paypal")


def test_sender_imitating_the_organisation() -> None:
    fake = mail(headers={"From": "IT <it@examp1e.com>"})
    assert "PHISH_LOOKALIKE_ORG" in codes(fake, org=ORG)
    assert "PHISH_LOOKALIKE_ORG" not in codes(mail(headers={"From": "IT <it@example.com>"}), org=ORG)


def test_sender_or_link_imitating_a_brand() -> None:
    assert "PHISH_LOOKALIKE_BRAND" in codes(mail(headers={"From": "Support <help@microsfot.com>"}))
    assert "PHISH_LOOKALIKE_BRAND" in codes(mail(text="Log in at https://www.rnicrosoft.com/"))
    assert "PHISH_LOOKALIKE_BRAND" not in codes(mail(text="Log in at https://www.microsoft.com/"))
    assert "PHISH_BRAND_IN_DOMAIN" in codes(mail(headers={"From": "x <no-reply@paypal-billing.example.net>"}))
    assert "PHISH_BRAND_IN_DOMAIN" not in codes(mail())


def test_punycode_sender() -> None:
    assert "PHISH_PUNYCODE_SENDER" in codes(mail(headers={"From": "x <a@xn--exmple-cua.com>"}))
    assert "PHISH_PUNYCODE_SENDER" not in codes(mail())


def test_edit_distance_two_only_for_names_of_ten_letters_or_more() -> None:
    assert looks_like("exampelbnak.com", "examplebank.com")  # two transpositions
    assert not looks_like("exampelbnka.com", "examplebank.com")  # three edits
    assert looks_like("exampel.com", "example.com")  # one edit at seven letters
    assert not looks_like("exmpel.com", "example.com")  # two edits at seven letters
