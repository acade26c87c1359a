from __future__ import annotations

import email
import email.policy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coi.chat.detect import is_chat_message, is_chat_message_bytes

from .conftest import DATA

CASES = [
    (b"Chat-Version: 1.0\r\nFrom: a@b\r\n\r\nbody", True),
    (b"chat-version: 1.0;name=value\n\nbody", True),
    (b"Message-ID: <chat$abc@x.org>\r\n\r\n", True),
    (b"Message-ID: <abc@x.org>\r\nReferences: <chat$first@x> <other@x>\r\n\r\n", True),
    (b"Message-ID: <abc@x.org>\r\nReferences:\r\n <chat$first@x>\r\n <other@x>\r\n\r\n", True),
    (b"Message-ID: <abc@x.org>\r\nReferences: <first@x> <chat$last@x>\r\n\r\n", False),
    (b"Message-ID: <abc@x.org>\r\nSubject: chat$ in subject\r\n\r\n", False),
    (b"Subject: hi\r\n\r\nChat-Version: 1.0 (in the body, not a header)\r\n", False),
    (b"X-Chat-Version: 1.0\r\n\r\n", False),
    (b"", False),
]


@pytest.mark.parametrize(("raw", "expected"), CASES)
def test_raw_and_parsed_detection_agree(raw: bytes, expected: bool) -> None:
    assert is_chat_message_bytes(raw) is expected
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert is_chat_message(message) is expected


def test_mapping_and_pairs_are_accepted() -> None:
    assert is_chat_message({"Message-ID": "<chat$1@x>"})
    assert is_chat_message({"references": ["<chat$1@x> <2@x>"]})
    assert is_chat_message([("Chat-Version", "1.0")])
    assert not is_chat_message({"Subject": "hello"})


def test_all_fixtures_are_chat_messages_except_keyupdate() -> None:
    for path in sorted(DATA.glob("*/*.eml")):
        raw = path.read_bytes()
        # Delta Chat's key update has no Chat-Version (and is not encrypted here).
        expected = path.name != "keyupdate.inner.eml"
        assert is_chat_message_bytes(raw) is expected, path.name


def test_strict_rule_misses_the_encrypted_outer() -> None:
    for path in sorted(DATA.glob("*/*.eml")):
        raw = path.read_bytes()
        # The outer PGP/MIME envelope hides every spec marker.
        encrypted_outer = b"multipart/encrypted" in raw.split(b"\r\n\r\n", 1)[0]
        expected = not encrypted_outer and path.name != "keyupdate.inner.eml"
        assert is_chat_message_bytes(raw, detect_encrypted=False) is expected, path.name


@given(st.binary(max_size=2000))
def test_bytes_detection_never_raises(raw: bytes) -> None:
    assert isinstance(is_chat_message_bytes(raw), bool)


def test_bytes_detection_is_fast_on_huge_headers() -> None:
    import time

    raw = b"X-Junk: " + b"a" * 5_000_000 + b"\r\nReferences: " + b"<x@y> " * 200_000 + b"\r\n\r\n"
    start = time.process_time()
    assert not is_chat_message_bytes(raw)
    assert time.process_time() - start < 2.0


_header_lines = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "Chat-Version",
                "Message-ID",
                "References",
                "Subject",
                "X-Other",
                "chat-version",
                "Content-Type",
                "subject",
            ]
        ),
        st.one_of(
            st.sampled_from(
                [
                    "1.0",
                    "<chat$a@b>",
                    "<a@b>",
                    " <chat$x@y> <z@w>",
                    "<z@w> <chat$x@y>",
                    "",
                    "[...]",
                    " [...] ",
                    "...",
                    'multipart/encrypted; protocol="application/pgp-encrypted"; boundary=x',
                    "multipart/encrypted; protocol=application/pgp-encrypted",
                    'multipart/signed; protocol="application/pgp-signature"',
                ]
            ),
            st.from_regex(r"[ -~]{0,30}", fullmatch=True),
        ),
    ),
    max_size=6,
)


@given(_header_lines)
def test_raw_and_parsed_detection_agree_on_generated_headers(lines: list[tuple[str, str]]) -> None:
    raw = "".join(f"{name}: {value}\r\n" for name, value in lines).encode() + b"\r\nbody"
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert is_chat_message_bytes(raw) is is_chat_message(message)
    assert is_chat_message_bytes(raw, detect_encrypted=False) is is_chat_message(
        message, detect_encrypted=False
    )
