"""BCC copies: the original recipient encoded in our RCPT TO address, and the To/Cc fallback."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwarden.errors import ConfigError
from mailwarden.ingest.journal import (
    EnvelopeConfidence,
    JournalFormat,
    JournalRecipient,
)
from mailwarden.model.direction import Direction
from tests.unit.ingest.journal.helpers import (
    fixture,
    run,
)

# ---- BCC copies ----------------------------------------------------------------------------------


def test_bcc_copy_with_encoded_recipients() -> None:
    env = run(
        fixture("bcc_inbound.eml"),
        smtp_mail_from="partner@example.org",
        smtp_rcpt_to=[
            "journal+in.alice=example.com@journal.example.net",
            "<journal+in.bob=example.com@journal.example.net>",
        ],
    )

    assert env.source_format is JournalFormat.BCC
    assert env.sender == "partner@example.org"
    assert env.recipients == (
        JournalRecipient("alice@example.com", "envelope"),
        JournalRecipient("bob@example.com", "envelope"),
    )
    assert env.envelope_confidence is EnvelopeConfidence.HIGH
    assert env.direction_hint is Direction.INBOUND
    assert env.direction_evidence == ("bcc_encoding:in",)
    assert env.original == fixture("bcc_inbound.eml")
    assert env.original_message_id == env.journal_msg_id == "<c2@example.org>"


def test_bcc_copy_outbound_encoding() -> None:
    env = run(
        fixture("bcc_inbound.eml"),
        smtp_mail_from="alice@example.com",
        smtp_rcpt_to=["journal+out.partner=example.org@journal.example.net"],
    )

    assert env.recipients == (JournalRecipient("partner@example.org", "envelope"),)
    assert env.direction_hint is Direction.OUTBOUND


def test_bcc_copy_without_encoding_uses_header_recipients() -> None:
    env = run(
        fixture("bcc_inbound.eml"),
        smtp_mail_from="partner@example.org",
        smtp_rcpt_to=["journal@journal.example.net"],
    )

    assert env.recipients == (JournalRecipient("alice@example.com", "header"),)
    assert env.envelope_confidence is EnvelopeConfidence.LOW
    assert env.direction_hint is None
    assert env.direction_evidence == ()


@pytest.mark.parametrize(
    ("rcpts", "originated", "spoof"),
    [
        (["journal+in.bob=example.com@journal.example.net"], False, True),  # came in from the internet
        (["journal@journal.example.net"], False, False),  # nothing says who sent it
        (["journal+out.bob=example.com@journal.example.net"], True, False),  # the submission door's map
        (["journal+out.bob=example.com@j.example.net", "journal+in.carol=example.com@j.example.net"], False, True),
    ],
)
def test_a_bcc_copy_from_an_own_domain_is_originated_only_by_the_out_encoding(
    rcpts: list[str], originated: bool, spoof: bool
) -> None:
    copy = fixture("bcc_inbound.eml").replace(b"partner@example.org", b"ceo@example.com")

    env = run(copy, smtp_mail_from="ceo@example.com", smtp_rcpt_to=rcpts)

    assert env.sender == "ceo@example.com"
    assert (env.originated, env.spoof_of_own_domain) == (originated, spoof)
    assert ("spoof_of_own_domain" in env.direction_evidence) is spoof


def postfix_encode(address: str, direction: str = "in") -> str:
    """What the documented Postfix map produces: /^(.+)@([^@]+)$/ journal+in.${1}=${2}@journal.example.net."""
    local, _, domain = address.rpartition("@")
    return f"journal+{direction}.{local}={domain}@journal.example.net"


@given(
    local=st.text(alphabet="abcxyz019.+=-_", min_size=1, max_size=20),
    domain=st.from_regex(r"[a-z0-9]{1,8}(\.[a-z0-9]{1,8}){0,2}\.(com|org|net)", fullmatch=True),
    direction=st.sampled_from(["in", "out"]),
)
def test_bcc_encoding_round_trips_any_local_part(local: str, domain: str, direction: str) -> None:
    address = f"{local}@{domain}"

    env = run(
        fixture("bcc_inbound.eml"), smtp_mail_from="x@example.org", smtp_rcpt_to=[postfix_encode(address, direction)]
    )

    assert env.recipients == (JournalRecipient(address, "envelope"),)
    assert env.direction_hint is (Direction.INBOUND if direction == "in" else Direction.OUTBOUND)


def test_bcc_encoding_with_a_tenant_tag_and_tricky_local_parts() -> None:
    rcpts = [
        "journal+tenant1+IN.bob+in.x=y=example.com@journal.example.net",
        '"journal+in.a..b=example.com"@j.example.net',
    ]

    env = run(fixture("bcc_inbound.eml"), smtp_mail_from="x@example.org", smtp_rcpt_to=rcpts)

    assert [r.address for r in env.recipients] == ["bob+in.x=y@example.com", "a..b@example.com"]


def test_custom_journal_address_pattern() -> None:
    pattern = r"archive-(?P<dir>in|out)--(?P<local>.+)--at--(?P<domain>[^@]+)@archive\.example\.net"

    env = run(
        fixture("bcc_inbound.eml"),
        smtp_mail_from="partner@example.org",
        smtp_rcpt_to=["archive-in--alice--at--example.com@archive.example.net"],
        journal_address_pattern=pattern,
    )

    assert env.recipients == (JournalRecipient("alice@example.com", "envelope"),)


@pytest.mark.parametrize("pattern", [r"(?P<dir>in|out", r"journal\+(?P<dir>in|out)\.(.+)@"])
def test_bad_journal_address_pattern_is_a_config_error(pattern: str) -> None:
    with pytest.raises(ConfigError, match="journal_address_pattern"):
        run(fixture("bcc_inbound.eml"), smtp_mail_from="a@example.org", journal_address_pattern=pattern)
