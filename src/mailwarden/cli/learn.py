"""`mailwarden learn`: teach the spam classifier."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mailwarden.cli.common import ConfigOption, as_mail, err, error, out, runtime
from mailwarden.cli.progress import reading
from mailwarden.ingest.files import expand_paths


def learn(
    paths: Annotated[list[Path], typer.Argument(help=".eml files, directories of them, or mbox files.")],
    spam: Annotated[bool, typer.Option("--spam", help="Learn these messages as spam.")] = False,
    ham: Annotated[bool, typer.Option("--ham", help="Learn these messages as ham (not spam).")] = False,
    forget: Annotated[bool, typer.Option("--forget", help="Take back messages learnt earlier.")] = False,
    config: ConfigOption = None,
) -> None:
    """Teach the spam classifier: learn messages as spam or ham (a message learnt with the other label
    before is moved), or forget them. The statistics live where `[stages.spam] statistics` says."""
    from mailwarden.pipeline.spam.learning import forget_message, learn_message
    from mailwarden.pipeline.spam.stage import open_configured_classifier

    if [spam, ham, forget].count(True) != 1:
        error("give exactly one of --spam, --ham or --forget")
        raise typer.Exit(2)
    with runtime(config, migrate=True) as rt:  # learning writes: token_stats must exist
        classifier = open_configured_classifier(rt.stage_services)
        counts: dict[str, int] = {}
        failures = 0
        with reading(expand_paths(paths), "learning", err) as items:
            for item in items:
                message = as_mail(item)
                if message is None:
                    failures += 1
                    continue
                if forget:
                    outcome = "forgotten" if forget_message(classifier, message) else "never learnt"
                else:
                    outcome = learn_message(classifier, message, spam).value
                counts[outcome] = counts.get(outcome, 0) + 1
        label = "spam" if spam else "ham" if ham else "forget"
        summary = ", ".join(f"{n} {what}" for what, n in counts.items()) or "nothing"
        nspam, nham = classifier.store.totals()
        out.print(f"{label}: {summary}; the model now holds {nspam} spam and {nham} ham messages")
        if failures:
            raise typer.Exit(1)
