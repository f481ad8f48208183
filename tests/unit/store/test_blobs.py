from __future__ import annotations

import os
from pathlib import Path

import pytest

from mailwarden.errors import NotFoundError
from mailwarden.store import BlobStore, LocalBlobStore


@pytest.fixture
def blobs(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


def test_put_get_delete(blobs: LocalBlobStore) -> None:
    store: BlobStore = blobs
    store.put("01JABCDEF.eml", b"From: a@b\r\n\r\nbody")
    assert store.exists("01JABCDEF.eml")
    assert store.get("01JABCDEF.eml") == b"From: a@b\r\n\r\nbody"
    store.put("01JABCDEF.eml", b"replaced")
    assert store.get("01JABCDEF.eml") == b"replaced"
    store.delete("01JABCDEF.eml")
    assert not store.exists("01JABCDEF.eml")
    store.delete("01JABCDEF.eml")  # already gone: not an error
    with pytest.raises(NotFoundError, match=r"01JABCDEF\.eml"):
        store.get("01JABCDEF.eml")


def test_put_leaves_no_temporary_files(blobs: LocalBlobStore) -> None:
    blobs.put("a", b"x" * 100_000)
    assert sorted(os.listdir(blobs.directory)) == ["a"]


def test_failed_put_keeps_the_old_blob(blobs: LocalBlobStore, monkeypatch: pytest.MonkeyPatch) -> None:
    blobs.put("msg", b"old")

    def crash(*_args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        blobs.put("msg", b"new")
    monkeypatch.undo()
    assert blobs.get("msg") == b"old"
    assert os.listdir(blobs.directory) == ["msg"]


@pytest.mark.parametrize(
    "key", ["../escape", "a/b", "/etc/passwd", ".hidden", "..", ".", "", "a\x00b", "sp ace", "x" * 201, "é"]
)
def test_keys_that_could_leave_the_directory_are_refused(blobs: LocalBlobStore, key: str, tmp_path: Path) -> None:
    for call in (
        lambda: blobs.put(key, b"x"),
        lambda: blobs.get(key),
        lambda: blobs.delete(key),
        lambda: blobs.exists(key),
    ):
        with pytest.raises(ValueError, match="invalid blob key"):
            call()
    assert not (tmp_path / "escape").exists()
