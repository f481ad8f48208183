"""`mailwarden pipeline show`: the effective stage order."""

from __future__ import annotations

import typer

from mailwarden.cli.common import ConfigOption, out, runtime
from mailwarden.model import Direction

pipeline_app = typer.Typer(help="The filter pipeline.", no_args_is_help=True)


@pipeline_app.command("show")
def pipeline_show(config: ConfigOption = None) -> None:
    """Print the effective stage order per direction."""
    with runtime(config) as rt:
        for direction, names in rt.pipeline.order().items():
            out.print(f"{direction.value:9} {' → '.join(names) if names else '(no stage installed yet)'}")
        out.print(f"{Direction.INTERNAL.value:9} not scanned")
