from __future__ import annotations

from mailwarden.model import Message
from mailwarden.pipeline.spam.heuristics import Heuristics
from tests.unit.pipeline.spam.heuristics.helpers import LIST_POST, codes, mail

FOOTER = "\n--\ndev mailing list\nTo unsubscribe send a mail to dev-leave@lists.example.org"


def bcl(message: Message) -> int:
    score = sum(f.score for f in Heuristics().evaluate(message) if f.code.startswith("BULK_"))
    return min(9, round(score))


def marketing() -> Message:
    html = (
        '<p>Spring sale: 20% off everything.</p><img src="https://t.example.net/o.gif" width="1" height="1">'
        '<p><a href="https://news.example.net/unsub?u=1">Unsubscribe</a></p>'
    )
    return mail(
        text=None,
        html=html,
        headers={
            "From": "Shop <news@example.net>",
            "List-Unsubscribe": "<https://news.example.net/unsub?u=1>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "X-Campaign": "spring-2026",
            "Precedence": "bulk",
        },
    )


def test_personal_mail_is_not_bulk() -> None:
    assert not {c for c in codes(mail()) if c.startswith("BULK_")}
    assert bcl(mail()) == 0


def test_list_post_lands_low() -> None:
    post = mail(text="Patch looks good to me." + FOOTER, headers=LIST_POST)
    assert {"BULK_LIST_UNSUBSCRIBE", "BULK_PRECEDENCE", "BULK_UNSUBSCRIBE_FOOTER"} <= codes(post)
    assert 1 <= bcl(post) <= 4


def test_marketing_blast_lands_high() -> None:
    found = codes(marketing())
    assert {"BULK_ONE_CLICK", "BULK_MAILER", "BULK_TRACKING_PIXEL", "BULK_UNSUBSCRIBE_FOOTER"} <= found
    assert 6 <= bcl(marketing()) <= 9


def test_esp_recognised_by_its_received_hop() -> None:
    hop = "from mail.sendgrid.net (mail.sendgrid.net [192.0.2.5]) by mx.example.com; Mon, 02 Mar 2026 10:00:00 +0000"
    assert "BULK_MAILER" in codes(mail(headers={"Received": [hop]}))
    assert "BULK_MAILER" not in codes(mail())


def test_tracking_pixel_needs_a_remote_one_by_one_image() -> None:
    assert "BULK_TRACKING_PIXEL" not in codes(mail(html='<img src="https://cdn.example.net/logo.png" width="120">'))


def test_email_service_provider_named_as_the_hop_wrote_it() -> None:
    hop = "from o1.ptr.example (o1.ptr.SendGrid.NET [192.0.2.8]) by mx.example.com; Mon, 02 Mar 2026 10:00:00 +0000"
    found = dict(Heuristics().symbols(mail(headers={"Received": [hop]})))
    assert found["BULK_MAILER"] == "Received via SendGrid"
    assert "BULK_MAILER" not in codes(mail())


def test_phishing_sent_through_an_email_service_provider_counts_towards_spam() -> None:
    blast = {"X-SG-EID": "abc", "List-Unsubscribe": "<https://news.example.net/unsub>"}
    lure = "Unusual sign-in activity. Verify your account: https://portal.example.org/session"
    found = {f.code: f for f in Heuristics().evaluate(mail(text=lure, headers=blast))}
    assert found["SPAM_BULK_PHISH"].score > 0
    assert found["SPAM_BULK_PHISH"].detail == "BULK_MAILER with phish score 3"
    assert "SPAM_BULK_PHISH" not in codes(mail(text=lure))  # the lure alone
    assert "SPAM_BULK_PHISH" not in codes(mail(text="Spring sale: 20% off.", headers=blast))  # the blast alone
    assert "SPAM_BULK_PHISH" not in codes(mail(text=lure, headers=LIST_POST))  # a list is no ESP
