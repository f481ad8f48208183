"""`mailwarden config check`: what the configuration points at, checked before `serve` uses it."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from mailwarden.cli.common import ConfigOption, out
from mailwarden.errors import ConfigError
from mailwarden.service.config import load_config
from mailwarden.service.config_check import Status, check

config_app = typer.Typer(help="Check the configuration.", no_args_is_help=True)
STYLE = {Status.OK: "green", Status.WARNING: "yellow", Status.FAILED: "red"}


@config_app.command("check")
def check_command(config: ConfigOption = None) -> None:
    """Read and validate the config (found through --config, MAILWARDEN_CONFIG, ./mailwarden.toml or
    /etc/mailwarden/mailwarden.toml), then check the data directory, the database, the TLS files, the
    listeners and the console's public URL; every problem is listed. Exit code 78 when any failed."""
    checks = check(load_config(config))
    table = Table("check", "", "detail", show_edge=False)
    for item in checks:
        table.add_row(escape(item.name), f"[{STYLE[item.status]}]{item.status.value}[/]", escape(item.detail))
    out.print(table)
    failed = [c for c in checks if c.status is Status.FAILED]
    if failed:
        raise ConfigError(f"{len(failed)} check(s) failed: {', '.join(c.name for c in failed)}")
    warnings = sum(1 for c in checks if c.status is Status.WARNING)
    out.print(f"configuration usable ({warnings} warning(s))" if warnings else "configuration usable")
