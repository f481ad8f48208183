from __future__ import annotations

from pathlib import Path

from mailwarden.ingest.files import expand_paths, read_items, split_mbox

MBOX = (
    b"From alice@example.org Thu Aug 22 13:17:22 2002\n"
    b"From: alice@example.org\nSubject: one\n\nfirst body\n>From the start\n\n"
    b"From bob@example.org  Fri Aug 23 09:00:01 2002\n"
    b"From: bob@example.org\nSubject: two\n\nsecond body\n"
)


def test_mbox_is_split_and_from_quoting_undone() -> None:
    first, second = split_mbox(MBOX)
    assert b"Subject: one" in first
    assert b"\nFrom the start\n" in first
    assert b"Subject: two" in second


def test_single_message_with_a_from_line_is_not_split() -> None:
    single = b"From alice@example.org Thu Aug 22 13:17:22 2002\nFrom: a@example.org\n\nbody\n"
    assert split_mbox(single) == [single]
    # a From_ line inside a body that does not follow an empty line is body text, not a separator
    body = single + b"quoted:\nFrom bob@example.org Thu Aug 22 13:17:22 2002\n"
    assert split_mbox(body) == [body]


def test_directories_are_walked_and_unreadable_files_reported(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.eml").write_bytes(b"From: a@example.org\n\nx\n")
    (tmp_path / "sub" / "box.mbox").write_bytes(MBOX)
    (tmp_path / ".hidden").write_bytes(b"ignored")
    files = expand_paths([tmp_path, tmp_path / "missing.eml"])
    items = list(read_items(files))
    sources = [i.source for i in items]
    assert sources[0].endswith("a.eml")
    assert sources[1].endswith("box.mbox:1") and sources[2].endswith("box.mbox:2")
    assert items[3].raw is None and items[3].error == "No such file or directory"
