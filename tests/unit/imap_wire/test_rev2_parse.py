"""The parser once IMAP4rev2 is enabled (RFC 9051 §5.1): mailbox names are UTF-8 (not
modified UTF-7), taken in NFC; sizes in SEARCH are 63-bit (§9 number64)."""

from __future__ import annotations

import unicodedata

import pytest

from coi.imap.wire.commands import (
    Create,
    List,
    NormalizedName,
    ParseError,
    Rename,
    Search,
    Select,
    Status,
    parse_command,
)
from coi.imap.wire.mutf7 import InvalidName
from coi.imap.wire.search import SizeKey

from .helpers import parse, ready


def rev2(data: bytes) -> object:
    return parse_command(ready(data), utf8_names=True)


def test_utf8_names_are_taken_as_they_are() -> None:
    command = rev2('a SELECT "Entwürfe"'.encode())
    assert isinstance(command, Select) and command.mailbox == "Entwürfe"
    assert not isinstance(command.mailbox, NormalizedName | InvalidName)
    # "&" is itself in IMAP4rev2: no modified UTF-7 decoding
    command = rev2(b"a SELECT Entw&APw-rfe")
    assert isinstance(command, Select) and command.mailbox == "Entw&APw-rfe"
    assert not isinstance(command.mailbox, InvalidName)
    # ... where an IMAP4rev1 session decodes it
    assert parse(b"a SELECT Entw&APw-rfe").mailbox == "Entwürfe"  # type: ignore[union-attr]


def test_inbox_stays_case_insensitive() -> None:
    command = rev2('a CREATE "inbox/Grüße"'.encode())
    assert isinstance(command, Create) and command.mailbox == "INBOX/Grüße"


def test_denormalized_names_become_nfc_and_keep_what_was_sent() -> None:
    nfd = unicodedata.normalize("NFD", "Köln")
    command = rev2(f'a RENAME "{nfd}" "inbox/{nfd}"'.encode())
    assert isinstance(command, Rename)
    assert command.old == "Köln" and isinstance(command.old, NormalizedName)
    assert command.old.supplied == nfd
    assert command.new == "INBOX/Köln" and isinstance(command.new, NormalizedName)
    assert command.new.supplied == f"inbox/{nfd}"


def test_names_that_are_not_utf8_name_no_mailbox() -> None:
    command = rev2(b'a STATUS "\xff\xfe" (MESSAGES)')
    assert isinstance(command, Status) and isinstance(command.mailbox, InvalidName)


def test_list_patterns_are_utf8() -> None:
    command = rev2(b'a LIST "" "Entw%"')
    assert isinstance(command, List) and command.patterns == ("Entw%",)
    command = rev2('a LIST "" "Gr*ße"'.encode())
    assert isinstance(command, List) and command.patterns == ("Gr*ße",)


def test_status_deleted() -> None:
    """RFC 9051 §6.3.11: DELETED, in either revision."""
    command = parse(b"a STATUS INBOX (MESSAGES DELETED SIZE)")
    assert isinstance(command, Status) and command.items == ("MESSAGES", "DELETED", "SIZE")


def test_search_sizes_are_number64() -> None:
    command = parse(b"a SEARCH LARGER 9223372036854775807")
    assert isinstance(command, Search) and command.key == SizeKey("larger", 2**63 - 1)
    with pytest.raises(ParseError):
        parse(b"a SEARCH SMALLER 9223372036854775808")
