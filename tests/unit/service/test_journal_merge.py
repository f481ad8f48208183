"""Journal copies of one original merge into one record, whenever they arrive; a copy naming another sender
with the same Message-ID is another message, however late it comes."""

from __future__ import annotations

from pathlib import Path

from mailwarden.model.trace import EventType
from tests.unit.service.test_hunt import OLD_RULE, mail, record, runtime


async def test_a_later_copy_merges_only_into_the_record_of_its_own_sender(tmp_path: Path) -> None:
    (tmp_path / "rules.yar").write_text(OLD_RULE)
    rt = runtime(tmp_path)
    try:
        raw = mail("one original")
        [first] = await record(rt, tmp_path, [raw])
        # each call is a new processor: nothing remembered in memory, so history is what is looked up
        [spoof] = await record(rt, tmp_path, [raw], sender="someone@elsewhere.example")
        [again] = await record(rt, tmp_path, [raw])
        assert rt.history.exists(first) and rt.history.exists(spoof), "another sender's copy is its own record"
        assert not rt.history.exists(again), "a later copy of the same sender merges into the first record"
        unwraps = [e.detail for e in rt.history.get(first).events if e.type is EventType.JOURNAL_UNWRAP]
        assert unwraps[-1].startswith("another journal copy merged")
        assert rt.history.get(spoof).summary.sender == "someone@elsewhere.example"
    finally:
        rt.close()
