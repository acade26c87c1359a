"""Group storage messages (coi.client.storage) written and read back on the local store."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tests.unit.client.test_apply import applier_for

from coi.chat.model import Address, MessageKind
from coi.chat.parse import parse
from coi.client import groups, storage
from coi.client.apply import Applier

ALICE = Address("alice@example.org", "Alice")
BOB, CAROL = "bob@example.org", "carol@example.org"


def device(root: Path, me: Address) -> Applier:
    root.mkdir()
    return applier_for(root, me)


def make_group(applier: Applier, name: str, members: list[str]) -> int:
    chat_id = applier.store.chat_for(applier.account.id, "group:g1", "", name, False)
    applier.store.set_members(chat_id, members)
    storage.mark(applier.store, chat_id)
    return chat_id


def test_group_storage_message_round_trip(tmp_path: Path) -> None:
    one = device(tmp_path / "one", ALICE)
    two = device(tmp_path / "two", ALICE)
    chat_id = make_group(one, "Crew", [BOB, CAROL])
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    raw = storage.group_message(one.store, one.account, chat_id, None, when)
    msg = parse(raw)
    assert msg.kind is MessageKind.GROUP and msg.group_info is not None
    assert msg.group_info.id == "g1"
    assert {e for c in msg.group_info.participants for e in c.emails} == {ALICE.addr, BOB, CAROL}
    assert all(c.address_hash for c in msg.group_info.participants)

    storage.apply(two.store, two.account, tmp_path, 7, 1, msg)
    [row] = two.store.db.execute("SELECT id FROM chat WHERE key='group:g1'").fetchall()
    chat = two.store.chat(int(row[0]))
    assert chat is not None
    view = groups.info(two.store, chat)
    assert (view.name, view.members, view.left) == ("Crew", (BOB, CAROL), False)

    # we left on device 1, later: device 2 follows; an older message then changes nothing
    groups._set_left(one.store, chat_id, True)
    one.store.set_members(chat_id, [BOB])
    later = datetime(2026, 1, 2, 4, 0, 0, tzinfo=UTC)
    left = parse(storage.group_message(one.store, one.account, chat_id, None, later))
    storage.apply(two.store, two.account, tmp_path, 7, 2, left)
    view = groups.info(two.store, chat)
    assert (view.members, view.left) == ((BOB,), True)
    storage.apply(two.store, two.account, tmp_path, 7, 3, msg)  # the older one again
    assert groups.info(two.store, chat).left


def test_storage_message_of_someone_else_is_ignored(tmp_path: Path) -> None:
    one = device(tmp_path / "one", Address(BOB))
    two = device(tmp_path / "two", ALICE)
    chat_id = make_group(one, "Crew", [CAROL])
    msg = parse(storage.group_message(one.store, one.account, chat_id, None, datetime.now(UTC)))
    storage.apply(two.store, two.account, tmp_path, 7, 1, msg)
    assert two.store.db.execute("SELECT id FROM chat WHERE key='group:g1'").fetchone() is None
