"""The progress bar of commands that read many messages from files (`scan`, `learn`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

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
    total = sum(sizes)
    progress = Progress(
        TextColumn(verb),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[messages]} messages"),
        TimeRemainingColumn(),
        console=console,
        disable=quiet or (len(files) <= PROGRESS_MIN_FILES and total < PROGRESS_MIN_BYTES),
    )
    task = progress.add_task(verb, total=total or None, messages=0)

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


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # read_items reports the file; it adds nothing to the bar
        return 0
