"""Bring the message catalogues up to date with the code (docs/console.md, "Translating").

    python contrib/messages.py           # rewrite messages.pot, update every translation's .po
    python contrib/messages.py --check   # change nothing; exit 1 when a catalogue is behind the code

1. The keys in use are extracted with Babel (babel.cfg): `t("key")` in the console's Python and Jinja2
   templates, `words("key", language)` in the digests, notices and reports, `Refusal(status, "key")`.
2. `src/mailwarden/i18n/messages.pot` is written: every key of `en.po` (English holds the source words, and
   the keys built from enum values at run time are only there) and every extracted key, each with its
   English as a comment for translators and where it is used.
3. Every other language's `.po` is updated from the template with Babel: a new key is added without words
   (the unit tests fail until it is translated), a key no longer in English becomes obsolete (`#~`).

A key used in the code but missing from `en.po` is listed, and makes `--check` fail: add its English first.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from collections.abc import Iterator
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parents[1]
I18N = ROOT / "src" / "mailwarden" / "i18n"
TEMPLATE = I18N / "messages.pot"
# function name → which argument is the key (Babel's keyword spec; None: the first)
KEYWORDS: dict[str, tuple[int, ...] | None] = {"t": None, "words": None, "Refusal": (2,), "refusal": (3,)}
WIDTH = 120


def extracted() -> dict[str, list[tuple[str, int]]]:
    """Every literal key the code uses, with where (path from the repository root, line)."""
    with (ROOT / "babel.cfg").open() as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    found: dict[str, list[tuple[str, int]]] = {}
    # keys built at run time (f-strings, `~` in templates) are skipped; Babel's note on each is not needed
    with contextlib.redirect_stderr(io.StringIO()):
        for path, line, key, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=KEYWORDS, comment_tags=(), strip_comment_tags=True
        ):
            if isinstance(key, str) and key:
                found.setdefault(key, []).append((path, line))
    return found


def read(path: Path, language: str | None = None) -> Catalog:
    with path.open("rb") as po:
        return read_po(po, locale=language)


def po_path(language: str) -> Path:
    return I18N / "locale" / language / "LC_MESSAGES" / "messages.po"


def translations() -> Iterator[str]:
    """The languages other than English that have a catalogue."""
    for directory in sorted((I18N / "locale").iterdir()):
        if directory.name != "en" and po_path(directory.name).is_file():
            yield directory.name


def template(english: Catalog, used: dict[str, list[tuple[str, int]]]) -> Catalog:
    pot = Catalog(project="mailwarden", version=english.version, copyright_holder="the mailwarden authors", fuzzy=False)
    pot.creation_date = english.creation_date  # a template that differs only in its date is not a change
    for message in english:
        if message.id and isinstance(message.id, str):
            pot.add(message.id, auto_comments=[str(message.string)], locations=sorted(used.get(message.id, [])))
    for key in sorted(set(used) - {str(m.id) for m in english if m.id}):
        pot.add(key, locations=sorted(used[key]))
    return pot


def render(catalog: Catalog, *, template_file: bool = False) -> bytes:
    out = io.BytesIO()
    write_po(out, catalog, width=WIDTH, omit_header=False, ignore_obsolete=template_file)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a catalogue is behind")
    args = parser.parse_args(argv)
    used = extracted()
    english = read(po_path("en"), "en")
    missing = sorted(set(used) - {str(m.id) for m in english if m.id})
    for key in missing:
        where = ", ".join(f"{path}:{line}" for path, line in used[key])
        print(f"no English words for {key!r} (used at {where}): add it to {po_path('en').relative_to(ROOT)}")
    pot = template(english, used)
    wanted = {TEMPLATE: render(pot, template_file=True)}
    for language in translations():
        catalog = read(po_path(language), language)
        catalog.update(pot, no_fuzzy_matching=True, update_header_comment=False, update_creation_date=False)
        for message in catalog:
            message.locations = []  # where a key is used is in the template; here it would churn with the code
        wanted[po_path(language)] = render(catalog)
    behind = [path for path, text in wanted.items() if not path.is_file() or path.read_bytes() != text]
    if args.check:
        for path in behind:
            print(f"{path.relative_to(ROOT)} is not up to date: run python contrib/messages.py")
        return 1 if behind or missing else 0
    for path in behind:
        path.write_bytes(wanted[path])
        print(f"wrote {path.relative_to(ROOT)}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
