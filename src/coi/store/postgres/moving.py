"""`coi shard move`: a user and everything of theirs to another shard (docs/scale-out.md).

The order, so that a crash anywhere loses nothing and running the move again finishes it:

1. On the user's shard one transaction locks the user's row and mailbox rows (every write
   of the user then waits: a message write locks its mailbox row, the others lock the
   user's row or refer to it) and reads everything of theirs.
2. The copy is written to the target under the target's ids, in one transaction; a copy
   an earlier run left there (the map does not name it) is deleted first.
3. The directory's map names the target, for the user and their aliases.
4. The first transaction deletes the user's rows and notifies `UserGone(moved)`: every
   process ends the user's sessions (the clients log in again, on the target); a write
   that waited fails (a delivery is answered 4xx and comes again, to the target).

A crash after 2 leaves a copy the map does not name (the next run deletes it); after 3,
the old rows stay on the source until the move is run again, which finds the user where
asked and deletes them (`MoveResult.leftovers`). UIDVALIDITY, UIDs, MODSEQs, flags,
INTERNALDATEs, \\Recent floors and expunge tombstones are kept, so clients resync
nothing; MAILBOXID and EMAILID change, as they come from the shard's key and its ids
(RFC 8474 asks them never to change: a move is the one exception, like a restore).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from coi.store.errors import NoSuchUser
from coi.store.postgres.cache import BodyCache
from coi.store.postgres.sharded import ShardError
from coi.store.postgres.store import delete_user_rows, notify_sql

__all__ = ["COPIED", "MoveResult", "drain_shard", "move_user"]

# every table with rows of one user, by what names their owner (tests/integration/
# test_serve_sharded.py checks that no other table of the schema has such a column)
COPIED = (
    "users",
    "aliases",
    "subscriptions",
    "metadata",
    "mailboxes",
    "messages",
    "expunged",
    "recent_floors",
    "blobs",
    "bodies",
    "search_text",
    "previews",
)
_COUNTS = ("message_count", "unseen_count", "deleted_count", "size_sum")  # kept by triggers
_BATCH = 500  # messages (and their bodies) per round trip
# one move at a time per directory: a second move of the same user, started before the
# first changed the map, would delete the first's copy as one the map does not name
_MOVE_LOCK = 0x636F69_6D6F7665


@dataclass(frozen=True)
class MoveResult:
    address: str
    source: int
    target: int
    mailboxes: int
    messages: int
    leftovers: tuple[int, ...]  # shards where an unfinished move's old rows were deleted


async def move_user(directory_dsn: str, address: str, target: int) -> MoveResult:
    """Moves `address` (a user) to shard `target`; ShardError or NoSuchUser if it cannot."""
    address = address.lower()
    directory = await asyncpg.connect(directory_dsn)
    try:
        await directory.execute("SELECT pg_advisory_lock($1)", _MOVE_LOCK)  # until closed
        shards = await _shard_map(directory, directory_dsn, target)
        source = await directory.fetchval(
            "SELECT shard_id FROM user_shards WHERE address = $1", address
        )
        if source is None:
            raise NoSuchUser(address)
        if source == target:
            others = {n: dsn for n, dsn in shards.items() if n != target}
            left = [n for n, dsn in sorted(others.items()) if await _delete_copy(dsn, address)]
            return MoveResult(address, source, target, 0, 0, tuple(left))
        await _delete_copy(shards[target], address)  # an earlier run's, never in the map
        async with contextlib.AsyncExitStack() as connections:
            src = await asyncpg.connect(shards[source])
            connections.push_async_callback(src.close)
            dst = await asyncpg.connect(shards[target])
            connections.push_async_callback(dst.close)
            async with src.transaction():
                user = await src.fetchrow(
                    "SELECT * FROM users WHERE address = $1 FOR UPDATE", address
                )
                if user is None:
                    raise ShardError(
                        f"{address} is mapped to shard {source} but is not there: "
                        f"coi user del {address} clears the claim"
                    )
                mailboxes, messages, aliases = await _copy(src, dst, user)
                async with directory.transaction():
                    await directory.execute(
                        "UPDATE user_shards SET shard_id = $2 WHERE address = $1", address, target
                    )
                    await directory.execute(
                        "UPDATE alias_shards SET shard_id = $2 WHERE address = ANY($1::text[])",
                        aliases,
                        target,
                    )
                events = await delete_user_rows(src, user["id"], BodyCache(0), moved=True)
                await src.execute(notify_sql(events))
        return MoveResult(address, source, target, mailboxes, messages, ())
    finally:
        await directory.close()


async def drain_shard(
    directory_dsn: str,
    shard: int,
    target: int | None = None,
    moved: Callable[[MoveResult], None] = lambda result: None,
) -> list[MoveResult]:
    """Moves every user of `shard` (with their aliases) to `target`, or each to the open
    shard with the fewest users, so that the shard can be removed (`coi shard remove`).
    `moved` is told of each user as they are done; a failure stops at that user (the ones
    before are moved, and running it again goes on)."""
    directory = await asyncpg.connect(directory_dsn)
    try:
        await _shard_map(directory, directory_dsn, shard)
        if target == shard:
            raise ShardError(f"shard {shard} cannot be drained into itself")
        addresses = [
            str(row[0])
            for row in await directory.fetch(
                "SELECT address FROM user_shards WHERE shard_id = $1 ORDER BY address", shard
            )
        ]
        done = []
        for address in addresses:
            to = target
            if to is None:
                to = await directory.fetchval(
                    "SELECT s.id FROM shards s LEFT JOIN user_shards u ON u.shard_id = s.id"
                    " WHERE NOT s.closed AND s.id <> $1 GROUP BY s.id ORDER BY count(u.address),"
                    " s.id LIMIT 1",
                    shard,
                )
                if to is None:
                    raise ShardError(
                        "no other shard is open to new users: coi shard open N, or --to N"
                    )
            result = await move_user(directory_dsn, address, int(to))
            done.append(result)
            moved(result)
        return done
    finally:
        await directory.close()


async def _shard_map(
    directory: asyncpg.Connection[Any], directory_dsn: str, wanted: int
) -> dict[int, str]:
    """Each shard's DSN (the directory's for shard 0); ShardError when the store is not
    sharded or has no shard `wanted`."""
    if not await directory.fetchval("SELECT to_regclass('shards') IS NOT NULL"):
        raise ShardError("the store is not sharded (coi shard add DSN adds a shard)")
    shards = {
        int(row[0]): str(row[1]) or directory_dsn
        for row in await directory.fetch("SELECT id, dsn FROM shards")
    }
    if wanted not in shards:
        raise ShardError(f"there is no shard {wanted} (coi shard list shows them)")
    return shards


async def _delete_copy(dsn: str, address: str) -> bool:
    """Deletes the user `address` from the shard at `dsn`, if there (rows the map does not
    name: what an unfinished move left); whoever serves them is told."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            user_id = await conn.fetchval(
                "SELECT id FROM users WHERE address = $1 FOR UPDATE", address
            )
            if user_id is None:
                return False
            events = await delete_user_rows(conn, user_id, BodyCache(0), moved=True)
            await conn.execute(notify_sql(events))
            return True
    finally:
        await conn.close()


async def _copy(
    src: asyncpg.Connection[Any], dst: asyncpg.Connection[Any], user: asyncpg.Record
) -> tuple[int, int, list[str]]:
    """Writes the user's rows, read in `src`'s transaction (their rows locked), to `dst`
    under its own ids, in one transaction: (mailboxes, messages, alias addresses)."""
    old_user = user["id"]
    boxes = await src.fetch(
        "SELECT * FROM mailboxes WHERE user_id = $1 ORDER BY id FOR UPDATE", old_user
    )
    old_boxes = [row["id"] for row in boxes]
    count = 0
    async with dst.transaction():
        new_user = await _insert(dst, "users", user, {}, skip="id")
        box_ids: dict[int, int] = {}
        for box in boxes:  # counts start at 0: the triggers count the messages inserted
            changes = {"user_id": new_user, **dict.fromkeys(_COUNTS, 0)}
            box_ids[box["id"]] = await _insert(dst, "mailboxes", box, changes, skip="id")
        owner = {"user_id": lambda _: new_user}
        in_box = {"mailbox_id": box_ids.__getitem__}
        for table, mapped in (
            ("aliases", owner),
            ("subscriptions", owner),
            ("metadata", {**owner, "mailbox_id": lambda m: box_ids.get(m, 0)}),  # 0: server
        ):
            rows = await src.fetch(f"SELECT * FROM {table} WHERE user_id = $1", old_user)
            await _copy_rows(dst, table, rows, mapped)
        for table in ("expunged", "recent_floors"):
            rows = await src.fetch(
                f"SELECT * FROM {table} WHERE mailbox_id = ANY($1::bigint[])", old_boxes
            )
            await _copy_rows(dst, table, rows, in_box)
        blob_ids: dict[int, int] = {}
        batch: list[asyncpg.Record] = []
        cursor = src.cursor(
            "SELECT * FROM messages WHERE mailbox_id = ANY($1::bigint[]) ORDER BY mailbox_id, uid",
            old_boxes,
            prefetch=_BATCH,
        )
        async for row in cursor:
            batch.append(row)
            if len(batch) == _BATCH:
                await _copy_messages(src, dst, batch, box_ids, blob_ids)
                count, batch = count + len(batch), []
        if batch:
            await _copy_messages(src, dst, batch, box_ids, blob_ids)
            count += len(batch)
        # references as the moved messages make them (no body is shared between users,
        # but a COPY shares one within a user's mailboxes)
        await dst.execute(
            "UPDATE blobs b SET refs = c.n FROM (SELECT blob_id, count(*) AS n FROM messages"
            " WHERE mailbox_id = ANY($1::bigint[]) GROUP BY blob_id) c WHERE b.id = c.blob_id",
            list(box_ids.values()),
        )
        # a mailbox the user creates later gets a UIDVALIDITY above every kept one
        if boxes:
            await dst.execute(
                "UPDATE meta SET value = greatest(value::bigint, $1::bigint)::text"
                " WHERE key = 'uidvalidity'",
                max(box["uidvalidity"] for box in boxes),
            )
    aliases = await src.fetch("SELECT address FROM aliases WHERE user_id = $1", old_user)
    return len(boxes), count, [str(row[0]) for row in aliases]


async def _copy_messages(
    src: asyncpg.Connection[Any],
    dst: asyncpg.Connection[Any],
    messages: list[asyncpg.Record],
    box_ids: dict[int, int],
    blob_ids: dict[int, int],
) -> None:
    """One batch of messages, with the bodies (and their search data and previews) that
    earlier batches did not bring, under new body ids."""
    fresh = sorted({row["blob_id"] for row in messages} - blob_ids.keys())
    if fresh:
        ids = await dst.fetch(
            "SELECT nextval('blob_ids') FROM generate_series(1, $1::integer)", len(fresh)
        )
        blob_ids.update(zip(fresh, (int(row[0]) for row in ids), strict=True))
        blob = {"id": blob_ids.__getitem__, "refs": lambda _: 0}
        by_blob = {"blob_id": blob_ids.__getitem__}
        for table, key, mapped in (
            ("blobs", "id", blob),
            ("bodies", "blob_id", by_blob),
            ("search_text", "blob_id", by_blob),
            ("previews", "blob_id", by_blob),
        ):
            rows = await src.fetch(f"SELECT * FROM {table} WHERE {key} = ANY($1::bigint[])", fresh)
            await _copy_rows(dst, table, rows, mapped)
    mapped = {"mailbox_id": box_ids.__getitem__, "blob_id": blob_ids.__getitem__}
    await _copy_rows(dst, "messages", messages, mapped)


async def _insert(
    conn: asyncpg.Connection[Any],
    table: str,
    row: asyncpg.Record,
    changes: dict[str, Any],
    *,
    skip: str,
) -> int:
    """One row (less `skip`, the id the target gives), with `changes`; its new id."""
    columns = [name for name in row.keys() if name != skip]  # noqa: SIM118 (values iterate)
    values = [changes.get(name, row[name]) for name in columns]
    places = ", ".join(f"${n}" for n in range(1, len(columns) + 1))
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({places}) RETURNING {skip}"
    return int(await conn.fetchval(sql, *values))


async def _copy_rows(
    conn: asyncpg.Connection[Any],
    table: str,
    rows: Sequence[asyncpg.Record],
    mapped: dict[str, Callable[[Any], Any]],
) -> None:
    """Rows as they are, but for the columns `mapped` translates (ids of the source)."""
    if not rows:
        return
    columns = list(rows[0].keys())
    maps = [mapped.get(name) for name in columns]
    records = [
        tuple(value if fn is None else fn(value) for value, fn in zip(row, maps, strict=True))
        for row in rows
    ]
    await conn.copy_records_to_table(table, records=records, columns=columns)
