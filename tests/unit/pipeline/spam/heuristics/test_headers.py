from __future__ import annotations

from tests.unit.pipeline.spam.heuristics.helpers import DATE, RECEIVED, codes, mail


def test_plain_personal_mail_fires_no_header_symbol() -> None:
    assert not {c for c in codes(mail()) if not c.startswith("BULK_")}


def test_missing_and_malformed_date() -> None:
    assert "DATE_MISSING" in codes(mail(headers={"Date": None}))  # type: ignore[dict-item]
    assert "DATE_MALFORMED" in codes(mail(headers={"Date": "yesterday at noon"}))
    assert not {"DATE_MISSING", "DATE_MALFORMED"} & codes(mail())


def test_a_date_in_utc_with_an_unknown_local_zone_is_well_formed() -> None:
    # RFC 5322 §3.3: "-0000" is UTC with the local zone unknown; §4.3: unknown zone names mean the same
    for value in ("Mon, 02 Mar 2026 10:00:00 -0000", "Mon, 02 Mar 2026 10:00:00 -0000 (UTC)", "2 Mar 2026 10:00 XYZ"):
        assert not {"DATE_MALFORMED", "DATE_IN_FUTURE", "DATE_IN_PAST"} & codes(mail(headers={"Date": value})), value


def test_date_judged_against_the_newest_received_not_today() -> None:
    future = mail(headers={"Date": "Sat, 07 Mar 2026 10:00:00 +0000"})
    past = mail(headers={"Date": "Sun, 01 Feb 2026 10:00:00 +0000"})
    # a 2002 message delivered in 2002 is fine, however long ago that is
    old = mail(headers={"Date": "Thu, 22 Aug 2002 13:17:22 +0000",
                        "Received": [RECEIVED.format(date="Thu, 22 Aug 2002 13:18:01 +0000")]})  # fmt: skip
    assert "DATE_IN_FUTURE" in codes(future)
    assert "DATE_IN_PAST" in codes(past)
    assert not {"DATE_IN_FUTURE", "DATE_IN_PAST"} & codes(old)


def test_message_id_shapes() -> None:
    assert "MID_MISSING" in codes(mail(headers={"Message-ID": None}))  # type: ignore[dict-item]
    assert "MID_MALFORMED" in codes(mail(headers={"Message-ID": "no-angle-brackets"}))
    assert "MID_BARE_IP_OR_LOCAL" in codes(mail(headers={"Message-ID": "<1234@localhost>"}))
    assert not {"MID_MISSING", "MID_MALFORMED", "MID_BARE_IP_OR_LOCAL"} & codes(mail())


def test_received_timestamps_out_of_order() -> None:
    chain = [RECEIVED.format(date=DATE), RECEIVED.format(date="Mon, 02 Mar 2026 14:00:00 +0000")]
    ordered = [RECEIVED.format(date=DATE), RECEIVED.format(date="Mon, 02 Mar 2026 09:59:00 +0000")]
    assert "RCVD_TIME_DISORDER" in codes(mail(headers={"Received": chain}))
    assert "RCVD_TIME_DISORDER" not in codes(mail(headers={"Received": ordered}))


def test_received_from_an_impossible_address() -> None:
    bogus = "from relay (relay [300.1.2.3]) by mx.example.com with SMTP; " + DATE
    multicast = "from relay (relay [224.0.0.9]) by mx.example.com with SMTP; " + DATE
    assert "RCVD_BOGUS_IP" in codes(mail(headers={"Received": [RECEIVED.format(date=DATE), bogus]}))
    assert "RCVD_BOGUS_IP" in codes(mail(headers={"Received": [multicast]}))
    loopback = "from localhost (localhost [::1]) by mail.example.net with SMTP; " + DATE
    assert "RCVD_BOGUS_IP" not in codes(mail(headers={"Received": [RECEIVED.format(date=DATE), loopback]}))


def test_reply_to_elsewhere_and_to_freemail() -> None:
    assert "REPLYTO_DIFF_DOMAIN" in codes(mail(headers={"Reply-To": "sales@example.org"}))
    assert "PHISH_REPLYTO_FREEMAIL" in codes(mail(headers={"Reply-To": "payroll.dept@gmail.com"}))
    same = codes(mail(headers={"Reply-To": "alice@lists.example.net"}))
    assert not {"REPLYTO_DIFF_DOMAIN", "PHISH_REPLYTO_FREEMAIL"} & same


def test_return_path_mismatch() -> None:
    assert "RETURNPATH_MISMATCH" in codes(mail(headers={"Return-Path": "<bounce@example.org>"}))
    assert "RETURNPATH_MISMATCH" not in codes(mail(headers={"Return-Path": "<alice@example.net>"}))


def test_display_name_showing_another_address() -> None:
    spoof = mail(headers={"From": '"ceo@example.com" <random123@example.org>'})
    honest = mail(headers={"From": '"alice@example.net" <alice@example.net>'})
    assert "PHISH_DISPLAY_NAME_ADDRESS" in codes(spoof)
    assert "PHISH_DISPLAY_NAME_ADDRESS" not in codes(honest)


def test_undisclosed_and_many_recipients() -> None:
    assert "RCPT_UNDISCLOSED" in codes(mail(headers={"To": "undisclosed-recipients:;"}))
    many = ", ".join(f"user{i}@example.com" for i in range(20))
    assert "RCPT_MANY" in codes(mail(headers={"To": many}))
    assert not {"RCPT_UNDISCLOSED", "RCPT_MANY"} & codes(mail())


def test_received_addresses_that_cannot_send_in_every_notation() -> None:
    def hop(address: str) -> str:
        return f"from relay (relay [{address}]) by mx.example.com with SMTP; " + DATE

    for address in ("0.0.0.0", "240.1.2.3", "IPv6:ff02::1", "IPv6:::", "IPv6:::ffff:224.0.0.1", "IPv6:::ffff:e000:1"):
        assert "RCVD_BOGUS_IP" in codes(mail(headers={"Received": [hop(address)]})), address
    for address in ("192.0.2.7", "IPv6:2001:db8::25", "IPv6:::1", "10.233.255.227"):
        assert "RCVD_BOGUS_IP" not in codes(mail(headers={"Received": [hop(address)]})), address
