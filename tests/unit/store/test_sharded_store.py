"""What is special to the sharded store (coi.store.postgres.sharded): every Protocol member
is routed, ids name their shard, the shard map's rules, events of every shard on one bus;
a directory on one private cluster and a shard on another (tests/pg.py). The Protocol's
behaviour itself is the contract suite's (tests/contract, backend "sharded")."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from collections.abc import AsyncIterator

import pytest
from tests import pg
from tests.contract.helpers import message, user_with_inbox

from coi.store import protocol
from coi.store.errors import NoSuchUser, UserExists
from coi.store.events import Event, MessagesAdded
from coi.store.model import DELETED, Flags

pytest.importorskip("asyncpg")

from coi.store.postgres.sharded import (
    ROUTES,
    SHIFT,
    ShardedStore,
    ShardError,
    add_shard,
    list_shards,
    open_sharded,
    remove_shard,
    set_shard_closed,
)
from coi.store.postgres.store import PostgresStore


def _protocol_members() -> dict[str, object]:
    """Every member of the Store Protocol (its own and its parts'), by name."""
    members: dict[str, object] = {}
    for cls in reversed(protocol.Store.__mro__):
        if cls is object or not getattr(cls, "_is_protocol", False):
            continue
        for name, value in vars(cls).items():
            if not name.startswith("_"):
                members[name] = value
    return members


def test_every_protocol_member_is_routed() -> None:
    """A member added to (or renamed in) the Protocol must get a route here: this test
    fails until ShardedStore routes it, so a merge cannot leave one unrouted."""
    members = _protocol_members()
    assert "append" in members and "events" in members  # the introspection works
    assert set(members) == set(ROUTES), "route every Store member in ROUTES and ShardedStore"
    for name, value in members.items():
        mine = vars(ShardedStore).get(name)
        assert mine is not None, f"ShardedStore does not define {name}"
        if isinstance(value, property):
            assert isinstance(mine, property), name
            continue
        assert callable(value) and callable(mine)
        assert inspect.iscoroutinefunction(value) == inspect.iscoroutinefunction(mine), name
        wanted = inspect.signature(value).parameters
        given = inspect.signature(mine).parameters
        assert list(given)[: len(wanted)] == list(wanted), name  # same names, same order
        for extra in list(given)[len(wanted) :]:  # anything more is optional
            assert given[extra].default is not inspect.Parameter.empty, (name, extra)


@pytest.fixture
async def sharded(sharded_dsns: tuple[str, str]) -> AsyncIterator[ShardedStore]:
    store = open_sharded(PostgresStore(sharded_dsns[0]))
    assert store is not None
    try:
        yield store
    finally:
        store.close()


async def test_ids_name_their_shard_and_users_spread(sharded: ShardedStore) -> None:
    a, a_inbox = await user_with_inbox(sharded, "a@x.org")
    b, b_inbox = await user_with_inbox(sharded, "b@x.org")
    c = await sharded.add_user("c@x.org", "h", [], shard=1)
    assert (a.id >> SHIFT, b.id >> SHIFT, c.id >> SHIFT) == (0, 1, 1)  # the fewest, then named
    assert b_inbox.id >> SHIFT == 1 and a_inbox.id >> SHIFT == 0
    await sharded.append(b_inbox.id, [message("on one")])
    row = sharded.rows(b_inbox.id, [1])[1]
    assert row.blob_id >> SHIFT == 1
    assert sharded.blob(row.blob_id) is not None
    await sharded.append(a_inbox.id, [message("on zero")])
    a_blob = sharded.rows(a_inbox.id, [1])[1].blob_id
    both = await sharded.blobs([row.blob_id, a_blob])  # one batch over two shards
    assert set(both) == {row.blob_id, a_blob}
    assert sharded.emailid(row.blob_id) != sharded.emailid(a_blob)
    # each shard has its own object-id key: MAILBOXIDs of two shards never meet
    assert sharded.mailboxid(a_inbox) != sharded.mailboxid(
        dataclasses.replace(b_inbox, uidvalidity=a_inbox.uidvalidity)
    )
    assert [u.address for u in sharded.list_users()] == ["a@x.org", "b@x.org", "c@x.org"]
    assert [(s.id, s.users) for s in list_shards(sharded.directory)] == [(0, 1), (1, 2)]
    # the user rows really are in the shard's database, not the directory's
    assert sharded.directory.get_user("b@x.org") is None
    assert sharded.shards[1].get_user("b@x.org") == b
    assert await sharded.read_user("B@x.org") == b  # LOGIN's lookup: the map, awaited
    assert await sharded.read_user("B@x.org") == b  # then from the cached shard
    assert await sharded.read_user("nobody@x.org") is None
    with pytest.raises(ShardError):
        await sharded.add_user("d@x.org", "h", [], shard=7)
    assert sharded.get_user("d@x.org") is None
    with pytest.raises(UserExists):
        await sharded.add_user("B@x.org", "h", [], shard=0)  # taken on the other shard


async def test_aliases_live_with_their_user_and_move_with_it(sharded: ShardedStore) -> None:
    alice = await sharded.add_user("alice@x.org", "h", [])
    bob = await sharded.add_user("bob@x.org", "h", [])
    assert (alice.id >> SHIFT, bob.id >> SHIFT) == (0, 1)
    await sharded.set_alias("info@x.org", "bob@x.org")
    assert sharded.shards[1].alias_target("info@x.org") == bob
    await sharded.set_alias("info@x.org", "alice@x.org")  # re-pointed across shards
    assert sharded.alias_target("info@x.org") == alice
    assert sharded.shards[1].alias_target("info@x.org") is None
    assert await sharded.list_aliases() == [("info@x.org", "alice@x.org")]
    await sharded.set_alias("@y.org", "bob@x.org")
    await sharded.delete_user("bob@x.org")
    assert sharded.alias_target("@y.org") is None
    assert await sharded.list_aliases() == [("info@x.org", "alice@x.org")]


async def test_events_of_every_shard_on_one_bus_and_across_processes(
    sharded_dsns: tuple[str, str], sharded: ShardedStore
) -> None:
    other = open_sharded(PostgresStore(sharded_dsns[0]))  # a second `coi serve`
    assert other is not None
    try:
        _, a_inbox = await user_with_inbox(sharded, "a@x.org")
        _, b_inbox = await user_with_inbox(sharded, "b@x.org")
        seen: list[Event] = []
        other.events.watch_all(seen.append)
        own: list[Event] = []
        sharded.events.watch_all(own.append)
        await sharded.append(a_inbox.id, [message("zero")])
        await sharded.append(b_inbox.id, [message("one")])
        # count only MessagesAdded: the notifications of b's new inbox (shard 1) may
        # still be on their way to `other` when it starts watching (seen in CI)
        added: list[tuple[int, tuple[int, ...]]] = []
        for _ in range(400):
            added = [(e.mailbox_id, e.uids) for e in seen if isinstance(e, MessagesAdded)]
            if len(added) >= 2:
                break
            await asyncio.sleep(0.025)
        assert added == [(a_inbox.id, (1,)), (b_inbox.id, (1,))]
        assert [type(e) for e in own] == [MessagesAdded, MessagesAdded]
    finally:
        other.close()


async def test_a_closed_shard_takes_new_users_only_when_named(sharded: ShardedStore) -> None:
    set_shard_closed(sharded.directory, 1, True)
    a = await sharded.add_user("a@x.org", "h", [])
    b = await sharded.add_user("b@x.org", "h", [])
    assert (a.id >> SHIFT, b.id >> SHIFT) == (0, 0)  # shard 1 has fewer users, but is closed
    c = await sharded.add_user("c@x.org", "h", [], shard=1)
    assert c.id >> SHIFT == 1
    listed = [(s.id, s.users, s.closed) for s in list_shards(sharded.directory)]
    assert listed == [(0, 2, False), (1, 1, True)]
    set_shard_closed(sharded.directory, 0, True)
    with pytest.raises(ShardError, match="every shard is closed to new users"):
        await sharded.add_user("d@x.org", "h", [])
    assert sharded.get_user("d@x.org") is None
    with pytest.raises(UserExists):  # a taken address is said to be taken, closed or not
        await sharded.add_user("a@x.org", "h", [])
    set_shard_closed(sharded.directory, 1, False)
    d = await sharded.add_user("d@x.org", "h", [])
    assert d.id >> SHIFT == 1
    with pytest.raises(ShardError, match="no shard 7"):
        set_shard_closed(sharded.directory, 7, True)


async def test_the_listing_gives_each_shards_size_and_goes_on_without_one(
    sharded: ShardedStore,
) -> None:
    """`coi shard list`'s sizes: each database's own; a shard that cannot be reached is
    listed without one."""
    import asyncpg

    conn = await asyncpg.connect(sharded.directory.dsn)
    try:
        await conn.execute(
            "INSERT INTO shards (id, dsn) VALUES (7, 'postgresql://nobody@127.0.0.1:1/gone')"
        )
    finally:
        await conn.close()
    listed = list_shards(sharded.directory)
    assert [s.id for s in listed] == [0, 1, 7]
    assert all(s.size is not None and s.size > 1_000_000 for s in listed[:2])
    assert listed[2].size is None


async def test_a_directory_made_before_closed_shards_gets_them(sharded: ShardedStore) -> None:
    """Migration 16 adds `shards.closed` to a directory whose map was made without it."""
    import asyncpg

    dsn = sharded.directory.dsn
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("ALTER TABLE shards DROP COLUMN closed")
        await conn.execute("UPDATE schema_version SET version = 15")
    finally:
        await conn.close()
    again = PostgresStore(dsn, listen=False)
    try:
        assert [(s.id, s.closed) for s in list_shards(again)] == [(0, False), (1, False)]
    finally:
        again.close()


async def test_only_an_empty_shard_is_removed_and_its_number_stays_used(
    sharded: ShardedStore, second_postgres_cluster: pg.Cluster
) -> None:
    await sharded.add_user("a@x.org", "h", [], shard=1)
    with pytest.raises(ShardError, match="shard 1 still holds 1 users and aliases"):
        remove_shard(sharded.directory, 1)
    with pytest.raises(ShardError, match="the directory itself"):
        remove_shard(sharded.directory, 0)
    with pytest.raises(ShardError, match="no shard 5"):
        remove_shard(sharded.directory, 5)
    await sharded.delete_user("a@x.org")
    remove_shard(sharded.directory, 1)
    assert [s.id for s in list_shards(sharded.directory)] == [0]
    name = second_postgres_cluster.new_database()
    try:  # a process may still have shard 1 open: its number is not given out again
        assert add_shard(sharded.directory, second_postgres_cluster.dsn(name)) == 2
    finally:
        sharded.close()  # before the database goes
        second_postgres_cluster.drop_database(name)


async def test_a_shard_added_later_is_used_without_a_restart(
    sharded: ShardedStore, second_postgres_cluster: pg.Cluster
) -> None:
    name = second_postgres_cluster.new_database()
    try:
        dsn = second_postgres_cluster.dsn(name)
        assert add_shard(sharded.directory, dsn) == 2
        user = await sharded.add_user("new@x.org", "h", [], shard=2)
        assert user.id >> SHIFT == 2
        assert sharded.get_user("new@x.org") == user
        assert "new@x.org" in [u.address for u in sharded.list_users()]
        with pytest.raises(ShardError, match="already a shard"):
            add_shard(sharded.directory, dsn)
    finally:
        sharded.close()  # before the database goes
        second_postgres_cluster.drop_database(name)


async def test_add_shard_refuses_what_is_no_empty_database(
    sharded: ShardedStore, postgres_cluster: pg.Cluster
) -> None:
    name = postgres_cluster.new_database()
    try:
        dsn = postgres_cluster.dsn(name)
        used = PostgresStore(dsn, listen=False)
        try:
            await used.add_user("someone@x.org", "h", [])
        finally:
            used.close()
        with pytest.raises(ShardError, match="holds users"):
            add_shard(sharded.directory, dsn)
        with pytest.raises(ShardError, match="already a shard"):
            add_shard(sharded.directory, sharded.directory.dsn)
        with pytest.raises(ShardError, match="the directory itself"):  # spelled otherwise
            add_shard(sharded.directory, sharded.directory.dsn + "?application_name=x")
        with pytest.raises(ShardError, match="cannot open the shard"):
            add_shard(sharded.directory, "postgresql://nobody@127.0.0.1:1/nothing")
        with pytest.raises(ShardError, match="not a postgresql"):
            add_shard(sharded.directory, "mysql://x")
    finally:
        postgres_cluster.drop_database(name)


async def test_a_map_pointing_at_the_wrong_database_is_refused(
    sharded_dsns: tuple[str, str], postgres_cluster: pg.Cluster
) -> None:
    name = postgres_cluster.new_database()
    try:
        directory = PostgresStore(sharded_dsns[0], listen=False)
        try:
            directory._call(
                directory._pool.execute(
                    "UPDATE shards SET dsn = $1 WHERE id = 1", postgres_cluster.dsn(name)
                )
            )
            with pytest.raises(ShardError, match="wrong database"):
                open_sharded(directory)
        finally:
            directory.close()
    finally:
        postgres_cluster.drop_database(name)


async def test_a_map_row_left_by_a_crash_is_cleared_by_delete(sharded: ShardedStore) -> None:
    """A crash between claiming the address in the map and creating the user leaves a
    map row without a user: the address is taken until `coi user del` removes it."""
    await sharded.directory._await(
        sharded.directory._pool.execute(
            "INSERT INTO user_shards (address, shard_id) VALUES ('ghost@x.org', 1)"
        )
    )
    assert sharded.get_user("ghost@x.org") is None
    with pytest.raises(UserExists):
        await sharded.add_user("ghost@x.org", "h", [])
    with pytest.raises(NoSuchUser):
        await sharded.delete_user("ghost@x.org")
    user = await sharded.add_user("ghost@x.org", "h", [])
    assert sharded.get_user("ghost@x.org") == user
    assert await sharded.read_user("ghost@x.org") == user


async def test_one_database_is_not_sharded(postgres_dsn: str) -> None:
    store = PostgresStore(postgres_dsn, listen=False)
    try:
        assert open_sharded(store) is None
        assert list_shards(store) == []
        with pytest.raises(ShardError, match="not sharded"):
            set_shard_closed(store, 0, True)
    finally:
        store.close()


async def test_users_of_the_directory_before_sharding_stay_there(
    postgres_dsn: str, second_postgres_cluster: pg.Cluster
) -> None:
    """An installation on one database becomes sharded by adding a shard: its users stay
    in the directory (shard 0) and keep their ids."""
    single = PostgresStore(postgres_dsn, listen=False)
    name = second_postgres_cluster.new_database()
    try:
        old = await single.add_user("old@x.org", "h", [])
        await single.set_alias("alias@x.org", "old@x.org")
        add_shard(single, second_postgres_cluster.dsn(name))
        sharded = open_sharded(single)
        assert sharded is not None
        assert sharded.get_user("old@x.org") == old
        assert sharded.alias_target("alias@x.org") == old
        new = await sharded.add_user("new@x.org", "h", [])
        assert new.id >> SHIFT == 1  # shard 0 has one user already
        assert [(s.id, s.users) for s in list_shards(single)] == [(0, 1), (1, 1)]
        sharded.close()  # closes the directory too
    finally:
        second_postgres_cluster.drop_database(name)


async def _mail_of(store: ShardedStore, address: str) -> dict[str, object]:
    """What a user's clients see, without ids: mailboxes (UIDVALIDITY, UIDNEXT,
    HIGHESTMODSEQ, STATUS counts, messages with flags, MODSEQ and body), the expunge
    tombstones QRESYNC reads, subscriptions, METADATA, aliases."""
    user = store.get_user(address)
    assert user is not None
    boxes = {}
    for box in store.list_mailboxes(user.id):
        rows = store.rows(box.id, list(store.uids(box.id)))
        status = store.status(box)
        boxes[box.name] = (
            box.uidvalidity,
            box.uidnext,
            box.highestmodseq,
            (status.messages, status.unseen),
            [(r.uid, r.flags, r.modseq, store.blob(r.blob_id)) for r in rows.values()],
            await store.vanished_since(box.id, 0),
            store.get_metadata(user.id, box.id, ["/private", "/shared"], "infinity"),
        )
    return {
        "mailboxes": boxes,
        "subscribed": store.subscriptions(user.id),
        "server": store.get_metadata(user.id, 0, ["/private", "/shared"], "infinity"),
        "aliases": await store.list_aliases(),
        "used": store.storage_used(user.id),
    }


async def test_a_user_moves_to_another_shard_with_all_their_mail(
    sharded: ShardedStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`coi shard move`: everything a client sees stays (UIDs, UIDVALIDITY, MODSEQs, flags,
    bodies, tombstones, METADATA, aliases), under ids of the target; the source keeps
    nothing; the user's sessions are told (UserGone). A move that stopped half-way (after
    the copy, after the map) is finished by running it again."""
    import asyncpg

    from coi.store.events import UserGone
    from coi.store.postgres import moving
    from coi.store.postgres.moving import move_user

    alice, inbox = await user_with_inbox(sharded, "alice@x.org")
    await user_with_inbox(sharded, "bob@x.org")  # on shard 1: alice's target
    assert alice.id >> SHIFT == 0
    await sharded.append(inbox.id, [message(str(n), flags=("\\Seen",) * (n % 2)) for n in range(5)])
    archive = await sharded.create_mailbox(alice.id, "Archive/2026")
    await sharded.copy(inbox.id, [1, 2], archive.id)  # bodies shared by two mailboxes
    await sharded.store_flags(inbox.id, [3], "add", Flags(DELETED, ("$chat",)))
    await sharded.expunge(inbox.id, [3])
    await sharded.set_metadata(alice.id, 0, [("/private/comment", b"server")])
    await sharded.set_metadata(alice.id, inbox.id, [("/shared/comment", b"inbox")])
    await sharded.set_alias("info@x.org", "alice@x.org")
    before = await _mail_of(sharded, "alice@x.org")
    gone: list[Event] = []
    sharded.events.watch_user(alice.id, gone.append)
    directory = sharded.directory.dsn

    async def copied_then_lost(*args: object) -> object:  # a crash after the copy
        await real_copy(*args)  # type: ignore[arg-type]
        raise OSError("the connection was lost")

    real_copy = moving._copy
    monkeypatch.setattr(moving, "_copy", copied_then_lost)
    with pytest.raises(OSError):
        await move_user(directory, "alice@x.org", 1)
    monkeypatch.undo()
    assert sharded.shards[1].get_user("alice@x.org") is not None  # a copy not in the map
    assert sharded.get_user("alice@x.org") == alice  # still served from shard 0

    done = await move_user(directory, "ALICE@x.org", 1)
    assert (done.source, done.target, done.mailboxes, done.messages) == (0, 1, 5, 6)
    moved = sharded.get_user("alice@x.org")
    assert moved is not None and moved.id >> SHIFT == 1
    assert sharded.alias_target("info@x.org") == moved
    assert await _mail_of(sharded, "alice@x.org") == before
    assert sharded.directory.get_user("alice@x.org") is None  # nothing left on shard 0
    assert not sharded.directory._fetch("SELECT count(*) FROM blobs")[0][0]  # type: ignore[attr-defined]
    for _ in range(200):  # the notification of the move reaches this process
        if UserGone(alice.id, True) in gone:
            break
        await asyncio.sleep(0.025)
    assert UserGone(alice.id, True) in gone
    new_inbox = sharded.get_mailbox(moved.id, "INBOX")
    assert new_inbox is not None
    await sharded.append(new_inbox.id, [message("after")])  # UIDs go on
    assert list(sharded.uids(new_inbox.id)) == [1, 2, 4, 5, 6]

    # back to shard 0, stopped after the map changed: the old rows stay until run again
    monkeypatch.setattr(moving, "notify_sql", lambda events: "SELECT no_such_function()")
    with pytest.raises(asyncpg.PostgresError):
        await move_user(directory, "alice@x.org", 0)
    monkeypatch.undo()
    assert sharded.shards[1].get_user("alice@x.org") is not None
    again = await move_user(directory, "alice@x.org", 0)
    assert (again.source, again.target, again.leftovers) == (0, 0, (1,))
    assert sharded.shards[1].get_user("alice@x.org") is None
    settled = await _mail_of(sharded, "alice@x.org")
    assert settled["mailboxes"] != {}
    # two moves of one user at once: the second waits for the first, nothing is lost
    both = await asyncio.gather(*(move_user(directory, "alice@x.org", 1) for _ in range(2)))
    assert sorted((r.source, r.target) for r in both) == [(0, 1), (1, 1)]
    assert await _mail_of(sharded, "alice@x.org") == settled
    with pytest.raises(ShardError, match="there is no shard 7"):
        await move_user(directory, "alice@x.org", 7)
    with pytest.raises(NoSuchUser):
        await move_user(directory, "nobody@x.org", 1)


def test_every_table_with_a_users_rows_is_moved(sharded: ShardedStore) -> None:
    """A table a later migration adds with rows of a user (a user, mailbox or body id
    column) must be copied by `coi shard move` too: this fails until it is in COPIED."""
    from coi.store.postgres.moving import COPIED

    rows = sharded.directory._fetch(  # type: ignore[attr-defined]
        "SELECT DISTINCT table_name FROM information_schema.columns WHERE table_schema ="
        " current_schema() AND column_name IN ('user_id', 'mailbox_id', 'blob_id')"
    )
    assert {str(row[0]) for row in rows} | {"users", "blobs"} == set(COPIED)


async def test_a_write_during_a_move_waits_and_fails_or_is_moved(
    sharded: ShardedStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write of the user that comes while the move holds their rows waits for it, then
    fails (no OK was given: the client or the sending server tries again, and finds the
    user on the target); a write that committed before the move is moved. Nothing is
    stored on the source after the move."""
    from coi.store.errors import NoSuchMailbox
    from coi.store.postgres import moving
    from coi.store.postgres.moving import move_user

    alice, inbox = await user_with_inbox(sharded, "alice@x.org")
    await sharded.append(inbox.id, [message("before")])
    copied, release = asyncio.Event(), asyncio.Event()
    real_copy = moving._copy

    async def copy_then_hold(*args: object) -> object:
        result = await real_copy(*args)  # type: ignore[arg-type]
        copied.set()
        await release.wait()  # the source's rows stay locked meanwhile
        return result

    monkeypatch.setattr(moving, "_copy", copy_then_hold)
    move = asyncio.create_task(move_user(sharded.directory.dsn, "alice@x.org", 1))
    await asyncio.wait_for(copied.wait(), 30)
    writes = [
        asyncio.create_task(sharded.append(inbox.id, [message("during")])),
        asyncio.create_task(sharded.store_flags(inbox.id, [1], "add", Flags(DELETED))),
        asyncio.create_task(sharded.set_metadata(alice.id, 0, [("/private/x", b"y")])),
    ]
    await asyncio.sleep(0.5)
    assert not any(w.done() for w in writes)  # waiting for the move's locks
    release.set()
    await move
    for write in writes:
        with pytest.raises((NoSuchMailbox, NoSuchUser)):
            await write
    moved = sharded.get_user("alice@x.org")
    assert moved is not None and moved.id >> SHIFT == 1
    new_inbox = sharded.get_mailbox(moved.id, "INBOX")
    assert new_inbox is not None and list(sharded.uids(new_inbox.id)) == [1]
    assert not sharded.rows(new_inbox.id, [1])[1].flags.bits & DELETED
    assert sharded.get_metadata(moved.id, 0, ["/private/x"]) == {}
    for table in ("users", "mailboxes", "messages", "blobs", "metadata"):
        count = sharded.directory._fetch(f"SELECT count(*) FROM {table}")  # type: ignore[attr-defined]
        assert count[0][0] == 0, table
