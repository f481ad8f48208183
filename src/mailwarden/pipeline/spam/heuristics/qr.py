"""QR codes: a link held in a picture, which the recipient opens on a phone outside the mail's protection.

The QR codes' links are also among `View.links`, so every link check judges them like body links; this
module adds what is particular to them: that there is one, that the message around it is a bare request
to scan, and that its link fails a link check (judged by `urls.check` on the QR links alone).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from functools import cached_property

from mailwarden.model import Organisation
from mailwarden.pipeline.facts import ScanFacts
from mailwarden.pipeline.spam.heuristics import urls
from mailwarden.pipeline.spam.heuristics.patterns import PhraseList
from mailwarden.pipeline.spam.heuristics.settings import HeuristicsSettings
from mailwarden.pipeline.spam.heuristics.view import Anchor, View, fold, host_of

Hit = tuple[str, str]

# a message whose own text (body, not attachments) has at most this many words is "little text"
FEW_WORDS = 60

# wording that asks the reader to scan a code
SCAN: tuple[str, ...] = (
    "scan the qr", "scan this qr", "scan the code", "scan this code", "scan the barcode", "scan below",
    "scan with your", "scan it with", "scan using your", "scan to", "qr code", "qr-code", "qrcode",
    "use your phone camera", "with your phone's camera", "with your mobile camera",
    "scannen sie", "qr-code scannen", "code scannen", "scannez", "scanner le code", "escaneie",
    "escaneie o", "digitalize o", "leia o qr", "scan de qr", "scan de code", "qrコード", "読み取",
)  # fmt: skip
_SCAN = PhraseList(fold(unicodedata.normalize("NFKC", p)) for p in SCAN)


class _QrLinks(View):
    """The message seen through its QR codes' links only, for the link checks."""

    def __init__(self, parent: View) -> None:
        super().__init__(parent.message)
        self.qr = parent.qr_links

    @cached_property
    def links(self) -> list[str]:
        return list(self.qr)

    @cached_property
    def anchors(self) -> list[Anchor]:
        return []

    @cached_property
    def forms(self) -> list[str]:
        return []


def check(view: View, facts: ScanFacts, org: Organisation | None, s: HeuristicsSettings) -> Iterator[Hit]:
    links = view.qr_links
    if not links:
        return
    hosts = ", ".join(dict.fromkeys(host_of(u) or u[:40] for u in links))
    yield "QR_URL", hosts[:80]
    words = len(view.visible_text.split())
    scan = _SCAN.search(view.folded_text, view.folded_words)
    if scan:
        yield "PHISH_QR_LURE", f"asks to scan ({scan}); {hosts}"[:80]
    elif words <= FEW_WORDS:
        yield "PHISH_QR_LURE", f"{words} words of text; {hosts}"[:80]
    failed = sorted({code for code, _ in urls.check(_QrLinks(view), facts, org, s) if code.startswith("PHISH_")})
    if failed:
        yield "PHISH_QR_SUSPICIOUS_URL", ", ".join(failed)[:80]
