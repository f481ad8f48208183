"""What the journal tests share: the spec fixtures, an original message, an Exchange report built around it."""

from __future__ import annotations

from pathlib import Path

from mailwarden.ingest.journal import JournalEnvelope, unwrap

DATA = Path(__file__).resolve().parents[3] / "data" / "journal"
ORG = {"example.com"}
JOURNAL_RCPT = ["journal+tenant1@journal.example.net"]

ORIGINAL = (
    b"Received: from mbx01.example.com (192.0.2.20) by mail.example.com\r\n"
    b" (192.0.2.10); Tue, 14 Oct 2025 09:15:02 +0000\r\n"
    b"DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=s1; h=from:to:subject;\r\n"
    b"\tbh=AAAA; b=BBBB\r\n"
    b"From: Alice Example <alice@example.com>\r\n"
    b"To: Partner <partner@example.org>\r\n"
    b"Subject: Plan\r\n"
    b"Message-ID: <plan-1@example.com>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"X-MS-Exchange-Organization-MessageDirectionality: Originating\r\n"
    b"X-MS-Exchange-Organization-AuthAs: Internal\r\n"
    b"\r\n"
    b"Trailing spaces stay   \r\n"
    b"and so does the last line break.\r\n"
)
REPORT_LINES = (
    "Sender: alice@example.com",
    "Subject: Plan",
    "Message-Id: <plan-1@example.com>",
    "To: partner@example.org",
)


def fixture(name: str) -> bytes:
    return (DATA / name).read_bytes()


def build_report(
    lines: tuple[str, ...] | list[str] = REPORT_LINES,
    original: bytes = ORIGINAL,
    *,
    marker: bytes = b"X-MS-Journal-Report:\r\n",
    charset: str = "us-ascii",
    body: bytes | None = None,
    rfc822_headers: bytes = b"Content-Type: message/rfc822\r\n",
    closing: bool = True,
) -> bytes:
    """A journal report around `original`, the way Exchange lays it out (CRLF, two parts)."""
    text = body if body is not None else "".join(f"{line}\r\n" for line in lines).encode(charset)
    out = (
        b"From: Microsoft Outlook <MicrosoftExchange0000@example.com>\r\n"
        b"To: <journal+tenant1@journal.example.net>\r\n"
        b"Subject: Plan\r\n"
        b"Message-ID: <jr-test@example.com>\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="JRB"\r\n' + marker + b"\r\n"
        b"--JRB\r\n"
        b"Content-Type: text/plain; charset=" + charset.encode() + b"\r\n"
        b"\r\n" + text + b"\r\n"
        b"--JRB\r\n" + rfc822_headers + b"\r\n" + original + b"\r\n--JRB--\r\n"
    )
    return out if closing else out[: out.rindex(b"\r\n--JRB--")]


def run(raw: bytes, **kwargs: object) -> JournalEnvelope:
    kwargs.setdefault("smtp_mail_from", "")
    kwargs.setdefault("smtp_rcpt_to", JOURNAL_RCPT)
    kwargs.setdefault("org_domains", ORG)
    return unwrap(raw, **kwargs)  # type: ignore[arg-type]
