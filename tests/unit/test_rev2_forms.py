"""The IMAP4rev2 forms of stored ENVELOPE/BODY/BODYSTRUCTURE (coi.imap.server.rev2):
RFC 2231 decoding and its refusals, and that the rewrite keeps every byte it need not
change (spacing of parts and addresses, numbers, NIL)."""

from __future__ import annotations

import pytest

from coi.imap.server import rev2
from coi.mail.index import index_message


def _params(*items: bytes) -> list[bytes]:
    return rev2.decode_params(list(items))  # type: ignore[return-value]


def test_continuations_join_in_number_order() -> None:
    """RFC 2231 §3: sections may come in any order; plain ones keep their octets."""
    got = _params(b"NAME*1", b" b", b"CHARSET", b"x", b"NAME*0", b"a")
    assert got == [b"NAME", b"a b", b"CHARSET", b"x"]


def test_encoded_value_becomes_utf8_and_replaces_a_plain_one() -> None:
    got = _params(b"FILENAME", b"old", b"FILENAME*", b"iso-8859-1'de'%E4.txt")
    assert got == [b"FILENAME", "ä.txt".encode()]


@pytest.mark.parametrize(
    "items",
    [
        (b"NAME*0", b"a", b"NAME*2", b"c"),  # a gap: section 1 is missing
        (b"NAME*0", b"a", b"NAME*0", b"b"),  # a section twice
        (b"NAME*", b"utf-8''a", b"NAME*0", b"b"),  # both forms
        (b"NAME*", b"no-quotes"),  # no charset'language'
        (b"NAME*", b"x-unknown''%E4"),  # a charset Python does not know
        (b"NAME*", b"utf-8''%FF"),  # not valid in its charset
        (b"NAME*", b"base64''YQ=="),  # not a text encoding
        (b"NAME*", b"utf-\x008''a"),  # a NUL in the charset name (codecs raise ValueError)
        (b"NAME*01", b"a"),  # a leading zero
    ],
)
def test_what_cannot_be_decoded_stays_as_stored(items: tuple[bytes, ...]) -> None:
    assert _params(*items) == list(items)


def test_ascii_message_is_returned_as_stored() -> None:
    raw = (
        b"From: a@b.c, d@e.f\r\nContent-Type: multipart/mixed; boundary=X\r\n\r\n--X\r\n"
        b"Content-Type: message/rfc822\r\n\r\nSubject: s\r\n\r\nx\r\n--X\r\n\r\ny\r\n--X--\r\n"
    )
    index = index_message(raw)
    assert rev2.envelope(index.envelope) is index.envelope
    for stored in (index.body, index.bodystructure):
        assert rev2.body(stored) is stored
        # read back and written again without any change (the forced slow path)
        assert rev2._render(rev2.parse_stored(stored)) == stored


def test_strings_quoted_only_when_utf8_without_controls() -> None:
    assert rev2.string('ä "q" \\'.encode()) == b'"\xc3\xa4 \\"q\\" \\\\"'
    assert rev2.string(b"\xff") == b"{1}\r\n\xff"
    assert rev2.string("ä\r\n".encode()) == b"{4}\r\n\xc3\xa4\r\n"
