"""Preview: nothing active and nothing remote survives; text, headers and attachments are shown."""

from __future__ import annotations

from mailwarden.model import Message
from mailwarden.quarantine.preview import build_preview, sanitise_html
from tests.factories import build_message


def test_scripts_and_event_handlers_are_removed() -> None:
    html, _ = sanitise_html(
        '<p onclick="steal()" onmouseover="x()">Hi</p><script>alert(1)</script>'
        '<img src="cid:logo" onerror="alert(2)"><svg onload="alert(3)"></svg><iframe src="cid:x"></iframe>'
    )
    lowered = html.lower()
    for needle in ("script", "onclick", "onmouseover", "onerror", "onload", "alert", "iframe", "svg"):
        assert needle not in lowered
    assert "<p>Hi</p>" in html
    assert 'src="cid:logo"' in html  # an image inside the message itself may stay


def test_remote_images_and_links_load_nothing() -> None:
    html, blocked = sanitise_html(
        '<img src="https://track.example/pixel.gif"><img src="http://x.example/a.png">'
        '<img src="//cdn.example/b.png"><a href="https://phish.example/login">Log in</a>'
        '<div style="background:url(https://x.example/c.png)">styled</div>'
        '<table background="https://x.example/bg.png"><tr><td>t</td></tr></table>'
    )
    assert "example/" not in html  # no remote URL is left anywhere in the markup
    assert "Log in" in html and "styled" in html
    assert blocked >= 4


def test_javascript_and_data_urls_are_dropped() -> None:
    html, _ = sanitise_html(
        '<a href="javascript:alert(1)">a</a><a href=" JaVaScRiPt:alert(1)">b</a>'
        '<a href="data:text/html,<script>alert(1)</script>">c</a><img src="data:image/png;base64,AAAA">'
        '<a href="mailto:help@corp.example">mail us</a>'
    )
    assert "javascript" not in html.lower() and "data:" not in html
    assert 'href="mailto:help@corp.example"' in html


def test_preview_lists_headers_text_html_and_attachments() -> None:
    raw = build_message(
        subject="Invoice",
        text="Please pay.",
        html='<p>Please <a href="https://pay.example">pay</a>.</p>',
        attachments=[("invoice.pdf.exe", "application/pdf", b"MZ\x90\x00" + b"\x00" * 60)],
    )
    preview = build_preview(Message(raw))

    assert ("Subject", "Invoice") in preview.headers
    assert "Please pay." in preview.text
    assert "pay.example" not in preview.html and "pay</a>" in preview.html
    ((attachment),) = preview.attachments
    assert attachment.filename == "invoice.pdf.exe"
    assert attachment.declared_type == "application/pdf"
    assert attachment.real_type != "application/pdf"  # the bytes are a Windows executable
    assert len(attachment.sha256) == 64 and attachment.size == 64
