"""The progress bar of commands that read many messages from files (`scan`, `learn`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn, TimeRemainingColumn

from mailwarden.ingest.files import InputItem, read_items

# Below both, a run is short enough to need no bar.
PROGRESS_MIN_FILES = 20
PROGRESS_MIN_BYTES = 20 * 1024 * 1024


@contextmanager
def reading(files: list[Path], verb: str, console: Console, *, quiet: bool = False) -> Iterator[Iterator[InputItem]]:
    """Each message of each file, as `read_items` gives them, with a bar on `console` for long runs.

    The bar counts bytes, so one large mbox moves it as steadily as a folder of many files, and it
    counts the messages read so far.
    """
    sizes = [_size(path) for path in files]
    progress, task = _bar(verb, console, files=len(files), total=sum(sizes), quiet=quiet)

    def items() -> Iterator[InputItem]:
        done = count = 0
        for path, size in zip(files, sizes, strict=True):
            read = 0
            for item in read_items([path]):
                count += 1
                read += len(item.raw or b"")
                progress.update(task, completed=done + min(read, size), messages=count)
                yield item
            done += size
            progress.update(task, completed=done)

    with progress:
        yield items()


@contextmanager
def advancing(
    verb: str, console: Console, *, files: int, total: int, quiet: bool = False
) -> Iterator[Callable[[int, int], None]]:
    """The same bar for work done elsewhere (`scan --jobs`): call the function given with the bytes and
    the messages of each piece as it is done."""
    progress, task = _bar(verb, console, files=files, total=total, quiet=quiet)
    done = count = 0

    def advance(size: int, messages: int) -> None:
        nonlocal done, count
        done += size
        count += messages
        progress.update(task, completed=done, messages=count)

    with progress:
        yield advance


def _bar(verb: str, console: Console, *, files: int, total: int, quiet: bool) -> tuple[Progress, TaskID]:
    progress = Progress(
        TextColumn(verb),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[messages]} messages"),
        TimeRemainingColumn(),
        console=console,
        disable=quiet or (files <= PROGRESS_MIN_FILES and total < PROGRESS_MIN_BYTES),
    )
    return progress, progress.add_task(verb, total=total or None, messages=0)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # read_items reports the file; it adds nothing to the bar
        return 0
