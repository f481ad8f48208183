"""The Received chain parser: each MTA's format, the first external hop, and no exception ever."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailwarden.mail.received import (
    ReceivedHop,
    first_external_hop,
    is_internal,
    parse_chain,
    parse_ip,
    parse_received,
)

POSTFIX = (
    "from mail.partner.example (mail.partner.example [198.51.100.25])\r\n"
    "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\r\n"
    "\t key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256)\r\n"
    "\t(No client certificate requested)\r\n"
    "\tby mx1.example.com (Postfix) with ESMTPS id 4Xk2Lm0v9Hz1\r\n"
    "\tfor <alice@example.com>; Tue, 14 Oct 2025 11:00:00 +0000 (UTC)"
)
POSTFIX_UNKNOWN = (
    "from laptop.local (unknown [203.0.113.77])\r\n\tby mx1.example.com (Postfix) with ESMTP id 9F2A1;"
    " Tue, 14 Oct 2025 11:00:00 +0000"
)
SENDMAIL = (
    "from relay.partner.example (host-77.partner.example [198.51.100.77] (may be forged))\r\n"
    "\tby mx.example.com (8.17.1/8.17.1) with ESMTPS id 59EB00aQ012345\r\n"
    "\t(version=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384 bits=256 verify=NOT)\r\n"
    "\tfor <bob@example.com>; Tue, 14 Oct 2025 11:00:00 +0200"
)
EXCHANGE_EDGE = (
    "from mail.sender.example (203.0.113.5) by\r\n"
    " BN1PEPF00004681.mail.protection.outlook.com (10.167.243.86) with Microsoft SMTP\r\n"
    " Server (version=TLS1_3, cipher=TLS_AES_256_GCM_SHA384) id 15.20.8207.0 via\r\n"
    " Frontend Transport; Tue, 14 Oct 2025 09:15:02 +0000"
)
EXCHANGE_INTERNAL = (
    "from BN1PEPF00004681.namprd05.prod.outlook.com\r\n"
    " (2603:10b6:408:e5:cafe::4c) by BN9PR03CA0712.outlook.office365.com\r\n"
    " (2603:10b6:408:ef::27) with Microsoft SMTP Server (version=TLS1_3,\r\n"
    " cipher=TLS_AES_256_GCM_SHA384) id 15.20.8207.0 via Frontend Transport; Tue,\r\n"
    " 14 Oct 2025 09:15:02 +0000"
)
EXCHANGE_MAILBOX = (
    "from SA1PR05MB8345.namprd05.prod.outlook.com (::1) by\r\n"
    " SJ0PR05MB7772.namprd05.prod.outlook.com with HTTPS; Tue, 14 Oct 2025 09:15:03\r\n +0000"
)
GMAIL_EDGE = (
    "from mail-sor-f41.sender.example (mail-sor-f41.sender.example. [203.0.113.41])\r\n"
    "        by mx.google.com with SMTPS id a640c23a62f3a-7c1a7e8a4d5sor2361466b.11.2025.10.14.03.02.10\r\n"
    "        for <ap@example.com>\r\n"
    "        (Google Transport Security);\r\n"
    "        Tue, 14 Oct 2025 03:02:11 -0700 (PDT)"
)
GMAIL_INTERNAL = (
    "by 2002:a05:6a20:3c8e:b0:1f3:1b7e:9a0c with SMTP id ez14csp2417521pzb;\r\n"
    "        Tue, 14 Oct 2025 03:02:11 -0700 (PDT)"
)
GMAIL_SUBMISSION = (
    "from [192.168.1.20] ([203.0.113.200])\r\n"
    "        by smtp.gmail.com with ESMTPSA id 5b1f17b1804b1-4ec4bd7c6c2sm176355e9.5.2025.10.14.03.02.09\r\n"
    "        (version=TLS1_3 cipher=TLS_AES_128_GCM_SHA256 bits=128/128);\r\n"
    "        Tue, 14 Oct 2025 03:02:09 -0700 (PDT)"
)
EXIM_LITERAL = (
    "from [198.51.100.160] (port=40122 helo=[10.0.0.2])\r\n"
    " by cpanel.host.example with esmtpsa  (TLS1.3) tls TLS_AES_128_GCM_SHA256\r\n"
    " (Exim 4.98) (envelope-from <news@partner.example>)\r\n"
    " id 1tzhDp-0000000HHAc-0NWf; Tue, 14 Oct 2025 06:24:29 -0500"
)
EXIM_NAMED = (
    "from out-12.partner.example ([198.51.100.12]:51234 helo=smtp.partner.example)\r\n"
    "\tby mx.example.com with esmtps (TLS1.3) (Exim 4.97)\r\n"
    "\tid 1u0aaa-00000001234-3xyz; Tue, 14 Oct 2025 12:00:00 +0000"
)
IPV6_POSTFIX = (
    "from lists.partner.example (lists.partner.example [IPv6:2001:db8:3c03::b33b])\r\n"
    "\tby mx1.example.com (Postfix) with ESMTPS id ED96CAD0087\r\n"
    "\tfor <cake@example.com>; Fri,  6 Jun 2025 12:41:19 +0200"
)
QMAIL = (
    "from unknown (HELO mail.partner.example) (198.51.100.9)\r\n"
    "  by mx.example.com with SMTP; 14 Oct 2025 10:00:00 -0000"
)
QMAIL_LOCAL = "(qmail 24870 invoked from network); 14 Oct 2025 10:00:00 -0000"


@pytest.mark.parametrize(
    ("header", "ip", "helo", "rdns", "by"),
    [
        (POSTFIX, "198.51.100.25", "mail.partner.example", "mail.partner.example", "mx1.example.com"),
        (POSTFIX_UNKNOWN, "203.0.113.77", "laptop.local", None, "mx1.example.com"),
        (SENDMAIL, "198.51.100.77", "relay.partner.example", "host-77.partner.example", "mx.example.com"),
        (EXCHANGE_EDGE, "203.0.113.5", "mail.sender.example", None, "bn1pepf00004681.mail.protection.outlook.com"),
        (
            EXCHANGE_INTERNAL,
            "2603:10b6:408:e5:cafe::4c",
            "bn1pepf00004681.namprd05.prod.outlook.com",
            None,
            "bn9pr03ca0712.outlook.office365.com",
        ),
        (
            EXCHANGE_MAILBOX,
            "::1",
            "sa1pr05mb8345.namprd05.prod.outlook.com",
            None,
            "sj0pr05mb7772.namprd05.prod.outlook.com",
        ),
        (GMAIL_EDGE, "203.0.113.41", "mail-sor-f41.sender.example", "mail-sor-f41.sender.example", "mx.google.com"),
        (GMAIL_SUBMISSION, "203.0.113.200", "[192.168.1.20]", None, "smtp.gmail.com"),
        (EXIM_LITERAL, "198.51.100.160", "[198.51.100.160]", None, "cpanel.host.example"),
        (EXIM_NAMED, "198.51.100.12", "smtp.partner.example", "out-12.partner.example", "mx.example.com"),
        (IPV6_POSTFIX, "2001:db8:3c03::b33b", "lists.partner.example", "lists.partner.example", "mx1.example.com"),
        (QMAIL, "198.51.100.9", "mail.partner.example", None, "mx.example.com"),
    ],
    ids=[
        "postfix",
        "postfix-unknown",
        "sendmail-may-be-forged",
        "exchange-edge",
        "exchange-internal-ipv6",
        "exchange-mailbox-loopback",
        "gmail-edge",
        "gmail-submission-helo-literal",
        "exim-literal",
        "exim-named-with-port",
        "postfix-ipv6",
        "qmail",
    ],
)
def test_each_mta_format(header: str, ip: str, helo: str | None, rdns: str | None, by: str) -> None:
    hop = parse_received(header, 3)
    assert hop == ReceivedHop(3, helo=helo, rdns=rdns, ip=ip, by=by)


def test_headers_without_a_from_ip() -> None:
    assert parse_received(GMAIL_INTERNAL).ip is None
    assert parse_received(GMAIL_INTERNAL).by == "2002:a05:6a20:3c8e:b0:1f3:1b7e:9a0c"
    assert parse_received(QMAIL_LOCAL) == ReceivedHop(0)  # "from network" is inside a comment
    assert parse_received("from localhost by mx.example.com; Tue, 14 Oct 2025").ip is None
    assert parse_received("").ip is None


def test_helo_bracket_is_not_the_connecting_address() -> None:
    # Exim puts the HELO argument after `helo=`; only the address it connected from counts
    hop = parse_received("from [198.51.100.1] (helo=[203.0.113.9]) by mx.example.com")
    assert hop.ip == "198.51.100.1"


def test_ipv4_mapped_ipv6_is_ipv4() -> None:
    assert parse_received("from x (x [IPv6:::ffff:198.51.100.3]) by y").ip == "198.51.100.3"
    assert parse_ip("::ffff:198.51.100.3") == ipaddress.IPv4Address("198.51.100.3")
    assert parse_ip("fe80::1%eth0") == ipaddress.IPv6Address("fe80::1")
    assert parse_ip("not an ip") is None


def test_internal_addresses() -> None:
    for text in ("10.1.2.3", "172.20.0.1", "192.168.0.1", "127.0.0.1", "100.64.1.1", "::1", "fd00::1", "fe80::2"):
        assert is_internal(ipaddress.ip_address(text)), text
    for text in ("198.51.100.1", "203.0.113.5", "2001:db8::1", "8.8.8.8"):
        assert not is_internal(ipaddress.ip_address(text)), text


def _nothing_trusted(_: object) -> bool:
    return False


def test_first_external_hop_of_a_microsoft_365_chain() -> None:
    chain = parse_chain([EXCHANGE_MAILBOX, EXCHANGE_INTERNAL, EXCHANGE_EDGE, POSTFIX])
    hop = first_external_hop(
        chain,
        trusted_ip=_nothing_trusted,
        trusted_hostnames=(".prod.outlook.com", "outlook.office365.com", ".protection.outlook.com"),
    )
    assert hop is not None
    assert (hop.index, hop.ip) == (2, "203.0.113.5")


def test_first_external_hop_of_a_google_workspace_chain() -> None:
    chain = parse_chain([GMAIL_INTERNAL, GMAIL_EDGE, GMAIL_SUBMISSION])
    hop = first_external_hop(chain, trusted_ip=_nothing_trusted)
    assert hop is not None
    assert (hop.index, hop.ip) == (1, "203.0.113.41")


def test_trusted_ranges_are_passed_over() -> None:
    own = ipaddress.ip_network("198.51.100.0/24")
    chain = parse_chain([EXIM_NAMED, POSTFIX_UNKNOWN])
    hop = first_external_hop(chain, trusted_ip=lambda ip: ip in own)
    assert hop is not None
    assert (hop.index, hop.ip) == (1, "203.0.113.77")


def test_hostname_suffix_matches_whole_labels_only() -> None:
    chain = parse_chain(["from evilprotection.outlook.com.example (203.0.113.66) by edge.example.com"])
    hop = first_external_hop(chain, trusted_ip=_nothing_trusted, trusted_hostnames=("outlook.com",))
    assert hop is not None and hop.ip == "203.0.113.66"


def test_no_external_hop() -> None:
    chain = parse_chain([EXCHANGE_MAILBOX, GMAIL_INTERNAL, "from a (a [10.0.0.1]) by b"])
    assert first_external_hop(chain, trusted_ip=_nothing_trusted) is None
    assert first_external_hop((), trusted_ip=_nothing_trusted) is None


_RECEIVED_ALPHABET = st.sampled_from(
    [*"abcdef0123456789.:[]() ;=-_\t\r\n@<>%", "from ", "by ", "IPv6:", "helo=", "HELO ", "::ffff:", "127.0.0.1"]
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=600), st.lists(_RECEIVED_ALPHABET, max_size=200).map("".join)))
def test_parser_never_raises(header: str) -> None:
    hop = parse_received(header)
    if hop.ip is not None:
        assert parse_ip(hop.ip) is not None
    first_external_hop([hop], trusted_ip=_nothing_trusted, trusted_hostnames=("example.com",))


def test_hostile_sizes_are_bounded() -> None:
    header = "from x (" + "[1" * 50_000 + ") by y"
    assert parse_received(header).by is None  # cut at MAX_HEADER_CHARS, before `by`
