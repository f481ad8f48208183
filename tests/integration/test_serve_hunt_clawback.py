"""Retro-hunt to clawback end to end: `mailwarden serve` records a journal copy as clean (the provider
delivered it to two Dovecot mailboxes); a new YARA rule arrives; `mailwarden hunt rescan` finds it; one
command, `mailwarden clawback --hunt`, takes it out of both Inboxes. The rescan's changed verdict also
makes an automatic job, as the policy says for malware."""

from __future__ import annotations

import json
import smtplib
from pathlib import Path

import pytest

from mailwarden.model.trace import EventType
from tests.integration.harness import Mailwarden, eventually, free_port, organisation
from tests.integration.mailboxes import add_connector, imap_mailboxes
from tests.integration.test_serve_clawback import journal_copy

pytestmark = pytest.mark.integration

MARKER = b"RETRO-HUNT-CLAWBACK-7731"
RULES = 'rule Placeholder { strings: $a = "NOT-IN-ANY-MESSAGE-0000" condition: $a }\n'
NEW_RULE = 'rule WaveTwo { strings: $a = "RETRO-HUNT-CLAWBACK-7731" condition: $a }\n'


def test_a_hunt_finds_a_clean_message_and_one_command_claws_it_back(mw: Mailwarden, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yar"
    rules.write_text(RULES)
    with imap_mailboxes(2) as boxes:
        alice, bob = boxes.addresses
        mw.listeners = {"journal": free_port()}
        mw.extra_config = (
            f'[stages.malware.yara]\nrules = "{rules}"\n[pipeline]\ninbound = ["malware"]\n'
            "[clawback]\npoll_seconds = 0.5\n"
        )
        mw.write_config()
        mw.import_organisation(organisation(monitor_only=True, domains=[{"name": "example.com"}]))
        add_connector(mw, boxes, tmp_path)
        mw.start()
        raw, mid = journal_copy("Shared notes", [alice, bob], attachment=MARKER + b"\n", filename="notes.txt")
        boxes.put([alice, bob], mid)
        with smtplib.SMTP("127.0.0.1", mw.listeners["journal"], timeout=30) as client:
            client.sendmail("", [mw.journal_address], raw)
        [detail] = eventually(lambda: mw.messages(internet_message_id=mid), timeout=30)
        assert detail.summary.category.value == "clean"
        assert boxes.where(alice, mid) == ["inbox"]

        rules.write_text(RULES + NEW_RULE)
        result = mw.cli("hunt", "rescan", "--since", "1h", "--quiet")
        assert "1 changed" in result.stdout, result.stdout + result.stderr
        hunt_id = json.loads(mw.cli("hunt", "list", "--json").stdout.splitlines()[0])["id"]

        clawed = mw.cli("clawback", "--hunt", hunt_id, "--action", "trash", "--reason", "wave two", "--by", "ann")
        assert f"{alice}" in clawed.stdout and f"{bob}" in clawed.stdout, clawed.stdout
        assert boxes.where(alice, mid) == ["trash"] and boxes.where(bob, mid) == ["trash"]

        timeline = mw.messages(internet_message_id=mid)[0].events
        assert any(e.type is EventType.RESCAN and "WaveTwo" in e.detail for e in timeline)
        clawbacks = [e for e in timeline if e.type is EventType.CLAWBACK]
        assert {e.recipient for e in clawbacks} == {alice, bob}
        # the automatic policy saw the changed verdict too (malware: recoverable, the Trash on IMAP)
        eventually(
            lambda: [
                e for e in mw.messages(internet_message_id=mid)[0].events if "automatic: malware (rescan)" in e.detail
            ],
            timeout=20,
        )
        assert mw.stop() == 0
