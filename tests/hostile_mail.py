"""Hostile MIME for the fuzz targets: charsets that are no text encoding, raw 8-bit where 7-bit belongs,
message/* parts sent base64 or quoted-printable, nested trees, broken boundaries and parameters.

Also the inputs that fuzzing found, kept as fixed examples: a quoted-printable `message/rfc822` part
whose inner text is raw 8-bit in a charset the standard library's generator cannot write back.
"""

from __future__ import annotations

import base64
import quopri

from hypothesis import strategies as st

from tests.unit.pipeline.malware.builders import EICAR

CHARSETS = (
    "utf-8", "us-ascii", "iso-2022-jp", "shift_jis", "utf-16", "utf-7", "unknown-8bit", "no-such-charset", "x\x00y",
    "", "idna", "punycode", "rot13", "base64", "hex", "zlib", "uu", "quopri", "utf-8-sig",
)  # fmt: skip
TRANSFER_ENCODINGS = ("base64", "quoted-printable", "7bit", "8bit", "binary", "x-uue", "bogus", "")

_charset = st.sampled_from(CHARSETS)
_junk = st.one_of(st.text(max_size=12), st.binary(max_size=12).map(lambda b: b.decode("latin-1")))
_HEADER_VALUES = (
    "{j}", "=?{c}?B?aGk=?= {j}", "=?{c}?Q?h=E9=FF?=", '"{j}" <a@{j}>', "{j} <{j}@example.com>",
    'text/plain; charset="{c}"', 'multipart/mixed; boundary="{j}"', "attachment; filename*={c}''%FF%00{j}",
    "attachment; filename*0*={c}''a; filename*1={j}", "v=1; a=rsa-sha256; d={j}; s=x; b=abc; bh={j}",
    "mx.example.com; spf=pass smtp.mailfrom={j}; dkim={j}", "from {j} ([{j}]) by mx; Mon, 1 Jan 2024 10:00:00 {j}",
    "<{j}@{j}>", "Mon, 1 Jan 2024 10:00:00 {j}", "message/rfc822", "{j}; charset*={c}'en'%FF",
    'application/ms-tnef; name="winmail.dat"',
)  # fmt: skip
_HEADER_NAMES = (
    "Subject", "From", "To", "Cc", "Reply-To", "Date", "Message-ID", "Received", "DKIM-Signature",
    "Authentication-Results", "Return-Path", "List-Unsubscribe", "Content-Type", "Content-Disposition",
    "Content-Transfer-Encoding", "MIME-Version",
)  # fmt: skip


def _raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


@st.composite
def header_fields(draw: st.DrawFn) -> bytes:
    lines = []
    for name in draw(st.lists(st.sampled_from(_HEADER_NAMES), max_size=8)):
        value = draw(st.sampled_from(_HEADER_VALUES)).format(j=draw(_junk), c=draw(_charset))
        lines.append(f"{name}: {value}\n")
    return _raw("".join(lines))


@st.composite
def _leaf(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["text/plain", "text/html", "application/octet-stream", "application/zip", "uu"]))
    body = draw(st.one_of(st.binary(max_size=60), st.just(EICAR)))
    head = f'Content-Type: {"text/plain" if kind == "uu" else kind}; charset="{draw(_charset)}"\n'
    head += f"Content-Transfer-Encoding: {draw(st.sampled_from(TRANSFER_ENCODINGS))}\n"
    if kind.startswith("application/"):
        name = draw(st.sampled_from(["a.zip", "%FF.exe", "x.eml", "winmail.dat", "b.pdf"]))
        head += f"Content-Disposition: attachment; filename*={draw(_charset)}''{name}\n"
    if kind == "uu":
        body = b"begin 644 x.exe\n" + body + b"\nend\n"
    return _raw(head) + b"\n" + body


def _entities(depth: int) -> st.SearchStrategy[bytes]:
    if depth >= 3:
        return _leaf()
    return st.one_of(_leaf(), _multipart(depth), _message_part(depth))


@st.composite
def _multipart(draw: st.DrawFn, depth: int) -> bytes:
    boundary = draw(st.sampled_from([f"B{depth}", "", "a b", "=?x?="]))
    subtype = draw(st.sampled_from(["mixed", "alternative", "digest", "report", "signed"]))
    out = _raw(f'Content-Type: multipart/{subtype}; boundary="{boundary}"\n\npreamble\n')
    for child in draw(st.lists(_entities(depth + 1), max_size=3)):
        out += _raw(f"--{boundary}\n") + child + b"\n"
    if draw(st.booleans()):
        out += _raw(f"--{boundary}--\n")
    return out


@st.composite
def _message_part(draw: st.DrawFn, depth: int) -> bytes:
    inner = draw(header_fields()) + draw(_entities(depth + 1))
    encoding = draw(st.sampled_from(TRANSFER_ENCODINGS))
    if encoding == "base64" and draw(st.booleans()):
        inner = base64.encodebytes(inner)
    elif encoding == "quoted-printable" and draw(st.booleans()):
        inner = quopri.encodestring(inner)
    subtype = draw(st.sampled_from(["rfc822", "global", "partial", "delivery-status"]))
    head = f"Content-Type: message/{subtype}; charset={draw(_charset)}\nContent-Transfer-Encoding: {encoding}\n"
    if draw(st.booleans()):
        head += f"Content-Disposition: attachment; filename*={draw(_charset)}''fwd%FF.eml\n"
    return _raw(head) + b"\n" + inner


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    """A message of hostile headers over a hostile MIME tree (a few levels deep)."""
    return draw(header_fields()) + draw(_entities(0))


def forwarded_with_eicar(charset: bytes) -> bytes:
    """A message/rfc822 part sent quoted-printable (RFC 2046 forbids it, some mailers do it) around a
    message with an EICAR file and a text part in `charset`, whose é the encoding left a raw 8-bit byte;
    the only `=` it escaped is the base64 padding."""
    eicar = base64.b64encode(EICAR).replace(b"=", b"=3D")
    return (
        b"From: a@example.org\r\nTo: b@example.com\r\nSubject: fwd\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"Subject: invoice\r\nContent-Type: multipart/mixed; boundary=in\r\n\r\n"
        b"--in\r\nContent-Type: text/plain; charset=" + charset + b"\r\n\r\ncaf\xe9\r\n"
        b"--in\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=eicar.com\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + eicar + b"\r\n--in--\r\n"
    )


# What fuzzing found in the malware walker: the standard generator, asked to write such a part back
# before decoding it, raised LookupError (a charset Python does not know), UnicodeEncodeError (8-bit text
# in us-ascii), UnicodeDecodeError (a codec that is no text encoding) or ValueError (a NUL in the name).
FOUND_BY_FUZZING = (
    forwarded_with_eicar(b"no-such-charset"),
    forwarded_with_eicar(b"us-ascii"),
    forwarded_with_eicar(b"punycode"),
    forwarded_with_eicar(b'"x\x00y"'),
)
