"""The `[smtp]` configuration: listener rules refused at load, with the field named."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from mailwarden.ingest.config import SmtpConfig
from tests.unit.ingest.smtp.helpers import INBOUND, JOURNAL, SUBMISSION


@pytest.mark.parametrize(
    ("listener", "message"),
    [
        ({"name": "j", "role": "journal", "port": 25, "allow_any_source": True}, "needs journal_addresses"),
        ({**SUBMISSION, "auth_users": {"relay": "plaintext-password"}}, "not a scrypt"),
        ({"name": "o", "role": "outbound", "port": 25}, "needs allowed_networks, auth_users or tls_client_ca"),
        ({**INBOUND, "allowed_networks": ["10.0.0.0/8"]}, "apply to outbound and journal listeners"),
        ({**INBOUND, "role": "relay"}, "role"),
    ],
)
def test_bad_listener_config_is_refused(listener: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SmtpConfig.model_validate({"listeners": [listener]})


def test_duplicate_listener_names_are_refused() -> None:
    with pytest.raises(ValidationError, match="unique"):
        SmtpConfig.model_validate({"listeners": [JOURNAL, JOURNAL]})
