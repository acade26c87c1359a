"""Users sharded over several PostgreSQL databases (DESIGN.md: Scale-out; issue 17).

Every command of a session touches one user's data (as in Dovecot's director set-ups), so
a user and everything of theirs (mailboxes, messages, bodies, METADATA, aliases) live in
one database, a *shard*. The database the processes are given (`--store`) is the
*directory*: an ordinary coi database that is also shard 0 (so an installation on one
database becomes sharded by adding shards, without moving anyone), plus the shard map:

- `shards(id, dsn, closed)`: shard 0 is the directory itself (dsn ''); a closed shard
  takes new users only when named (`coi shard close`, `coi user add --shard`);
- `user_shards(address, shard_id)` and `alias_shards(address, shard_id)`: where each
  user and each alias lives. A directory without a `shards` table is one database, as
  before (`open_sharded` returns None).

Invariants:
- Shard k hands out every id the Protocol passes around (users, mailboxes, bodies: every
  sequence of its schema) from [k << 40, (k + 1) << 40), set by `coi shard add` and
  checked when a shard is opened (`_prepare`), so an id names its shard (`id >> SHIFT`)
  and no id is ever translated. The shard also records its number (`meta.shard_id`): a
  map entry pointing at the wrong database is refused at start.
- Routing is explicit: `ROUTES` names, for every member of the `Store` Protocol, the key
  it is routed by; a test fails when a Protocol member is not in it.
- A user's address is claimed in `user_shards` before the user is created on its shard
  (the primary key makes addresses unique across shards), and released when creating
  fails; the map row goes after the user is deleted. A crash between the two leaves a
  map row without a user: `coi user del` removes it.
- Events: every shard's store LISTENs on its own database and publishes on one shared
  `EventBus`; one user lives in one shard, so that user's events keep their commit order.
- Address lookups are cached (address -> shard); a hit is checked by the shard's own
  answer (a user not found there is looked up in the map again), so a user deleted and
  added again on another shard is found.

A user moves to another shard with `coi shard move` (coi.store.postgres.moving): their
rows are copied under the target's ids, so an id still names its shard.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from coi.store.errors import NoSuchUser, StoreError, UserExists
from coi.store.events import EventBus
from coi.store.model import (
    FlagChanges,
    Flags,
    Mailbox,
    MailboxStatus,
    MessageRow,
    NewMessage,
    User,
)
from coi.store.postgres.pool import ConnectionPool
from coi.store.postgres.store import DATABASE_SIZE, PostgresStore
from coi.store.protocol import FlagMode, MetadataUpdate, Store
from coi.store.sentcopies import SentCopies

__all__ = [
    "ROUTES",
    "SHIFT",
    "ShardError",
    "ShardInfo",
    "ShardedStore",
    "add_shard",
    "list_shards",
    "open_sharded",
]

T = TypeVar("T")

SHIFT = 40  # shard k's ids are [k << SHIFT, (k + 1) << SHIFT): a trillion of each per shard
_MAX_SHARD = (1 << (63 - SHIFT)) - 1
_CACHE_MAX = 100_000  # addresses whose shard is remembered, before starting over

# How each member of the Store Protocol is routed (tests/unit/store/test_sharded.py checks
# that every member is here): "address" (the shard map), "user" (a user id), "mailbox"
# (a mailbox id or a Mailbox), "blob" (body ids, grouped by shard), "new" (a new user: the
# shard with the fewest users, or the one named), "all" (every shard, merged), "local"
# (this process, no database).
ROUTES: dict[str, str] = {
    "get_user": "address",
    "read_user": "address",
    "list_users": "all",
    "alias_target": "address",
    "list_aliases": "all",
    "add_user": "new",
    "delete_user": "address",
    "set_alias": "address",
    "set_password": "address",
    "quota_of": "user",
    "storage_used": "user",
    "read_usage": "user",
    "read_recipient": "address",
    "set_quota": "address",
    "mailboxid": "mailbox",
    "list_mailboxes": "user",
    "get_mailbox": "user",
    "mailbox_by_id": "mailbox",
    "subscriptions": "user",
    "status": "mailbox",
    "read_mailbox": "user",
    "read_target": "user",
    "read_status": "mailbox",
    "read_mailbox_status": "user",
    "read_mailboxes": "user",
    "create_mailbox": "user",
    "delete_mailbox": "user",
    "rename_mailbox": "user",
    "set_subscribed": "user",
    "claim_recent": "mailbox",
    "take_recent": "mailbox",
    "get_metadata": "user",
    "read_metadata": "user",
    "set_metadata": "user",
    "emailid": "blob",
    "previews": "blob",
    "save_previews": "blob",
    "header_prefixes": "blob",
    "uids": "mailbox",
    "rows": "mailbox",
    "row_tuples": "mailbox",
    "read_rows": "mailbox",
    "read_row_tuples": "mailbox",
    "flag_rows": "mailbox",
    "changed_since": "mailbox",
    "vanished_since": "mailbox",
    "first_unseen": "mailbox",
    "blob": "blob",
    "blobs": "blob",
    "meta": "blob",
    "metas": "blob",
    "search_blob": "blob",
    "search_blobs": "mailbox",
    "text_matches": "mailbox",
    "append": "mailbox",
    "store_flags": "mailbox",
    "copy": "mailbox",
    "expunge": "mailbox",
    "events": "local",
    "sent_copies": "local",
    "close": "all",
    "warm_up": "all",
    "database_bytes": "all",
}

_MAP_SCHEMA = """
CREATE TABLE IF NOT EXISTS shards (
    id integer PRIMARY KEY,
    dsn text NOT NULL DEFAULT '',
    added bigint NOT NULL DEFAULT 0,
    closed boolean NOT NULL DEFAULT false
);
CREATE TABLE IF NOT EXISTS user_shards (
    address text PRIMARY KEY,
    shard_id integer NOT NULL REFERENCES shards (id)
);
CREATE INDEX IF NOT EXISTS user_shards_shard ON user_shards (shard_id);
CREATE TABLE IF NOT EXISTS alias_shards (
    address text PRIMARY KEY,
    shard_id integer NOT NULL REFERENCES shards (id)
);
INSERT INTO shards (id, dsn, added) VALUES (0, '', extract(epoch FROM now())::bigint)
    ON CONFLICT (id) DO NOTHING;
INSERT INTO user_shards (address, shard_id) SELECT address, 0 FROM users
    ON CONFLICT (address) DO NOTHING;
INSERT INTO alias_shards (address, shard_id) SELECT address, 0 FROM aliases
    ON CONFLICT (address) DO NOTHING;
"""
_MAP_LOCK = 0x636F69_73686172  # advisory lock: one `coi shard add` at a time


class ShardError(StoreError):
    """A shard that cannot be added or used; the message says why, in one line."""


@dataclass(frozen=True, slots=True)
class ShardInfo:
    id: int
    dsn: str  # '' for the directory itself
    users: int
    closed: bool = False  # takes new users only when named
    size: int | None = None  # its database on disk (octets); None when it cannot be reached


def shard_of(any_id: int) -> int:
    """The shard an id was handed out by."""
    return any_id >> SHIFT


# -- the directory's map ---------------------------------------------------------------


def _fetch(store: PostgresStore, sql: str, *args: Any) -> list[asyncpg.Record]:
    return store._call(store._pool.fetch(sql, *args))


async def _afetch(store: PostgresStore, sql: str, *args: Any) -> list[asyncpg.Record]:
    return await store._await(store._pool.fetch(sql, *args))


def _shard_map(directory: PostgresStore) -> dict[int, str] | None:
    """The shards' DSNs by number, or None when the database is not a directory."""
    if _fetch(directory, "SELECT to_regclass('shards') IS NOT NULL")[0][0] is not True:
        return None
    return {int(r[0]): str(r[1]) for r in _fetch(directory, "SELECT id, dsn FROM shards")}


def list_shards(directory: PostgresStore) -> list[ShardInfo]:
    """Every shard with its number of users (from the map); [] when not sharded."""
    if _shard_map(directory) is None:
        return []
    rows = _fetch(
        directory,
        "SELECT s.id, s.dsn, count(u.address), s.closed FROM shards s"
        " LEFT JOIN user_shards u ON u.shard_id = s.id GROUP BY s.id ORDER BY s.id",
    )
    sizes = directory._call(_sizes(directory, [str(r[1]) for r in rows]))
    return [
        ShardInfo(int(r[0]), str(r[1]), int(r[2]), bool(r[3]), size)
        for r, size in zip(rows, sizes, strict=True)
    ]


async def _sizes(directory: PostgresStore, dsns: list[str]) -> list[int | None]:
    """Each database's size on disk ('' is the directory), at once; None for one that
    cannot be reached within a few seconds (the listing goes on without it)."""
    async def size(dsn: str) -> int | None:
        if not dsn:
            return int(await directory._pool.fetchval(DATABASE_SIZE))
        try:
            conn = await asyncpg.connect(dsn, timeout=5)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return None
        try:
            return int(await conn.fetchval(DATABASE_SIZE))
        finally:
            await conn.close()

    return list(await asyncio.gather(*(size(dsn) for dsn in dsns)))


def _require_map(directory: PostgresStore) -> None:
    if _fetch(directory, "SELECT to_regclass('shards') IS NOT NULL")[0][0] is not True:
        raise ShardError("the store is not sharded (coi shard add DSN adds a shard)")


def set_shard_closed(directory: PostgresStore, number: int, closed: bool) -> None:
    """Closes shard `number` to new users (its users stay and keep working; a user can
    still be added there by naming it), or opens it again. ShardError when there is no
    such shard."""
    _require_map(directory)
    done = _fetch(
        directory, "UPDATE shards SET closed = $2 WHERE id = $1 RETURNING id", number, closed
    )
    if not done:
        raise ShardError(f"no shard {number} (coi shard list shows them)")


async def _prepare(pool: ConnectionPool, number: int, *, new: bool) -> None:
    """Makes (`new`) or checks the shard's number and its id ranges: every sequence of the
    schema (those a later migration adds too) hands out ids in [number << SHIFT, ...)."""
    low = max(1, number << SHIFT)
    high = ((number + 1) << SHIFT) - 1
    async with pool.acquire() as conn, conn.transaction():
        recorded = await conn.fetchval("SELECT value FROM meta WHERE key = 'shard_id'")
        if new:
            if await conn.fetchval("SELECT to_regclass('shards') IS NOT NULL"):
                raise ShardError("that database is a shard directory, not an empty database")
            if await conn.fetchval("SELECT count(*) FROM users") or await conn.fetchval(
                "SELECT count(*) FROM blobs"
            ):
                raise ShardError("that database holds users or messages: a shard starts empty")
            await conn.execute(
                "INSERT INTO meta (key, value) VALUES ('shard_id', $1)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                str(number),
            )
            # a key of its own (a database copied from another's template shares its key),
            # so MAILBOXIDs of two shards never meet (RFC 8474 §4); nothing was handed out yet
            await conn.execute(
                "UPDATE meta SET value = replace(gen_random_uuid()::text, '-', '')"
                " WHERE key = 'objectid_key'"
            )
        elif number and recorded != str(number):
            raise ShardError(
                f"the database of shard {number} says it is shard {recorded or 'none'}:"
                " the shard map points at the wrong database"
            )
        sequences = await conn.fetch(
            "SELECT format('%I.%I', schemaname, sequencename), min_value, max_value,"
            " last_value FROM pg_sequences WHERE schemaname = current_schema()"
        )
        for name, min_value, max_value, last in sequences:
            if min_value == low and max_value == high:
                continue
            if last is not None and last >= low and not new:
                start = f"RESTART WITH {int(last) + 1}"
            else:
                start = f"RESTART WITH {low}"
            if last is not None and last > high and not new:
                raise ShardError(f"sequence {name} of shard {number} is past its range")
            await conn.execute(
                f"ALTER SEQUENCE {name} MINVALUE {low} MAXVALUE {high} START WITH {low} {start}"
            )


def add_shard(directory: PostgresStore, dsn: str) -> int:
    """Adds the empty database `dsn` as the next shard: makes the map (the directory is
    shard 0) when missing, the shard's schema, number and id ranges, then records it.
    Raises ShardError (one line) for a user's mistake."""
    if not dsn.startswith(("postgresql://", "postgres://")):
        raise ShardError(f"{dsn!r} is not a postgresql:// URL")
    known = _shard_map(directory) or {}
    if dsn in known.values() or dsn == directory.dsn:
        raise ShardError("that database is already a shard")
    # never a removed shard's number: a process that still has it open would send the
    # new shard's ids to the old database
    removed = _fetch(directory, "SELECT value FROM meta WHERE key = 'shard_removed'")
    number = max(*known, int(removed[0][0]) if removed else 0, 0) + 1
    if number > _MAX_SHARD:
        raise ShardError("no shard number left")
    try:
        shard = PostgresStore(dsn, min_size=1, max_size=2, listen=False)
    except Exception as exc:  # unreachable, no such database, no permission, ...
        raise ShardError(f"cannot open the shard: {exc}") from None
    probe = secrets.token_hex(8)  # seen in the shard: it is the directory, by another URL
    _fetch(
        directory,
        "INSERT INTO meta (key, value) VALUES ('shard_probe', $1)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        probe,
    )
    try:
        seen = _fetch(shard, "SELECT value FROM meta WHERE key = 'shard_probe'")
        if seen and seen[0][0] == probe:
            raise ShardError("that database is the directory itself")
        shard._call(_prepare(shard._pool, number, new=True))
    finally:
        shard.close()
        _fetch(directory, "DELETE FROM meta WHERE key = 'shard_probe'")

    async def record() -> None:
        async with directory._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MAP_LOCK)
            await conn.execute(_MAP_SCHEMA)
            await _directory_ranges(conn)
            if await conn.fetchval("SELECT 1 FROM shards WHERE id = $1 OR dsn = $2", number, dsn):
                raise ShardError("another shard was added meanwhile: run coi shard add again")
            await conn.execute(
                "INSERT INTO shards (id, dsn, added) VALUES ($1, $2,"
                " extract(epoch FROM now())::bigint)",
                number,
                dsn,
            )

    try:
        directory._call(record())
    except asyncpg.PostgresError as exc:  # no CREATE right on the directory, ...
        raise ShardError(f"recording the shard in the directory failed: {exc}") from None
    return number


def remove_shard(directory: PostgresStore, number: int) -> None:
    """Takes shard `number` out of the map; only one that no user or alias is mapped to
    (closed first, so no user is added meanwhile; the map's foreign keys refuse the
    removal of a shard that got one anyway). Its database is left as it is, and its
    number is never given out again. ShardError (one line) when it cannot be."""
    _require_map(directory)
    if number == 0:
        raise ShardError("shard 0 is the directory itself: it cannot be removed")

    async def remove() -> None:
        async with directory._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MAP_LOCK)
            if not await conn.fetchval("SELECT 1 FROM shards WHERE id = $1", number):
                raise ShardError(f"no shard {number} (coi shard list shows them)")
            users = await conn.fetchval(
                "SELECT (SELECT count(*) FROM user_shards WHERE shard_id = $1)"
                " + (SELECT count(*) FROM alias_shards WHERE shard_id = $1)",
                number,
            )
            if users:
                raise ShardError(
                    f"shard {number} still holds {users} users and aliases: coi shard drain"
                    f" {number} moves them (coi shard close keeps new ones out)"
                )
            await conn.execute(
                "INSERT INTO meta (key, value) VALUES ('shard_removed', $1) ON CONFLICT (key)"
                " DO UPDATE SET value = greatest(meta.value::integer, $1::integer)::text",
                str(number),
            )
            await conn.execute("DELETE FROM shards WHERE id = $1", number)

    try:
        directory._call(remove())
    except asyncpg.ForeignKeyViolationError:
        raise ShardError(f"shard {number} got a user meanwhile: close it first") from None


async def _directory_ranges(conn: Any) -> None:
    """Shard 0's ids (the directory's) stay below 1 << SHIFT."""
    for (ident,) in await conn.fetch(
        "SELECT format('%I.%I', schemaname, sequencename) FROM pg_sequences"
        " WHERE schemaname = current_schema() AND max_value > $1",
        (1 << SHIFT) - 1,
    ):
        await conn.execute(f"ALTER SEQUENCE {ident} MAXVALUE {(1 << SHIFT) - 1}")


async def _directory_ranges_of(directory: PostgresStore) -> None:
    async with directory._pool.acquire() as conn, conn.transaction():
        await _directory_ranges(conn)


def open_sharded(directory: PostgresStore) -> ShardedStore | None:
    """The sharded store on `directory` when it holds a shard map with other shards, else
    None (one database, as before). Raises ShardError when a shard cannot be opened; the
    directory is left open for the caller to close."""
    shards = _shard_map(directory)
    if not shards or max(shards) == 0:
        return None
    return ShardedStore(directory, shards)


def _cut(cache: dict[str, int]) -> None:
    if len(cache) >= _CACHE_MAX:
        cache.clear()


class ShardedStore:
    """The `Store` Protocol over a directory and its shards: each call goes to the shard
    that holds its user (ROUTES says by which key); listings merge every shard."""

    def __init__(self, directory: PostgresStore, shards: dict[int, str]) -> None:
        self.directory = directory
        self._events = directory.events
        self._sent_copies = SentCopies()
        self._shards: dict[int, PostgresStore] = {0: directory}
        self._user_cache: dict[str, int] = {}
        self._alias_cache: dict[str, int] = {}
        try:
            directory._call(_directory_ranges_of(directory))
            for number, dsn in sorted(shards.items()):
                if number:
                    self._open(number, dsn)
        except BaseException:
            self._close_shards()
            raise

    def _open(self, number: int, dsn: str) -> PostgresStore:
        """Opens shard `number`: its events go to the one bus; its number and id ranges
        are checked (ShardError when it is not the database the map says)."""
        listen = self.directory._home is not None
        try:
            shard = PostgresStore(
                dsn, listen=None if listen else False, fsync=self.directory.fsync
            )
        except Exception as exc:  # unreachable, no such database, ...
            raise ShardError(f"cannot open shard {number}: {exc}") from None
        shard.events = self._events  # one bus: sessions watch every shard's events
        try:
            shard._call(_prepare(shard._pool, number, new=False))
        except BaseException:
            shard.close()
            raise
        self._shards[number] = shard
        return shard

    def _shard(self, number: int) -> PostgresStore | None:
        """Shard `number`; one added after this process started is opened on first use
        (so `coi shard add` needs no restart of the running servers)."""
        shard = self._shards.get(number)
        if shard is None:
            dsn = (_shard_map(self.directory) or {}).get(number)
            if dsn is not None:
                shard = self._open(number, dsn)
        return shard

    def _close_shards(self) -> None:
        for number, shard in sorted(self._shards.items(), reverse=True):
            if number:
                shard.close()

    @property
    def dsn(self) -> str:
        """The directory's URL: what names this store (`--store`)."""
        return self.directory.dsn

    @property
    def events(self) -> EventBus:
        return self._events

    @property
    def sent_copies(self) -> SentCopies:
        return self._sent_copies

    @property
    def shards(self) -> dict[int, PostgresStore]:
        return dict(self._shards)

    async def warm_up(self) -> None:
        await asyncio.gather(*(shard.warm_up() for shard in self._all()))

    def database_bytes(self) -> int:
        """What the directory and the shards opened take on disk (--metrics)."""
        return sum(shard.database_bytes() for shard in self._all())

    def close(self) -> None:
        """Closes every shard, the directory last."""
        try:
            self._close_shards()
        finally:
            self.directory.close()

    # -- routing -------------------------------------------------------------------

    def _at(self, any_id: int) -> PostgresStore:
        """The shard that handed out `any_id`; an id of no shard goes to the directory,
        which finds nothing for it (as one database finds nothing for an unknown id)."""
        return self._shards.get(any_id >> SHIFT, self.directory)

    def _groups(self, ids: Iterable[int]) -> dict[PostgresStore, list[int]]:
        out: dict[PostgresStore, list[int]] = {}
        for any_id in ids:
            out.setdefault(self._at(any_id), []).append(any_id)
        return out

    def _mapped(self, table: str, address: str) -> int | None:
        row = _fetch(self.directory, f"SELECT shard_id FROM {table} WHERE address = $1", address)
        return int(row[0][0]) if row else None

    def _find(
        self, table: str, cache: dict[str, int], address: str, read: Callable[[PostgresStore], T]
    ) -> T | None:
        """`read` on the shard the map names for `address` (cached; a miss there is looked
        up again); an address not in the map is looked for in the directory (shard 0: a
        user made by a process that did not know the map yet)."""
        address = address.lower()
        cached = cache.get(address)
        if cached is not None:
            found = read(self._shards[cached])
            if found is not None:
                return found
            cache.pop(address, None)
        number = self._mapped(table, address) if "\x00" not in address else None
        if number is None:
            return read(self.directory)
        shard = self._shard(number)
        if shard is None:
            return None
        found = read(shard)
        if found is not None:
            _cut(cache)
            cache[address] = number
        return found

    async def _shard_of(self, table: str, address: str) -> int | None:
        rows = await _afetch(
            self.directory, f"SELECT shard_id FROM {table} WHERE address = $1", address.lower()
        )
        return int(rows[0][0]) if rows else None

    async def _routed(self, table: str, address: str) -> tuple[int, PostgresStore]:
        """The shard of a user or alias (the directory when not in the map)."""
        number = await self._shard_of(table, address) or 0
        shard = self._shard(number)
        if shard is None:
            raise ShardError(f"{address} is on shard {number}, which is not in the shard map")
        return number, shard

    def _all(self) -> list[PostgresStore]:
        """Every shard, those added since this process started too."""
        for number in sorted(_shard_map(self.directory) or {}):
            self._shard(number)
        return [self._shards[n] for n in sorted(self._shards)]

    # -- users ---------------------------------------------------------------------

    def get_user(self, address: str) -> User | None:
        return self._find("user_shards", self._user_cache, address, lambda s: s.get_user(address))

    async def read_user(self, address: str) -> User | None:
        """`get_user()` awaited: the map's lookup too (as `_find` does it)."""
        key = address.lower()
        cached = self._user_cache.get(key)
        if cached is not None:
            found = await self._shards[cached].read_user(address)
            if found is not None:
                return found
            self._user_cache.pop(key, None)
        number = await self._shard_of("user_shards", key) if "\x00" not in key else None
        if number is None:
            return await self.directory.read_user(address)
        shard = self._shard(number)
        if shard is None:
            return None
        found = await shard.read_user(address)
        if found is not None:
            _cut(self._user_cache)
            self._user_cache[key] = number
        return found

    def list_users(self) -> list[User]:
        users = [u for shard in self._all() for u in shard.list_users()]
        return sorted(users, key=lambda u: u.address)

    def alias_target(self, address: str) -> User | None:
        return self._find(
            "alias_shards", self._alias_cache, address, lambda s: s.alias_target(address)
        )

    async def list_aliases(self) -> list[tuple[str, str]]:
        parts = await asyncio.gather(*(s.list_aliases() for s in self._all()))
        return sorted(pair for part in parts for pair in part)

    async def add_user(
        self,
        address: str,
        password_hash: str,
        mailboxes: Sequence[tuple[str, str]],
        *,
        shard: int | None = None,
    ) -> User:
        """Creates the user on shard `shard`, or on the open shard with the fewest users
        (by the map); UserExists when the address is taken on any shard; ShardError for a
        shard not in the map, or when every shard is closed to new users."""
        address = address.lower()
        if shard is not None and self._shard(shard) is None:
            raise ShardError(f"no shard {shard} (coi shard list shows them)")
        rows = await _afetch(
            self.directory,
            "WITH chosen AS ("
            "  SELECT s.id FROM shards s LEFT JOIN user_shards u ON u.shard_id = s.id"
            "  WHERE s.id = $2 OR $2::integer IS NULL AND NOT s.closed GROUP BY s.id"
            "  ORDER BY count(u.address), s.id LIMIT 1"
            ") INSERT INTO user_shards (address, shard_id) SELECT $1, id FROM chosen"
            " ON CONFLICT (address) DO NOTHING RETURNING shard_id",
            address,
            shard,
        )
        if not rows:
            if shard is None and not await _afetch(
                self.directory, "SELECT 1 FROM user_shards WHERE address = $1", address
            ):
                raise ShardError(
                    "every shard is closed to new users: coi shard open N, or name one"
                    " with --shard N"
                )
            raise UserExists(address)  # the map names it: a user on some shard
        number = int(rows[0][0])
        target: PostgresStore | None = None
        try:
            target = self._shard(number)
            if target is None:
                raise ShardError(f"shard {number} is not in the shard map")
            if number and self.directory.get_user(address) is not None:
                raise UserExists(address)  # made by a process that did not know the map
            return await target.add_user(address, password_hash, mailboxes)
        except UserExists:
            if target is None or target.get_user(address) is None:
                await self._unmap("user_shards", address)
            raise
        except BaseException:
            await self._unmap("user_shards", address)
            raise

    async def _unmap(self, table: str, address: str) -> None:
        await _afetch(self.directory, f"DELETE FROM {table} WHERE address = $1", address.lower())

    async def delete_user(self, address: str) -> None:
        """Deletes the user on its shard, then its map rows (its aliases' too). A map row
        whose user is missing (a crash while adding) is removed, and NoSuchUser raised."""
        address = address.lower()
        _, shard = await self._routed("user_shards", address)
        aliases = await _afetch(
            shard,
            "SELECT a.address FROM aliases a JOIN users u ON u.id = a.user_id WHERE u.address = $1",
            address,
        )
        try:
            await shard.delete_user(address)
        finally:
            await self._unmap("user_shards", address)
            self._user_cache.pop(address, None)
        if aliases:
            await _afetch(
                self.directory,
                "DELETE FROM alias_shards WHERE address = ANY($1::text[])",
                [str(a[0]) for a in aliases],
            )
            for (alias,) in aliases:
                self._alias_cache.pop(str(alias), None)

    async def set_alias(self, address: str, target: str | None) -> None:
        """Sets the alias on its user's shard and records it in the map; an alias that
        pointed at a user of another shard moves."""
        address = address.lower()
        old, old_shard = await self._routed("alias_shards", address)
        if target is None:
            await old_shard.set_alias(address, None)
            await self._unmap("alias_shards", address)
            self._alias_cache.pop(address, None)
            return
        if await self._shard_of("user_shards", address) is not None:
            raise UserExists(address)  # a user's own address is no alias
        number, shard = await self._routed("user_shards", target)
        if old != number:
            with contextlib.suppress(NoSuchUser):
                await old_shard.set_alias(address, None)
            self._alias_cache.pop(address, None)
        await shard.set_alias(address, target)
        await _afetch(
            self.directory,
            "INSERT INTO alias_shards (address, shard_id) VALUES ($1, $2)"
            " ON CONFLICT (address) DO UPDATE SET shard_id = excluded.shard_id",
            address,
            number,
        )

    async def set_password(self, address: str, password_hash: str) -> None:
        await (await self._routed("user_shards", address))[1].set_password(address, password_hash)

    # -- quotas ----------------------------------------------------------------------

    def quota_of(self, user_id: int) -> int:
        return self._at(user_id).quota_of(user_id)

    def storage_used(self, user_id: int) -> int:
        return self._at(user_id).storage_used(user_id)

    async def read_usage(self, user_id: int, default: int) -> tuple[int, int]:
        return await self._at(user_id).read_usage(user_id, default)

    async def read_recipient(
        self, address: str, default: int
    ) -> tuple[User, tuple[int, int]] | None:
        """The user through the map (`read_user`), then its usage on its shard."""
        user = await self.read_user(address)
        return None if user is None else (user, await self.read_usage(user.id, default))

    async def set_quota(self, address: str, octets: int) -> None:
        await (await self._routed("user_shards", address))[1].set_quota(address, octets)

    # -- mailboxes -------------------------------------------------------------------

    def mailboxid(self, mailbox: Mailbox) -> str:
        return self._at(mailbox.id).mailboxid(mailbox)

    def list_mailboxes(self, user_id: int) -> list[Mailbox]:
        return self._at(user_id).list_mailboxes(user_id)

    def get_mailbox(self, user_id: int, name: str) -> Mailbox | None:
        return self._at(user_id).get_mailbox(user_id, name)

    def mailbox_by_id(self, mailbox_id: int) -> Mailbox | None:
        return self._at(mailbox_id).mailbox_by_id(mailbox_id)

    def subscriptions(self, user_id: int) -> set[str]:
        return self._at(user_id).subscriptions(user_id)

    def status(self, mailbox: Mailbox) -> MailboxStatus:
        return self._at(mailbox.id).status(mailbox)

    async def read_mailbox(self, user_id: int, name: str) -> Mailbox | None:
        return await self._at(user_id).read_mailbox(user_id, name)

    async def read_target(
        self, user_id: int, name: str, default: int
    ) -> tuple[Mailbox | None, tuple[int, int]]:
        return await self._at(user_id).read_target(user_id, name, default)

    async def read_status(self, mailbox: Mailbox) -> MailboxStatus:
        return await self._at(mailbox.id).read_status(mailbox)

    async def read_mailbox_status(
        self, user_id: int, name: str
    ) -> tuple[Mailbox, MailboxStatus] | None:
        return await self._at(user_id).read_mailbox_status(user_id, name)

    async def read_mailboxes(self, user_id: int) -> tuple[list[Mailbox], set[str]]:
        return await self._at(user_id).read_mailboxes(user_id)

    async def create_mailbox(
        self,
        user_id: int,
        name: str,
        special_use: str = "",
        *,
        server_metadata: MetadataUpdate = (),
        origin: object | None = None,
    ) -> Mailbox:
        return await self._at(user_id).create_mailbox(
            user_id, name, special_use, server_metadata=server_metadata, origin=origin
        )

    async def delete_mailbox(
        self,
        user_id: int,
        name: str,
        *,
        server_metadata: MetadataUpdate = (),
        origin: object | None = None,
    ) -> None:
        await self._at(user_id).delete_mailbox(
            user_id, name, server_metadata=server_metadata, origin=origin
        )

    async def rename_mailbox(
        self,
        user_id: int,
        old: str,
        new: str,
        *,
        server_metadata: MetadataUpdate = (),
        origin: object | None = None,
    ) -> None:
        await self._at(user_id).rename_mailbox(
            user_id, old, new, server_metadata=server_metadata, origin=origin
        )

    async def set_subscribed(self, user_id: int, name: str, subscribed: bool) -> None:
        await self._at(user_id).set_subscribed(user_id, name, subscribed)

    def take_recent(self, mailbox_id: int, upto: int) -> int | None:
        return self._at(mailbox_id).take_recent(mailbox_id, upto)

    async def claim_recent(self, mailbox_id: int, floor: int) -> None:
        await self._at(mailbox_id).claim_recent(mailbox_id, floor)

    # -- metadata --------------------------------------------------------------------

    def get_metadata(
        self, user_id: int, mailbox_id: int, names: Sequence[str], depth: str = "0"
    ) -> dict[str, bytes]:
        return self._at(user_id).get_metadata(user_id, mailbox_id, names, depth)

    async def read_metadata(
        self, user_id: int, mailbox_id: int, names: Sequence[str], depth: str = "0"
    ) -> dict[str, bytes]:
        return await self._at(user_id).read_metadata(user_id, mailbox_id, names, depth)

    async def set_metadata(
        self,
        user_id: int,
        mailbox_id: int,
        entries: MetadataUpdate,
        *,
        max_entries: int | None = None,
        ensure_mailboxes: Sequence[tuple[str, bool]] = (),
        origin: object | None = None,
    ) -> None:
        await self._at(user_id).set_metadata(
            user_id,
            mailbox_id,
            entries,
            max_entries=max_entries,
            ensure_mailboxes=ensure_mailboxes,
            origin=origin,
        )

    # -- messages --------------------------------------------------------------------

    def emailid(self, blob_id: int) -> str:
        return self._at(blob_id).emailid(blob_id)

    def _merged(
        self, blob_ids: Sequence[int], read: Callable[[PostgresStore, list[int]], dict[int, T]]
    ) -> dict[int, T]:
        groups = self._groups(blob_ids)
        if len(groups) == 1:
            ((shard, ids),) = groups.items()
            return read(shard, ids)
        out: dict[int, T] = {}
        for shard, ids in groups.items():
            out.update(read(shard, ids))
        return out

    def previews(self, blob_ids: Sequence[int]) -> dict[int, str]:
        return self._merged(blob_ids, lambda s, ids: s.previews(ids))

    async def save_previews(self, previews: dict[int, str]) -> None:
        for shard, ids in self._groups(previews).items():
            await shard.save_previews({i: previews[i] for i in ids})

    def header_prefixes(self, blob_ids: Sequence[int], limit: int = 64 * 1024) -> dict[int, bytes]:
        return self._merged(blob_ids, lambda s, ids: s.header_prefixes(ids, limit))

    def uids(self, mailbox_id: int) -> array[int]:
        return self._at(mailbox_id).uids(mailbox_id)

    def rows(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, MessageRow]:
        return self._at(mailbox_id).rows(mailbox_id, uids)

    def row_tuples(self, mailbox_id: int, uids: Sequence[int]) -> Iterator[tuple[Any, ...]]:
        return self._at(mailbox_id).row_tuples(mailbox_id, uids)

    async def read_rows(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, MessageRow]:
        return await self._at(mailbox_id).read_rows(mailbox_id, uids)

    async def read_row_tuples(
        self, mailbox_id: int, uids: Sequence[int]
    ) -> Iterable[tuple[Any, ...]]:
        return await self._at(mailbox_id).read_row_tuples(mailbox_id, uids)

    def flag_rows(self, mailbox_id: int, uids: Sequence[int]) -> Iterator[tuple[int, int, str]]:
        return self._at(mailbox_id).flag_rows(mailbox_id, uids)

    async def changed_since(self, mailbox_id: int, modseq: int) -> list[MessageRow]:
        return await self._at(mailbox_id).changed_since(mailbox_id, modseq)

    async def vanished_since(self, mailbox_id: int, modseq: int) -> list[int]:
        return await self._at(mailbox_id).vanished_since(mailbox_id, modseq)

    async def first_unseen(self, mailbox_id: int) -> int | None:
        return await self._at(mailbox_id).first_unseen(mailbox_id)

    def blob(self, blob_id: int) -> tuple[bytes, bytes] | None:
        return self._at(blob_id).blob(blob_id)

    async def blobs(self, blob_ids: Sequence[int]) -> dict[int, tuple[bytes, bytes]]:
        out: dict[int, tuple[bytes, bytes]] = {}
        for shard, ids in self._groups(blob_ids).items():
            out.update(await shard.blobs(ids))
        return out

    def meta(self, blob_id: int) -> bytes | None:
        return self._at(blob_id).meta(blob_id)

    def metas(self, blob_ids: Sequence[int]) -> dict[int, bytes]:
        return self._merged(blob_ids, lambda s, ids: s.metas(ids))

    def search_blob(self, blob_id: int) -> bytes | None:
        return self._at(blob_id).search_blob(blob_id)

    async def search_blobs(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, bytes]:
        return await self._at(mailbox_id).search_blobs(mailbox_id, uids)

    async def text_matches(self, mailbox_id: int, needles: Sequence[tuple[str, str]]) -> set[int]:
        return await self._at(mailbox_id).text_matches(mailbox_id, needles)

    async def append(
        self, mailbox_id: int, messages: Sequence[NewMessage], origin: object | None = None
    ) -> tuple[int, list[int]]:
        return await self._at(mailbox_id).append(mailbox_id, messages, origin)

    async def store_flags(
        self,
        mailbox_id: int,
        uids: Sequence[int],
        mode: FlagMode,
        flags: Flags,
        unchangedsince: int | None = None,
        origin: object | None = None,
    ) -> FlagChanges:
        return await self._at(mailbox_id).store_flags(
            mailbox_id, uids, mode, flags, unchangedsince, origin
        )

    async def copy(
        self,
        source_id: int,
        uids: Sequence[int],
        target_id: int,
        *,
        move: bool = False,
        origin: object | None = None,
    ) -> tuple[int, list[tuple[int, int]]]:
        """Within one user's mailboxes, so within one shard; the target's shard decides
        (a target of another shard is not found there: NoSuchMailbox, as for any
        mailbox of another user)."""
        return await self._at(target_id).copy(source_id, uids, target_id, move=move, origin=origin)

    async def expunge(
        self, mailbox_id: int, uids: Sequence[int] | None = None, origin: object | None = None
    ) -> list[int]:
        return await self._at(mailbox_id).expunge(mailbox_id, uids, origin)


if TYPE_CHECKING:  # mypy proves here that the sharded store implements the whole interface

    def _implements(store: ShardedStore) -> Store:
        return store
