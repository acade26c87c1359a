from __future__ import annotations

from dataclasses import replace

import pytest

from coi.chat import builders, polls
from coi.chat.compose import compose, compose_bytes
from coi.chat.conversation import ConversationState, apply_messages
from coi.chat.headers import group_id_from_message_id
from coi.chat.model import Address, ChatMessage, GroupRef, MessageKind, Poll, PollOption
from coi.chat.parse import parse

ALICE = Address("alice@example.org", "Alice")
BOB = Address("bob@example.org", "Bob")
CAROL = Address("carol@example.org")
GROUP = GroupRef("4321dcba1234", "My Crew")


def _trip(message: ChatMessage) -> ChatMessage:
    return parse(compose_bytes(message))


def test_group_thread_reply_all_and_references() -> None:
    first = builders.new_message(ALICE, (BOB, CAROL), "Hi gang", GROUP)
    assert group_id_from_message_id(first.message_id) == GROUP.id
    second = builders.reply(_trip(first), BOB, "hey")
    third = builders.reply(_trip(second), CAROL, "yo")
    assert {a.addr for a in third.recipients} == {"alice@example.org", "bob@example.org"}
    assert third.references == (first.message_id, second.message_id)
    assert third.in_reply_to == second.message_id
    assert _trip(third).group == GROUP


def test_edit_delete_and_reaction_apply_to_the_conversation() -> None:
    original = builders.new_message(ALICE, (BOB,), "typo hree")
    fixed = builders.edit(original, "typo here")
    removed = builders.delete(_trip(fixed))
    thumbs = builders.react(original, BOB, "\U0001f44d")
    trips = [_trip(m) for m in (original, fixed, thumbs, removed)]
    assert [m.kind for m in trips] == [
        MessageKind.TEXT,
        MessageKind.EDIT,
        MessageKind.REACTION,
        MessageKind.DELETE,
    ]
    state = apply_messages(ConversationState(), trips)
    (shown,) = state.messages
    assert shown.deleted and shown.history == ("typo hree", "typo here")
    assert shown.reactions == (("bob@example.org", "\U0001f44d"),)


def test_edits_and_deletes_name_the_original_for_delta_chat() -> None:
    """Delta Chat applies Chat-Edit/Chat-Delete only to the original id; the COI
    spec wants In-Reply-To to name the last edit."""
    original = _trip(builders.new_message(ALICE, (BOB,), "v1"))
    first = _trip(builders.edit(original, "v2"))
    second = builders.edit(original, "v3", previous=first)
    assert builders.edit(first, "v3").target_message_id == original.message_id
    removed = builders.delete(original, previous=first)
    for message in (second, removed):
        raw = compose(message)
        header = "Chat-Edit" if message.kind is MessageKind.EDIT else "Chat-Delete"
        assert raw[header] == f"<{original.message_id}>"
        assert raw["In-Reply-To"] == f"<{first.message_id}>"
        back = parse(raw.as_bytes())
        assert back.target_message_id == original.message_id
        assert back.in_reply_to == first.message_id
    state = apply_messages(ConversationState(), [original, first, _trip(second)])
    assert [m.text for m in state.messages] == ["v3"]
    with pytest.raises(ValueError, match="previous"):
        builders.edit(original, "x", previous=_trip(builders.new_message(ALICE, (BOB,), "other")))


def test_pure_coi_edit_of_an_edit_targets_in_reply_to() -> None:
    original = _trip(builders.new_message(ALICE, (BOB,), "v1"))
    first = _trip(builders.edit(original, "v2"))
    raw = compose(builders.edit(original, "v3", previous=first))
    del raw["Chat-Edit"]
    assert parse(raw.as_bytes()).target_message_id == first.message_id


def test_receipts_are_asked_of_chat_clients_only_by_default() -> None:
    """Delta Chat writes only Chat-Disposition-Notification-To (see its samples);
    Disposition-Notification-To makes mail programs ask about every message."""
    plain = compose(builders.new_message(ALICE, (BOB,), "hi"))
    assert plain["Chat-Disposition-Notification-To"] == ALICE.addr
    assert "Disposition-Notification-To" not in plain
    answer = compose(builders.reply(_trip(builders.new_message(BOB, (ALICE,), "yo")), ALICE, "hi"))
    assert "Disposition-Notification-To" not in answer
    both = compose(builders.new_message(ALICE, (BOB,), "hi", read_receipt_from_mail_programs=True))
    assert both["Disposition-Notification-To"] == "Alice <alice@example.org>"
    assert both["Chat-Disposition-Notification-To"] == ALICE.addr
    chat_only, asked_all = parse(plain.as_bytes()), parse(both.as_bytes())
    assert chat_only.read_receipt_to == asked_all.read_receipt_to == ALICE
    assert not chat_only.read_receipt_from_mail_programs
    assert asked_all.read_receipt_from_mail_programs
    del both["Chat-Disposition-Notification-To"]
    assert parse(both.as_bytes()).read_receipt_to == ALICE
    assert builders.read_receipt(chat_only, BOB).recipients == (ALICE,)


def test_read_receipt_for_a_requesting_message() -> None:
    original = _trip(builders.new_message(ALICE, (BOB,), "read me"))
    receipt = _trip(builders.read_receipt(original, BOB))
    assert receipt.kind is MessageKind.READ_RECEIPT
    assert receipt.receipt is not None
    assert receipt.receipt.original_message_id == original.message_id
    assert receipt.recipients == (ALICE,)


def test_poll_vote_close_through_the_wire() -> None:
    poll = Poll("Lunch?", (PollOption("Pizza"), PollOption("Sushi")))
    poll_message = replace(
        builders.new_message(ALICE, (BOB, CAROL), "", GROUP),
        kind=MessageKind.POLL,
        poll=poll,
        text=polls.poll_text(poll),
    )
    received = _trip(poll_message)
    votes = [
        _trip(builders.vote(received, BOB, (1,))),
        _trip(builders.vote(received, CAROL, (0, 1))),
    ]
    closing = _trip(builders.close_poll(received, (1, 2)))
    result = polls.tally(received, [*votes, closing])
    assert result.counts == (1, 2)
    assert result.closed
    assert "Sushi" in votes[0].text


def test_leave_group_sets_reply_to_to_the_others() -> None:
    last = _trip(builders.new_message(ALICE, (BOB, CAROL), "plans?", GROUP))
    left = _trip(builders.leave_group(last, BOB, "bye"))
    assert left.kind is MessageKind.GROUP_LEFT
    assert {a.addr for a in left.reply_to} == {"alice@example.org", "carol@example.org"}
