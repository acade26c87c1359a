"""Modified UTF-7 (RFC 3501 §5.1.3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coi.imap.wire import mutf7


@pytest.mark.parametrize(
    ("text", "wire"),
    [
        ("INBOX", "INBOX"),
        ("", ""),
        ("&", "&-"),
        ("Entwürfe", "Entw&APw-rfe"),
        ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
        ("😀", "&2D3eAA-"),
        ("a\x01b", "a&AAE-b"),
    ],
)
def test_known(text: str, wire: str) -> None:
    assert mutf7.encode(text) == wire
    assert mutf7.decode(wire) == text


@pytest.mark.parametrize(
    "wire",
    [
        "&AGE-",  # printable "a" shifted
        "&Jjo",  # unterminated
        "&",
        "&AOQ-&AOQ-",  # two adjacent runs
        "&AOR-",  # non-zero pad bits
        "&A-",  # truncated
        "&2D3-",  # lone high surrogate
        "&AOQ=-",  # padding is not allowed
        "a\x01b",  # control char must be encoded
        "ä",  # 8-bit not allowed on the wire
        "&ZeVnLIqe/-",  # "/" is not in modified base64
    ],
)
def test_rejects(wire: str) -> None:
    with pytest.raises(ValueError):
        mutf7.decode(wire)


@given(st.text())
def test_round_trip(text: str) -> None:
    wire = mutf7.encode(text)
    assert wire.isascii()
    assert mutf7.decode(wire) == text
