"""Shared factories: messages and envelopes built in code, so tests say what they are about."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mailwarden.model import Envelope, Message
from tests.factories import build_message


@pytest.fixture
def make_message() -> Callable[..., Message]:
    def factory(**kwargs: object) -> Message:
        return Message(build_message(**kwargs))  # type: ignore[arg-type]

    return factory


@pytest.fixture
def envelope() -> Envelope:
    return Envelope(mail_from="alice@example.org", rcpt_to=("bob@example.com",), client_ip="198.51.100.7")
