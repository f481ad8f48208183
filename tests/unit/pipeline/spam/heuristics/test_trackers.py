from __future__ import annotations

import base64
import json

from mailwarden.pipeline.spam.heuristics.settings import HeuristicsSettings
from mailwarden.pipeline.spam.heuristics.trackers import unwrap

TRACKERS = HeuristicsSettings().tracker_paths


def test_targets_carried_in_the_link_are_decoded() -> None:
    cases = {
        "https://www.google.com/url?q=https://www.example.org/a&sa=D": "https://www.example.org/a",
        "https://nam12.safelinks.protection.outlook.com/?url=https%3A%2F%2Fwww.example.org%2Fb&data=05%7C01": (
            "https://www.example.org/b"
        ),
        "https://urldefense.proofpoint.com/v2/url?u=https-3A__www.example.org_c&d=DwMF&c=x": "https://www.example.org/c",
        "https://urldefense.com/v3/__https://www.example.org/d__;!!ABC!def$": "https://www.example.org/d",
        "https://x.r.us-east-1.awstrack.me/L0/https:%2F%2Fwww.example.org%2Fe/1/0100=": "https://www.example.org/e/1/0100=",
    }
    for url, target in cases.items():
        assert unwrap(url, TRACKERS) == (True, target), url


def test_base64_targets_are_decoded() -> None:
    plain = base64.urlsafe_b64encode(b"https://www.example.org/f").decode().rstrip("=")
    wrapped = json.dumps({"p": json.dumps({"url": "https://www.example.org/g"})}).encode()
    assert unwrap(f"https://x.lt.acemlna.com/Prod/link-tracker?redirectUrl={plain}", TRACKERS) == (
        True,
        "https://www.example.org/f",
    )
    mandrill = f"https://mandrillapp.com/track/click/30/www.example.org?p={base64.b64encode(wrapped).decode()}"
    assert unwrap(mandrill, TRACKERS) == (True, "https://www.example.org/g")


def test_opaque_nested_and_untracked_links() -> None:
    assert unwrap("https://example.us1.list-manage.com/track/click?u=1a2b&id=3c4d", TRACKERS) == (True, None)
    # Safe Links around Proofpoint around the target: followed to the end
    inner = "https://urldefense.com/v3/__https://www.example.org/h__;!!A!b$"
    outer = "https://eur01.safelinks.protection.outlook.com/?url=" + inner.replace(":", "%3A").replace("/", "%2F")
    assert unwrap(outer, TRACKERS) == (True, "https://www.example.org/h")
    assert unwrap("https://www.example.org/?url=https://other.example.net/", TRACKERS) == (False, None)
    assert unwrap("https://www.google.com/search?q=https://www.example.org/", TRACKERS) == (False, None)
    for broken in ("https://[::1/url", "https://www.google.com/url?q=%", "https://urldefense.com/v3/__", ""):
        assert unwrap(broken, TRACKERS)[1] is None
