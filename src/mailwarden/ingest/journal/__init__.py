"""Journal unwrapping for monitor mode: a journal report or copy in, the original and its envelope out.

Pure: bytes in, a `JournalEnvelope` out, no I/O. Four inputs are understood (docs/journal.md):

* Exchange 2007+ envelope journal reports (`X-MS-Journal-Report`), also when an NDR carries one;
* Exchange 2003 legacy reports (`Content-Identifier: ExJournalReport`, or the `Content-Identifer` typo);
* Google Workspace "also deliver to" routing copies (`X-Gm-Original-To`, `X-Gm-Spam`, `X-Gm-Phishy`);
* plain BCC copies (Postfix `recipient_bcc_maps` and the like), optionally with the original
  recipient encoded in our RCPT TO address: `journal+in.<local>=<domain>@…` / `journal+out.…`.

The MIME structure is found on the raw bytes: header blocks are parsed with the standard library
(compat32), but part boundaries are located by scanning the bytes, so the attached original is a
slice of the report exactly as received and DKIM signatures on it still verify.

Modules: `formats` (which input it is, and `unwrap`), `exchange`, `google`, `bcc` (one per kind of
input, `copies` for what Gmail and BCC copies share), `envelope` (the result types and the error),
`mime` and `headers` (the report's bytes and header values), `hints` (the providers' direction
opinions). Callers use what this package exports.
"""

from mailwarden.ingest.journal.envelope import (
    EnvelopeConfidence,
    JournalEnvelope,
    JournalFormat,
    JournalParseError,
    JournalRecipient,
)
from mailwarden.ingest.journal.formats import detect_format, unwrap

__all__ = [
    "EnvelopeConfidence",
    "JournalEnvelope",
    "JournalFormat",
    "JournalParseError",
    "JournalRecipient",
    "detect_format",
    "unwrap",
]
