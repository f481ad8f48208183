"""The audit log shows a policy change whole: every changed field down to the rule and list entry, with its
full before and after, however large the change (`mailwarden policy import` of a big policy)."""

from __future__ import annotations

import html
from pathlib import Path

import yaml
from typer.testing import CliRunner

from mailwarden.cli import app
from tests.unit.console.test_console import Setup, setup, sign_in

__all__ = ["setup"]  # the fixture, used by name

SENDERS = [f"offers{n:03d}@spam{n:03d}.example" for n in range(80)]
RULE = {
    "name": "Wire fraud",
    "conditions": {"subject_contains": ["urgent wire transfer", "change of bank details", "今すぐ振込"]},
    "actions": {"quarantine": True, "incident_report_to": ["secops@corp.example"]},
}


def import_policy(tmp_path: Path, policy: dict[str, object]) -> None:
    document = {"name": "corp", "domains": [{"name": "corp.example"}], "policy": policy}
    (tmp_path / "corp.yaml").write_text(yaml.safe_dump(document, allow_unicode=True))
    result = CliRunner().invoke(app, ["policy", "import", str(tmp_path / "corp.yaml"), "-c", str(tmp_path / "mw.toml")])
    assert result.exit_code == 0, result.output


def test_a_large_policy_change_is_shown_whole_field_by_field(setup: Setup, tmp_path: Path) -> None:
    import_policy(tmp_path, {"lists": {"blocked_senders": SENDERS[:40]}})
    import_policy(tmp_path, {"lists": {"blocked_senders": SENDERS[1:]}, "rules": [RULE]})
    page = html.unescape(sign_in(setup.client(), "admin").get("/audit").text)
    newest = page.split("<tbody>", 1)[1].split("</tr>", 1)[0]
    for sender in SENDERS[40:]:  # every one added, the last one too
        assert sender in newest
    assert SENDERS[0] in newest  # the one removed
    assert SENDERS[20] not in newest  # unchanged entries are not repeated
    assert "policy.rules[Wire fraud]" in newest
    assert "今すぐ振込" in newest and "secops@corp.example" in newest
    assert "…" not in newest
    stored = setup.rt.audit.newest(limit=1)[0]  # what the API's /audit returns: the whole documents
    assert stored["after"]["policy"]["lists"]["blocked_senders"] == SENDERS[1:]
    assert stored["before"]["policy"]["lists"]["blocked_senders"] == SENDERS[:40]
