"""Replies carry the answered text quoted on top, and read back without it."""

from __future__ import annotations

from coi.chat import builders
from coi.chat.compose import compose_bytes
from coi.chat.model import Address
from coi.chat.parse import parse

ALICE = Address("alice@example.org")
BOB = Address("bob@example.org")


def test_reply_quotes_the_original_on_top() -> None:
    original = builders.new_message(ALICE, (BOB,), "shall we meet\nat noon?")
    answer = builders.reply(original, BOB, "yes, at noon", quote=True)
    raw = compose_bytes(answer)
    assert b"> shall we meet\r\n> at noon?\r\n\r\nyes, at noon" in raw
    back = parse(raw)
    assert back.text == "yes, at noon"
    assert back.quote == "shall we meet\nat noon?"
    assert back.in_reply_to == original.message_id


def test_no_quote_by_default_and_quote_marks_without_reply_stay_text() -> None:
    original = builders.new_message(ALICE, (BOB,), "hi")
    assert parse(compose_bytes(builders.reply(original, BOB, "ho"))).quote == ""
    lone = builders.new_message(ALICE, (BOB,), "> not a quote of anything\nreally")
    back = parse(compose_bytes(lone))
    assert back.quote == "" and back.text.startswith("> not a quote")
