from __future__ import annotations

from dataclasses import replace

from coi.chat.groups import GroupState, apply_group_messages
from coi.chat.model import Address, ChatMessage, Dialect, GroupInfo, GroupRef, MessageKind

from .conftest import parsed

GID = "1234abcd4321"


def _message(
    sender: str,
    *to: str,
    kind: MessageKind = MessageKind.TEXT,
    subject_name: str = "My Crew",
    dialect: Dialect = Dialect.COI,
) -> ChatMessage:
    return ChatMessage(
        kind,
        sender=Address(sender),
        recipients=tuple(Address(a) for a in to),
        group=GroupRef(GID, subject_name),
        dialect=dialect,
        chat_version="1.0" if dialect is not Dialect.EMAIL else None,
    )


def test_spec_groupinfo_then_leave() -> None:
    info = parsed("spec/16-group-information-message-part.eml")
    left = parsed("spec/17-leaving-a-group-group-participant-left-message.eml")
    state = apply_group_messages(GroupState(GID), [info])
    assert state.name == "My Crew"
    assert state.description == "This is just a fun place to hang out virtually"
    assert state.members == ("alice@example.com", "john.doe@example.com", "carrol@example.com")
    # Bob left (he was never a member here, so only the "left" list changes).
    state = apply_group_messages(state, [left])
    assert state.left == ("bob@example.com",)


def test_members_follow_recipients_and_leaving_removes_the_sender() -> None:
    state = apply_group_messages(
        GroupState(GID),
        [
            _message("a@x.org", "b@x.org", "c@x.org"),
            _message("b@x.org", "a@x.org", "c@x.org", "d@x.org", subject_name="New name"),
            _message("c@x.org", "a@x.org", "b@x.org", "d@x.org", kind=MessageKind.GROUP_LEFT),
        ],
    )
    assert state.name == "New name"
    assert state.members == ("b@x.org", "a@x.org", "d@x.org")
    assert state.left == ("c@x.org",)


def test_plain_reply_instead_of_reply_all_changes_nothing() -> None:
    start = apply_group_messages(GroupState(GID), [_message("a@x.org", "b@x.org", "c@x.org")])
    reply = _message("b@x.org", "a@x.org", dialect=Dialect.EMAIL)
    assert apply_group_messages(start, [reply]).members == start.members


def test_other_groups_and_delta_member_headers() -> None:
    start = GroupState(GID, members=("a@x.org", "b@x.org"))
    other = replace(_message("z@x.org", "y@x.org"), group=GroupRef("otherotherother"))
    added = replace(_message("a@x.org", "b@x.org", "c@x.org"), members_added=("c@x.org",))
    removed = replace(_message("a@x.org", "c@x.org"), members_removed=("b@x.org",))
    info = replace(_message("a@x.org", "c@x.org"), group_info=GroupInfo(GID, "", "desc"))
    state = apply_group_messages(start, [other, added, removed, info])
    assert state.members == ("a@x.org", "c@x.org")
    assert state.description == "desc"
