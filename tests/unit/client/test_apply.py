"""The client spec's chat semantics on the local store, without a network."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from coi.chat import builders
from coi.chat.compose import compose_bytes
from coi.chat.model import Address, Attachment, ChatMessage, MessageKind
from coi.client.apply import Applier, safe_filename
from coi.client.profile import AccountSettings, Endpoint
from coi.client.store import LocalStore

ALICE = Address("alice@example.org", "Alice")
BOB = Address("bob@example.org", "Bob")
MALLORY = Address("mallory@example.net", "Mallory")


def applier_for(tmp_path: Path, me: Address) -> Applier:
    store = LocalStore(tmp_path / f"{me.addr}.sqlite3")
    settings = AccountSettings(me.addr, Endpoint("127.0.0.1", 1), Endpoint("127.0.0.1", 2))
    return Applier(store, store.add_account(settings), tmp_path / "files")


@pytest.fixture
def applier(tmp_path: Path) -> Applier:
    return applier_for(tmp_path, ALICE)


def deliver(applier: Applier, msg: ChatMessage, at: float) -> int:
    return applier.incoming(compose_bytes(msg), at).message


def test_text_from_unknown_sender_is_a_request_until_accepted(applier: Applier) -> None:
    first = builders.new_message(BOB, (ALICE,), "hello alice")
    row = deliver(applier, first, 10.0)
    store = applier.store
    [chat] = store.chats()
    assert chat.peer == BOB.addr and chat.request and chat.unread == 1
    assert chat.name == "Bob"
    assert store.messages(chat.id)[0].id == row
    store.accept_chat(chat.id)
    second = builders.reply(first, BOB, "again")
    deliver(applier, second, 11.0)
    [chat] = store.chats()
    assert not chat.request and chat.unread == 2
    assert [m.text for m in store.messages(chat.id)] == ["hello alice", "again"]


def test_known_message_is_not_added_twice(applier: Applier) -> None:
    msg = builders.new_message(BOB, (ALICE,), "once")
    raw = compose_bytes(msg)
    first = applier.incoming(raw, 1.0)
    again = applier.incoming(raw, 2.0)
    assert again.event == "known" and again.message == first.message
    [chat] = applier.store.chats()
    assert len(applier.store.messages(chat.id)) == 1


def test_order_is_arrival_not_date_header(applier: Applier) -> None:
    early = builders.new_message(BOB, (ALICE,), "sent first, dated late")
    late = builders.new_message(BOB, (ALICE,), "sent second, dated early")
    late = replace(late, date=early.date.replace(year=2001) if early.date else None)
    deliver(applier, early, 1.0)
    deliver(applier, late, 2.0)
    [chat] = applier.store.chats()
    texts = [m.text for m in applier.store.messages(chat.id)]
    assert texts == ["sent first, dated late", "sent second, dated early"]


def test_two_edits_then_delete_keep_history(applier: Applier) -> None:
    original = builders.new_message(BOB, (ALICE,), "tpyo")
    deliver(applier, original, 1.0)
    edit1 = builders.edit(original, "typo")
    deliver(applier, edit1, 2.0)
    edit2 = builders.edit(original, "no typo")
    deliver(applier, edit2, 3.0)
    store = applier.store
    [chat] = store.chats()
    [shown] = store.messages(chat.id)
    assert shown.text == "no typo" and shown.edited and not shown.deleted
    assert [t for t, _ in store.history(shown.id)] == ["tpyo", "typo", "no typo"]
    deliver(applier, builders.delete(original), 4.0)
    [shown] = store.messages(chat.id)
    assert shown.deleted


def test_edit_before_its_original(applier: Applier) -> None:
    original = builders.new_message(BOB, (ALICE,), "first version")
    edit = builders.edit(original, "second version")
    deliver(applier, edit, 2.0)
    assert applier.store.chats() == []
    deliver(applier, original, 1.0)
    [chat] = applier.store.chats()
    [shown] = applier.store.messages(chat.id)
    assert shown.text == "second version" and shown.edited


def test_edit_by_someone_else_is_ignored(applier: Applier) -> None:
    original = builders.new_message(BOB, (ALICE,), "mine")
    deliver(applier, original, 1.0)
    forged = replace(builders.edit(original, "forged"), sender=MALLORY, read_receipt_to=None)
    deliver(applier, forged, 2.0)
    [chat] = applier.store.chats()
    [shown] = applier.store.messages(chat.id)
    assert shown.text == "mine" and not shown.edited


def test_reactions_one_per_sender(applier: Applier) -> None:
    original = builders.new_message(ALICE, (BOB,), "how are you")
    row = deliver(applier, original, 1.0)
    deliver(applier, builders.react(original, BOB, "👍"), 2.0)
    deliver(applier, builders.react(original, BOB, "❤️"), 3.0)
    assert applier.store.reactions(row) == [(BOB.addr, "❤️")]
    deliver(applier, builders.react(original, BOB, ""), 4.0)
    assert applier.store.reactions(row) == []


def test_read_receipt_marks_our_message_read(applier: Applier) -> None:
    mine = builders.new_message(ALICE, (BOB,), "did you read this")
    row = deliver(applier, mine, 1.0)
    [chat] = applier.store.chats()
    assert not chat.request  # we wrote first
    deliver(applier, builders.read_receipt(mine, BOB), 2.0)
    assert applier.store.receipts(row) == [BOB.addr]


def test_attachment_saved_byte_identical_with_safe_name(applier: Applier, tmp_path: Path) -> None:
    data = bytes(range(256)) * 40
    msg = replace(
        builders.new_message(BOB, (ALICE,), ""),
        kind=MessageKind.MEDIA,
        attachments=(Attachment("application/octet-stream", data, "../../etc/passwd"),),
    )
    row = deliver(applier, msg, 1.0)
    [att] = applier.store.attachments(row)
    assert att.filename == "passwd"
    path = Path(att.path)
    assert path.read_bytes() == data
    assert path.is_relative_to(tmp_path / "files")


def test_safe_filename() -> None:
    assert safe_filename(".hidden") == "hidden"
    assert safe_filename("a\x00b/../c.txt") == "c.txt"
    assert safe_filename(None) == "attachment"
    assert safe_filename("C:\\x\\y.jpg") == "y.jpg"


SAMPLES = Path(__file__).parents[4] / "shared" / "samples" / "deltachat"


@pytest.fixture
def bob(tmp_path: Path) -> Applier:
    return applier_for(tmp_path, BOB)


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="shared/samples not beside the project")
def test_delta_chat_samples_land_in_the_right_chats(bob: Applier) -> None:
    for at, name in enumerate(
        ["plain-one_to_one.eml", "plain-attachment.eml", "plain-group.eml", "e2ee-one_to_one.eml"]
    ):
        bob.incoming((SAMPLES / name).read_bytes(), float(at))
    chats = {c.key: c for c in bob.store.chats()}
    one = chats["contact:alice@example.org"]
    assert one.name == "Alice" and one.request
    texts = [m.kind for m in bob.store.messages(one.id)]
    assert texts[:2] == ["text", "media"]
    [media] = [m for m in bob.store.messages(one.id) if m.kind == "media"]
    [att] = bob.store.attachments(media.id)
    assert att.size > 0
    groups = [c for k, c in chats.items() if k.startswith("adhoc:")]
    assert len(groups) == 1  # Delta Chat's ad-hoc group (no group id) is one chat
