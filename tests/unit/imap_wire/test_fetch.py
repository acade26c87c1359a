"""FETCH attribute parsing and response names (RFC 3501 §7.4.2)."""

from __future__ import annotations

import pytest

from coi.imap.wire.commands import Fetch
from coi.imap.wire.errors import ParseError

from .helpers import parse


def _attrs(text: str) -> Fetch:
    cmd = parse(b"a FETCH 1 " + text.encode())
    assert isinstance(cmd, Fetch)
    return cmd


@pytest.mark.parametrize(
    ("att", "response"),
    [
        ("BODY[1.HEADER.FIELDS (From To)]<0.100>", "BODY[1.HEADER.FIELDS (From To)]<0>"),
        ("BODY.PEEK[HEADER.FIELDS.NOT (Received)]", "BODY[HEADER.FIELDS.NOT (Received)]"),
        ("body.peek[]<10.20>", "BODY[]<10>"),
        ("BODY[]", "BODY[]"),
        ("BODY[TEXT]", "BODY[TEXT]"),
        ("BODY[1.2.3]", "BODY[1.2.3]"),
        ("BODY[2.MIME]", "BODY[2.MIME]"),
        ("BODY[4.2.HEADER]", "BODY[4.2.HEADER]"),
        ("BINARY.PEEK[1]<0.5>", "BINARY[1]<0>"),
        ("BINARY[]", "BINARY[]"),
        ("BINARY.SIZE[3]", "BINARY.SIZE[3]"),
        ("rfc822.size", "RFC822.SIZE"),
        ("BODYSTRUCTURE", "BODYSTRUCTURE"),
        ("BODY", "BODY"),
        ("modseq", "MODSEQ"),
        ('BODY[HEADER.FIELDS ("X-Odd(1)" "date")]', 'BODY[HEADER.FIELDS ("X-Odd(1)" date)]'),
        ('BODY[HEADER.FIELDS ("X Y")]', None),
    ],
)
def test_response_name(att: str, response: str | None) -> None:
    if response is None:
        with pytest.raises(ParseError):
            _attrs(att)
        return
    (attr,) = _attrs(att).attrs
    assert attr.response_name() == response


def test_peek_flag() -> None:
    (attr,) = _attrs("BODY.PEEK[TEXT]").attrs
    assert attr.peek and attr.name == "BODY"
    (attr,) = _attrs("BODY[TEXT]").attrs
    assert not attr.peek


def test_macros() -> None:
    assert [a.name for a in _attrs("ALL").attrs] == [
        "FLAGS",
        "INTERNALDATE",
        "RFC822.SIZE",
        "ENVELOPE",
    ]
    assert [a.name for a in _attrs("full").attrs][-1] == "BODY"
    assert len(_attrs("FAST").attrs) == 3


@pytest.mark.parametrize(
    ("text", "lazy", "changedsince"),
    [
        ("(PREVIEW)", [False], None),
        ("PREVIEW", [False], None),
        ("(UID preview (lazy))", [False, True], None),
        ("PREVIEW (LAZY LAZY)", [True], None),
        ("PREVIEW (CHANGEDSINCE 7)", [False], 7),  # fetch modifiers, not preview-mods
        ("(PREVIEW (LAZY) ENVELOPE)", [True, False], None),
    ],
)
def test_preview_attribute(text: str, lazy: list[bool], changedsince: int | None) -> None:
    """RFC 8970 §6: "PREVIEW" [SP "(" preview-mod *(SP preview-mod) ")"]."""
    command = _attrs(text)
    assert [a.lazy for a in command.attrs] == lazy
    assert command.changedsince == changedsince
    assert command.attrs[-1 if text.startswith("(UID") else 0].response_name() == "PREVIEW"


@pytest.mark.parametrize(
    "text",
    ["(PREVIEW (FAST))", "(PREVIEW ())", "(PREVIEW (LAZY)", "PREVIEW[]", "(PREVIEW (LAZY X))"],
)
def test_preview_attribute_errors(text: str) -> None:
    with pytest.raises(ParseError):
        _attrs(text)


def test_objectid_attributes() -> None:
    """RFC 8474 §7: fetch-att =/ "EMAILID" / "THREADID"."""
    assert [a.response_name() for a in _attrs("(emailid THREADID)").attrs] == [
        "EMAILID",
        "THREADID",
    ]
