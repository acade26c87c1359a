from __future__ import annotations

from coi.chat.conversation import ConversationState, apply_messages
from coi.chat.model import Address, ChatMessage, MessageKind

from .conftest import parsed

ME = Address("me@example.com")
YOU = Address("you@example.org")


def _msg(
    kind: MessageKind,
    mid: str,
    sender: Address,
    text: str = "",
    target: str | None = None,
    reaction: str | None = None,
) -> ChatMessage:
    return ChatMessage(
        kind, message_id=mid, sender=sender, text=text, target_message_id=target, reaction=reaction
    )


def test_spec_chain_edit_then_delete() -> None:
    names = [
        "spec/06-edit-and-delete-messages.eml",
        "spec/07-edit-and-delete-messages.eml",
        "spec/08-edit-and-delete-messages.eml",
    ]
    messages = [parsed(n) for n in names]
    after_edit = apply_messages(ConversationState(), messages[:2])
    (shown,) = after_edit.messages
    assert shown.text == "My dear friend, this is a message to you!"
    assert shown.edited and not shown.deleted
    assert shown.history == ("My dear friend, this sdkalsk.",)
    after_delete = apply_messages(after_edit, messages[2:])
    (shown,) = after_delete.messages
    assert shown.deleted and shown.text == ""
    assert len(shown.history) == 2
    # Pure: the earlier state is untouched.
    assert after_edit.messages[0].text == "My dear friend, this is a message to you!"


def test_edit_by_someone_else_is_shown_as_a_new_message() -> None:
    state = apply_messages(
        ConversationState(),
        [
            _msg(MessageKind.TEXT, "1", ME, "original"),
            _msg(MessageKind.EDIT, "2", YOU, "forged", "1"),
        ],
    )
    assert [m.text for m in state.messages] == ["original", "forged"]
    assert not state.messages[0].edited


def test_edit_of_unknown_message_is_shown_and_empty_edit_deletes() -> None:
    state = apply_messages(
        ConversationState(),
        [
            _msg(MessageKind.EDIT, "e", ME, "orphan edit", "missing"),
            _msg(MessageKind.TEXT, "1", ME, "hello"),
            _msg(MessageKind.EDIT, "2", ME, "", "1"),
        ],
    )
    assert [m.text for m in state.messages] == ["orphan edit", ""]
    assert state.messages[1].deleted


def test_reactions_one_per_sender_and_duplicates_ignored() -> None:
    text = _msg(MessageKind.TEXT, "1", ME, "hello")
    state = apply_messages(
        ConversationState(),
        [
            text,
            text,
            _msg(MessageKind.REACTION, "r1", YOU, target="1", reaction="+1"),
            _msg(MessageKind.REACTION, "r2", YOU, target="1", reaction="<3"),
            _msg(MessageKind.REACTION, "r3", ME, target="1", reaction="!"),
            _msg(MessageKind.READ_RECEIPT, "rr", YOU),
        ],
    )
    (shown,) = state.messages
    assert shown.reactions == (("you@example.org", "<3"), ("me@example.com", "!"))
    assert state.get("1") is shown
