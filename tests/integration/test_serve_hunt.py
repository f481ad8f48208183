"""Retro-hunt end to end: `mailwarden serve` records a journal copy as clean and keeps it; a new YARA
rule arrives; `mailwarden hunt rescan` (its own process) finds the message changed and puts a RESCAN
event on its timeline; a search queued for the server is run by the server in the background."""

from __future__ import annotations

import json
import smtplib
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest

from mailwarden.model.trace import EventType
from mailwarden.service.hunt import new_hunt
from mailwarden.service.indicators import Indicators
from mailwarden.store.hunts import Hunt, HuntKind, HuntState, HuntStore
from tests.integration.harness import Mailwarden, eventually, free_port, organisation

pytestmark = pytest.mark.integration

MARKER = "RETRO-HUNT-MARKER-5501"
OLD_RULE = 'rule OldRule { strings: $a = "NOT-IN-ANY-MESSAGE-0000" condition: $a }\n'
NEW_RULE = f'rule NewRule {{ strings: $a = "{MARKER}" condition: $a }}\n'


def journal_copy(subject: str, attachment: bytes) -> bytes:
    msg = EmailMessage()
    msg["From"] = "partner@example.org"
    msg["To"] = "alice@example.com"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{subject.replace(' ', '-')}@example.org>"
    msg.set_content("Please see the notes.\nhttps://files.partner.example/notes\n")
    msg.add_attachment(attachment, maintype="text", subtype="plain", filename="notes.txt")
    return msg.as_bytes(policy=SMTP)


def start(mw: Mailwarden, rules: Path) -> None:
    rules.write_text(OLD_RULE)
    mw.listeners = {"journal": free_port()}
    mw.extra_config = f'[stages.malware.yara]\nrules = "{rules}"\n[pipeline]\ninbound = ["malware"]\n'
    mw.write_config()
    mw.import_organisation(organisation(monitor_only=True, domains=[{"name": "example.com"}]))
    mw.start()


def test_a_clean_message_found_by_a_new_rule_in_a_rescan_and_by_a_search_in_serve(
    mw: Mailwarden, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yar"
    start(mw, rules)
    with smtplib.SMTP("127.0.0.1", mw.listeners["journal"], timeout=30) as client:
        client.sendmail("partner@example.org", [mw.journal_address], journal_copy("notes", f"{MARKER}\n".encode()))
        client.sendmail("partner@example.org", [mw.journal_address], journal_copy("lunch", b"noodles\n"))
    recorded = eventually(lambda: {m.summary.subject: m for m in mw.messages()} if len(mw.messages()) == 2 else None)
    target = recorded["notes"].summary
    assert target.category.value == "clean"

    rules.write_text(OLD_RULE + NEW_RULE)  # today's rules: the next scanning process loads them
    result = mw.cli("hunt", "rescan", "--since", "1h", "--quiet")
    assert "2 of 2 kept messages, 1 changed" in result.stdout, result.stdout + result.stderr
    hunt_id = json.loads(mw.cli("hunt", "list", "--json").stdout.splitlines()[0])["id"]
    shown = json.loads(mw.cli("hunt", "show", hunt_id, "--json").stdout)
    assert [(r["message_id"], r["before"]["category"], r["after"]["category"]) for r in shown["results"]] == [
        (target.id, "clean", "malware")
    ]
    detail = mw.messages(subject="notes")[0]
    rescans = [e.detail for e in detail.events if e.type is EventType.RESCAN]
    assert len(rescans) == 1 and "verdict clean → malware" in rescans[0] and "NewRule" in rescans[0]
    assert detail.summary.category.value == "clean"  # history stays what was decided then

    rt = mw.runtime()
    try:  # a search queued as the API queues it: the running server picks it up and runs it
        queued = new_hunt(rt.db, HuntKind.SEARCH, created_by="ann", indicators=Indicators(urls=("partner.example",)))
        done = eventually(lambda: _finished(HuntStore(rt.db), queued.id), timeout=60)
        assert (done.state, done.total, done.matched) == (HuntState.DONE, 2, 2), mw.log()
    finally:
        rt.close()
    assert mw.stop() == 0


def _finished(store: HuntStore, hunt_id: str) -> Hunt | None:
    hunt = store.get(hunt_id)
    return hunt if hunt.state in (HuntState.DONE, HuntState.FAILED) else None
