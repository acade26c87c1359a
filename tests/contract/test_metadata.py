"""Contract: METADATA (RFC 5464) — depth, all-or-nothing sets, limits, entries that go
with their mailbox or user, persistence; and the COI settings read from them."""

from __future__ import annotations

import pytest
from tests.contract.helpers import Backend

from coi.store.coi import ENABLED, MAILBOX_ROOT, MESSAGE_FILTER, coi_settings
from coi.store.errors import MetadataTooMany, NoSuchMailbox
from coi.store.events import Event, MetadataChanged
from coi.store.protocol import Store


async def test_depth_and_case(store: Store) -> None:
    user = await store.add_user("a@x.org", "h", [])
    await store.set_metadata(
        user.id,
        0,
        [
            ("/private/a", b"1"),
            ("/private/a/b", b"2"),
            ("/private/a/b/c", b"3"),
            ("/private/ab", b"4"),
        ],
    )
    assert store.get_metadata(user.id, 0, ["/private/a"]) == {"/private/a": b"1"}
    assert store.get_metadata(user.id, 0, ["/PRIVATE/A"], "1") == {
        "/private/a": b"1",
        "/private/a/b": b"2",
    }
    assert set(store.get_metadata(user.id, 0, ["/private/a"], "infinity")) == {
        "/private/a",
        "/private/a/b",
        "/private/a/b/c",
    }
    assert store.get_metadata(user.id, 0, ["/private/none"], "infinity") == {}
    for depth in ("0", "1", "infinity"):  # the coroutine twin reads the same
        names = ["/PRIVATE/A", "/private/none"]
        assert await store.read_metadata(user.id, 0, names, depth) == store.get_metadata(
            user.id, 0, names, depth
        )


async def test_set_is_all_or_nothing_and_limited(store: Store) -> None:
    user = await store.add_user("a@x.org", "h", [])
    events: list[Event] = []
    store.events.watch_user(user.id, events.append)
    await store.set_metadata(user.id, 0, [("/private/a", b"1"), ("/shared/a", b"2")], max_entries=2)
    assert events == [MetadataChanged(user.id, 0, ("/private/a", "/shared/a"))]
    with pytest.raises(MetadataTooMany):
        await store.set_metadata(
            user.id,
            0,
            [("/private/a", None), ("/private/b", b"x"), ("/private/c", b"y")],
            max_entries=2,
        )
    assert store.get_metadata(user.id, 0, ["/private/a", "/private/b"]) == {"/private/a": b"1"}
    # replacing or removing is always allowed at the limit
    await store.set_metadata(
        user.id, 0, [("/private/a", b"new"), ("/shared/a", None)], max_entries=2
    )
    assert store.get_metadata(user.id, 0, ["/private/a", "/shared/a"]) == {"/private/a": b"new"}
    with pytest.raises(NoSuchMailbox):
        await store.set_metadata(user.id, 999, [("/private/a", b"1")])


async def test_entries_go_with_mailbox_and_user_and_persist(backend: Backend) -> None:
    store = await backend.open()
    user = await store.add_user("a@x.org", "h", [])
    other = await store.add_user("b@x.org", "h", [])
    box = await store.create_mailbox(user.id, "Box")
    await store.set_metadata(user.id, box.id, [("/private/comment", b"c")])
    await store.set_metadata(user.id, 0, [("/private/comment", b"server")])
    await store.set_metadata(other.id, 0, [("/private/comment", b"other")])
    await store.rename_mailbox(user.id, "Box", "Renamed")
    assert store.get_metadata(user.id, box.id, ["/private/comment"]) == {"/private/comment": b"c"}
    await store.delete_mailbox(user.id, "Renamed")
    assert store.get_metadata(user.id, box.id, ["/private/comment"]) == {}
    backend.close(store)
    store = await backend.open()  # values are durable
    assert store.get_metadata(user.id, 0, ["/private/comment"]) == {"/private/comment": b"server"}
    await store.delete_user("a@x.org")
    assert store.get_metadata(user.id, 0, ["/private/comment"]) == {}
    assert store.get_metadata(other.id, 0, ["/private/comment"]) == {"/private/comment": b"other"}


async def test_coi_settings(store: Store) -> None:
    user = await store.add_user("a@x.org", "h", [])
    settings = coi_settings(store, user.id, "COI")
    assert (settings.enabled, settings.message_filter, settings.root) == (False, "none", "COI")
    assert not settings.files_at_delivery and not settings.moves_when_seen
    await store.set_metadata(
        user.id,
        0,
        [(ENABLED, b"yes"), (MESSAGE_FILTER, b"active")],
        ensure_mailboxes=[("Chat/Chats", True)],
    )
    settings = coi_settings(store, user.id, "Chat")
    assert settings.files_at_delivery and settings.chats_mailbox == "Chat/Chats"
    assert store.get_mailbox(user.id, "Chat/Chats") is not None
    assert "Chat/Chats" in store.subscriptions(user.id)
    await store.set_metadata(user.id, 0, [(ENABLED, b"YES"), (MAILBOX_ROOT, b"Mine")])
    settings = coi_settings(store, user.id, "Chat")
    assert (settings.enabled, settings.root) == (False, "Mine")


async def test_renaming_inbox_copies_its_entries(store: Store) -> None:
    user = await store.add_user("a@x.org", "h", [])
    inbox = store.get_mailbox(user.id, "INBOX")
    assert inbox is not None
    await store.set_metadata(user.id, inbox.id, [("/private/comment", b"in")], origin="s")
    await store.rename_mailbox(user.id, "INBOX", "Old")  # RFC 5464 §4.1
    old = store.get_mailbox(user.id, "Old")
    assert old is not None
    assert store.get_metadata(user.id, old.id, ["/private/comment"]) == {"/private/comment": b"in"}
    assert store.get_metadata(user.id, inbox.id, ["/private/comment"]) == {
        "/private/comment": b"in"
    }
