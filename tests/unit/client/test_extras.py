"""Profiles, pins, polls, locations, extensions and export on the local store."""

from __future__ import annotations

import base64
import json
import mailbox
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.unit.client.test_apply import ALICE, BOB, applier_for, deliver

from coi.chat import builders
from coi.chat.compose import compose_bytes
from coi.chat.model import (
    Address,
    Attachment,
    Card,
    Extension,
    Location,
    MessageKind,
    Pin,
    Poll,
    PollOption,
    Profile,
)
from coi.chat.polls import poll_text
from coi.client import extras, profiles

CAROL = Address("carol@example.org", "Carol")
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def test_received_profile_names_the_contact_and_saves_the_avatar(tmp_path: Path) -> None:
    applier = applier_for(tmp_path, ALICE)
    photo = "data:image/png;base64," + base64.b64encode(PNG).decode()
    card = Card(name="Bob Builder", emails=(BOB.addr,), photo=photo, status="gone fishing")
    msg = replace(builders.new_message(BOB, (ALICE,), "hi"), profiles=(Profile(card),))
    deliver(applier, msg, 10.0)
    info = profiles.get(applier.store, applier.account, BOB.addr)
    assert info is not None and info.name == "Bob Builder" and info.status == "gone fishing"
    assert Path(info.avatar).read_bytes() == PNG
    assert Path(info.avatar).is_relative_to(tmp_path / "files")
    [chat] = applier.store.chats()
    assert chat.name == "Bob Builder"
    # an older message (by its Date) does not undo it; Delta Chat's From name and avatar do
    old = builders.new_message(Address(BOB.addr, "Old Bob"), (ALICE,), "old")
    assert old.date is not None
    deliver(applier, replace(old, date=old.date - timedelta(days=1)), 11.0)
    assert profiles.get(applier.store, applier.account, BOB.addr).name == "Bob Builder"  # type: ignore[union-attr]
    dc = builders.new_message(Address(BOB.addr, "Bobby"), (ALICE,), "from Delta Chat")
    dc = replace(dc, date=dc.date + timedelta(seconds=5))  # type: ignore[operator]
    raw = b"Chat-User-Avatar: 0\r\n" + compose_bytes(dc)
    applier.incoming(raw, 12.0)
    info = profiles.get(applier.store, applier.account, BOB.addr)
    assert info is not None and info.name == "Bobby" and info.avatar == ""
    dc = replace(dc, message_id="dc2@example.org", date=dc.date + timedelta(seconds=5))  # type: ignore[operator]
    header = b"Chat-User-Avatar: base64:" + base64.b64encode(PNG)[:40] + b"\r\n "
    applier.incoming(header + base64.b64encode(PNG)[40:] + b"\r\n" + compose_bytes(dc), 13.0)
    info = profiles.get(applier.store, applier.account, BOB.addr)
    assert info is not None and info.avatar.endswith(".png")
    assert Path(info.avatar).read_bytes() == PNG


def test_our_avatar_goes_to_delta_chat_in_chat_user_avatar(tmp_path: Path) -> None:
    applier = applier_for(tmp_path, ALICE)
    store, account = applier.store, applier.account
    avatar = tmp_path / "me.png"
    avatar.write_bytes(PNG)
    profiles.set_own(store, account, tmp_path / "files" / "1", name="Alice", avatar=avatar)
    msg = profiles.prepare(store, account, builders.new_message(ALICE, (BOB,), "hi"))
    raw = profiles.with_avatar_header(store, account, msg, compose_bytes(msg))
    assert raw.startswith(b"Chat-User-Avatar: base64:")
    lines = raw.split(b"\r\n")
    end = next(i for i in range(1, len(lines)) if not lines[i].startswith(b" "))
    header = b"\r\n".join(lines[:end]) + b"\r\n"
    bob = applier_for(tmp_path, BOB)  # the header alone, as Delta Chat sends it
    bob.incoming(header + compose_bytes(replace(msg, profiles=())), 1.0)
    info = profiles.get(bob.store, bob.account, ALICE.addr)
    assert info is not None and Path(info.avatar).read_bytes() == PNG


def test_profile_request_makes_the_next_message_carry_the_profile(tmp_path: Path) -> None:
    applier = applier_for(tmp_path, ALICE)
    store, account = applier.store, applier.account
    profiles.set_own(store, account, tmp_path / "files" / "1", name="Alice A", status="here")
    first = builders.new_message(Address(ALICE.addr, "Alice A"), (BOB,), "hello")
    prepared = profiles.prepare(store, account, first)
    assert prepared.profiles and prepared.profiles[0].card.name == "Alice A"
    profiles.sent(store, account, prepared)
    assert not profiles.prepare(store, account, first).profiles  # bob has it
    request = replace(builders.new_message(BOB, (ALICE,), "who are you?"), requests_profile=True)
    deliver(applier, request, 5.0)
    assert profiles.prepare(store, account, first).profiles  # asked again
    profiles.want(store, account, BOB.addr)
    asking = profiles.prepare(store, account, first)
    assert asking.requests_profile
    profiles.sent(store, account, asking)
    assert not profiles.prepare(store, account, first).requests_profile


def test_pin_with_expiry_and_a_newer_pin(tmp_path: Path) -> None:
    applier = applier_for(tmp_path, ALICE)
    store = applier.store
    store.remember_contact(applier.account.id, BOB.addr, "", True)
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    msg = replace(builders.new_message(BOB, (ALICE,), "meeting at 5"), pin=Pin(until))
    row = deliver(applier, msg, 10.0)
    [chat] = store.chats()
    pin = extras.active_pin(store, chat.id)
    assert pin is not None and pin.message == row and pin.until == until.timestamp()
    assert extras.active_pin(store, chat.id, now=until.timestamp() + 1) is None  # expired
    message = store.message(row)
    assert message is not None and extras.notes(store, message)[0].startswith("pinned until")
    newer = replace(builders.new_message(BOB, (ALICE,), "no, at 6"), pin=Pin())
    row2 = deliver(applier, newer, 11.0)
    pin = extras.active_pin(store, chat.id)
    assert pin is not None and pin.message == row2 and pin.until == 0
    assert extras.unpin(store, chat.id) == 2
    assert extras.active_pin(store, chat.id) is None


def test_poll_votes_from_two_members_and_close(tmp_path: Path) -> None:
    applier = applier_for(tmp_path, ALICE)
    store = applier.store
    poll = Poll("Movie?", (PollOption("E.T."), PollOption("Alien")), multiple_choice=False)
    start = builders.new_message(ALICE, (BOB, CAROL), poll_text(poll))
    start = replace(start, kind=MessageKind.POLL, poll=poll)
    applier.outgoing(start, compose_bytes(start), 1.0)
    voted = applier.incoming(compose_bytes(builders.vote(start, BOB, (0,))), 2.0)
    assert voted.event == "vote" and voted.target is not None  # coi watch shows the tally
    deliver(applier, builders.vote(start, CAROL, (1,)), 3.0)
    deliver(applier, builders.vote(start, CAROL, (0,)), 4.0)  # re-vote replaces
    deliver(applier, builders.vote(start, BOB, (0, 1)), 5.0)  # invalid: single choice
    row = store.message_by_mid(applier.account.id, start.message_id)
    assert row is not None and row.visible
    found = extras.poll_result(store, row)
    assert found is not None and found[1].counts == (2, 0) and not found[1].closed
    close = builders.close_poll(start, found[1].counts)
    applier.outgoing(close, compose_bytes(close), 6.0)
    deliver(applier, builders.vote(start, CAROL, (1,)), 7.0)  # too late
    found = extras.poll_result(store, row)
    assert found is not None and found[1].counts == (2, 0) and found[1].closed
    assert extras.notes(store, row) == ["votes: 1. E.T.: 2, 2. Alien: 0 (closed)"]


def test_location_and_extension_are_shown(tmp_path: Path) -> None:
    applier = applier_for(tmp_path, ALICE)
    store = applier.store
    here = builders.new_message(BOB, (ALICE,), "Let's meet here.")
    here = replace(here, kind=MessageKind.LOCATION, location=Location(53.07516, 8.80777))
    row = store.message(deliver(applier, here, 1.0))
    assert row is not None and row.visible and row.text == "Let's meet here."
    assert extras.notes(store, row) == ["location 53.07516, 8.80777 (geo:53.07516,8.80777)"]
    ext = builders.new_message(BOB, (ALICE,), "You got a sticker (use Awesome Client)")
    data = Attachment("application/json", b'{"sticker": 1}', "sticker.json")
    ext = replace(
        ext, kind=MessageKind.EXTENSION, extension=Extension("com.example.Sticker", (data,))
    )
    row = store.message(deliver(applier, ext, 2.0))
    assert row is not None and row.visible
    assert row.text == "You got a sticker (use Awesome Client)"
    assert extras.notes(store, row) == ["extension com.example.Sticker"]


def test_export_text_json_mbox(tmp_path: Path) -> None:
    applier = applier_for(tmp_path, ALICE)
    store = applier.store
    deliver(applier, builders.new_message(BOB, (ALICE,), "From here on\n>From quoted"), 1.0)
    deliver(applier, builders.new_message(BOB, (ALICE,), "second"), 2.0)
    [chat] = store.chats()
    text = extras.export(store, chat, "text").decode()
    assert "Bob: second" in text
    data = json.loads(extras.export(store, chat, "json"))
    assert [m["text"] for m in data["messages"]] == ["From here on\n>From quoted", "second"]
    path = tmp_path / "chat.mbox"
    path.write_bytes(extras.export(store, chat, "mbox"))
    box = mailbox.mbox(path)
    messages = list(box)
    assert len(messages) == 2
    assert messages[0].get_from().startswith("bob@example.org ")
    assert messages[1]["Message-ID"] == f"<{store.messages(chat.id)[1].message_id}>"
    [row] = store.messages(chat.id, 1)
    entry = extras._mbox_entry(row, b"Subject: x\r\n\r\nFrom me\r\n>From you\r\nend")
    assert entry.split(b"\n")[3:6] == [b">From me", b">>From you", b"end"]


def test_our_profile_from_another_device(tmp_path: Path) -> None:
    applier = applier_for(tmp_path, ALICE)
    store, account = applier.store, applier.account
    other = profiles.ProfileInfo(ALICE.addr, "Alice on the phone", "busy", updated=1e9 + 1)
    msg = profiles.storage_message(account, other)
    applier.incoming(compose_bytes(msg), 5.0)
    info = profiles.own(store, account)
    assert info is not None and (info.name, info.status) == ("Alice on the phone", "busy")
    assert info.version == 1  # contacts get it from this device too
    refreshed = store.account_by_id(account.id)
    assert refreshed is not None and refreshed.settings.name == "Alice on the phone"
    hello = profiles.prepare(store, account, builders.new_message(ALICE, (BOB,), "hi"))
    assert hello.profiles[0].card.status == "busy"
