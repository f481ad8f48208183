"""What every command shares: the consoles, the common options, the runtime, and the one mapping of
mailwarden's errors to a line on stderr and an exit code."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from mailwarden.errors import MailwardenError, PolicyError
from mailwarden.ingest.files import InputItem
from mailwarden.logs import configure as configure_logging
from mailwarden.model import Category, Message
from mailwarden.service.config import load_config
from mailwarden.service.runtime import Runtime

# a pipe or file gets wide lines instead of rich's 80-column default
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, soft_wrap=True)  # an error stays one line, however long


class DataTable(Table):
    """A table of data: a cell's text is shown as it is, so a subject such as `[users] Re: hello` keeps its
    `[users]` and one such as `[/]` cannot end the command (rich would read both as style tags)."""

    def add_row(self, *renderables: Any, **kwargs: Any) -> None:
        super().add_row(*(Text(r) if isinstance(r, str) else r for r in renderables), **kwargs)


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar="MAILWARDEN_CONFIG",
        help="Config file (default: ./mailwarden.toml, then /etc/mailwarden/mailwarden.toml).",
    ),
]
OrgOption = Annotated[str | None, typer.Option("--org", help="Organisation (default: the config's).")]


def run(app: typer.Typer) -> None:
    """Run the command line; a MailwardenError ends it with one line on stderr and the error's exit code."""
    try:
        app()
    except MailwardenError as exc:
        error(str(exc))
        sys.exit(exc.exit_code)


def error(text: str) -> None:
    """One error line on stderr; the text is shown as it is (a `[section]` in it is no style tag)."""
    err.print(f"[red]error:[/red] {escape(text)}")


@contextmanager
def runtime(config_path: Path | None, *, migrate: bool = False) -> Iterator[Runtime]:
    """The runtime over the config's stores, logging as the config says; `migrate` brings the database
    up to date first (commands that write to a database that may be new)."""
    config = load_config(config_path)
    configure_logging(config.log.level, config.log.format)
    rt = Runtime.started(config)
    try:
        if migrate:
            rt.db.migrate()
        yield rt
    finally:
        rt.close()


def read_yaml(path: Path) -> Any:
    """A YAML file's data; PolicyError naming the file when it cannot be read or parsed."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(f"{path}: {exc.strerror}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}") from None


def as_mail(item: InputItem) -> Message | None:
    """The input as a message, or None after saying on stderr why it is not one."""
    if item.raw is None:
        error(f"{item.source}: {item.error}")
        return None
    message = Message(item.raw)
    if not message.looks_like_mail():
        error(f"{item.source}: not an email message (no mail header block)")
        return None
    return message


def styled(category: Category) -> str:
    """The verdict category in its colour (Rich markup)."""
    colour = {
        Category.CLEAN: "green",
        Category.INTERNAL: "green",
        Category.BULK: "yellow",
        Category.SPAM: "yellow",
        Category.SCAN_ERROR: "magenta",
    }.get(category, "red")
    return f"[{colour}]{category.value}[/{colour}]"
