from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from coi.webpush.payload import ELLIPSIS, build_payload, json_text, truncate

CHAT = (
    b"From: =?utf-8?q?Alice_M=C3=BCller?= <Alice@Example.org>\r\n"
    b"To: bob@example.org\r\n"
    b"Subject: Chat: Hello\r\n"
    b"Date: Tue, 31 Dec 2019 23:20:50 +0000\r\n"
    b"Message-ID: <chat$group.abcdefghijkl.xyz@example.org>\r\n"
    b"Chat-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=UTF-8\r\n"
    b"\r\n"
    b"hello there\r\n"
)


def test_payload_fields() -> None:
    payload = json.loads(build_payload(CHAT, uid=7, uidvalidity=123, folder="COI/Chats"))
    assert payload == {
        "from-email": "alice@example.org",
        "from-name": "Alice Müller",
        "subject": "Chat: Hello",
        "date": "2019-12-31T23:20:50+00:00",
        "msg-id": "chat$group.abcdefghijkl.xyz@example.org",
        "uid": 7,
        "uidvalidity": 123,
        "folder": "COI/Chats",
        "group-id": "abcdefghijkl",
        "content": "hello there\r\n",
    }


def test_content_dropped_when_too_big_and_type_given_otherwise() -> None:
    big = CHAT.replace(b"text/plain", b"text/html") + b"x" * 5000
    payload = json.loads(build_payload(big, uid=1, uidvalidity=1, folder="INBOX"))
    assert "content" not in payload and "content-type" not in payload
    small = CHAT.replace(b"text/plain", b"text/html")
    payload = json.loads(build_payload(small, uid=1, uidvalidity=1, folder="INBOX"))
    assert payload["content-type"] == "text/html; charset=UTF-8"


def test_missing_fields_are_omitted() -> None:
    payload = json.loads(build_payload(b"\r\nbody", uid=1, uidvalidity=2, folder="x" * 300))
    assert payload == {"uid": 1, "uidvalidity": 2, "content": "body"}


def test_truncation_keeps_sequences_whole() -> None:
    assert truncate("a" * 100, 100) == "a" * 100
    assert truncate("a" * 101, 100) == "a" * 100 + ELLIPSIS
    cut = truncate("a" * 99 + "ü", 100)  # ü is two bytes: it does not fit whole
    assert cut == "a" * 99 + ELLIPSIS
    cut = truncate("a" * 99 + '"', 100)  # the escape \" is two bytes
    assert cut == "a" * 99 + ELLIPSIS


@given(st.text(max_size=300))
def test_truncation_is_a_prefix_within_the_limit(value: str) -> None:
    cut = truncate(value, 100)
    kept = cut[:-1] if cut.endswith(ELLIPSIS) and cut != value else cut
    assert value.startswith(kept)
    assert len(json_text(kept).encode("utf-8")) <= 100


def test_raw_utf8_headers_and_an_unknown_zone() -> None:
    """RFC 6532 headers are read as UTF-8; "-0000" gives an RFC 3339 date with offset."""
    raw = (
        "From: Jürgen Müller <jürgen@example.org>\r\nSubject: Grüße\r\n"
        "Date: Mon, 4 Dec 2023 15:51:37 -0000\r\n\r\nhallo\r\n"
    ).encode()
    payload = json.loads(build_payload(raw, uid=1, uidvalidity=1, folder="INBOX"))
    assert payload["from-name"] == "Jürgen Müller"
    assert payload["subject"] == "Grüße"
    assert payload["date"] == "2023-12-04T15:51:37+00:00"
