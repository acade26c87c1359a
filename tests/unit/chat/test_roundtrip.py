"""compose -> parse gives the model back, for every kind; composed mail is valid mail."""

from __future__ import annotations

import email
import email.message
import email.policy
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from coi.chat.compose import COI_POLICY, compose_bytes
from coi.chat.detect import is_chat_message_bytes
from coi.chat.model import ChatMessage, MessageKind
from coi.chat.parse import parse

from .strategies import chat_messages, expected_after_round_trip

KINDS = [k for k in MessageKind if k is not MessageKind.SYSTEM]  # never composed
READABLE = ("text/plain", "text/html", "image/", "audio/", "video/", "application/")


def _comparable(message: ChatMessage, original: ChatMessage) -> ChatMessage:
    return replace(
        message,
        chat_headers=(),
        html=message.html if original.html is not None else None,
    )


def _check(message: ChatMessage) -> None:
    raw = compose_bytes(message)
    strict = email.message_from_bytes(raw, policy=email.policy.strict)
    types = [part.get_content_type() for part in strict.walk() if not part.is_multipart()]
    assert any(t.startswith(READABLE) for t in types), types
    assert is_chat_message_bytes(raw)
    parsed = parse(raw)
    assert parsed.defects == ()
    expected = expected_after_round_trip(message)
    assert _comparable(parsed, message) == expected


@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_round_trip_every_kind(kind: MessageKind) -> None:
    @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
    @given(chat_messages(kind))
    def run(message: ChatMessage) -> None:
        _check(message)

    run()


@settings(max_examples=200, deadline=None)
@example("À000000ÀÀÀÀ À000ÀÀÀÀÀÀÀ À À")
@given(st.text(alphabet="À0 aé€\t", min_size=1, max_size=150).filter(lambda t: t.strip() == t))
def test_unstructured_headers_keep_every_space(text: str) -> None:
    """Python's own folder can turn a space of the text into the gap between two encoded
    words, which readers drop (RFC 2047 §6.2); found with a group name by the test above."""
    message = email.message.EmailMessage(policy=COI_POLICY)
    message["Subject"] = text
    message["Chat-Group-Name"] = text
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert str(parsed["Subject"]) == text
    assert str(parsed["Chat-Group-Name"]) == text


@pytest.mark.parametrize("quote", ["", "the answered text"])
def test_reply_whose_own_text_starts_with_a_quote_mark(quote: str) -> None:
    """A reply's own text starting with ">" is space-stuffed (RFC 3676 §4.4) and so never
    taken for the quote on top; a real quote still is (found by the round trip above)."""
    from datetime import UTC, datetime

    from coi.chat.model import Address

    message = ChatMessage(
        kind=MessageKind.TEXT,
        message_id="m1@example.org",
        sender=Address("alice@example.org", "Alice"),
        recipients=(Address("bob@example.org", ""),),
        date=datetime(2026, 12, 5, 12, 0, tzinfo=UTC),
        chat_version="1.0",
        in_reply_to="<m0@example.org>",
        references=("<m0@example.org>",),
        text=">\n> still mine\nhello",
        quote=quote,
    )
    parsed = parse(compose_bytes(message))
    assert (parsed.quote, parsed.text) == (quote, ">\n> still mine\nhello")
