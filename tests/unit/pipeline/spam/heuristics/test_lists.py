"""Mailing-list posts: recognised, and their mechanics (From rewriting, Reply-To, broken DKIM) are not spoofing."""

from __future__ import annotations

from mailwarden.pipeline.facts import ScanFacts
from mailwarden.pipeline.spam.heuristics import Heuristics
from tests.unit.pipeline.spam.heuristics.helpers import LIST_POST, codes, mail

DMARC_FAIL = ScanFacts(auth={"dmarc": "fail", "from_domain": "example.net"})
ARC_SEAL = "i=1; a=rsa-sha256; t=1700000000; cv=none; d=lists.example.org; s=arc; b=abc"


def test_a_list_post_is_recognised_and_scores_nothing() -> None:
    post = mail(text="Patch looks good to me.", headers=LIST_POST)
    found = dict(Heuristics().symbols(post))
    assert found["LIST"] == "dev.lists.example.org"
    assert "LIST" not in {f.code for f in Heuristics().evaluate(post)}  # weight 0: information for scoring


def test_list_id_alone_is_a_newsletter_not_a_list() -> None:
    newsletter = mail(headers={"List-Id": "mc list <mc.list-id.mcsv.net>", "List-Unsubscribe": "<https://x.example/u>"})
    assert "LIST" not in codes(newsletter)
    sealed = mail(headers={"List-Id": "<dev.lists.example.org>", "ARC-Seal": ARC_SEAL})
    assert "LIST" in codes(sealed)
    sealed_by_other = mail(
        headers={"List-Id": "<dev.lists.example.org>", "ARC-Seal": ARC_SEAL.replace("example.org", "example.com")}
    )
    assert "LIST" not in codes(sealed_by_other)


def test_reply_to_the_list_is_not_a_diverted_reply() -> None:
    to_list = {"From": "Bob <bob@example.net>", "Reply-To": "dev@lists.example.org"}
    assert "REPLYTO_DIFF_DOMAIN" not in codes(mail(headers={**LIST_POST, **to_list}))
    assert "REPLYTO_DIFF_DOMAIN" in codes(mail(headers=to_list))  # the same without the list's headers


def test_from_rewritten_by_the_list_is_not_spoofing() -> None:
    """DMARC mitigation: From is the list's address, the poster's in the name and in Reply-To."""
    munged = {
        **LIST_POST,
        "From": "\"'bob@gmail.com' via Dev\" <dev@lists.example.org>",
        "Reply-To": "bob@gmail.com",
    }
    found = codes(mail(headers=munged))
    assert not {"PHISH_DISPLAY_NAME_ADDRESS", "PHISH_REPLYTO_FREEMAIL", "REPLYTO_DIFF_DOMAIN"} & found
    # the same headers without the list: an address in the name, replies going elsewhere
    alone = codes(mail(headers={k: v for k, v in munged.items() if k not in LIST_POST}))
    assert {"PHISH_DISPLAY_NAME_ADDRESS", "REPLYTO_DIFF_DOMAIN"} <= alone


def test_brand_in_a_rewritten_from_is_judged_against_the_poster() -> None:
    poster = {**LIST_POST, "From": "PayPal Support via Dev <dev@lists.example.org>"}
    assert "PHISH_BRAND_DISPLAY_NAME" not in codes(mail(headers={**poster, "Reply-To": "help@paypal.com"}))
    assert "PHISH_BRAND_DISPLAY_NAME" in codes(mail(headers={**poster, "Reply-To": "help@example.net"}))


def test_dmarc_failure_of_a_relayed_post_is_the_lists_doing() -> None:
    post = mail(text="Patch looks good to me.", headers=LIST_POST)
    assert "PHISH_DMARC_FAIL" not in codes(post, DMARC_FAIL)
    assert "PHISH_DMARC_FAIL" in codes(mail(), DMARC_FAIL)
    # the list's own address failing DMARC is no list mechanics
    own = mail(headers={**LIST_POST, "From": "Dev <dev@lists.example.org>"})
    assert "PHISH_DMARC_FAIL" in codes(own, DMARC_FAIL)
