"""Group changes on the local store (coi.client.groups through the Applier)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from tests.unit.client.test_apply import applier_for

from coi.chat import builders
from coi.chat.compose import compose_bytes
from coi.chat.model import Address, ChatMessage, Dialect, GroupRef, MessageKind
from coi.client import groups
from coi.client.apply import Applier

ALICE = Address("alice@example.org", "Alice")
BOB = Address("bob@example.org", "Bob")
CAROL = Address("carol@example.org")
DAVE = Address("dave@example.org")
GID = "Trip2026group-id"
TRIP = GroupRef(GID, "Trip")


@pytest.fixture
def alice(tmp_path: Path) -> Applier:
    return applier_for(tmp_path, ALICE)


def deliver(applier: Applier, msg: ChatMessage, at: float) -> int:
    return applier.incoming(compose_bytes(msg), at).message


def group_msg(
    sender: Address, to: tuple[Address, ...], text: str, **changes: object
) -> ChatMessage:
    return replace(builders.new_message(sender, to, text, group=TRIP), **changes)  # type: ignore[arg-type]


def lines(applier: Applier) -> list[tuple[str, str, str]]:
    [chat] = applier.store.chats()
    return [(m.kind, m.sender, m.text) for m in applier.store.messages(chat.id)]


def members(applier: Applier) -> list[str]:
    [chat] = applier.store.chats()
    return applier.store.members(chat.id)


def test_rename_add_remove_leave_and_readd(alice: Applier) -> None:
    deliver(alice, group_msg(BOB, (ALICE, CAROL), "hi all"), 1.0)
    assert members(alice) == [BOB.addr, CAROL.addr]
    renamed = group_msg(
        BOB, (ALICE, CAROL), "renamed", group=GroupRef(GID, "Trip 2026"),
        system_event="group-name-changed", chat_headers=(("chat-group-name-changed", "Trip"),),
    )  # fmt: skip
    deliver(alice, renamed, 2.0)
    assert alice.store.chats()[0].name == "Trip 2026"
    deliver(alice, group_msg(CAROL, (ALICE, BOB, DAVE), "added", members_added=(DAVE.addr,)), 3.0)
    assert members(alice) == [BOB.addr, CAROL.addr, DAVE.addr]
    deliver(alice, group_msg(BOB, (ALICE, CAROL, DAVE), "out", members_removed=(CAROL.addr,)), 4.0)
    assert members(alice) == [BOB.addr, DAVE.addr]
    # a later message still naming carol in To does not bring her back, nor does a
    # message to fewer people remove anyone
    deliver(alice, group_msg(BOB, (ALICE,), "just to alice? no: to the group"), 5.0)
    assert members(alice) == [BOB.addr, DAVE.addr]
    left = builders.leave_group(group_msg(DAVE, (ALICE, BOB), "x"), DAVE, "bye")
    deliver(alice, left, 6.0)
    assert members(alice) == [BOB.addr]
    deliver(alice, group_msg(BOB, (ALICE, DAVE), "back", members_added=(DAVE.addr,)), 7.0)
    assert members(alice) == [BOB.addr, DAVE.addr]
    assert [(k, s, t) for k, s, t in lines(alice) if k == "system"] == [
        ("system", BOB.addr, 'renamed "Trip" to "Trip 2026"'),
        ("system", CAROL.addr, "added dave@example.org"),
        ("system", BOB.addr, "removed carol@example.org"),
        ("system", DAVE.addr, "left the group"),
        ("system", BOB.addr, "added dave@example.org"),
    ]


def test_removed_then_readded_we_may_send_again(alice: Applier) -> None:
    deliver(alice, group_msg(BOB, (ALICE, CAROL), "hi"), 1.0)
    deliver(alice, group_msg(BOB, (ALICE, CAROL), "bye alice", members_removed=(ALICE.addr,)), 2)
    [chat] = alice.store.chats()
    assert groups.has_left(alice.store, chat.id)
    deliver(alice, group_msg(BOB, (ALICE, CAROL), "welcome back", members_added=(ALICE.addr,)), 3)
    assert not groups.has_left(alice.store, chat.id)
    assert groups.info(alice.store, chat).members == (BOB.addr, CAROL.addr)


def test_our_own_leave_stops_sending(alice: Applier) -> None:
    deliver(alice, group_msg(BOB, (ALICE, CAROL), "hi"), 1.0)
    leave = group_msg(
        ALICE, (BOB, CAROL), "Group left.", kind=MessageKind.GROUP_LEFT,
        members_removed=(ALICE.addr,), system_event="member-removed",
    )  # fmt: skip
    alice.outgoing(leave, compose_bytes(leave), 2.0)
    [chat] = alice.store.chats()
    assert groups.has_left(alice.store, chat.id)
    assert lines(alice)[-1] == ("system", ALICE.addr, "left the group")
    with pytest.raises(Exception, match="no longer a member"):
        groups.check_can_send(alice.store, chat)


def test_reply_instead_of_reply_all_goes_to_the_one_to_one_chat(alice: Applier) -> None:
    first = group_msg(ALICE, (BOB, CAROL), "where do we meet?")
    alice.outgoing(first, compose_bytes(first), 1.0)
    # bob's mail program answers alice only: found through References, drops carol
    answer = replace(
        builders.reply(first, BOB, "at noon"), recipients=(ALICE,), chat_version=None,
        group=None, dialect=Dialect.EMAIL, message_id="plain.1@example.org",
    )  # fmt: skip
    deliver(alice, answer, 2.0)
    chats = {c.key.partition(":")[0]: c for c in alice.store.chats()}
    assert [m.text for m in alice.store.messages(chats["contact"].id)] == ["at noon"]
    assert [m.text for m in alice.store.messages(chats["group"].id)] == ["where do we meet?"]
    assert alice.store.members(chats["group"].id) == [BOB.addr, CAROL.addr]
    # a reply all stays in the group
    everyone = replace(answer, recipients=(ALICE, CAROL), message_id="plain.2@example.org")
    deliver(alice, everyone, 3.0)
    assert len(alice.store.messages(chats["group"].id)) == 2


def test_mailing_list_mail_is_never_a_group(alice: Applier) -> None:
    first = group_msg(ALICE, (BOB, CAROL), "hi")
    alice.outgoing(first, compose_bytes(first), 1.0)
    post = replace(
        builders.reply(first, BOB, "list post"), recipients=(Address("list@example.org"),),
        message_id="post.1@example.org", chat_version=None, dialect=Dialect.EMAIL,
    )  # fmt: skip
    raw = b"List-Id: <list.example.org>\r\n" + compose_bytes(post)
    alice.incoming(raw, 2.0)
    by_kind = {c.key.partition(":")[0]: c for c in alice.store.chats()}
    assert [m.text for m in alice.store.messages(by_kind["contact"].id)] == ["list post"]
    assert by_kind["contact"].peer == "list@example.org"  # the list's chat
    assert [m.text for m in alice.store.messages(by_kind["group"].id)] == ["hi"]


LIST = Address("list@example.org")
LIST_HEADERS = b"List-Id: Hikers <hikers.example.org>\r\nList-Post: <mailto:list@example.org>\r\n"


def post(sender: Address, text: str, mid: str, refs: tuple[str, ...] = ()) -> ChatMessage:
    msg = builders.new_message(sender, (LIST, ALICE), text)
    return replace(msg, message_id=mid, references=refs, chat_version=None, dialect=Dialect.EMAIL)


def test_a_list_post_also_sent_directly_shows_once_in_the_list_chat(alice: Applier) -> None:
    """coi-client-spec: Group Messaging and Mailing Lists: the direct copy of a list post
    (the list's address in To, the thread's first message in the list's chat) is not
    shown in a 1:1 chat with its sender."""
    first = post(BOB, "walk on sunday?", "walk.1@example.org")
    alice.incoming(LIST_HEADERS + compose_bytes(first), 1.0)
    # carol answers bob and the list: the direct copy first, the list's copy later
    answer = post(CAROL, "count me in", "walk.2@example.org", ("walk.1@example.org",))
    alice.incoming(compose_bytes(answer), 2.0)
    alice.incoming(LIST_HEADERS + compose_bytes(answer), 3.0)
    # a new thread: the direct copy comes first, then the list's copy moves it
    other = post(BOB, "new route", "route.1@example.org")
    alice.incoming(compose_bytes(other), 4.0)
    alice.incoming(LIST_HEADERS + compose_bytes(other), 5.0)
    shown = {c.peer: [m.text for m in alice.store.messages(c.id)] for c in alice.store.chats()}
    shown = {peer: texts for peer, texts in shown.items() if texts}
    assert shown == {"list@example.org": ["walk on sunday?", "count me in", "new route"]}
    [chat] = [c for c in alice.store.chats() if c.peer == "list@example.org"]
    assert chat.name == "Hikers"
    # a private answer (not to the list) stays in the 1:1 chat
    private = replace(
        post(CAROL, "just you and me", "walk.3@example.org", ("walk.1@example.org",)),
        recipients=(ALICE,),
    )
    alice.incoming(compose_bytes(private), 6.0)
    assert [m.text for m in alice.store.messages(alice.store.chat_by_peer(1, CAROL.addr).id)] == [  # type: ignore[union-attr]
        "just you and me"
    ]


def test_ad_hoc_group_without_id_stays_one_chat(alice: Applier) -> None:
    adhoc = GroupRef(None, "Lunch")
    one = builders.new_message(BOB, (ALICE, CAROL), "lunch?", group=adhoc)
    two = builders.new_message(CAROL, (ALICE, BOB), "yes", group=adhoc)
    deliver(alice, one, 1.0)
    deliver(alice, two, 2.0)
    [chat] = alice.store.chats()
    assert chat.key.startswith("adhoc:")
    assert [m.text for m in alice.store.messages(chat.id)] == ["lunch?", "yes"]


def test_unknown_group_is_created_from_its_first_message(alice: Applier) -> None:
    deliver(alice, group_msg(CAROL, (ALICE, BOB), "you are in"), 1.0)
    [chat] = alice.store.chats()
    assert chat.key == f"group:{GID}" and chat.name == "Trip"
    assert members(alice) == [BOB.addr, CAROL.addr]


def test_compose_writes_delta_chat_headers() -> None:
    msg = group_msg(
        ALICE, (BOB, CAROL), "x", members_added=(CAROL.addr,),
        chat_headers=(("chat-group-name-changed", "Old"),),
    )  # fmt: skip
    raw = compose_bytes(msg)
    assert b"Chat-Group-Member-Added: carol@example.org" in raw
    assert b"Chat-Group-Name-Changed: Old" in raw
    assert b"Chat-Group-ID: " + GID.encode() in raw


def test_coi_change_lists_everyone_in_its_groupinfo_part(tmp_path: Path) -> None:
    carol = applier_for(tmp_path, CAROL)
    deliver(carol, group_msg(ALICE, (BOB, CAROL), "hi"), 1.0)
    after = [BOB.addr, CAROL.addr, DAVE.addr]
    added = replace(
        groups._message(ALICE, after, "Member dave added.", GID, "Trip", after),
        system_event="member-added", members_added=(DAVE.addr,),
    )  # fmt: skip
    raw = compose_bytes(added)
    assert b"Chat-Content: groupinfo" in raw and b"Chat-Group-Member-Added: dave" in raw
    deliver(carol, added, 2.0)
    assert members(carol) == [ALICE.addr, BOB.addr, DAVE.addr]
    assert lines(carol)[-1] == ("system", ALICE.addr, "added dave@example.org")


def test_request_group_information_and_answer(alice: Applier) -> None:
    # the group's first message never reached us: we rebuild it and ask
    first = group_msg(BOB, (ALICE, CAROL), "first")
    deliver(alice, builders.reply(first, CAROL, "second"), 1.0)
    [chat] = alice.store.chats()
    mine = groups.with_pending(alice.store, chat, group_msg(ALICE, (BOB, CAROL), "hello"))
    assert mine.requests_group_info and mine.group_info is None
    assert b"Chat-Content: grouprequested" in compose_bytes(mine)
    alice.outgoing(mine, compose_bytes(mine), 2.0)
    again = groups.with_pending(alice.store, chat, group_msg(ALICE, (BOB, CAROL), "again"))
    assert not again.requests_group_info
    # bob asks: our next message carries the groupinfo part with every member
    asking = replace(group_msg(BOB, (ALICE, CAROL), "who is here?"), requests_group_info=True)
    deliver(alice, asking, 3.0)
    answer = groups.with_pending(alice.store, chat, group_msg(ALICE, (BOB, CAROL), "we are"))
    assert answer.group_info is not None
    assert [c.emails for c in answer.group_info.participants] == [
        (ALICE.addr,),
        (BOB.addr,),
        (CAROL.addr,),
    ]
    alice.outgoing(answer, compose_bytes(answer), 4.0)
    last = groups.with_pending(alice.store, chat, group_msg(ALICE, (BOB, CAROL), "done"))
    assert last.group_info is None and not last.requests_group_info
