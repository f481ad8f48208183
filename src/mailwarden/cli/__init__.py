"""The one command line: every `mailwarden` command, one module per command or group of commands.

The order below is the order `mailwarden --help` lists them in: the commands, then the groups.
"""

from __future__ import annotations

import typer

from mailwarden import __version__
from mailwarden.cli import clawback, init, learn, scan, serve, trace, train
from mailwarden.cli.common import out, run
from mailwarden.cli.config import config_app
from mailwarden.cli.hunt import hunt_app
from mailwarden.cli.malware import malware_app
from mailwarden.cli.org import org_app
from mailwarden.cli.pipeline import pipeline_app
from mailwarden.cli.policy import policy_app
from mailwarden.cli.quarantine import quarantine_app
from mailwarden.cli.rules import rules_app
from mailwarden.cli.senders import sender_app
from mailwarden.cli.users import token_app, user_app

__all__ = ["app", "main"]

# Help texts are plain text: with Rich markup on, a config section such as `[stages.spam]` in a help
# text is taken for a style tag and vanishes. The setting applies to every sub-command below.
app = typer.Typer(
    help="mailwarden: email security for journal monitoring and inline filtering.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def hash_password() -> None:
    """Print a password hash for `auth_users` of a listener (the password is asked, not echoed)."""
    from mailwarden.ingest.access import hash_password as hashed

    password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    out.print(hashed(password))


def version() -> None:
    """Print the version."""
    out.print(__version__)


app.command()(init.init)
app.command()(serve.serve)
app.command()(scan.scan)
app.command()(trace.trace)
app.command()(learn.learn)
app.command()(train.train)
app.command()(clawback.clawback)
app.command()(clawback.campaign)
app.command()(clawback.clawbacks)
app.command("hash-password")(hash_password)
app.command()(version)
app.add_typer(policy_app, name="policy")
app.add_typer(org_app, name="org")
app.add_typer(pipeline_app, name="pipeline")
app.add_typer(malware_app, name="malware")
app.add_typer(rules_app, name="rules")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(quarantine_app, name="quarantine")
app.add_typer(clawback.connector_app, name="connector")
app.add_typer(sender_app, name="sender")
app.add_typer(hunt_app, name="hunt")
app.add_typer(config_app, name="config")


def main() -> None:
    """The `mailwarden` command (`[project.scripts]`, `python -m mailwarden`)."""
    run(app)
