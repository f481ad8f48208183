"""Retro-hunt from end to end inside one process: the writer keeps what it records, a rescan with a new
YARA rule finds the message, a search finds it by indicator, and history's verdict stays as it was."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from mailwarden.ingest.spool import Spool
from mailwarden.model import Category, Envelope
from mailwarden.model.policy import parse_organisation_document
from mailwarden.model.trace import EventType
from mailwarden.service.config import load_config
from mailwarden.service.directory import OrgDirectory
from mailwarden.service.hunt import Hunter, changed_verdicts, found_ids, new_hunt
from mailwarden.service.indicators import Indicators
from mailwarden.service.processor import Processor
from mailwarden.service.runtime import Runtime
from mailwarden.store.hunts import HuntKind, HuntState, HuntStore
from mailwarden.store.kept import KeptStore, Window
from tests.factories import build_message
from tests.unit.deliver.helpers import eventually

MARKER = "HUNT-MARKER-7731"
OLD_RULE = 'rule OldRule { strings: $a = "NOT-IN-ANY-MESSAGE-0000" condition: $a }\n'
_serial = itertools.count(1)
NEW_RULE = f'rule NewRule {{ strings: $a = "{MARKER}" condition: $a }}\n'


def runtime(tmp_path: Path, keep_days: float = 7) -> Runtime:
    config = tmp_path / "mailwarden.toml"
    config.write_text(
        'organisation = "acme"\n[paths]\ndata_dir = "var"\n'
        "[processing]\nscan_processes = 0\nbatch_delay_ms = 10\n"
        f"[retention]\nkeep_days = {keep_days}\n"
        '[pipeline]\ninbound = ["malware"]\noutbound = []\n'
        f'[stages.malware.yara]\nrules = "{tmp_path / "rules.yar"}"\n'
    )
    rt = Runtime(load_config(config, environ={}))
    rt.db.migrate()
    return rt


async def record(
    rt: Runtime, tmp_path: Path, messages: list[bytes], *, sender: str = "partner@example.org"
) -> list[str]:
    """Journal copies (MAIL FROM `sender`) through the real processor and writer; their history ids."""
    if not rt.policies.list_organisations():
        rt.policies.import_document(
            parse_organisation_document(
                {"name": "acme", "monitor_only": True, "domains": [{"name": "example.com", "mode": "journal"}]}
            )
        )
    ids = []
    with Spool(tmp_path / "spool", fsync=False) as spool:
        processor = Processor(rt, spool, OrgDirectory(rt.policies, refresh_seconds=0), roles={"journal": "journal"})
        await processor.start()
        try:
            for raw in messages:
                envelope = Envelope(mail_from=sender, rcpt_to=("alice@example.com",))
                ids.append((await spool.put_async("journal", envelope, raw)).id)
            await eventually(lambda: spool.backlog == 0, within=20)
        finally:
            await processor.stop(drain_timeout=5)
    return ids


def mail(subject: str, **parts: Any) -> bytes:
    """A message to alice with a Message-ID of its own (the factory's is fixed: copies would merge)."""
    raw = build_message(sender="partner@example.org", to="alice@example.com", subject=subject, **parts)
    return raw.replace(b"<test-1@example.org>", f"<{next(_serial)}@example.org>".encode())


def marked(subject: str) -> bytes:
    return mail(subject, attachments=[("notes.txt", "text/plain", f"see {MARKER}\n".encode())])


async def test_the_writer_keeps_each_new_message_once_and_a_merged_copy_adds_nothing(tmp_path: Path) -> None:
    (tmp_path / "rules.yar").write_text(OLD_RULE)
    rt = runtime(tmp_path)
    try:
        raw = marked("kept")
        ids = await record(rt, tmp_path, [raw, raw])
        # whichever copy was written first is the record; the other merged into it and kept nothing
        [recorded] = [i for i in ids if rt.history.exists(i)]
        kept = KeptStore(rt.db, rt.blobs)
        assert kept.totals() == (1, len(raw), kept.get(recorded).stored_size)
        assert kept.raw(kept.get(recorded)) == raw
    finally:
        rt.close()


async def test_keeping_off_keeps_nothing(tmp_path: Path) -> None:
    (tmp_path / "rules.yar").write_text(OLD_RULE)
    rt = runtime(tmp_path, keep_days=0)
    try:
        await record(rt, tmp_path, [marked("not kept")])
        assert KeptStore(rt.db, rt.blobs).totals() == (0, 0, 0)
        assert not any(p.name.startswith("kept-") for p in rt.config.paths.blob_dir.iterdir())
    finally:
        rt.close()


async def test_a_rescan_with_a_new_rule_finds_the_message_and_leaves_history_as_decided(tmp_path: Path) -> None:
    (tmp_path / "rules.yar").write_text(OLD_RULE)
    rt = runtime(tmp_path)
    try:
        target, other = await record(rt, tmp_path, [marked("target"), mail("plain")])
        assert rt.history.get(target).summary.category is Category.CLEAN
    finally:
        rt.close()
    (tmp_path / "rules.yar").write_text(OLD_RULE + NEW_RULE)
    rt = runtime(tmp_path)  # a new process: today's rules
    try:
        hunt = new_hunt(rt.db, HuntKind.RESCAN, created_by="ann")
        seen: list[int] = []
        final = await Hunter(rt).run(hunt, lambda h: seen.append(h.done))
        assert (final.state, final.total, final.done, final.matched) == (HuntState.DONE, 2, 2, 1)
        assert seen == [2]
        [result] = HuntStore(rt.db).results(hunt.id)
        assert (result.message_id, result.before_category, result.after_category) == (target, "clean", "malware")
        assert "verdict clean → malware" in result.matched and "NewRule" in result.matched
        detail = rt.history.get(target)
        assert detail.summary.category is Category.CLEAN  # history stays what was decided then
        [event] = [e for e in detail.events if e.type is EventType.RESCAN]
        assert hunt.id in event.detail and "NewRule" in event.detail
        assert not [e for e in rt.history.get(other).events if e.type is EventType.RESCAN]
        assert [(m, c.value) for m, c, _ in changed_verdicts(rt.db, hunt.id)] == [(target, "malware")]
    finally:
        rt.close()


async def test_a_search_finds_messages_by_indicator_within_its_window(tmp_path: Path) -> None:
    (tmp_path / "rules.yar").write_text(OLD_RULE)
    rt = runtime(tmp_path)
    try:
        hit, _miss = await record(
            rt,
            tmp_path,
            [
                mail("Invoice 12 overdue", text="https://pay.evil.example/x\n"),
                mail("Lunch", text="https://good.example/\n"),
            ],
        )
        indicators = Indicators(urls=("evil.example",))
        hunt = new_hunt(rt.db, HuntKind.SEARCH, created_by="ann", indicators=indicators)
        final = await Hunter(rt).run(hunt)
        assert (final.state, final.matched) == (HuntState.DONE, 1)
        assert found_ids(rt.db, hunt.id) == [hit]
        assert changed_verdicts(rt.db, hunt.id) == []  # a search decides no verdict
        event = next(e for e in rt.history.get(hit).events if e.type is EventType.RESCAN)
        assert event.detail.endswith("matched url contains evil.example")
        future = KeptStore(rt.db, rt.blobs).get(hit).kept_at.replace(year=2099)
        empty = new_hunt(rt.db, HuntKind.SEARCH, created_by="ann", indicators=indicators, since=future)
        assert (await Hunter(rt).run(empty)).total == 0
        assert KeptStore(rt.db, rt.blobs).count(Window()) == 2
    finally:
        rt.close()


async def test_a_cancelled_hunt_stops_and_stays_cancelled(tmp_path: Path) -> None:
    (tmp_path / "rules.yar").write_text(OLD_RULE)
    rt = runtime(tmp_path)
    try:
        await record(rt, tmp_path, [mail("one")])
        store = HuntStore(rt.db)
        hunt = new_hunt(rt.db, HuntKind.RESCAN, created_by="ann")
        store.cancel(hunt.id)
        assert store.claim_queued() is None  # a cancelled hunt is never started
        final = await Hunter(rt).run(hunt)
        assert final.state is HuntState.CANCELLED
    finally:
        rt.close()
