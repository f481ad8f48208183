"""The IMAP connector's pure parts: folder roles, references, Message-ID matching, settings and secrets."""

from __future__ import annotations

import pytest

from mailwarden.clawback import imap
from mailwarden.clawback.connector import ConnectorError, Folder
from mailwarden.clawback.imap_session import Mailbox, Ref, assign_roles, exact_message_id


def box(name: str, *flags: bytes, delimiter: str = ".") -> Mailbox:
    return Mailbox(name, delimiter, frozenset(f.lower() for f in flags))


def test_special_use_wins_over_names() -> None:
    boxes = [box("INBOX"), box("Trash"), box("Bin", b"\\Trash"), box("Junk"), box("Spam", b"\\Junk")]
    roles = assign_roles(boxes, {})
    assert (roles.trash, roles.junk) == ("Bin", "Spam")
    assert [roles.role(b.name) for b in boxes] == [
        Folder.INBOX,
        Folder.OTHER,
        Folder.TRASH,
        Folder.OTHER,
        Folder.JUNK,
    ]


def test_common_names_under_a_prefix_and_overrides() -> None:
    boxes = [box("INBOX"), box("INBOX/Deleted Items", delimiter="/"), box("INBOX/Junk Email", delimiter="/")]
    roles = assign_roles(boxes, {})
    assert (roles.trash, roles.junk) == ("INBOX/Deleted Items", "INBOX/Junk Email")
    assert roles.destination(Folder.RECOVERABLE) == "INBOX/Deleted Items"
    assert roles.destination(Folder.INBOX) == "INBOX"
    overridden = assign_roles([*boxes, box("Quarantine", b"\\Junk")], {Folder.JUNK: "Quarantine.Held"})
    assert overridden.junk == "Quarantine.Held"


def test_no_trash_folder_means_no_destination() -> None:
    roles = assign_roles([box("INBOX"), box("Archive")], {})
    assert roles.destination(Folder.TRASH) is None
    assert roles.destination(Folder.OTHER) is None


def test_reference_round_trip_and_garbage() -> None:
    ref = Ref("Dossiers:2024", 17, 42, "<a:b@example.net>")
    assert Ref.decode(ref.encode()) == ref
    with pytest.raises(ConnectorError) as bad:
        Ref.decode("AAMkAGI2=")
    assert not bad.value.retryable


def test_exact_message_id_unfolds_the_field() -> None:
    assert exact_message_id(b"Message-ID:\r\n <x@example.net>\r\n\r\n") == "<x@example.net>"
    assert exact_message_id(b"message-id: <y@example.net> \r\n\r\n") == "<y@example.net>"
    assert exact_message_id(b"\r\n") == ""


def test_secrets_stay_out_of_settings_and_repr() -> None:
    secret = imap.Secret(password="master-s3cret", passwords={"a@example.com": "own-s3cret"})
    connector = imap.connect(imap.Settings(host="imap.example.com", master_user="mw"), secret)
    shown = repr(secret) + str(secret) + repr(connector) + repr(connector.settings)
    assert "s3cret" not in shown
    with pytest.raises(ValueError, match="extra"):
        imap.Settings(host="imap.example.com", password="x")  # type: ignore[call-arg]
    assert imap.Settings(host="h").security == "tls"
