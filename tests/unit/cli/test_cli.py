"""The command line as an administrator uses it, on the embedded store in a temporary directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mailwarden.cli import app
from mailwarden.ids import new_id
from mailwarden.ingest.config import SmtpListenerConfig
from mailwarden.model import Action, Category, Direction, Disposition, Mode, Verdict
from mailwarden.model.provider import Provider, ProviderCategory, ProviderVerdict
from mailwarden.model.trace import MessageRecord, RecipientRecord
from mailwarden.service.config import load_config
from mailwarden.service.runtime import Runtime
from tests.dnsserver import DnsServer
from tests.factories import build_message
from tests.unit.pipeline.spam.documents import mail_with, pdf, qr_png

runner = CliRunner()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dns_server: DnsServer) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILWARDEN_CONFIG", raising=False)
    # every look-up goes to the loopback DNS server, in this process and in the ones `cli` starts
    monkeypatch.setenv("MAILWARDEN_DNS__NAMESERVERS", '["127.0.0.1"]')
    monkeypatch.setenv("MAILWARDEN_DNS__PORT", str(dns_server.port))
    result = runner.invoke(app, ["init", "--organisation", "acme", "--domain", "example.com"])
    assert result.exit_code == 0, result.output
    return tmp_path


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILWARDEN_") or k.startswith("MAILWARDEN_DNS")}
    return subprocess.run(
        [sys.executable, "-m", "mailwarden", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_init_writes_a_commented_config_and_a_database(workdir: Path) -> None:
    config = (workdir / "mailwarden.toml").read_text()
    assert 'organisation = "acme"' in config
    assert "# Empty: the embedded SQLite database" in config
    assert (workdir / "var" / "mailwarden.sqlite3").exists()
    assert (workdir / "var" / "spool").is_dir()
    result = runner.invoke(app, ["org", "list"])
    assert "acme" in result.output and "example.com" in result.output


def test_init_takes_journal_reports_from_loopback_only_and_shows_the_provider_ranges(workdir: Path) -> None:
    config = load_config(workdir / "mailwarden.toml", environ={})
    [journal] = [listener for listener in config.smtp.listeners if listener.role == "journal"]
    assert [str(network) for network in journal.allowed_networks] == ["127.0.0.0/8", "::1/128"]
    assert not journal.allow_any_source and not journal.auth_users and journal.tls_client_ca is None
    text = (workdir / "mailwarden.toml").read_text()
    assert "endpoints.office.com" in text and "_spf.google.com" in text and "They change" in text
    # the commented example, uncommented, is a valid rule holding both providers' ranges
    start = text.index("# allowed_networks = [")
    example = "\n".join(line.removeprefix("#").strip() for line in text[start:].split("# ]", 1)[0].splitlines())
    networks = tomllib.loads(example + "]")["allowed_networks"]
    assert {"40.92.0.0/15", "40.107.0.0/16", "52.100.0.0/14", "104.47.0.0/17"} <= set(networks)  # Microsoft 365
    assert {"35.190.247.0/24", "74.125.0.0/16", "209.85.128.0/17", "216.239.32.0/19"} <= set(networks)  # Google
    SmtpListenerConfig.model_validate({**journal.model_dump(), "allowed_networks": networks})


def test_scan_reports_each_file_and_goes_on_after_a_bad_one(workdir: Path) -> None:
    mail = workdir / "mail"
    mail.mkdir()
    (mail / "a.eml").write_bytes(build_message(subject="Quarterly numbers"))
    (mail / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    (mail / "c.eml").write_bytes(build_message(subject="Second one", sender="carol@example.com", to="x@example.org"))
    result = cli("scan", "mail", cwd=workdir)
    assert result.returncode == 1
    assert "b.png: not an email message" in result.stderr
    assert "Quarterly numbers" in result.stdout and "Second one" in result.stdout
    assert "2 messages scanned" in result.stdout


def test_scan_json_lines_carry_the_verdict_and_direction(workdir: Path) -> None:
    (workdir / "out.eml").write_bytes(build_message(sender="alice@example.com", to="partner@example.org"))
    result = runner.invoke(app, ["scan", "--json", "out.eml"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.output.strip().splitlines()[0])
    assert row["direction"] == "outbound"
    assert row["category"] == "clean"
    assert row["disposition"]["action"] == "deliver"


def test_scan_json_shows_what_a_qr_code_and_a_pdf_say(workdir: Path) -> None:
    qr = mail_with(("scan.png", "image/png", qr_png("https://bit.ly/3xYzAbc")), text="Scan to re-validate MFA.")
    lure = pdf(["Your mailbox is full.", "Verify your account."], link="https://mail-check.example.top/login")
    (workdir / "qr.eml").write_bytes(qr)
    (workdir / "pdf.eml").write_bytes(mail_with(("notice.pdf", "application/pdf", lure), text=""))
    result = runner.invoke(app, ["scan", "--json", "qr.eml", "pdf.eml"])
    assert result.exit_code == 0, result.output
    rows = {}
    for line in result.output.strip().splitlines():
        row = json.loads(line)
        rows[row["file"].rsplit("/", 1)[-1]] = {
            f["code"]: f["detail"] for stage in row["stages"] for f in stage["findings"]
        } | {"category": row["category"]}
    assert rows["qr.eml"]["category"] == "phish"
    assert rows["qr.eml"]["QR_URL"] == "bit.ly"
    assert rows["qr.eml"]["PHISH_QR_SUSPICIOUS_URL"] == "PHISH_URL_SHORTENER"
    assert rows["pdf.eml"]["PHISH_CREDENTIAL_WORDING"] == "mailbox is full"
    assert rows["pdf.eml"]["PHISH_URL_SUSPICIOUS_TLD"] == "mail-check.example.top"


def test_scan_record_then_trace_finds_the_message_and_its_timeline(workdir: Path) -> None:
    (workdir / "in.eml").write_bytes(build_message(subject="Invoice 4471 overdue", to="ap@example.com"))
    assert runner.invoke(app, ["scan", "--record", "in.eml"]).exit_code == 0
    result = runner.invoke(app, ["trace", "--subject", "invoice overdue", "--json"])
    rows = [json.loads(line) for line in result.output.splitlines() if line.strip()]
    assert [r["subject"] for r in rows] == ["Invoice 4471 overdue"]
    assert rows[0]["recipients"] == ["ap@example.com"]
    detail = runner.invoke(app, ["trace", "--id", rows[0]["id"], "--json"])
    events = [e["type"] for e in json.loads(detail.output)["events"]]
    assert events == ["receive", "scan", "record"]
    assert runner.invoke(app, ["trace", "--subject", "nothing like it", "--json"]).output.strip() == ""


def test_subjects_with_square_brackets_are_shown_as_written(workdir: Path) -> None:
    """A list tag is no style tag, and a subject that reads as a closing one does not end the command."""
    (workdir / "tag.eml").write_bytes(build_message(subject="[users] Re: build broken", to="ap@example.com"))
    (workdir / "hostile.eml").write_bytes(build_message(subject="[/] [bold]x[/bold]", to="ap@example.com"))
    result = runner.invoke(app, ["scan", "--record", "tag.eml", "hostile.eml"])
    assert result.exit_code == 0, result.output
    assert "[users] Re: build broken" in result.output and "[/] [bold]x[/bold]" in result.output
    listing = runner.invoke(app, ["trace"], terminal_width=300)
    assert listing.exit_code == 0, listing.output
    assert "[users] Re: build broken" in listing.output and "[/] [bold]x[/bold]" in listing.output
    rows = [json.loads(line) for line in runner.invoke(app, ["trace", "--json"]).output.splitlines() if line]
    for row in rows:
        detail = runner.invoke(app, ["trace", "--id", row["id"]], terminal_width=300)
        assert detail.exit_code == 0 and row["subject"] in detail.output


def test_policy_round_trip_and_a_bad_file_changes_nothing(workdir: Path) -> None:
    exported = cli("policy", "export", cwd=workdir)
    assert exported.returncode == 0
    assert "bcl_threshold: 7" in exported.stdout
    good = exported.stdout.replace("bcl_threshold: 7", "bcl_threshold: 5")
    (workdir / "good.yaml").write_text(good)
    assert cli("policy", "import", "good.yaml", cwd=workdir).returncode == 0
    bad = good.replace("bcl_threshold: 5", "bcl_threshold: 12").replace("monitor_only: true", "monitor_only: false")
    (workdir / "bad.yaml").write_text(bad)
    result = cli("policy", "import", "bad.yaml", cwd=workdir)
    assert result.returncode == 65
    assert "policy.spam.bcl_threshold" in result.stderr
    after = cli("policy", "export", cwd=workdir).stdout
    assert "bcl_threshold: 5" in after and "monitor_only: true" in after  # nothing half-applied


def test_broken_yaml_is_a_clear_error(workdir: Path) -> None:
    (workdir / "broken.yaml").write_text("name: [unclosed\n")
    result = cli("policy", "check", "broken.yaml", cwd=workdir)
    assert result.returncode == 65
    assert "broken.yaml: not valid YAML" in result.stderr


def test_switching_to_enforce_mode(workdir: Path) -> None:
    assert runner.invoke(app, ["org", "mode", "enforce"]).exit_code == 0
    exported = runner.invoke(app, ["policy", "export"]).output
    assert "monitor_only: false" in exported


def test_bad_config_stops_with_the_field_named(workdir: Path) -> None:
    (workdir / "mailwarden.toml").write_text("[pipeline]\ninbound = ['no_such_stage']\n")
    result = cli("pipeline", "show", cwd=workdir)
    assert result.returncode == 78
    assert "unknown stage 'no_such_stage'" in result.stderr


def test_malware_rule_update_refuses_a_broken_pack_and_installs_a_good_one(workdir: Path) -> None:
    pack = workdir / "pack"
    pack.mkdir()
    (pack / "VERSION").write_text("2026.11.22\n")
    (pack / "local.yar").write_text('rule Local_Test { strings: $a = "mailwarden-local-test" condition: $a }\n')
    result = runner.invoke(app, ["malware", "update-rules", str(pack)])
    assert result.exit_code == 0, result.output
    assert "rule pack 2026.11.22 installed: 1 rules" in result.output
    (pack / "broken.yar").write_text("rule Broken { condition: nonsense_identifier }\n")
    broken = cli("malware", "update-rules", "pack", cwd=workdir)
    assert broken.returncode != 0
    assert "broken.yar" in broken.stderr


def test_hash_password_prints_a_hash_the_listener_accepts() -> None:
    from mailwarden.ingest.access import verify_password

    result = runner.invoke(app, ["hash-password"], input="s3cret pass\ns3cret pass\n")
    assert result.exit_code == 0, result.output
    hashed = result.output.strip().splitlines()[-1]
    assert hashed.startswith(("scrypt$", "pbkdf2_sha256$"))
    assert "s3cret" not in hashed
    assert verify_password(b"s3cret pass", hashed)
    assert not verify_password(b"wrong", hashed)


def test_importing_an_ldap_domain_warns_when_its_secret_is_not_configured(workdir: Path) -> None:
    document = yaml.safe_load(cli("policy", "export", cwd=workdir).stdout)
    document["domains"] = [
        {
            "name": "example.com",
            "mode": "gateway",
            "next_hop": "mx.internal.example.com",
            "recipient_verification": {
                "mode": "ldap",
                "ldap": {
                    "url": "ldaps://dc1.example.com",
                    "base": "dc=example,dc=com",
                    "bind_dn": "cn=mailwarden,dc=example,dc=com",
                    "bind_password_secret": "acme_ldap",
                },
            },
        }
    ]
    (workdir / "ldap.yaml").write_text(yaml.safe_dump(document))
    result = cli("policy", "import", "ldap.yaml", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "domain example.com: secret 'acme_ldap' is not in [secrets]" in result.stderr
    with (workdir / "mailwarden.toml").open("a") as config:
        config.write('\n[secrets]\nacme_ldap = "pw"\n')
    assert "secret" not in cli("policy", "import", "ldap.yaml", cwd=workdir).stderr


def test_trace_filters_on_what_the_provider_missed_and_shows_its_verdict(workdir: Path) -> None:
    rt = Runtime(load_config())
    try:
        for subject, category in (("Parcel label", Category.MALWARE), ("Lunch", Category.CLEAN)):
            at = datetime.now(UTC)
            rt.history.record(
                MessageRecord(
                    id=new_id(at), organisation="acme", received_at=at, direction=Direction.INBOUND,
                    mode=Mode.MONITOR, source="journal", sender="x@courier.example", from_address=None,
                    subject=subject, internet_message_id=None, size=1, sha256="ab" * 32, client_ip=None,
                    verdict=Verdict(
                        direction=Direction.INBOUND, category=category, disposition=Disposition(Action.DELIVER)
                    ),
                    applied=False, recipients=[RecipientRecord("ap@example.com")],
                    provider=ProviderVerdict(Provider.GOOGLE, ProviderCategory.CLEAN, fields={"x_gm_spam": "0"}),
                )
            )  # fmt: skip
    finally:
        rt.close()

    result = runner.invoke(app, ["trace", "--agreement", "provider_missed", "--json"])
    rows = [json.loads(line) for line in result.output.splitlines() if line.strip()]
    assert [r["subject"] for r in rows] == ["Parcel label"]
    assert rows[0]["provider"] == {
        "provider": "google", "category": "clean", "scl": None, "bcl": None, "fields": {"x_gm_spam": "0"}
    }  # fmt: skip
    assert len(runner.invoke(app, ["trace", "--provider-verdict", "clean", "--json"]).output.splitlines()) == 2
    detail = runner.invoke(app, ["trace", "--id", rows[0]["id"]])
    assert "provider google: clean  (provider missed)  X-Gm-Spam:0" in detail.output
