"""Contract: the mailbox tree, subscriptions, STATUS counters and their events."""

from __future__ import annotations

import asyncio

import pytest
from tests.contract.helpers import Backend, fresh, message, user_with_inbox

from coi.store.errors import MailboxExists, MailboxInUse, NoSuchMailbox
from coi.store.events import (
    Event,
    MailboxCreated,
    MailboxDeleted,
    MailboxRenamed,
    MessagesAdded,
    MessagesExpunged,
    MetadataChanged,
    SubscriptionChanged,
)
from coi.store.model import DELETED, SEEN, Flags
from coi.store.protocol import Store


async def test_mailbox_create_rename_delete(store: Store) -> None:
    user = await store.add_user("a@x.org", "h", [])
    await store.create_mailbox(user.id, "a/b/c")
    assert [m.name for m in store.list_mailboxes(user.id)] == ["INBOX", "a", "a/b", "a/b/c"]
    with pytest.raises(MailboxExists):
        await store.create_mailbox(user.id, "a/b")
    old = store.get_mailbox(user.id, "a/b")
    await store.rename_mailbox(user.id, "a", "z")
    assert [m.name for m in store.list_mailboxes(user.id)] == ["INBOX", "z", "z/b", "z/b/c"]
    renamed = store.get_mailbox(user.id, "z/b")
    assert old and renamed and renamed.uidvalidity == old.uidvalidity and renamed.id == old.id
    await store.delete_mailbox(user.id, "z/b/c")
    with pytest.raises(NoSuchMailbox):
        await store.delete_mailbox(user.id, "z/b/c")
    recreated = await store.create_mailbox(user.id, "z/b/c")
    # RFC 3501 §2.3.1.1: a re-created name never reuses a UIDVALIDITY
    assert recreated.uidvalidity > renamed.uidvalidity
    assert store.mailbox_by_id(recreated.id) == recreated


async def test_rename_errors_and_names_are_case_sensitive(store: Store) -> None:
    user = await store.add_user("a@x.org", "h", [])
    await store.create_mailbox(user.id, "Box")
    await store.create_mailbox(user.id, "box")  # another name
    with pytest.raises(MailboxExists):
        await store.rename_mailbox(user.id, "Box", "box")
    with pytest.raises(NoSuchMailbox):
        await store.rename_mailbox(user.id, "none", "other")
    # "_" and "%" are no wildcards when renaming inferiors
    await store.create_mailbox(user.id, "a_b/c")
    await store.create_mailbox(user.id, "axb/c")
    await store.rename_mailbox(user.id, "a_b", "n")
    names = [m.name for m in store.list_mailboxes(user.id)]
    assert names == ["Box", "INBOX", "axb", "axb/c", "box", "n", "n/c"]


async def test_delete_with_inferiors_leaves_noselect(store: Store) -> None:
    user = await store.add_user("a@x.org", "h", [])
    box = await store.create_mailbox(user.id, "p/c")
    parent = store.get_mailbox(user.id, "p")
    assert parent is not None and not parent.noselect
    await store.delete_mailbox(user.id, "p")  # RFC 3501 §6.3.4
    parent = store.get_mailbox(user.id, "p")
    assert parent is not None and parent.noselect
    with pytest.raises(MailboxInUse):
        await store.delete_mailbox(user.id, "p")
    again = await store.create_mailbox(user.id, "p")  # selectable again, a new mailbox
    assert not again.noselect and again.uidvalidity > parent.uidvalidity
    await store.delete_mailbox(user.id, "p")
    await store.delete_mailbox(user.id, "p/c")  # the placeholder goes with its last inferior
    assert [m.name for m in store.list_mailboxes(user.id)] == ["INBOX"]
    assert store.mailbox_by_id(box.id) is None


async def test_rename_inbox_moves_messages(store: Store) -> None:
    user, inbox = await user_with_inbox(store)
    await store.append(inbox.id, [message("one"), message("two")])
    events: list[Event] = []
    store.events.watch_user(user.id, events.append)
    await store.rename_mailbox(user.id, "INBOX", "old-inbox")
    moved = store.get_mailbox(user.id, "old-inbox")
    assert moved and list(store.uids(moved.id)) == [1, 2]
    assert list(store.uids(inbox.id)) == []
    assert fresh(store, inbox).highestmodseq > inbox.highestmodseq
    assert [type(e) for e in events] == [MailboxCreated, MessagesAdded, MessagesExpunged]
    assert store.get_mailbox(user.id, "INBOX") is not None


async def test_subscriptions_follow_renames(store: Store) -> None:
    user = await store.add_user("a@x.org", "h", [])
    events: list[Event] = []
    store.events.watch_user(user.id, events.append)
    await store.create_mailbox(user.id, "a/b")
    await store.set_subscribed(user.id, "a/b", True)
    await store.set_subscribed(user.id, "gone", True)  # a name need not exist (RFC 3501 §6.3.6)
    assert store.subscriptions(user.id) == {"INBOX", "a/b", "gone"}
    await store.rename_mailbox(user.id, "a", "z")
    assert store.subscriptions(user.id) == {"INBOX", "z/b", "gone"}
    await store.set_subscribed(user.id, "gone", False)
    assert store.subscriptions(user.id) == {"INBOX", "z/b"}
    assert SubscriptionChanged(user.id, "gone", False) in events
    renames = [(e.old_name, e.new_name) for e in events if isinstance(e, MailboxRenamed)]
    assert renames == [("a", "z"), ("a/b", "z/b")]


async def test_mailbox_changes_carry_server_metadata(store: Store) -> None:
    user = await store.add_user("a@x.org", "h", [])
    events: list[Event] = []
    store.events.watch_user(user.id, events.append)
    box = await store.create_mailbox(
        user.id, "Chats", server_metadata=[("/private/x", b"1")], origin="me"
    )
    assert store.get_metadata(user.id, 0, ["/private/x"]) == {"/private/x": b"1"}
    assert events[-1] == MetadataChanged(user.id, 0, ("/private/x",), "me")
    await store.delete_mailbox(user.id, "Chats", server_metadata=[("/private/x", None)])
    assert store.get_metadata(user.id, 0, ["/private/x"]) == {}
    assert MailboxDeleted(user.id, box.id, "Chats") in events


async def test_status_counts_and_recent_floor(store: Store) -> None:
    _, inbox = await user_with_inbox(store)
    empty = store.status(inbox)
    assert (empty.messages, empty.unseen, empty.size, empty.recent) == (0, 0, 0, 0)
    one, two = message("one"), message("two", flags=("\\Seen",))
    await store.append(inbox.id, [one, two, message("three")])
    inbox = fresh(store, inbox)
    status = store.status(inbox)
    assert (status.messages, status.unseen, status.recent) == (3, 2, 3)
    assert status.size == len(one.raw) + len(two.raw) + len(message("three").raw)
    assert (status.uidnext, status.uidvalidity) == (4, inbox.uidvalidity)
    assert status.highestmodseq == inbox.highestmodseq
    await store.claim_recent(inbox.id, 2)
    inbox = fresh(store, inbox)
    assert inbox.recent_floor == 2 and store.status(inbox).recent == 1
    await store.claim_recent(inbox.id, 1)  # the floor never goes down
    assert fresh(store, inbox).recent_floor == 2
    await store.store_flags(inbox.id, [1, 3], "add", Flags(SEEN))
    assert store.status(fresh(store, inbox)).unseen == 0
    assert store.status(fresh(store, inbox)).deleted == 0
    await store.store_flags(inbox.id, [2, 3], "add", Flags(DELETED))
    assert store.status(fresh(store, inbox)).deleted == 2  # STATUS DELETED (RFC 9051)


async def test_status_counts_follow_every_write(store: Store) -> None:
    """STATUS MESSAGES, UNSEEN, DELETED and SIZE agree with the messages themselves after
    every kind of write (both stores keep them in the mailbox row, by triggers)."""
    user, inbox = await user_with_inbox(store)
    other = await store.create_mailbox(user.id, "Other")

    def truth(box_id: int) -> tuple[int, int, int, int]:
        rows = store.rows(box_id, list(store.uids(box_id))).values()
        return (
            len(rows),
            sum(1 for r in rows if not r.flags.bits & SEEN),
            sum(1 for r in rows if r.flags.bits & DELETED),
            sum(r.size for r in rows),
        )

    def counted(box_id: int) -> tuple[int, int, int, int]:
        box = store.mailbox_by_id(box_id)
        assert box is not None
        status = store.status(box)
        assert status == store.status(box)
        return status.messages, status.unseen, status.deleted, status.size

    async def check() -> None:
        for box_id in (inbox.id, other.id):
            assert counted(box_id) == truth(box_id)
            box = store.mailbox_by_id(box_id)
            assert box is not None and await store.read_status(box) == store.status(box)

    await store.append(
        inbox.id,
        [message(str(n), flags=(("\\Seen",) if n % 2 else ()) + (("\\Deleted",) if n % 3 else ()))
         for n in range(9)],
    )
    await check()
    await store.store_flags(inbox.id, [1, 2, 3], "add", Flags(SEEN))
    await store.store_flags(inbox.id, [4, 5], "remove", Flags(SEEN | DELETED))
    await store.store_flags(inbox.id, [6], "set", Flags(DELETED, ("$label",)))
    await store.store_flags(inbox.id, [7], "add", Flags(0, ("$other",)))  # keywords only
    await check()
    await store.copy(inbox.id, [1, 2, 6, 7], other.id)
    await store.copy(inbox.id, [8, 9], other.id, move=True)
    await check()
    await asyncio.gather(  # STOREs of one mailbox at once (a group commit on PostgreSQL)
        *(store.store_flags(other.id, [u], "add", Flags(SEEN)) for u in range(1, 7)),
        store.store_flags(other.id, [1, 2], "remove", Flags(SEEN)),
    )
    await check()
    await store.expunge(inbox.id, [1, 2, 3, 4, 5, 6])
    await store.expunge(other.id)
    await check()
    gone = store.mailbox_by_id(other.id)
    assert gone is not None
    await store.delete_mailbox(user.id, "Other")
    assert counted(inbox.id) == truth(inbox.id)
    # a mailbox deleted after the caller read it counts nothing (no error)
    assert (store.status(gone).messages, (await store.read_status(gone)).size) == (0, 0)


async def test_coroutine_reads_answer_as_the_synchronous_ones(store: Store) -> None:
    """`read_mailbox`, `read_mailboxes`, `read_status` and `read_mailbox_status` (what
    command handlers await) agree with the synchronous reads event listeners use."""
    user, inbox = await user_with_inbox(store)
    await store.create_mailbox(user.id, "a/b")
    await store.set_subscribed(user.id, "gone", True)  # a subscription to no mailbox
    await store.append(inbox.id, [message("one"), message("two", flags=("\\Seen",))])
    await store.store_flags(inbox.id, [2], "add", Flags(DELETED))
    await store.claim_recent(inbox.id, 1)
    inbox = fresh(store, inbox)
    assert await store.read_mailbox(user.id, "INBOX") == inbox
    assert await store.read_mailbox(user.id, "a/b") == store.get_mailbox(user.id, "a/b")
    assert await store.read_mailbox(user.id, "inbox/none") is None
    assert await store.read_mailboxes(user.id) == (
        store.list_mailboxes(user.id),
        store.subscriptions(user.id),
    )
    assert "gone" in (await store.read_mailboxes(user.id))[1]
    assert await store.read_status(inbox) == store.status(inbox)
    found = await store.read_mailbox_status(user.id, "INBOX")
    assert found is not None
    mailbox, status = found
    assert mailbox == inbox and status == store.status(inbox)
    assert (status.messages, status.unseen, status.recent, status.deleted) == (2, 1, 1, 1)
    assert status.uidnext == 3
    assert await store.read_mailbox_status(user.id, "none") is None
    empty = await store.read_mailbox_status(user.id, "a")  # a superior created on the way
    assert empty is not None and empty[1].messages == 0
    other = await store.add_user("b@x.org", "h", [])
    assert await store.read_mailboxes(other.id) == (
        [store.get_mailbox(other.id, "INBOX")],
        {"INBOX"},
    )


async def test_take_recent_hands_each_uid_to_one_claim_across_handles(
    backend: Backend,
) -> None:
    """RFC 3501 §2.3.2: \\Recent goes to one session. Where several processes serve the
    store, the stored floor decides at once (two handles claim in turn and at the same
    time; each UID goes to one of them); where one process does (SQLite), the store says
    so with None and the caller's live floor decides."""
    first = await backend.open()
    second = await backend.open()
    _, inbox = await user_with_inbox(first)
    await first.append(inbox.id, [message(f"m{i}") for i in range(6)])
    before = first.take_recent(inbox.id, 2)
    if before is None:
        assert backend.name == "sqlite" and second.take_recent(inbox.id, 4) is None
        return
    assert before == 0
    assert second.take_recent(inbox.id, 4) == 2  # UIDs 3 and 4 are the second's
    assert first.take_recent(inbox.id, 3) == 4  # nothing left below 4: the floor stays
    assert second.status(fresh(second, inbox)).recent == 2  # STATUS counts above the floor
    found = await second.read_mailbox_status(inbox.user_id, "INBOX")
    assert found is not None  # counted above the floor the claims recorded, and says so
    assert (found[0].recent_floor, found[1].recent) == (4, 2)
    got = await asyncio.gather(
        asyncio.to_thread(first.take_recent, inbox.id, 6),
        asyncio.to_thread(second.take_recent, inbox.id, 6),
    )
    assert sorted(got) == [4, 6]  # one of them took 5 and 6, the other found them taken
    assert second.status(fresh(second, inbox)).recent == 0
