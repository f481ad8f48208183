from __future__ import annotations

import pytest

from mailwarden.pipeline.facts import ScanFacts
from tests.unit.pipeline.spam.heuristics.helpers import ORG, codes, mail

LINK = "\n\nhttps://portal.example.org/session"


@pytest.mark.parametrize(
    "text",
    [
        "We noticed unusual sign-in activity. Verify your account here:",
        "Ihr Passwort läuft ab. Bitte Konto bestätigen:",
        "Verifique sua conta para continuar usando o serviço:",
        "Uw wachtwoord verloopt vandaag, verifieer uw account:",
        "Votre mot de passe expire aujourd'hui, vérifiez votre compte :",
        "パスワードの有効期限が近づいています。",
        "Please v\u00e1lidate your w\u00e1llet by entering your recovery phrase:",
    ],
)
def test_credential_wording_with_a_link(text: str) -> None:
    assert "PHISH_CREDENTIAL_WORDING" in codes(mail(text=text + LINK))


def test_credential_wording_without_any_link_is_not_enough() -> None:
    assert "PHISH_CREDENTIAL_WORDING" not in codes(mail(text="Did you verify your account on the test box yet?"))


def test_urgency_with_account_wording() -> None:
    assert "PHISH_URGENCY_ACCOUNT" in codes(mail(text="URGENT: your payment failed, act immediately" + LINK))
    assert "PHISH_URGENCY_ACCOUNT" not in codes(mail(text="The build is urgent, please look" + LINK))


def test_brand_in_display_name_from_a_foreign_domain() -> None:
    fake = mail(headers={"From": "PayPal Service <service@example.net>"})
    real = mail(headers={"From": "PayPal <service@paypal.com>"})
    assert "PHISH_BRAND_DISPLAY_NAME" in codes(fake)
    assert "PHISH_BRAND_DISPLAY_NAME" not in codes(real)


def test_person_named_like_a_brand_is_not_the_brand() -> None:
    assert "PHISH_BRAND_DISPLAY_NAME" not in codes(mail(headers={"From": "Chase Miller <chase@example.net>"}))
    assert "PHISH_BRAND_DISPLAY_NAME" in codes(mail(headers={"From": "Chase Bank Alerts <alerts@example.net>"}))


def test_brand_in_subject_with_a_link() -> None:
    fake = mail(text="Details" + LINK, headers={"Subject": "Your DHL parcel is waiting"})
    assert "PHISH_BRAND_SUBJECT" in codes(fake)
    assert "PHISH_BRAND_SUBJECT" not in codes(mail(text="Details" + LINK, headers={"Subject": "Parcel"}))


def test_organisation_name_or_domain_in_an_external_display_name() -> None:
    external = mail(headers={"From": "example.com IT Helpdesk <it@example.net>"})
    internal = mail(headers={"From": "Example Corp Helpdesk <it@example.com>"})
    assert "PHISH_ORG_DISPLAY_NAME" in codes(external, org=ORG)
    assert "PHISH_ORG_DISPLAY_NAME" in codes(mail(headers={"From": "Example Corp HR <hr@example.net>"}), org=ORG)
    assert "PHISH_ORG_DISPLAY_NAME" not in codes(internal, org=ORG)
    assert "PHISH_ORG_DISPLAY_NAME" not in codes(external)  # no organisation known


def test_dmarc_failure_from_the_auth_facts() -> None:
    failed = ScanFacts(auth={"dmarc": "fail", "dmarc_policy": "none", "from_domain": "example.net"})
    passed = ScanFacts(auth={"dmarc": "pass", "dmarc_policy": "reject", "from_domain": "example.net"})
    assert "PHISH_DMARC_FAIL" in codes(mail(), failed)
    assert "PHISH_DMARC_FAIL" not in codes(mail(), passed)


def test_prize_and_advance_fee_wording() -> None:
    assert "PRIZE_WORDING" in codes(mail(text="Congratulations, you have won a gift card!"))
    fee = "I am a barrister. My late client left no next of kin; you are the beneficiary of 10 million dollars."
    assert "ADVANCE_FEE_WORDING" in codes(mail(text=fee))
    plain = codes(mail(text="The lottery scheduler patch needs review."))
    assert not {"PRIZE_WORDING", "ADVANCE_FEE_WORDING"} & plain


def test_wording_after_padding_is_still_read() -> None:
    # padding to push the content past what a scanner reads is an old evasion: the head and the tail
    # of an oversized body are both looked at
    padding = "<div style='display:none'>" + "lorem ipsum " * 100_000 + "</div>"
    html = f"<html><body>{padding}<p>Your password expires today, verify your account now:</p>" + (
        '<a href="https://login.example.net/verify">Verify</a></body></html>'
    )
    assert "PHISH_CREDENTIAL_WORDING" in codes(mail(text=None, html=html))


def test_invisible_characters_between_letters_do_not_hide_a_brand_or_a_phrase() -> None:
    """Variation selectors and Unicode tags render as nothing; lures put them inside names and phrases."""
    vs, tag = "\U000e0139", "\U000e0041"
    sender = f"M{vs}{vs}icro{tag}soft Support <billing@example.net>"
    subject = f"Billing I{vs}nformation Requires Update"
    found = codes(mail(text="Update your billing information" + LINK, headers={"From": sender, "Subject": subject}))
    assert {"PHISH_BRAND_DISPLAY_NAME", "PHISH_CREDENTIAL_WORDING", "HTML_ZERO_WIDTH"} <= found
    emoji = "Thanks \u2764\ufe0f see you \U0001f3f4\U000e0067\U000e0062\U000e007f"  # a heart, a flag
    assert "HTML_ZERO_WIDTH" not in codes(mail(text=emoji))
