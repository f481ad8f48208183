"""`mailwarden train`: build the classifier model and the learned symbol weights from labelled mail."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mailwarden.cli.common import err, error, out


def train(
    corpus: Annotated[
        Path | None,
        typer.Option("--corpus", help="A folder with spam/, ham/ and (optionally) hard_ham/ message folders."),
    ] = None,
    spam: Annotated[list[Path] | None, typer.Option("--spam", help="A folder of spam messages (repeatable).")] = None,
    ham: Annotated[list[Path] | None, typer.Option("--ham", help="A folder of legitimate mail (repeatable).")] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Where to write default-model.tsv.gz and scoring.json (default: the shipped ones)."),
    ] = None,
    version: Annotated[str, typer.Option(help="Version written into both files.")] = "3",
) -> None:
    """Train the content classifier and learn the symbol weights from labelled mail (grouped, time-ordered
    cross-validation; needs the `train` extra: numpy, scipy). Point `[stages.spam] model` and `scoring` at
    the files written, or leave --out out to rebuild the shipped ones."""
    from mailwarden.pipeline.spam.classifier import DEFAULT_MODEL
    from mailwarden.pipeline.spam.training import corpus_files, load_samples, train, write_trained

    labelled: list[tuple[Path, str, bool]] = []
    folders: list[tuple[Path, bool]] = [(p, True) for p in spam or []] + [(p, False) for p in ham or []]
    if corpus is not None:
        folders += [(corpus / name, name == "spam") for name in ("spam", "ham", "hard_ham") if (corpus / name).is_dir()]
    for folder, is_spam in folders:
        if not folder.is_dir():
            error(f"{folder}: not a folder")
            raise typer.Exit(2)
        labelled += [(p, folder.name, is_spam) for p in corpus_files(folder)]
    if not any(s for _, _, s in labelled) or all(s for _, _, s in labelled):
        error("give spam and ham messages: --corpus DIR, or --spam DIR and --ham DIR")
        raise typer.Exit(2)
    try:
        import numpy  # noqa: F401
        import scipy  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        error("training needs numpy and scipy: pip install 'mailwarden[train]'")
        raise typer.Exit(2) from None
    samples = load_samples(labelled)
    err.print(f"{len(samples)} messages read; cross-validating")
    description = ", ".join(f"{folder.parent.name}/{folder.name} ({'spam' if s else 'ham'})" for folder, s in folders)
    trained = train(samples, description=description, log=err.print)
    target = out_dir or DEFAULT_MODEL.parent
    write_trained(trained, target / "default-model.tsv.gz", target / "scoring.json", version)
    cv = trained.scoring["cv"]
    summary = ", ".join(f"{kind} {v['scl5'] * 100:.2f} % at SCL >= 5" for kind, v in cv.items())
    out.print(f"wrote {target / 'default-model.tsv.gz'} and {target / 'scoring.json'}; cross-validated: {summary}")
