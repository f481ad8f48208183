"""`mailwarden policy replay`, `org preview` and `org domain-mode` as an administrator uses them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mailwarden.cli import app
from mailwarden.errors import NotFoundError, PolicyError
from mailwarden.model.policy import parse_organisation_document
from tests.unit.service.replay_helpers import QUARANTINE_INVOICES, REJECT_LOTTERY, document, mail, record, runtime

runner = CliRunner()


@pytest.fixture
async def recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILWARDEN_CONFIG", raising=False)
    rt = runtime(tmp_path)
    try:
        rt.policies.import_document(parse_organisation_document(document(QUARANTINE_INVOICES)))
        return await record(rt, tmp_path, [(mail("Invoice 9"), "alice@example.com"), (mail("Lunch"), "x")])
    finally:
        rt.close()


def test_policy_replay_prints_what_the_candidate_changes_and_saves_nothing(tmp_path: Path, recorded: list[str]) -> None:
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(yaml.safe_dump([REJECT_LOTTERY]))
    config = str(tmp_path / "mailwarden.toml")
    result = runner.invoke(app, ["policy", "replay", str(candidate), "--since", "7d", "--config", config])
    assert result.exit_code == 0, result.output
    assert "2 kept messages replayed" in result.output and "1 would change" in result.output
    assert "quarantine → deliver: 1" in result.output
    assert recorded[0] in result.output

    as_json = runner.invoke(app, ["policy", "replay", str(candidate), "--json", "--config", config])
    [change] = json.loads(as_json.stdout)["changes"]
    assert (change["message_id"], change["after"]["action"]) == (recorded[0], "deliver")

    candidate.write_text(yaml.safe_dump({"spam": {"bcl_threshold": 42}}))
    bad = runner.invoke(app, ["policy", "replay", str(candidate), "--config", config])
    # the command line's error edge turns it into one line and exit code 65 (EX_DATAERR)
    assert isinstance(bad.exception, PolicyError) and bad.exception.exit_code == 65
    assert "policy.spam.bcl_threshold" in str(bad.exception)
    export = runner.invoke(app, ["policy", "export", "--config", config])
    assert "Hold invoices" in export.output  # the saved policy is unchanged


def test_org_preview_and_domain_mode(tmp_path: Path, recorded: list[str]) -> None:
    config = str(tmp_path / "mailwarden.toml")
    shown = runner.invoke(app, ["org", "preview", "--days", "3", "--config", config])
    assert shown.exit_code == 0, shown.output
    assert "2 messages recorded in monitor mode" in shown.output and "rule 1" in shown.output
    as_json = json.loads(runner.invoke(app, ["org", "preview", "--json", "--config", config]).stdout)
    assert as_json["actions"]["quarantine"] == {"messages": 1, "by_category": {"rule": 1}, "newest": [recorded[0]]}

    unknown = runner.invoke(app, ["org", "preview", "--domain", "nope.example", "--config", config])
    assert isinstance(unknown.exception, NotFoundError)

    refused = runner.invoke(app, ["org", "domain-mode", "example.com", "gateway", "--config", config])
    assert isinstance(refused.exception, PolicyError) and "needs a next_hop" in str(refused.exception)
    switched = runner.invoke(
        app, ["org", "domain-mode", "example.com", "gateway", "--next-hop", "10.0.0.25", "--config", config]
    )
    assert switched.exit_code == 0, switched.output
    assert "'example.com' of organisation 'acme' is now in gateway mode" in switched.output
    listed = runner.invoke(app, ["org", "list", "--config", config]).output
    assert "gateway" in listed and "10.0.0.25" in listed
