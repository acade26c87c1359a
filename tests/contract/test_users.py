"""Contract: users and aliases (accounts, authentication lookups, delivery's recipients)."""

from __future__ import annotations

import pytest
from tests.contract.helpers import Backend, message, user_with_inbox

from coi.store.errors import NoSuchUser, UserExists
from coi.store.events import Event, MailboxCreated, MailboxDeleted, UserGone
from coi.store.protocol import Store


async def test_user_and_default_mailboxes(store: Store) -> None:
    created: list[Event] = []
    store.events.watch_all(created.append)
    user = await store.add_user("Alice@Example.org", "hash", [("Sent", "\\Sent")])
    assert user.address == "alice@example.org"
    names = [m.name for m in store.list_mailboxes(user.id)]
    assert names == ["INBOX", "Sent"]
    assert store.subscriptions(user.id) == {"INBOX", "Sent"}
    sent = store.get_mailbox(user.id, "Sent")
    assert sent is not None and sent.special_use == "\\Sent"
    assert [e.name for e in created if isinstance(e, MailboxCreated)] == ["INBOX", "Sent"]
    with pytest.raises(UserExists):
        await store.add_user("alice@example.org", "x", [])


async def test_lookup_is_case_insensitive_and_listed_by_address(store: Store) -> None:
    b = await store.add_user("b@x.org", "hb", [])
    a = await store.add_user("a@x.org", "ha", [])
    assert store.get_user("A@X.ORG") == a
    assert store.get_user("nobody@x.org") is None
    assert store.list_users() == [a, b]
    assert a.id != b.id


async def test_password_change_and_delete(store: Store) -> None:
    await store.add_user("a@x.org", "old", [])
    await store.set_password("A@x.org", "new")
    user = store.get_user("a@x.org")
    assert user is not None and user.password_hash == "new"
    with pytest.raises(NoSuchUser):
        await store.set_password("b@x.org", "x")
    await store.delete_user("a@x.org")
    assert store.get_user("a@x.org") is None
    assert store.list_mailboxes(user.id) == []
    with pytest.raises(NoSuchUser):
        await store.delete_user("a@x.org")


async def test_delete_user_takes_everything_and_frees_the_address(store: Store) -> None:
    user, inbox = await user_with_inbox(store)
    _, other_inbox = await user_with_inbox(store, "b@x.org")
    await store.append(inbox.id, [message()])
    await store.append(other_inbox.id, [message()])
    await store.set_metadata(user.id, 0, [("/private/x", b"1")])
    await store.set_alias("alias@x.org", "a@x.org")
    await store.delete_user("a@x.org")
    assert store.alias_target("alias@x.org") is None
    assert await store.list_aliases() == []
    assert store.get_metadata(user.id, 0, ["/private/x"]) == {}
    again = await store.add_user("a@x.org", "h", [])
    assert again.id != user.id
    assert [m.name for m in store.list_mailboxes(again.id)] == ["INBOX"]
    # the other user's message (and its body) is untouched
    rows = store.rows(other_inbox.id, [1])
    assert store.blob(rows[1].blob_id) is not None


async def test_delete_user_publishes_each_of_its_mailboxes_deleted(store: Store) -> None:
    """Whatever keeps a mailbox (a server's kept state, PostgreSQL's row cache, NOTIFY)
    lets go of a deleted user's mailboxes as of a deleted mailbox's; then the user's
    sessions end (UserGone)."""
    user = await store.add_user("a@x.org", "hash", [("Sent", "\\Sent")])
    await store.create_mailbox(user.id, "Archive/2026")
    ids = {m.id: m.name for m in store.list_mailboxes(user.id) if not m.noselect}
    seen: list[Event] = []
    store.events.watch_all(seen.append)
    await store.delete_user("a@x.org")
    deleted = {e.mailbox_id: e.name for e in seen if isinstance(e, MailboxDeleted)}
    assert {k: v for k, v in deleted.items() if k in ids} == ids
    assert seen[-1] == UserGone(user.id)
    assert all(isinstance(e, MailboxDeleted) and e.user_id == user.id for e in seen[:-1])


async def test_aliases_and_catch_all(store: Store) -> None:
    alice = await store.add_user("alice@x.org", "h", [])
    bob = await store.add_user("bob@x.org", "h", [])
    await store.set_alias("Info@X.org", "ALICE@x.org")
    await store.set_alias("@y.org", "bob@x.org")
    assert store.alias_target("info@x.org") == alice
    assert store.alias_target("@y.org") == bob
    assert store.alias_target("other@x.org") is None
    assert await store.list_aliases() == [("@y.org", "bob@x.org"), ("info@x.org", "alice@x.org")]
    await store.set_alias("info@x.org", "bob@x.org")  # re-pointing replaces
    assert store.alias_target("info@x.org") == bob
    with pytest.raises(UserExists):  # a user's own address is no alias
        await store.set_alias("alice@x.org", "bob@x.org")
    with pytest.raises(NoSuchUser):
        await store.set_alias("new@x.org", "nobody@x.org")
    await store.set_alias("info@x.org", None)
    assert store.alias_target("info@x.org") is None
    with pytest.raises(NoSuchUser):
        await store.set_alias("info@x.org", None)


async def test_users_are_isolated(store: Store) -> None:
    a = await store.add_user("a@x.org", "h", [])
    b = await store.add_user("b@x.org", "h", [])
    await store.create_mailbox(a.id, "secret")
    assert store.get_mailbox(b.id, "secret") is None
    assert [m.name for m in store.list_mailboxes(b.id)] == ["INBOX"]
    assert store.subscriptions(b.id) == {"INBOX"}


async def test_users_are_shared_by_every_handle(backend: Backend) -> None:
    first = await backend.open()
    second = await backend.open()
    user = await first.add_user("a@x.org", "h", [])
    assert second.get_user("a@x.org") == user
    assert await second.read_user("A@x.org") == user  # LOGIN's lookup, awaited
    assert await second.read_user("b@x.org") is None


async def test_quotas_and_storage_used(store: Store) -> None:
    user, inbox = await user_with_inbox(store)
    assert (store.quota_of(user.id), store.storage_used(user.id)) == (0, 0)
    first, second = message("one"), message("two", body="x" * 500)
    await store.append(inbox.id, [first, second])
    used = len(first.raw) + len(second.raw)
    assert store.storage_used(user.id) == used
    sent = store.get_mailbox(user.id, "Sent")
    assert sent is not None
    await store.copy(inbox.id, [1], sent.id)  # a copy counts again: RFC822.SIZE per message
    assert store.storage_used(user.id) == used + len(first.raw)
    await store.set_quota("A@x.org", 1 << 20)
    assert store.quota_of(user.id) == 1 << 20
    with pytest.raises(NoSuchUser):
        await store.set_quota("nobody@x.org", 1)


async def test_read_usage_gives_the_limit_and_sums_only_under_one(store: Store) -> None:
    """APPEND's and COPY's quota check in one read: no limit, no sum over every message."""
    user, inbox = await user_with_inbox(store)
    one = message("one", body="x" * 300)
    await store.append(inbox.id, [one])
    assert await store.read_usage(user.id, 0) == (0, 0)
    assert await store.read_usage(user.id, 5000) == (5000, len(one.raw))  # the default
    await store.set_quota("a@x.org", 1 << 20)
    assert await store.read_usage(user.id, 5000) == (1 << 20, len(one.raw))  # its own
    assert await store.read_usage(user.id + 1000, 0) == (0, 0)  # no such user


async def test_read_target_gives_the_mailbox_and_the_usage_in_one_read(store: Store) -> None:
    """APPEND's and COPY's lookup: the user's mailbox of that name (None when there is
    none, or it is another user's, or the name could never be stored) with read_usage's
    figures whichever it is."""
    user, inbox = await user_with_inbox(store)
    one = message("one", body="x" * 300)
    await store.append(inbox.id, [one])
    other = await store.add_user("b@x.org", "h", [])
    await store.create_mailbox(other.id, "Theirs")
    mailbox = store.get_mailbox(user.id, "INBOX")
    assert await store.read_target(user.id, "INBOX", 0) == (mailbox, (0, 0))
    assert await store.read_target(user.id, "INBOX", 5000) == (mailbox, (5000, len(one.raw)))
    await store.set_quota("a@x.org", 1 << 20)
    usage = (1 << 20, len(one.raw))
    assert await store.read_target(user.id, "Theirs", 5000) == (None, usage)
    assert await store.read_target(user.id, "no\x00such", 5000) == (None, usage)
    assert await store.read_target(user.id + 1000, "INBOX", 0) == (None, (0, 0))


async def test_usage_follows_every_write_of_messages(store: Store) -> None:
    """Quota usage is RFC822.SIZE summed over every mailbox, after APPEND, COPY, MOVE,
    EXPUNGE and DELETE of a mailbox alike (PostgreSQL keeps a sum per mailbox)."""
    user, inbox = await user_with_inbox(store)
    other = await store.create_mailbox(user.id, "Other")
    trash = store.get_mailbox(user.id, "Trash")
    assert trash is not None
    sizes = [len(m.raw) for m in (message("a", "1" * 100), message("b", "2" * 200))]
    await store.append(inbox.id, [message("a", "1" * 100), message("b", "2" * 200)])
    await store.append(inbox.id, [message("c", "3" * 300, flags=("\\Deleted",))])
    sizes.append(len(message("c", "3" * 300).raw))

    async def used() -> int:
        limit, octets = await store.read_usage(user.id, 1 << 30)
        assert limit == 1 << 30 and store.storage_used(user.id) == octets
        found = await store.read_recipient("a@x.org", 1 << 30)
        assert found is not None and found[1] == (limit, octets)
        return octets

    assert await used() == sum(sizes)
    await store.copy(inbox.id, [1, 2], other.id)
    assert await used() == sum(sizes) + sizes[0] + sizes[1]
    await store.copy(other.id, [1], trash.id, move=True)
    assert await used() == sum(sizes) + sizes[0] + sizes[1]
    assert await store.expunge(inbox.id) == [3]
    assert await used() == sizes[0] + sizes[1] + sizes[0] + sizes[1]
    await store.delete_mailbox(user.id, "Other")
    assert await used() == sizes[0] + sizes[1] + sizes[0]
    await store.expunge(trash.id)  # nothing \\Deleted there: nothing changes
    assert await used() == 2 * sizes[0] + sizes[1]


async def test_read_recipient_gives_the_user_and_its_usage_in_one_read(store: Store) -> None:
    """RCPT's lookup: the user of the address (any case) with read_usage's figures; an
    alias is not a user here (LocalDelivery follows it)."""
    user, inbox = await user_with_inbox(store)
    one = message("one", body="x" * 300)
    await store.append(inbox.id, [one])
    assert await store.read_recipient("A@x.org", 0) == (user, (0, 0))
    assert await store.read_recipient("a@x.org", 5000) == (user, (5000, len(one.raw)))
    await store.set_quota("a@x.org", 1 << 20)
    assert await store.read_recipient("a@x.org", 5000) == (user, (1 << 20, len(one.raw)))
    await store.set_alias("alias@x.org", "a@x.org")
    assert await store.read_recipient("alias@x.org", 0) is None
    assert await store.read_recipient("nobody@x.org", 0) is None


async def test_lookups_of_names_no_one_can_have_find_nothing(store: Store) -> None:
    """An LMTP recipient or a mailbox name with NUL is simply not found: no backend fails
    on text it could never have stored (PostgreSQL's text cannot hold NUL)."""
    user, _ = await user_with_inbox(store)
    for odd in ("a\x00@x.org", "\x00"):
        assert store.get_user(odd) is None
        assert await store.read_user(odd) is None
        assert await store.read_recipient(odd, 0) is None
        assert store.alias_target(odd) is None
        assert store.get_mailbox(user.id, odd) is None
        assert await store.read_mailbox(user.id, odd) is None
        assert await store.read_mailbox_status(user.id, odd) is None
        assert store.get_metadata(user.id, 0, ["/private/" + odd]) == {}
