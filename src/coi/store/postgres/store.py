"""The PostgreSQL store (asyncpg).

Invariants:
- The store owns an asyncio event loop in a thread of its own, with an asyncpg pool on
  it. Its synchronous reads (protocol.py says why they are synchronous) run there and
  block the caller for one round trip, as SQLite's reads block on the disk. The
  Protocol's coroutines run on a second pool opened on the home loop (the loop the store
  was created on: `coi serve`'s) when called there, with no thread hop; called from any
  other loop (the CLI's `asyncio.run`, the tests' loops) they hand their work to the
  store's loop and await it (`asyncio.wrap_future`). So one store serves any number of
  caller threads and loops, and an asyncpg connection is only ever used on its own loop.
- Every write is one transaction (READ COMMITTED) that first locks what it changes
  (the user row for mailbox-tree and METADATA changes, the mailbox rows for message
  changes), so writes of several processes on one database serialize per mailbox and
  UIDs and mod-sequences stay dense and increasing (RFC 3501 §2.3.1.1, RFC 7162 §3).
- A write returns only after COMMIT (synchronous_commit: the WAL is flushed; under
  `fsync = optimized`, flag changes, \\Recent claims and previews only wait for the
  commit, README: Durability). Its events are then published on the caller's loop, in
  commit order, before the caller resumes, exactly as the SQLite writer does. Writes
  of one user from one loop run one after another, so their events can never be
  published out of commit order. A one-statement write on the home loop whose changes
  directly follow what was published of their mailboxes (their MODSEQ is the next one,
  `_early`) is published as soon as its rows are back: nothing can still come before
  it, so it need not wait for its own notification to learn its place.
- Every query names its user or its mailbox.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import itertools
import logging
import re
import secrets
import threading
import time
from array import array
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from coi.store.errors import (
    MailboxExists,
    MailboxInUse,
    MetadataTooMany,
    NoSuchMailbox,
    NoSuchUser,
    StoreError,
    UserExists,
)
from coi.store.events import (
    ChangesMissed,
    Event,
    EventBus,
    FlagsChanged,
    MailboxCreated,
    MailboxDeleted,
    MailboxRenamed,
    MessagesAdded,
    MessagesExpunged,
    MetadataChanged,
    SubscriptionChanged,
    UserGone,
)
from coi.store.model import (
    FSYNC_POLICIES,
    FlagChanges,
    Flags,
    Mailbox,
    MailboxStatus,
    MessageRow,
    NewMessage,
    User,
    stored_flags,
)
from coi.store.postgres.cache import DEFAULT_BYTES, BodyCache
from coi.store.postgres.migrations import migrate
from coi.store.postgres.notify import CHANNEL, decode, encode, own_write, token_prefix
from coi.store.postgres.pool import ConnectionPool
from coi.store.postgres.rowcache import DEFAULT_ROWS, RowCache
from coi.store.protocol import FlagMode, MetadataUpdate, Store
from coi.store.sentcopies import SentCopies
from coi.store.shared import children_pattern, emailid, like_escape, mailboxid, status_of

if TYPE_CHECKING:
    from coi.store.postgres.pool import Connection

    Conn = Connection  # what a write job gets (inside its transaction)
    Pool = ConnectionPool

log = logging.getLogger("coi.store.postgres")

T = TypeVar("T")
# A write job gets the connection inside its transaction; returns (result, events).
Job = Callable[["Conn"], Awaitable[tuple[T, list[Event]]]]


class _Call:
    """A write that is one statement: a function of the schema that takes its locks,
    writes and notifies inside the statement's own transaction (one round trip). It gets
    `args`, then this handle's notification token and the write's id (notify.py's
    header); `build(rows)` makes (result, events) from what it returned.

    Calls with a `merge` and the same `group` (a mailbox) that wait for their turn at
    once run as one statement, a group commit: it gets `merge(calls)`, the token and an
    array of write ids, and returns each call's rows after its 1-based index."""

    __slots__ = ("args", "build", "group", "merge", "sql")

    def __init__(
        self,
        sql: str,
        args: tuple[Any, ...],
        build: Callable[[list[asyncpg.Record]], tuple[Any, list[Event]]],
        *,
        group: int = 0,
        merge: Callable[[list[_Call]], tuple[Any, ...]] | None = None,
    ) -> None:
        self.sql = sql
        self.args = args
        self.build = build
        self.group = group
        self.merge = merge


class _Pending:
    """A write waiting for its user's turn, and whom to tell its outcome."""

    __slots__ = ("future", "job", "loop", "prologue")

    def __init__(
        self,
        job: Job[Any] | _Call,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[Any],
        prologue: str,
    ) -> None:
        self.job = job
        self.loop = loop
        self.future = future
        self.prologue = prologue

    @property
    def group(self) -> int:
        """The group this write can run in one statement with (`_Call.merge`); 0: none."""
        job = self.job
        return job.group if isinstance(job, _Call) and job.merge is not None else 0

    def fail(self, exc: BaseException, publish: Callable[[Event], None]) -> None:
        _Report(self.loop, self.future, None, _store_error(exc), [], publish).send()


_MAILBOX_COLUMNS = (
    "id, user_id, name, uidvalidity, uidnext, highestmodseq, special_use, keywords, recent_floor,"
    " noselect"
)
_MAILBOX_COLUMNS_OF_M = ", ".join("m." + name.strip() for name in _MAILBOX_COLUMNS.split(","))
_ROW_COLUMNS = "uid, flags, keywords, modseq, size, internaldate, tz_minutes, blob_id"
# A user's quota usage: the sizes each mailbox keeps (migration 10), not every message's.
_USED = "coalesce(sum(b.size_sum), 0) FROM mailboxes b"
_FLAG_COLUMNS = "uid, flags, keywords"
# The STOREs of one mailbox, one or a group of them (migration 5; `_merge_flag_changes`).
_GROUP_MAX = 200  # STOREs in one statement at most
_STORE_FLAGS = "SELECT * FROM coi_store_flags_many($1, $2, $3, $4, $5, $6, $7, $8, $9)"
_STORE_FLAGS_LAZY = "SELECT * FROM coi_store_flags_lazy($1, $2, $3, $4, $5, $6, $7, $8, $9)"
# under `fsync = optimized`: the transaction commits without waiting for its WAL flush
_LAZY = "SET LOCAL synchronous_commit = off"
DATABASE_SIZE = "SELECT pg_database_size(current_database())"  # on disk, octets
_HEADER_END = re.compile(rb"\n\r?\n")
_MAX_SQL_NEEDLES = 16  # text keys narrowed in SQL; the rest are checked per message
_MAX_OWNERS = 100_000  # mailbox owners cached (mailbox id -> user id) before starting over
_RETRIES = 5  # a deadlock or serialization failure between processes is retried
# a statement that failed with these wrote nothing (a lost connection may have committed)
_REFUSED = (asyncpg.PostgresError, UnicodeEncodeError)
_RETRYABLE = (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError)
# APPEND in one statement, its own transaction (one round trip however many messages):
# the mailbox row is updated first (its lock orders the appends of every process; UIDs,
# MODSEQ and the keywords it lists taken at once), body ids come from the sequence, in
# message order; bodies, search text, previews and message rows from one array per
# column; the event is notified (notify.py's format: one UID range, and the messages' flags
# while they are short, so other processes need not read them). Parameters: count,
# mailbox, the columns, the new keywords, then `_Call`'s token and write id. Returns the
# mailbox's (user, UIDVALIDITY, first UID, MODSEQ); no row, and nothing written, when
# there is no such mailbox.
_APPEND = """
WITH box AS (
    UPDATE mailboxes SET uidnext = uidnext + $1, highestmodseq = highestmodseq + 1,
        keywords = CASE WHEN string_to_array(keywords, ' ') @> $13::text[] THEN keywords
            ELSE (SELECT string_agg(k, ' ' ORDER BY k COLLATE "C") FROM (
                SELECT unnest(string_to_array(keywords, ' ')) UNION SELECT unnest($13::text[])
            ) AS s(k)) END
    WHERE id = $2
    RETURNING user_id, uidvalidity, uidnext - $1 AS first_uid, highestmodseq
), input AS (
    SELECT nextval('blob_ids') AS id, t.*
    FROM unnest($3::bytea[], $4::bytea[], $5::bytea[], $6::text[], $7::text[],
                $8::integer[], $9::text[], $10::bigint[], $11::bigint[], $12::integer[])
         WITH ORDINALITY
         AS t(raw, meta, search, header, preview, flags, keywords, size, internaldate, tz, n)
    WHERE EXISTS (SELECT 1 FROM box)
    ORDER BY t.n
    LIMIT $1
), blobs_in AS (
    INSERT INTO blobs (id, meta, search) SELECT id, meta, search FROM input
), bodies_in AS (
    INSERT INTO bodies (blob_id, raw) SELECT id, raw FROM input
), search_in AS (
    INSERT INTO search_text (blob_id, header) SELECT id, header FROM input
), previews_in AS (
    INSERT INTO previews (blob_id, text) SELECT id, preview FROM input
    WHERE preview IS NOT NULL
), messages_in AS (
    INSERT INTO messages (mailbox_id, uid, blob_id, flags, keywords, modseq, size,
                          internaldate, tz_minutes)
    SELECT $2, box.first_uid + i.n - 1, i.id, i.flags, i.keywords, box.highestmodseq, i.size,
           i.internaldate, i.tz
    FROM input AS i, box
)
SELECT user_id, uidvalidity, first_uid, highestmodseq,
    pg_notify('coi_events', '[' || to_json($14::text)::text || ',' || $15::bigint
        || ',true,["A",' || user_id || ',' || $2::bigint || ',' || highestmodseq
        || ',[[' || first_uid || ',' || (first_uid + $1::bigint - 1) || ']]'
        || CASE WHEN octet_length(to_json($9::text[])::text) + 12 * $1 < 4000
           THEN ',' || to_json($8::integer[])::text || ',' || to_json($9::text[])::text
           ELSE '' END || ']]')
FROM box
"""

# STATUS counts: kept in the mailbox row (migration 10) but \Recent, counted by the primary
# key above the caller's floor or the one claims recorded, if higher. Parameters: mailbox,
# floor. No row: the mailbox is gone.
_STATUS = (
    "SELECT b.message_count, b.unseen_count, b.size_sum, (SELECT count(*) FROM messages m"
    " WHERE m.mailbox_id = b.id AND m.uid > greatest($2, coalesce((SELECT floor FROM"
    " recent_floors WHERE mailbox_id = b.id), 0))), b.deleted_count"
    " FROM mailboxes b WHERE b.id = $1"
)
# A mailbox row by name, its STATUS counts and the \Recent floor they were counted above.
# Parameters: user, name.
_MAILBOX_STATUS = f"""
SELECT {", ".join("b." + c.strip() for c in _MAILBOX_COLUMNS.split(","))},
       b.message_count, b.unseen_count, b.size_sum,
       (SELECT count(*) FROM messages m WHERE m.mailbox_id = b.id AND m.uid > f.floor),
       b.deleted_count, f.floor
FROM mailboxes b
CROSS JOIN LATERAL (
    SELECT greatest(b.recent_floor, coalesce((SELECT r.floor FROM recent_floors r
                                              WHERE r.mailbox_id = b.id), 0)) AS floor
) f
WHERE b.user_id = $1 AND b.name = $2
"""


def _mailbox(row: asyncpg.Record) -> Mailbox:
    return Mailbox(
        id=row[0],
        user_id=row[1],
        name=row[2],
        uidvalidity=row[3],
        uidnext=row[4],
        highestmodseq=row[5],
        special_use=row[6],
        keywords=Flags.parse_keywords(row[7]),
        recent_floor=row[8],
        noselect=bool(row[9]),
    )


def _message_row(row: asyncpg.Record | tuple[Any, ...]) -> MessageRow:
    return MessageRow(row[0], stored_flags(row[1], row[2]), row[3], row[4], row[5], row[6], row[7])


def _count(status: str) -> int:
    """Rows a command touched, from its status tag ("UPDATE 3", "INSERT 0 1")."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _select_query(
    columns: str, mailbox_id: int, uids: Sequence[int]
) -> tuple[str, list[Any], set[int] | None]:
    """The query for the rows of `uids` (not empty): a dense set is one range scan, whose
    rows are then filtered by the returned set (None: every row is wanted). A range costs
    both sides less than the array from some 32 UIDs on (asyncpg checks every item of an
    array it sends; 1,000 UIDs: 376 µs of client and 340 of server CPU against 512 and
    985), so a range is read when it holds few rows not wanted; from 500 UIDs on, it may
    hold three times as many (a big mailbox with some messages expunged)."""
    first, last = min(uids), max(uids)
    n, span = len(uids), last - first + 1
    if (n >= 32 and 4 * span <= 5 * n) or (n > 500 and span <= 4 * n):  # one range scan
        sql = (
            f"SELECT {columns} FROM messages WHERE mailbox_id = $1 AND uid BETWEEN $2 AND $3"
            " ORDER BY uid"
        )
        wanted = set(uids)
        return sql, [mailbox_id, first, last], None if len(wanted) == span else wanted
    sql = (
        f"SELECT {columns} FROM messages WHERE mailbox_id = $1 AND uid = ANY($2::bigint[])"
        " ORDER BY uid"
    )
    return sql, [mailbox_id, list(uids)], None


def _selected(rows: list[asyncpg.Record], wanted: set[int] | None) -> list[tuple[Any, ...]]:
    if wanted is None:
        return [tuple(row) for row in rows]
    return [tuple(row) for row in rows if row[0] in wanted]


def _sql_text(text: str) -> bool:
    """Whether PostgreSQL text can hold the string (no NUL, no lone surrogate)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class PostgresStore:
    """The `coi.store.protocol.Store` on one PostgreSQL database, shared by any number of
    processes (DESIGN.md: Scale-out)."""

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 2,
        max_size: int = 10,
        listen: bool | None = None,
        cache_bytes: int = DEFAULT_BYTES,
        cache_rows: int = DEFAULT_ROWS,
        fsync: str = "always",
    ) -> None:
        """Opens the pool (migrating the schema). With `listen` (default: when constructed
        on a running event loop, as `coi serve` does) events of every process on the
        database are published here, on that loop (coi.store.postgres.notify).
        `cache_bytes` bounds the cache of bodies and their stored data (`BodyCache`),
        `cache_rows` the cache of message rows the home loop reads (`RowCache`; 0: none).
        `fsync`: always, or optimized: flag changes, \\Recent claims and late previews
        commit without waiting for their WAL flush (`synchronous_commit = off`; README,
        Durability), which PostgreSQL's WAL writer does within 3 × `wal_writer_delay`."""
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync policy {fsync!r}: use always or optimized")
        self.dsn = dsn
        self.fsync = fsync
        lazy = fsync == "optimized"
        self._lazy = _LAZY if lazy else ""  # the prologue of its lazy writes
        self._store_flags = _STORE_FLAGS_LAZY if lazy else _STORE_FLAGS
        # message rows read on the home loop, kept exact by the events (rowcache.py); used
        # only while this handle listens (it then hears every process's changes)
        self._rows = RowCache(cache_rows)
        self._unwatch_rows: Callable[[], None] = lambda: None
        self.events = EventBus()
        # The server's own Sent copies: in memory, per process (SentCopies), as on SQLite.
        self.sent_copies = SentCopies()
        self._home: asyncio.AbstractEventLoop | None = None
        if listen is None or listen:
            try:
                self._home = asyncio.get_running_loop()
            except RuntimeError:
                if listen:
                    raise RuntimeError("listen=True needs a running event loop") from None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="coi-postgres", daemon=True
        )
        self._thread.start()
        # each user's writes waiting in this process, in order (`_run`)
        self._user_turns: dict[int, collections.deque[_Pending]] = {}  # the store's loop
        # On the home loop (`coi serve`'s), the coroutines run on a pool of their own on
        # that loop: no thread hop, and no two threads contending for the GIL around every
        # socket call. Opened on first use (a constructor cannot await).
        self._home_pool: Pool | None = None
        self._home_opening: asyncio.Lock | None = None
        self._home_turns: dict[int, collections.deque[_Pending]] = {}  # the home loop
        self._home_tasks: set[asyncio.Task[None]] = set()
        self._min_size, self._max_size = min_size, max_size
        self._owners: dict[int, int] = {}  # mailbox id -> user id (never changes)
        # bodies, their indexes and search data: immutable, so cached; a body this process
        # releases leaves the cache (store/postgres/cache.py)
        self._bodies = BodyCache(cache_bytes)
        self._pending: set[concurrent.futures.Future[None]] = set()
        self._token = secrets.token_hex(8)  # this handle's notifications
        self._own_prefix = token_prefix(self._token)
        self._write_ids = itertools.count(1)
        # writes whose notifications are on their way back: write id -> its report
        self._awaiting: dict[int, _Report] = {}
        self._listener: Connection | None = None
        # on the home loop, in the listener's (commit) order: other processes' events, and
        # our own writes' reports once their last notification came (`_pump`); another
        # process's event comes with whether it is the last of its write
        self._outbox: collections.deque[_Report | tuple[Event, bool]] = collections.deque()
        # mailbox id -> the MODSEQ up to which each of its changes is published on the
        # home loop (while listening): a write with the next MODSEQ is published at once
        self._marks: dict[int, int] = {}
        self._relistening: asyncio.Task[None] | None = None
        # while a new LISTEN connection starts: its notifications, held until the event
        # bus's listeners are told that they may have missed changes (`_relisten`)
        self._held: list[tuple[object, int, str, object]] | None = None
        self._closed = False
        try:
            self._pool, key = self._call(self._open(min_size, max_size))
        except BaseException:
            self._stop_loop()
            raise
        self._objectid_key = bytes.fromhex(key)

    @property
    def events(self) -> EventBus:
        """Where this store's changes are published (the sharded store hands every shard
        one bus); the row cache listens to whichever bus it is."""
        return self._events

    @events.setter
    def events(self, bus: EventBus) -> None:
        self._unwatch_rows()
        self._events = bus
        self._unwatch_rows = bus.watch_all(self._rows.on_event)

    async def _open(self, min_size: int, max_size: int) -> tuple[Pool, str]:
        pool = await ConnectionPool(self.dsn, min_size=min_size, max_size=max_size).open()
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
                key = await conn.fetchval("SELECT value FROM meta WHERE key = 'objectid_key'")
            if self._home is not None:
                await self._listen()
        except BaseException:
            await pool.close()
            raise
        return pool, str(key)

    def close(self) -> None:
        """Waits for the writes under way, closes the pool and stops the store's loop."""
        if self._closed:
            return
        self._closed = True
        for pending in list(self._pending):
            try:
                pending.result(timeout=60)
            except BaseException:
                pass
        try:
            self._close_home_pool()
            self._call(self._shutdown())
        finally:
            self._stop_loop()

    def _close_home_pool(self) -> None:
        """Closes the home loop's pool: gracefully when that loop is stopped; when it runs
        (close() called from it), its connections are terminated: the callers of writes
        still under way are gone then, so no write was acknowledged."""
        pool, self._home_pool = self._home_pool, None
        home = self._home
        if pool is None or home is None:
            return
        if not home.is_closed() and not home.is_running():
            with contextlib.suppress(Exception):
                home.run_until_complete(asyncio.wait_for(pool.close(), 30))
                return
        with contextlib.suppress(Exception):
            pool.terminate()

    async def _shutdown(self) -> None:
        for _ in range(100):  # committed writes' notifications still on their way
            if not self._awaiting:
                break
            await asyncio.sleep(0.05)
        if self._relistening is not None:
            self._relistening.cancel()
        for report in self._awaiting.values():
            report.committed = True  # writes are done: nothing can still fail
        listener, self._listener = self._listener, None
        self._flush_awaiting()
        if listener is not None:
            await listener.close()
        await self._pool.close()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    # -- running work on the store's loop ------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Runs `coro` on the store's loop and blocks until it is done (the sync reads)."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a synchronous store read from the store's own loop")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def _await(self, coro: Coroutine[Any, Any, T]) -> T:
        """Runs `coro` on the store's loop; the caller's loop runs on meanwhile."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    def _on_home(self) -> bool:
        """Whether the caller runs on the home loop (it then has a pool of its own)."""
        return self._home is not None and asyncio.get_running_loop() is self._home

    async def _home_ready(self) -> Pool:
        pool = self._home_pool
        if pool is not None:
            return pool
        if self._home_opening is None:
            self._home_opening = asyncio.Lock()
        async with self._home_opening:
            if self._home_pool is None:
                if self._closed:
                    raise StoreError("the store is closed")
                self._home_pool = await ConnectionPool(
                    self.dsn,
                    min_size=self._min_size,
                    max_size=self._max_size,
                    init=_ready_for_writes,
                ).open()
            return self._home_pool

    async def warm_up(self) -> None:
        """Opens the home loop's pool (`coi serve` calls it before it listens): its
        first connections are then ready before the first command needs them."""
        if self._on_home():
            await self._home_ready()

    async def _query(self, method: str, sql: str, *args: Any) -> Any:
        """One statement by a coroutine (`method`: fetch, fetchrow, fetchval): on the home
        loop's own pool, from other loops on the store's."""
        if self._on_home():
            pool = await self._home_ready()
            return await getattr(pool, method)(sql, *args)
        return await self._await(getattr(self._pool, method)(sql, *args))

    def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return self._call(self._pool.fetch(sql, *args))

    def _fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        return self._call(self._pool.fetchrow(sql, *args))

    async def _write(
        self,
        user_id: int | None,
        job: Job[T] | _Call,
        *,
        mailbox_id: int = 0,
        prologue: str = "",
    ) -> T:
        """Runs `job` in one transaction on the store's loop. After COMMIT, the events are
        published on the caller's loop, then the caller resumes (the SQLite writer's
        order). The writes of one user (`user_id`, or the owner of `mailbox_id`) in this
        process run one at a time, so events are published in commit order."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        pending = _Pending(job, loop, future, prologue)
        if self._on_home():  # a task of its own: a cancelled caller does not stop it
            pool = await self._home_ready()
            owner = user_id if user_id is not None else self._owners.get(mailbox_id)
            queue = self._home_turns.get(owner) if owner is not None else None
            if queue is not None:
                # its user's writes are under way: it joins them now, in time for their
                # next statement (a task of its own would be a loop iteration late)
                queue.append(pending)
                return await future
            task = loop.create_task(self._run(pool, self._home_turns, user_id, mailbox_id, pending))
            self._home_tasks.add(task)
            task.add_done_callback(self._home_tasks.discard)
            return await future
        work = asyncio.run_coroutine_threadsafe(
            self._run(self._pool, self._user_turns, user_id, mailbox_id, pending), self._loop
        )
        self._pending.add(work)
        work.add_done_callback(self._pending.discard)
        return await future

    async def _run(
        self,
        pool: Pool,
        turns: dict[int, collections.deque[_Pending]],
        user_id: int | None,
        mailbox_id: int,
        pending: _Pending,
    ) -> None:
        """Queues a write behind the writes of its user waiting in this process; the
        first of them runs the queue until it is empty. A queue, not a lock: a lock hands
        its turn on once per loop iteration, and STOREs taken along by a group commit
        (`_Call.merge`) would still queue for turns of their own."""
        try:
            if user_id is None and mailbox_id:
                user_id = await self._owner(pool, mailbox_id)
        except BaseException as exc:
            pending.fail(exc, self.events.publish)
            return
        if user_id is None:
            await self._run_batch(pool, [pending])
            return
        queue = turns.get(user_id)
        if queue is not None:  # its writes are being run: this one joins them
            queue.append(pending)
            return
        queue = turns[user_id] = collections.deque([pending])
        try:
            while queue:
                first = queue.popleft()
                batch = [first]
                if first.group:
                    batch += _take_group(queue, first.group)
                await self._run_batch(pool, batch)
        finally:
            del turns[user_id]
            for left in queue:  # only when cancelled (the store's loop closing)
                left.fail(StoreError("the store was closed"), self.events.publish)

    async def _run_batch(self, pool: Pool, batch: list[_Pending]) -> None:
        """One write, or a group of `_Call`s as one statement; failures go to the callers."""
        first = batch[0]
        try:
            if isinstance(first.job, _Call):
                await self._transact_call(pool, batch)
            else:
                await self._transact(pool, first.job, first.loop, first.future, first.prologue)
        except Exception as exc:
            if len(batch) == 1 or not isinstance(exc, _REFUSED):
                for pending in batch:
                    pending.fail(exc, self.events.publish)
                return
            # PostgreSQL refused the statement, so nothing of the group was written: each
            # runs again alone, so a call the store refuses fails alone
            for pending in batch:
                await self._run_batch(pool, [pending])
        except BaseException as exc:  # cancelled: the store's loop is closing
            for pending in batch:
                pending.fail(exc, self.events.publish)
            raise

    async def _owner(self, pool: Pool, mailbox_id: int) -> int | None:
        owner = self._owners.get(mailbox_id)
        if owner is None:
            if len(self._owners) >= _MAX_OWNERS:
                self._owners.clear()
            owner = await pool.fetchval("SELECT user_id FROM mailboxes WHERE id = $1", mailbox_id)
            if owner is not None:
                self._owners[mailbox_id] = int(owner)
        return owner

    async def _transact(
        self,
        pool: Pool,
        job: Job[T],
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[T],
        prologue: str = "",
    ) -> None:
        """Runs the job in a transaction (again after a deadlock with another process).
        Its events are notified inside the transaction (for every listening process);
        when this handle listens, they are reported when the last notification comes back
        (`_on_notification`), else right after COMMIT."""
        for attempt in range(_RETRIES):
            write_id = 0
            awaited = False  # reported by the listener when its notification is back
            try:
                async with pool.acquire() as conn:
                    # `prologue` (SQL without parameters: a lock, a setting of the
                    # transaction) is sent with BEGIN: one round trip
                    await conn.execute(f"BEGIN; {prologue}" if prologue else "BEGIN")
                    try:
                        result, events = await job(conn)
                        report = _Report(loop, future, result, None, events, self._published)
                        notify = ""
                        if events:  # for the other processes, whether this one listens or not
                            write_id = next(self._write_ids)
                            notify = _notify_sql(encode(self._token, write_id, events))
                            if self._listener is not None:
                                self._awaiting[write_id] = report
                                awaited = True
                        # the notifications and COMMIT in one round trip
                        await conn.execute(notify + "COMMIT")
                    except BaseException:
                        await _rollback(conn)
                        raise
            except _RETRYABLE:
                self._awaiting.pop(write_id, None)
                if attempt == _RETRIES - 1:
                    raise
                continue
            except BaseException:
                self._awaiting.pop(write_id, None)  # not committed: no notification comes
                raise
            if not awaited:  # not listening: reported after COMMIT
                report.send()
                return
            report.committed = True
            if self._listener is None:  # the listener was lost meanwhile
                self._flush_awaiting()
            return

    async def _transact_call(self, pool: Pool, batch: list[_Pending]) -> None:
        """Runs a one-statement write (`_Call`, or a group of them as one statement),
        again after a deadlock. Its notifications are sent by the statement, so each
        call's report waits for two things, in either order: the statement's rows (the
        result and events are built from them) and, when this handle listens, the call's
        last notification (its place in the commit order), unless its place is known
        when the rows come (`_early`)."""
        calls = [p.job for p in batch if isinstance(p.job, _Call)]
        first = calls[0]
        for attempt in range(_RETRIES):
            write_ids = [next(self._write_ids) for _ in batch]
            publish = self._published
            reports = [_Report(p.loop, p.future, None, None, [], publish) for p in batch]
            listening = self._listener is not None
            if listening:
                for write_id, report in zip(write_ids, reports, strict=True):
                    report.needed = 2
                    if report.loop is self._home:
                        report.wake = self._pump  # it may be first in the outbox already
                    self._awaiting[write_id] = report
            try:
                if first.merge is None:
                    parts = [await pool.fetch(first.sql, *first.args, self._token, write_ids[0])]
                else:
                    args = first.merge(calls)
                    rows = await pool.fetch(first.sql, *args, self._token, write_ids)
                    parts = [[] for _ in batch]
                    for row in rows:
                        parts[row[0] - 1].append(row)
                for call, report, part in zip(calls, reports, parts, strict=True):
                    report.result, report.events = call.build(part)
            except _RETRYABLE:
                for write_id in write_ids:
                    self._awaiting.pop(write_id, None)
                if attempt == _RETRIES - 1:
                    raise
                continue
            except BaseException as exc:
                left = [self._awaiting.pop(write_id, None) for write_id in write_ids]
                if not listening or all(report is not None for report in left):
                    raise  # no notification came: not committed
                # a notification came (it committed) but the rows were lost: the error is
                # reported in each call's place, or it would hold back every later event;
                # a call whose notification is still to come (or never comes: it changed
                # nothing) is told now
                error = _store_error(exc)
                for report, waiting in zip(reports, left, strict=True):
                    report.error = error
                    if waiting is not None:
                        report.needed = 1
                    report.send()
                return
            for write_id, report in zip(write_ids, reports, strict=True):
                if not report.events:
                    if self._awaiting.pop(write_id, None) is report:
                        report.needed = 1  # nothing written: no notification comes
                else:
                    self._early(write_id, report)
                report.committed = True
                report.send()
            if self._listener is None:  # never listened, or lost meanwhile
                self._flush_awaiting()
            return

    def _on_notification(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        """One notification, in commit order: a remote event is published on the home
        loop; the last notification of one of our writes reports that write."""
        if self._held is not None:
            self._held.append((_conn, _pid, _channel, payload))
            return
        text = str(payload)
        try:
            own = own_write(text, self._own_prefix)
            if own is None:
                token, write_id, last, event = decode(text)
            else:
                (write_id, last), event = own, None
        except (ValueError, TypeError, KeyError, IndexError):
            log.warning("ignored a malformed notification: %.200s", payload)
            return
        if own is not None or token == self._token:
            if last:
                report = self._awaiting.pop(write_id, None)
                if report is not None:
                    if report.loop is self._home:
                        self._to_home(report)
                    else:
                        report.send()
            return
        if event is not None:
            self._to_home((event, last))

    def _to_home(self, item: _Report | tuple[Event, bool]) -> None:
        if self._home is not None:
            try:
                self._home.call_soon_threadsafe(self._queue, item)
            except RuntimeError:  # the home loop is closed
                pass

    def _queue(self, item: _Report | tuple[Event, bool]) -> None:
        self._outbox.append(item)
        self._pump()

    def _pump(self) -> None:
        """Publishes the outbox in commit order: an own write whose rows are not back yet
        (`_Report.needed` > 1) holds back what committed after it."""
        box = self._outbox
        while box:
            item = box[0]
            if isinstance(item, _Report):
                if item.needed > 1:
                    return
                box.popleft()
                item._deliver()
            else:
                box.popleft()
                event, last = item
                if last:  # the whole of its write is published now
                    self._mark(event)
                self.events.publish(event)

    def _published(self, event: Event) -> None:
        """Publishes an event of this process's writes in commit order."""
        self._mark(event)
        self.events.publish(event)

    def _mark(self, event: Event) -> None:
        """Every change of the event's mailbox up to its MODSEQ is published now (they
        came in commit order, and MODSEQs of a mailbox grow with it)."""
        place = _mailbox_modseq(event)
        if place is not None and place[1] > self._marks.get(place[0], 0):
            if len(self._marks) >= _MAX_OWNERS:
                self._marks.clear()  # forgotten marks only make writes wait
            self._marks[place[0]] = place[1]

    def _early(self, write_id: int, report: _Report) -> None:
        """Publishes a write now, before its notification comes back, when nothing can
        come before it: each of its mailboxes is either watched by nobody who needs
        their changes in order (the selected mailboxes' state does: `watches_mailbox`)
        or had every change up to the MODSEQ before this write's published. MODSEQs of a
        mailbox are given out under its row lock, one per write (coi_store_flags_many
        gives each request its own), so no other write can hold that one."""
        if report.loop is not self._home or asyncio.get_running_loop() is not self._home:
            return
        places = []
        for event in report.events:
            place = _mailbox_modseq(event)
            if place is None:
                return
            watched = self.events.watches_mailbox(place[0])
            if watched and self._marks.get(place[0]) != place[1] - 1:
                return
            places.append((watched, *place))
        if self._awaiting.pop(write_id, None) is not report:
            return  # its notification came meanwhile: the outbox has its place
        for watched, mailbox_id, modseq in places:
            if watched:
                self._marks[mailbox_id] = modseq
            else:  # published out of commit order: no longer a mark of anything
                self._marks.pop(mailbox_id, None)
        report.needed = 1
        report.publish = self.events.publish

    async def _listen(self) -> None:
        listener = await asyncpg.connect(self.dsn)
        await listener.add_listener(CHANNEL, self._on_notification)
        listener.add_termination_listener(self._on_listener_lost)
        self._listener = listener

    def _on_listener_lost(self, _conn: object) -> None:
        """The LISTEN connection broke (a server restart, a network cut): committed writes
        waiting for their notification are reported now, later ones right after COMMIT,
        until `_relisten` has a new connection. Other processes' events of the gap never
        come: once it is back, the event bus's listeners are told (`ChangesMissed`) and
        read again what they keep."""
        if self._listener is None or self._closed:
            return
        log.error("the LISTEN connection to the store was lost; reconnecting")
        self._listener = None
        self._rows.reset(enabled=False)  # other processes' changes are missed from now on
        self._marks.clear()  # events now come right after COMMIT, not in commit order
        self._flush_awaiting()
        self._relistening = self._loop.create_task(self._relisten())

    async def _relisten(self) -> None:
        delay = 0.2
        while not self._closed:
            self._held = []
            try:
                await self._listen()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                self._held = None
                log.warning("LISTEN connection: %s; again in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            log.warning("LISTEN connection back: what changed meanwhile is read again")
            self._rows.reset(enabled=True)  # what it held before the gap is not trusted
            self._marks.clear()
            self._flush_awaiting()  # committed before LISTEN: their notification never comes
            # What changed in the gap is read after LISTEN took effect, and published
            # before any notification that came since: a change then is seen twice at most
            # (the listeners ignore what they have), never missed or out of order.
            if self._home is not None:
                with contextlib.suppress(RuntimeError):  # the home loop is closed
                    self._home.call_soon_threadsafe(self._announce_missed)
            held, self._held = self._held, None
            for notification in held:
                self._on_notification(*notification)
            return

    def _announce_missed(self) -> None:
        """On the home loop: anything may have changed unheard (`_relisten`)."""
        self._queue((ChangesMissed(), False))

    def _flush_awaiting(self) -> None:
        """Reports the committed writes still waiting for their notification, in order."""
        for write_id in sorted(self._awaiting):  # (writes on the home loop: a copy, atomic)
            report = self._awaiting.get(write_id)
            if (
                report is not None
                and report.committed
                and self._awaiting.pop(write_id, None) is report
            ):
                report.send()

    def database_bytes(self) -> int:
        """What the database takes on disk (`coi_store_bytes` of --metrics)."""
        return int(self._fetch(DATABASE_SIZE)[0][0])

    # -- object identifiers (RFC 8474), as SqliteStore derives them ------------------

    def mailboxid(self, mailbox: Mailbox) -> str:
        """MAILBOXID (RFC 8474 §4), from the UIDVALIDITY the server hands out once."""
        return mailboxid(self._objectid_key, mailbox.uidvalidity)

    def emailid(self, blob_id: int) -> str:
        """EMAILID (RFC 8474 §5.1): one per stored body; body ids come from a sequence."""
        return emailid(self._objectid_key, blob_id)

    # -- users -------------------------------------------------------------------

    def get_user(self, address: str) -> User | None:
        if not _sql_text(address):  # never stored (an LMTP recipient with NUL, say)
            return None
        row = self._fetchrow(
            "SELECT id, address, password_hash FROM users WHERE address = $1", address.lower()
        )
        return User(*row) if row else None

    async def read_user(self, address: str) -> User | None:
        """`get_user()` as a coroutine: the caller's loop serves other sessions meanwhile."""
        if not _sql_text(address):
            return None
        row = await self._query(
            "fetchrow",
            "SELECT id, address, password_hash FROM users WHERE address = $1",
            address.lower(),
        )
        return User(*row) if row else None

    def list_users(self) -> list[User]:
        rows = self._fetch("SELECT id, address, password_hash FROM users ORDER BY address")
        return [User(*row) for row in rows]

    async def add_user(
        self, address: str, password_hash: str, mailboxes: Sequence[tuple[str, str]]
    ) -> User:
        """Creates the user with INBOX and the given (name, special-use) mailboxes, subscribed."""
        address = address.lower()

        async def job(conn: Conn) -> tuple[User, list[Event]]:
            user_id = await conn.fetchval(
                "INSERT INTO users (address, password_hash, created) VALUES ($1, $2, $3)"
                " ON CONFLICT (address) DO NOTHING RETURNING id",
                address,
                password_hash,
                int(time.time()),
            )
            if user_id is None:
                raise UserExists(address)
            events: list[Event] = []
            for name, use in (("INBOX", ""), *mailboxes):
                mailbox_id = await _insert_mailbox(conn, user_id, name, use)
                await conn.execute(
                    "INSERT INTO subscriptions (user_id, name) VALUES ($1, $2)", user_id, name
                )
                events.append(MailboxCreated(user_id, mailbox_id, name))
            return User(user_id, address, password_hash), events

        return await self._write(None, job)

    async def delete_user(self, address: str) -> None:
        address = address.lower()

        async def job(conn: Conn) -> tuple[None, list[Event]]:
            user_id = await conn.fetchval(
                "SELECT id FROM users WHERE address = $1 FOR UPDATE", address
            )
            if user_id is None:
                raise NoSuchUser(address)
            return None, await delete_user_rows(conn, user_id, self._bodies)

        await self._write(None, job)

    # -- quotas (RFC 9208 STORAGE) ----------------------------------------------------

    def quota_of(self, user_id: int) -> int:
        row = self._fetchrow("SELECT quota FROM users WHERE id = $1", user_id)
        return int(row[0]) if row else 0

    def storage_used(self, user_id: int) -> int:
        """Octets of all the user's messages (RFC822.SIZE summed over every mailbox)."""
        row = self._fetchrow(
            f"SELECT {_USED} WHERE b.user_id = $1",
            user_id,
        )
        return int(row[0]) if row else 0

    async def read_usage(self, user_id: int, default: int) -> tuple[int, int]:
        """(limit, octets used) in one statement; the sum only when there is a limit."""
        row = await self._query(
            "fetchrow",
            f"SELECT l.lim, CASE WHEN l.lim > 0 THEN (SELECT {_USED} WHERE b.user_id = $1)"
            " ELSE 0 END FROM (SELECT coalesce(nullif((SELECT quota FROM users WHERE id = $1),"
            " 0), $2::bigint) AS lim) l",
            user_id,
            default,
        )
        return int(row[0]), int(row[1])

    async def read_recipient(
        self, address: str, default: int
    ) -> tuple[User, tuple[int, int]] | None:
        """The user row and its usage in one statement (RCPT's one round trip)."""
        if not _sql_text(address):
            return None
        row = await self._query(
            "fetchrow",
            "SELECT u.id, u.address, u.password_hash, l.lim, CASE WHEN l.lim > 0 THEN"
            f" (SELECT {_USED} WHERE b.user_id = u.id) ELSE 0 END"
            " FROM users u CROSS JOIN LATERAL"
            " (SELECT coalesce(nullif(u.quota, 0), $2::bigint) AS lim) l WHERE u.address = $1",
            address.lower(),
            default,
        )
        return None if row is None else (User(*row[:3]), (int(row[3]), int(row[4])))

    async def set_quota(self, address: str, octets: int) -> None:
        address = address.lower()

        async def job(conn: Conn) -> tuple[None, list[Event]]:
            status = await conn.execute(
                "UPDATE users SET quota = $1 WHERE address = $2", octets, address
            )
            if _count(status) == 0:
                raise NoSuchUser(address)
            return None, []

        await self._write(None, job)

    # -- aliases (an address, or "@domain" for a catch-all, delivered to a user) -------

    def alias_target(self, address: str) -> User | None:
        if not _sql_text(address):
            return None
        row = self._fetchrow(
            "SELECT u.id, u.address, u.password_hash FROM aliases a JOIN users u"
            " ON u.id = a.user_id WHERE a.address = $1",
            address.lower(),
        )
        return User(*row) if row else None

    async def list_aliases(self) -> list[tuple[str, str]]:
        rows = await self._query(
            "fetch",
            "SELECT a.address, u.address FROM aliases a JOIN users u ON u.id = a.user_id"
            " ORDER BY a.address",
        )
        return [(str(a), str(u)) for a, u in rows]

    async def set_alias(self, address: str, target: str | None) -> None:
        """Points ``address`` at the user ``target``; None removes the alias."""
        address = address.lower()

        async def job(conn: Conn) -> tuple[None, list[Event]]:
            if target is None:
                if not _count(
                    await conn.execute("DELETE FROM aliases WHERE address = $1", address)
                ):
                    raise NoSuchUser(address)
                return None, []
            if await conn.fetchval("SELECT 1 FROM users WHERE address = $1", address):
                raise UserExists(address)  # a user's own address is no alias
            user_id = await conn.fetchval(
                "SELECT id FROM users WHERE address = $1 FOR SHARE", target.lower()
            )
            if user_id is None:
                raise NoSuchUser(target)
            await conn.execute(
                "INSERT INTO aliases (address, user_id) VALUES ($1, $2)"
                " ON CONFLICT (address) DO UPDATE SET user_id = excluded.user_id",
                address,
                user_id,
            )
            return None, []

        await self._write(None, job)

    async def set_password(self, address: str, password_hash: str) -> None:
        address = address.lower()

        async def job(conn: Conn) -> tuple[None, list[Event]]:
            status = await conn.execute(
                "UPDATE users SET password_hash = $1 WHERE address = $2", password_hash, address
            )
            if _count(status) == 0:
                raise NoSuchUser(address)
            return None, []

        await self._write(None, job)

    # -- mailboxes ---------------------------------------------------------------

    def list_mailboxes(self, user_id: int) -> list[Mailbox]:
        rows = self._fetch(
            f"SELECT {_MAILBOX_COLUMNS} FROM mailboxes WHERE user_id = $1 ORDER BY name", user_id
        )
        return [_mailbox(row) for row in rows]

    def get_mailbox(self, user_id: int, name: str) -> Mailbox | None:
        if not _sql_text(name):
            return None
        row = self._fetchrow(
            f"SELECT {_MAILBOX_COLUMNS} FROM mailboxes WHERE user_id = $1 AND name = $2",
            user_id,
            name,
        )
        return _mailbox(row) if row else None

    def mailbox_by_id(self, mailbox_id: int) -> Mailbox | None:
        row = self._fetchrow(f"SELECT {_MAILBOX_COLUMNS} FROM mailboxes WHERE id = $1", mailbox_id)
        return _mailbox(row) if row else None

    def subscriptions(self, user_id: int) -> set[str]:
        rows = self._fetch("SELECT name FROM subscriptions WHERE user_id = $1", user_id)
        return {row[0] for row in rows}

    async def read_mailbox(self, user_id: int, name: str) -> Mailbox | None:
        """`get_mailbox()` as a coroutine: the caller's loop serves other sessions meanwhile."""
        if not _sql_text(name):
            return None
        row = await self._query(
            "fetchrow",
            f"SELECT {_MAILBOX_COLUMNS} FROM mailboxes WHERE user_id = $1 AND name = $2",
            user_id,
            name,
        )
        return _mailbox(row) if row else None

    async def read_target(
        self, user_id: int, name: str, default: int
    ) -> tuple[Mailbox | None, tuple[int, int]]:
        """The mailbox (if any) and `read_usage`'s figures in one statement."""
        if not _sql_text(name):
            return None, await self.read_usage(user_id, default)
        row = await self._query(
            "fetchrow",
            f"SELECT {_MAILBOX_COLUMNS_OF_M}, l.lim, CASE WHEN l.lim > 0 THEN"
            f" (SELECT {_USED} WHERE b.user_id = $1) ELSE 0 END"
            " FROM (SELECT coalesce(nullif((SELECT quota FROM users WHERE id = $1), 0),"
            " $3::bigint) AS lim) l LEFT JOIN mailboxes m ON m.user_id = $1 AND m.name = $2",
            user_id,
            name,
            default,
        )
        return (_mailbox(row) if row[0] is not None else None), (int(row[10]), int(row[11]))

    async def read_mailboxes(self, user_id: int) -> tuple[list[Mailbox], set[str]]:
        """Mailboxes and subscribed names in one statement: subscriptions are rows with
        only a name, flagged by the last column."""
        rows = await self._query(
            "fetch",
            f"SELECT {_MAILBOX_COLUMNS}, false FROM mailboxes WHERE user_id = $1 UNION ALL"
            " SELECT NULL, NULL, name, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true"
            " FROM subscriptions WHERE user_id = $1 ORDER BY 11, 3",
            user_id,
        )
        mailboxes = [_mailbox(row) for row in rows if not row[10]]
        return mailboxes, {row[2] for row in rows if row[10]}

    async def create_mailbox(
        self,
        user_id: int,
        name: str,
        special_use: str = "",
        *,
        server_metadata: MetadataUpdate = (),
        origin: object | None = None,
    ) -> Mailbox:
        """Creates `name` and any missing superiors (RFC 3501 §6.3.3); `server_metadata` is
        set in the same transaction (COI: creating the Chats folder enables COI)."""

        async def job(conn: Conn) -> tuple[Mailbox, list[Event]]:
            await _lock_user(conn, user_id)
            mailbox_id, events = await _create_mailbox(conn, user_id, name, special_use)
            await _drop_orphan_metadata(conn, user_id)
            events += await _set_metadata(conn, user_id, 0, server_metadata, origin)
            row = await conn.fetchrow(
                f"SELECT {_MAILBOX_COLUMNS} FROM mailboxes WHERE id = $1", mailbox_id
            )
            assert row is not None
            return _mailbox(row), events

        return await self._write(user_id, job)

    async def delete_mailbox(
        self,
        user_id: int,
        name: str,
        *,
        server_metadata: MetadataUpdate = (),
        origin: object | None = None,
    ) -> None:
        """Deletes `name` with its METADATA entries (RFC 5464 §4.1); a name with inferiors
        becomes \\Noselect (RFC 3501 §6.3.4)."""

        async def job(conn: Conn) -> tuple[None, list[Event]]:
            await _lock_user(conn, user_id)
            row = await conn.fetchrow(
                "SELECT id, noselect FROM mailboxes WHERE user_id = $1 AND name = $2 FOR UPDATE",
                user_id,
                name,
            )
            if row is None:
                raise NoSuchMailbox(name)
            mailbox_id, noselect = row
            has_children = await conn.fetchval(
                "SELECT 1 FROM mailboxes WHERE user_id = $1 AND name LIKE $2 LIMIT 1",
                user_id,
                children_pattern(name),
            )
            if has_children and noselect:
                raise MailboxInUse(name)
            await _drop_mailbox_contents(conn, mailbox_id, self._bodies)
            # RFC 5464 §4.1: a mailbox re-created under this name must not inherit entries
            await conn.execute(
                "DELETE FROM metadata WHERE user_id = $1 AND mailbox_id = $2", user_id, mailbox_id
            )
            if has_children:  # RFC 3501 §6.3.4: inferiors stay; the name becomes \Noselect
                await conn.execute("UPDATE mailboxes SET noselect = true WHERE id = $1", mailbox_id)
            else:
                await conn.execute("DELETE FROM mailboxes WHERE id = $1", mailbox_id)
                await _prune_placeholders(conn, user_id)
                await _drop_orphan_metadata(conn, user_id)
            events: list[Event] = [MailboxDeleted(user_id, mailbox_id, name)]
            events += await _set_metadata(conn, user_id, 0, server_metadata, origin)
            return None, events

        await self._write(user_id, job)

    async def rename_mailbox(
        self,
        user_id: int,
        old: str,
        new: str,
        *,
        server_metadata: MetadataUpdate = (),
        origin: object | None = None,
    ) -> None:
        """Renames `old` and its inferiors; renaming INBOX moves its messages (§6.3.5) and
        copies INBOX's METADATA entries to the new mailbox (RFC 5464 §4.1)."""

        async def job(conn: Conn) -> tuple[None, list[Event]]:
            await _lock_user(conn, user_id)
            source = await _find(conn, user_id, old)
            if source is None:
                raise NoSuchMailbox(old)
            if await _find(conn, user_id, new) is not None:
                raise MailboxExists(new)
            events: list[Event] = []
            parts = new.split("/")
            for depth in range(1, len(parts)):
                superior = "/".join(parts[:depth])
                if superior and await _find(conn, user_id, superior) is None:
                    sid = await _insert_mailbox(conn, user_id, superior, "")
                    events.append(MailboxCreated(user_id, sid, superior))
            if old == "INBOX":
                target = await _insert_mailbox(conn, user_id, new, "")
                events.append(MailboxCreated(user_id, target, new))
                await conn.execute("SELECT 1 FROM mailboxes WHERE id = $1 FOR UPDATE", source)
                uids = [
                    r[0]
                    for r in await conn.fetch(
                        "SELECT uid FROM messages WHERE mailbox_id = $1 ORDER BY uid", source
                    )
                ]
                await _copy_rows(conn, source, uids, target)
                modseq = await _expunge_rows(conn, source, uids, self._bodies)
                events.append(MessagesAdded(user_id, target, tuple(range(1, len(uids) + 1)), 1))
                if uids:
                    events.append(MessagesExpunged(user_id, source, tuple(uids), modseq))
                await conn.execute(
                    "INSERT INTO metadata (user_id, mailbox_id, name, value)"
                    " SELECT user_id, $1, name, value FROM metadata"
                    " WHERE user_id = $2 AND mailbox_id = $3",
                    target,
                    user_id,
                    source,
                )
                events += await _set_metadata(conn, user_id, 0, server_metadata, origin)
                return None, events
            renamed: list[tuple[int, str]] = [(source, old)]
            renamed += [
                (r[0], r[1])
                for r in await conn.fetch(
                    "SELECT id, name FROM mailboxes WHERE user_id = $1 AND name LIKE $2",
                    user_id,
                    children_pattern(old),
                )
            ]
            for mailbox_id, name in renamed:
                new_name = new + name[len(old) :]
                await conn.execute(
                    "UPDATE mailboxes SET name = $1 WHERE id = $2", new_name, mailbox_id
                )
                status = await conn.execute(
                    "DELETE FROM subscriptions WHERE user_id = $1 AND name = $2", user_id, name
                )
                if _count(status):
                    await conn.execute(
                        "INSERT INTO subscriptions (user_id, name) VALUES ($1, $2)"
                        " ON CONFLICT DO NOTHING",
                        user_id,
                        new_name,
                    )
                events.append(MailboxRenamed(user_id, mailbox_id, name, new_name))
            await _prune_placeholders(conn, user_id)
            await _drop_orphan_metadata(conn, user_id)
            events += await _set_metadata(conn, user_id, 0, server_metadata, origin)
            return None, events

        await self._write(user_id, job)

    async def set_subscribed(self, user_id: int, name: str, subscribed: bool) -> None:
        async def job(conn: Conn) -> tuple[None, list[Event]]:
            if subscribed:
                await conn.execute(
                    "INSERT INTO subscriptions (user_id, name) VALUES ($1, $2)"
                    " ON CONFLICT DO NOTHING",
                    user_id,
                    name,
                )
            else:
                await conn.execute(
                    "DELETE FROM subscriptions WHERE user_id = $1 AND name = $2", user_id, name
                )
            return None, [SubscriptionChanged(user_id, name, subscribed)]

        await self._write(user_id, job)

    def take_recent(self, mailbox_id: int, upto: int) -> int | None:
        """In `recent_floors`, not the mailbox row: a message write holds that locked until
        its COMMIT, and this synchronous call must never wait for a write that needs the
        caller's loop to finish. The row lock orders claims of every process; FOR UPDATE
        reads the floor the previous claim committed."""
        return self._call(self._take_recent(mailbox_id, upto))

    async def _take_recent(self, mailbox_id: int, upto: int) -> int | None:
        # one round trip (migration 8); None: the mailbox is gone
        before = await self._pool.fetchval("SELECT coi_take_recent($1, $2)", mailbox_id, upto)
        return upto if before is None else int(before)

    async def claim_recent(self, mailbox_id: int, floor: int) -> None:
        """Records that UIDs up to `floor` have been shown as \\Recent to some session."""

        async def job(conn: Conn) -> tuple[None, list[Event]]:
            await conn.execute(
                "UPDATE mailboxes SET recent_floor = greatest(recent_floor, $1) WHERE id = $2",
                floor,
                mailbox_id,
            )
            return None, []

        await self._write(None, job, mailbox_id=mailbox_id, prologue=self._lazy)

    def status(self, mailbox: Mailbox) -> MailboxStatus:
        row = self._fetchrow(_STATUS, mailbox.id, mailbox.recent_floor)
        return status_of(mailbox, None if row is None else tuple(row))

    async def read_status(self, mailbox: Mailbox) -> MailboxStatus:
        """`status()` as a coroutine."""
        row = await self._query("fetchrow", _STATUS, mailbox.id, mailbox.recent_floor)
        return status_of(mailbox, row)

    async def read_mailbox_status(
        self, user_id: int, name: str
    ) -> tuple[Mailbox, MailboxStatus] | None:
        """The mailbox row and its counts in one statement, so from one snapshot: UIDNEXT
        is above every UID counted (RFC 3501 §2.3.1.1)."""
        if not _sql_text(name):
            return None
        row = await self._query("fetchrow", _MAILBOX_STATUS, user_id, name)
        if row is None:
            return None
        mailbox = replace(_mailbox(row), recent_floor=int(row[15]))
        return mailbox, status_of(mailbox, tuple(row)[10:15])

    # -- metadata (RFC 5464) ---------------------------------------------------------

    def get_metadata(
        self, user_id: int, mailbox_id: int, names: Sequence[str], depth: str = "0"
    ) -> dict[str, bytes]:
        """Entries named (or, with depth "1"/"infinity", below) `names` (RFC 5464 §4.2.2);
        names are case-insensitive (stored lower-cased)."""
        return self._call(self._metadata_from(self._pool, user_id, mailbox_id, names, depth))

    async def read_metadata(
        self, user_id: int, mailbox_id: int, names: Sequence[str], depth: str = "0"
    ) -> dict[str, bytes]:
        """`get_metadata()` as a coroutine."""
        if self._on_home():
            pool = await self._home_ready()
            return await self._metadata_from(pool, user_id, mailbox_id, names, depth)
        return await self._await(self._metadata_from(self._pool, user_id, mailbox_id, names, depth))

    @staticmethod
    async def _metadata_from(
        pool: Pool, user_id: int, mailbox_id: int, names: Sequence[str], depth: str
    ) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        async with pool.acquire() as conn:
            for name in names:
                name = name.lower()
                if not _sql_text(name):  # never stored
                    continue
                if depth == "0":
                    rows = await conn.fetch(
                        "SELECT name, value FROM metadata"
                        " WHERE user_id = $1 AND mailbox_id = $2 AND name = $3",
                        user_id,
                        mailbox_id,
                        name,
                    )
                else:  # "/" is 0x2F and "0" 0x30: a range scan of the primary key (COLLATE "C")
                    rows = await conn.fetch(
                        "SELECT name, value FROM metadata WHERE user_id = $1 AND mailbox_id = $2"
                        " AND (name = $3 OR (name > $4 AND name < $5))",
                        user_id,
                        mailbox_id,
                        name,
                        name + "/",
                        name + "0",
                    )
                for entry, value in rows:
                    if depth == "1" and "/" in entry[len(name) + 1 :]:
                        continue
                    out[entry] = bytes(value)
        return out

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
        """Sets (None: removes) entries all or nothing (RFC 5464 §4.3); MetadataTooMany past
        `max_entries`; `ensure_mailboxes` (name, subscribe) are created in the same
        transaction when missing (COI: enabling COI creates its folders)."""

        async def job(conn: Conn) -> tuple[None, list[Event]]:
            await _lock_user(conn, user_id)  # the entry count is checked across processes
            if mailbox_id and not await conn.fetchval(
                "SELECT 1 FROM mailboxes WHERE id = $1 AND user_id = $2", mailbox_id, user_id
            ):
                raise NoSuchMailbox(str(mailbox_id))
            before = await _metadata_count(conn, user_id)
            events: list[Event] = []
            for name, subscribe in ensure_mailboxes:
                if await _find_selectable(conn, user_id, name) is None:
                    events += (await _create_mailbox(conn, user_id, name, ""))[1]
                if subscribe and _count(
                    await conn.execute(
                        "INSERT INTO subscriptions (user_id, name) VALUES ($1, $2)"
                        " ON CONFLICT DO NOTHING",
                        user_id,
                        name,
                    )
                ):
                    events.append(SubscriptionChanged(user_id, name, True))
            events += await _set_metadata(conn, user_id, mailbox_id, entries, origin)
            after = await _metadata_count(conn, user_id)
            if max_entries is not None and after > before and after > max_entries:
                raise MetadataTooMany(str(max_entries))
            return None, events

        await self._write(user_id, job)

    # -- messages ------------------------------------------------------------------

    def uids(self, mailbox_id: int) -> array[int]:
        row = self._fetchrow(
            "SELECT array_agg(uid ORDER BY uid) FROM messages WHERE mailbox_id = $1", mailbox_id
        )
        return array("I", row[0] or () if row else ())

    def rows(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, MessageRow]:
        """Per-message metadata for the given UIDs (missing ones were expunged)."""
        return {row[0]: _message_row(row) for row in self.row_tuples(mailbox_id, uids)}

    def row_tuples(self, mailbox_id: int, uids: Sequence[int]) -> Iterator[tuple[Any, ...]]:
        """`rows()` as plain tuples, ascending by UID: one query, however many UIDs."""
        return iter(self._select(_ROW_COLUMNS, mailbox_id, uids))

    def flag_rows(self, mailbox_id: int, uids: Sequence[int]) -> Iterator[tuple[int, int, str]]:
        """(uid, flag bits, keywords) of the given UIDs, ascending by UID."""
        return iter(self._select(_FLAG_COLUMNS, mailbox_id, uids))

    async def read_rows(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, MessageRow]:
        """`rows()` as a coroutine: the caller's loop serves other sessions meanwhile."""
        return {row[0]: _message_row(row) for row in await self.read_row_tuples(mailbox_id, uids)}

    async def read_row_tuples(self, mailbox_id: int, uids: Sequence[int]) -> list[tuple[Any, ...]]:
        """`row_tuples()` as a coroutine. On the home loop, while this handle listens, the
        rows come from the row cache (`RowCache`), those it lacks in one query."""
        if not uids:
            return []
        if self._on_home() and self._listener is not None and self._rows.limit:
            return await self._cached_rows(mailbox_id, uids)
        sql, args, wanted = _select_query(_ROW_COLUMNS, mailbox_id, uids)
        rows = _selected(await self._query("fetch", sql, *args), wanted)
        self._rows.observe(mailbox_id, rows)
        return rows

    async def _cached_rows(self, mailbox_id: int, uids: Sequence[int]) -> list[tuple[Any, ...]]:
        """Rows from the row cache; the missing ones read in one query and kept (as far as
        the changes seen during the read allow: rowcache.py)."""
        hits, missing = self._rows.lookup(mailbox_id, uids)
        if missing:
            sql, args, wanted = _select_query(_ROW_COLUMNS, mailbox_id, missing)
            flight = self._rows.start(mailbox_id)
            try:
                pool = await self._home_ready()
                read = _selected(await pool.fetch(sql, *args), wanted)
            except BaseException:
                self._rows.abort(flight)
                raise
            self._rows.finish(flight, read)
            if not hits:
                return read
            for row in read:
                hits[row[0]] = row
        return [hits[uid] for uid in sorted(hits)]

    def _select(self, columns: str, mailbox_id: int, uids: Sequence[int]) -> list[Any]:
        """The rows of `uids` by one synchronous query; the flags they show are reported to
        the row cache when it holds or reads rows of the mailbox (`RowCache.observe`)."""
        if not uids:
            return []
        watched = self._rows.watches(mailbox_id)
        strip = watched and columns == _FLAG_COLUMNS  # read with modseq, returned without
        sql, args, wanted = _select_query(
            columns + ", modseq" if strip else columns, mailbox_id, uids
        )
        rows = _selected(self._fetch(sql, *args), wanted)
        if watched:
            self._rows.observe(mailbox_id, rows)
            if strip:
                rows = [row[:3] for row in rows]
        return rows

    async def changed_since(self, mailbox_id: int, modseq: int) -> list[MessageRow]:
        """Messages whose mod-sequence is above `modseq` (RFC 7162 CHANGEDSINCE), by UID,
        on the `messages_modseq` index."""
        rows = await self._query(
            "fetch",
            f"SELECT {_ROW_COLUMNS} FROM messages WHERE mailbox_id = $1 AND modseq > $2"
            " ORDER BY uid",
            mailbox_id,
            modseq,
        )
        self._rows.observe(mailbox_id, rows)
        return [_message_row(row) for row in rows]

    async def vanished_since(self, mailbox_id: int, modseq: int) -> list[int]:
        """UIDs expunged with a mod-sequence above `modseq` (tombstones), ascending."""
        rows = await self._query(
            "fetch",
            "SELECT uid FROM expunged WHERE mailbox_id = $1 AND modseq > $2 ORDER BY uid",
            mailbox_id,
            modseq,
        )
        return [int(row[0]) for row in rows]

    async def first_unseen(self, mailbox_id: int) -> int | None:
        """The lowest UID without \\Seen, on the partial index `messages_unseen`."""
        value = await self._query(
            "fetchval",
            "SELECT uid FROM messages WHERE mailbox_id = $1 AND flags & 1 = 0 ORDER BY uid LIMIT 1",
            mailbox_id,
        )
        return int(value) if value is not None else None

    def blob(self, blob_id: int) -> tuple[bytes, bytes] | None:
        """(raw bytes, serialized index) of one message body (kept in `BodyCache`)."""
        cached = self._bodies.blob(blob_id)
        if cached is not None:
            return cached
        row = self._fetchrow(
            "SELECT r.raw, b.meta FROM blobs b JOIN bodies r ON r.blob_id = b.id WHERE b.id = $1",
            blob_id,
        )
        if row is None:
            return None
        self._bodies.put("blob", blob_id, (row[0], row[1]))
        return (row[0], row[1])

    async def blobs(self, blob_ids: Sequence[int]) -> dict[int, tuple[bytes, bytes]]:
        """(raw bytes, serialized index) of several bodies: those in `BodyCache` from
        there, the others in one round trip."""
        out: dict[int, tuple[bytes, bytes]] = {}
        missing: list[int] = []
        for blob_id in sorted(set(blob_ids)):
            cached = self._bodies.blob(blob_id)
            if cached is None:
                missing.append(blob_id)
            else:
                out[blob_id] = cached
        if missing:
            rows = await self._query(
                "fetch",
                "SELECT b.id, r.raw, b.meta FROM blobs b JOIN bodies r ON r.blob_id = b.id"
                " WHERE b.id = ANY($1::bigint[])",
                missing,
            )
            for blob_id, raw, meta in rows:
                out[blob_id] = (raw, meta)
                self._bodies.put("blob", blob_id, (raw, meta))
        return out

    def meta(self, blob_id: int) -> bytes | None:
        cached = self._bodies.meta(blob_id)
        if cached is not None:
            return cached
        row = self._fetchrow("SELECT meta FROM blobs WHERE id = $1", blob_id)
        if row is None:
            return None
        self._bodies.put("meta", blob_id, row[0])
        return bytes(row[0])

    def metas(self, blob_ids: Sequence[int]) -> dict[int, bytes]:
        """Serialized indexes of many bodies at once (SORT), never the raw bytes: those in
        `BodyCache` from there, the others in one round trip."""
        out: dict[int, bytes] = {}
        missing: list[int] = []
        for blob_id in sorted(set(blob_ids)):
            cached = self._bodies.meta(blob_id)
            if cached is None:
                missing.append(blob_id)
            else:
                out[blob_id] = cached
        if missing:
            rows = self._fetch("SELECT id, meta FROM blobs WHERE id = ANY($1::bigint[])", missing)
            for blob_id, meta in rows:
                out[blob_id] = meta
                self._bodies.put("meta", blob_id, meta)
        return out

    def previews(self, blob_ids: Sequence[int]) -> dict[int, str]:
        """Stored PREVIEW texts (RFC 8970) of many bodies at once."""
        if not blob_ids:
            return {}
        rows = self._fetch(
            "SELECT blob_id, text FROM previews WHERE blob_id = ANY($1::bigint[])",
            sorted(set(blob_ids)),
        )
        return {row[0]: row[1] for row in rows}

    async def save_previews(self, previews: dict[int, str]) -> None:
        """Keeps previews computed late (for bodies stored before previews were kept)."""
        if not previews:
            return
        ids = list(previews)

        async def job(conn: Conn) -> tuple[None, list[Event]]:
            await conn.execute(
                "INSERT INTO previews (blob_id, text)"
                " SELECT t.id, t.text FROM unnest($1::bigint[], $2::text[]) AS t(id, text)"
                " JOIN blobs b ON b.id = t.id ON CONFLICT DO NOTHING",
                ids,
                [previews[i] for i in ids],
            )
            return None, []

        await self._write(None, job, prologue=self._lazy)

    def header_prefixes(self, blob_ids: Sequence[int], limit: int = 64 * 1024) -> dict[int, bytes]:
        """The header of each stored message (at most `limit` octets of it): PostgreSQL
        slices the stored value, never returning the whole message (THREAD, RFC 5256)."""
        if not blob_ids:
            return {}
        rows = self._fetch(
            "SELECT blob_id, substring(raw FROM 1 FOR $2) FROM bodies"
            " WHERE blob_id = ANY($1::bigint[])",
            sorted(set(blob_ids)),
            limit,
        )
        out: dict[int, bytes] = {}
        for blob_id, data in rows:
            end = _HEADER_END.search(data)
            out[blob_id] = data if end is None else data[: end.start() + 1]
        return out

    async def search_blobs(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, bytes]:
        """Stored search data of several messages at once (uid -> bytes)."""
        if not uids:
            return {}
        rows = await self._query(
            "fetch",
            "SELECT m.uid, b.search FROM messages m JOIN blobs b ON b.id = m.blob_id"
            " WHERE m.mailbox_id = $1 AND m.uid = ANY($2::bigint[])",
            mailbox_id,
            list(uids),
        )
        return {row[0]: row[1] for row in rows}

    async def text_matches(self, mailbox_id: int, needles: Sequence[tuple[str, str]]) -> set[int]:
        """UIDs that may match SEARCH text keys: every (where, needle) is in the folded
        header lines ("header"), in the stored search data, whose strings marshal keeps as
        UTF-8 ("body"), or in either ("text"); case-sensitive, on folded text, like
        SQLite's instr. Header needles are `LIKE '%needle%'` on the header lines' pg_trgm
        GIN index; the search data is scanned in the database (migration 7). Bodies
        without header lines are always included (migration 9). A superset: the caller
        checks each one."""
        tests: list[str] = []
        args: list[Any] = [mailbox_id]
        # Any subset of the needles gives a superset: only the longest few (the most
        # selective) go into SQL; a needle text cannot hold is left to the caller.
        usable = sorted({n for n in needles if _sql_text(n[1])}, key=lambda n: (-len(n[1]), n))[
            :_MAX_SQL_NEEDLES
        ]
        def arg(value: object) -> str:
            args.append(value)
            return f"${len(args)}"

        for where, needle in usable:
            parts = []
            if where != "body":
                parts.append(f"s.header LIKE {arg('%' + like_escape(needle) + '%')}")
            if where != "header":
                parts.append(f"position({arg(needle.encode('utf-8'))}::bytea IN b.search) > 0")
            tests.append(f"({' OR '.join(parts)})")
        condition = " AND ".join(tests) or "true"
        scans = any(where != "header" for where, _ in usable)
        # every body has its search_text row; those without header lines (NULL) come
        # from an index of their own (migration 9), so that a header needle's LIKE alone
        # can use the trigram index
        rows = await self._query(
            "fetch",
            "SELECT m.uid FROM messages m JOIN search_text s ON s.blob_id = m.blob_id"
            + (" JOIN blobs b ON b.id = m.blob_id" if scans else "")
            + f" WHERE m.mailbox_id = $1 AND {condition}"
            " UNION ALL SELECT m.uid FROM search_text s JOIN messages m ON m.blob_id = s.blob_id"
            " WHERE s.header IS NULL AND m.mailbox_id = $1",
            *args,
        )
        return {row[0] for row in rows}

    def search_blob(self, blob_id: int) -> bytes | None:
        cached = self._bodies.data("search", blob_id)
        if cached is not None:
            return cached
        row = self._fetchrow("SELECT search FROM blobs WHERE id = $1", blob_id)
        if row is None:
            return None
        self._bodies.put("search", blob_id, row[0])
        return bytes(row[0])

    async def append(
        self, mailbox_id: int, messages: Sequence[NewMessage], origin: object | None = None
    ) -> tuple[int, list[int]]:
        """Stores the messages all or nothing; (uidvalidity, assigned UIDs) once committed."""

        n = len(messages)
        stamps = [m.internaldate for m in messages]
        offsets = [stamp.utcoffset() for stamp in stamps]
        columns = (  # one array per column, in message order (see _APPEND)
            [m.raw for m in messages],
            [m.meta for m in messages],
            [m.search for m in messages],
            [m.header_text if m.header_text and _sql_text(m.header_text) else None
             for m in messages],
            [None if m.preview is None else m.preview.replace("\x00", "") for m in messages],
            [m.flags.bits for m in messages],
            [m.flags.keywords_text() for m in messages],
            [len(m.raw) if m.size is None else m.size for m in messages],
            [int(stamp.timestamp()) for stamp in stamps],
            [int(o.total_seconds() // 60) if o else 0 for o in offsets],
        )  # fmt: skip
        added = sorted({k for m in messages for k in m.flags.keywords})

        def build(rows: list[asyncpg.Record]) -> tuple[tuple[int, list[int]], list[Event]]:
            if not rows:
                raise NoSuchMailbox(str(mailbox_id))
            user_id, uidvalidity, first_uid, modseq, _ = rows[0]
            uids = list(range(first_uid, first_uid + n))
            event = MessagesAdded(
                user_id, mailbox_id, tuple(uids), modseq, origin, tuple(m.flags for m in messages)
            )
            return (uidvalidity, uids), [event]

        if not messages:
            mailbox = await self._query(
                "fetchrow", "SELECT uidvalidity FROM mailboxes WHERE id = $1", mailbox_id
            )
            if mailbox is None:
                raise NoSuchMailbox(str(mailbox_id))
            return int(mailbox[0]), []
        call = _Call(_APPEND, (n, mailbox_id, *columns, added), build)
        return await self._write(None, call, mailbox_id=mailbox_id)

    async def store_flags(
        self,
        mailbox_id: int,
        uids: Sequence[int],
        mode: FlagMode,
        flags: Flags,
        unchangedsince: int | None = None,
        origin: object | None = None,
    ) -> FlagChanges:
        """Changes flags; what was changed, failed UNCHANGEDSINCE (RFC 7162 §3.1.3) and
        left as it was. One round trip: `coi_store_flags` (migrations 4 and 13) locks the
        mailbox row, writes, notifies and returns every row it found."""

        def build(rows: list[asyncpg.Record]) -> tuple[FlagChanges, list[Event]]:
            result = FlagChanges([], [], [])
            before: list[Flags] = []
            for _, uid, bits, keywords, modseq, old_bits, old_keywords, failed, _ in rows:
                if failed is False:
                    result.changed.append((uid, stored_flags(bits, keywords), modseq))
                    before.append(stored_flags(old_bits, old_keywords))
                    continue
                result.unchanged.append((uid, stored_flags(bits, keywords), modseq))
                if failed:
                    result.failed.append(uid)
            if not result.changed:
                return result, []
            user_id = rows[0][8]
            changed = tuple(result.changed)
            return result, [FlagsChanged(user_id, mailbox_id, changed, origin, tuple(before))]

        args = (list(uids), mode, flags.bits, " ".join(flags.keywords), unchangedsince)
        call = _Call(self._store_flags, args, build, group=mailbox_id, merge=_merge_flag_changes)
        try:
            return await self._write(None, call, mailbox_id=mailbox_id)
        except asyncpg.exceptions.NoDataFoundError:
            raise NoSuchMailbox(str(mailbox_id)) from None

    async def copy(
        self,
        source_id: int,
        uids: Sequence[int],
        target_id: int,
        *,
        move: bool = False,
        origin: object | None = None,
    ) -> tuple[int, list[tuple[int, int]]]:
        """Copies (or moves, RFC 6851) messages; (target uidvalidity, [(source uid, new uid)]).
        One round trip: `coi_copy` (migrations 4 and 8)."""

        def build(
            rows: list[asyncpg.Record],
        ) -> tuple[tuple[int, list[tuple[int, int]]], list[Event]]:
            _, _, uidvalidity, modseq, user_id, moved_modseq, _, _ = rows[0]
            if rows[0][0] is None:  # nothing to copy
                return (uidvalidity, []), []
            mapping = [(row[0], row[1]) for row in rows]
            added = tuple(new for _, new in mapping)
            flags = tuple(stored_flags(row[6], row[7]) for row in rows)  # as copied
            events: list[Event] = [
                MessagesAdded(user_id, target_id, added, modseq, origin, flags)
            ]
            if move:
                moved = tuple(old for old, _ in mapping)
                events.append(MessagesExpunged(user_id, source_id, moved, moved_modseq, origin))
            return (uidvalidity, mapping), events

        args = (source_id, list(uids), target_id, move)
        call = _Call("SELECT * FROM coi_copy($1, $2, $3, $4, $5, $6)", args, build)
        try:
            return await self._write(None, call, mailbox_id=target_id)
        except asyncpg.exceptions.NoDataFoundError:
            raise NoSuchMailbox(str(target_id)) from None

    async def expunge(
        self, mailbox_id: int, uids: Sequence[int] | None = None, origin: object | None = None
    ) -> list[int]:
        """Removes \\Deleted messages (only those among `uids` when given). One round
        trip: `coi_expunge` (migrations 4 and 14)."""

        def build(rows: list[asyncpg.Record]) -> tuple[list[int], list[Event]]:
            if not rows:
                return [], []
            self._bodies.forget([row[1] for row in rows])  # gone bodies leave the cache
            deleted = [row[0] for row in rows]
            _, _, modseq, user_id = rows[0]
            return deleted, [MessagesExpunged(user_id, mailbox_id, tuple(deleted), modseq, origin)]

        args = (mailbox_id, None if uids is None else list(uids))
        call = _Call("SELECT * FROM coi_expunge($1, $2, $3, $4)", args, build)
        try:
            return await self._write(None, call, mailbox_id=mailbox_id)
        except asyncpg.exceptions.NoDataFoundError:
            raise NoSuchMailbox(str(mailbox_id)) from None


if TYPE_CHECKING:  # mypy proves here that the backend implements the whole interface

    def _implements(store: PostgresStore) -> Store:
        return store


def _merge_flag_changes(calls: list[_Call]) -> tuple[Any, ...]:
    """`coi_store_flags_many`'s arguments for the STOREs of one mailbox (`_Call.merge`)."""
    counts: list[int] = []
    uids: list[int] = []
    columns: tuple[list[Any], ...] = ([], [], [], [])  # mode, bits, keywords, unchangedsince
    for call in calls:
        call_uids, *rest = call.args
        counts.append(len(call_uids))
        uids += call_uids
        for column, value in zip(columns, rest, strict=True):
            column.append(value)
    return (calls[0].group, counts, uids, *columns)


def _notify_sql(payloads: list[str]) -> str:
    """`pg_notify` of the payloads as SQL text, sent in one simple query with COMMIT (a
    round trip less per write). The payloads are JSON (ASCII, no NUL: json.dumps escapes
    the rest); as E'' literals only the backslash and the quote need escaping."""
    literals = ", ".join("E'" + p.replace("\\", "\\\\").replace("'", "''") + "'" for p in payloads)
    return f"SELECT pg_notify('{CHANNEL}', p) FROM unnest(ARRAY[{literals}]::text[]) AS p; "


async def _rollback(conn: Conn) -> None:
    """Ends a failed write's transaction; a broken connection is left to the pool."""
    if conn.is_closed() or not conn.is_in_transaction():
        return
    with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        await conn.execute("ROLLBACK")


async def _ready_for_writes(conn: Connection) -> None:
    """A new home connection prepares APPEND's and STORE's statements once: asyncpg
    learns their array types then (a query of the catalogue each, 10 ms of the first
    append on a fresh connection), not in the first command that uses the connection."""
    for sql in (_APPEND, _STORE_FLAGS):
        await conn.prepare(sql)


def _take_group(queue: collections.deque[_Pending], group: int) -> list[_Pending]:
    """Takes the `_Call`s of `group` out of a user's queue, in their order, at most
    `_GROUP_MAX` - 1 of them (the group's first is taken already)."""
    taken: list[_Pending] = []
    kept: list[_Pending] = []
    for pending in queue:
        if len(taken) < _GROUP_MAX - 1 and pending.group == group:
            taken.append(pending)
        else:
            kept.append(pending)
    if taken:
        queue.clear()
        queue.extend(kept)
    return taken


def _store_error(exc: BaseException) -> BaseException:
    """Text PostgreSQL cannot hold is the caller's mistake, said as such."""
    if isinstance(exc, UnicodeEncodeError | asyncpg.exceptions.CharacterNotInRepertoireError):
        return StoreError(f"text the store cannot hold (NUL or a lone surrogate): {exc}")
    return exc


def _mailbox_modseq(event: Event) -> tuple[int, int] | None:
    """(mailbox id, MODSEQ) of a change to a mailbox's messages; None for other events."""
    if isinstance(event, MessagesAdded | MessagesExpunged):
        return event.mailbox_id, event.modseq
    if isinstance(event, FlagsChanged) and event.changes:
        return event.mailbox_id, max(change[2] for change in event.changes)
    return None


class _Report:
    """A write's outcome, handed to the caller's loop: its events first, then the result
    (the SQLite writer's order: a session sees its own change before it sends OK)."""

    __slots__ = (
        "committed",
        "error",
        "events",
        "future",
        "loop",
        "needed",
        "publish",
        "result",
        "wake",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[Any],
        result: Any,
        error: BaseException | None,
        events: list[Event],
        publish: Callable[[Event], None],
    ) -> None:
        self.loop = loop
        self.future = future
        self.result = result
        self.error = error
        self.events = events
        self.publish = publish
        self.committed = False  # COMMIT acknowledged (the notification may still come)
        # sends before it is delivered: 2 for a one-statement write while listening (its
        # rows, and its last notification, whichever comes first)
        self.needed = 1
        self.wake: Callable[[], None] | None = None  # when `needed` drops, but not to 0

    def send(self) -> None:
        try:
            if asyncio._get_running_loop() is self.loop:  # on the caller's loop: at once
                self._deliver()
            else:
                self.loop.call_soon_threadsafe(self._deliver)
        except RuntimeError:  # the caller's loop is closed: nobody is waiting any more
            pass

    def _deliver(self) -> None:
        self.needed -= 1
        if self.needed > 0:
            if self.wake is not None:
                self.wake()
            return
        for event in self.events:
            self.publish(event)
        if self.future.done():  # the caller was cancelled; the write stands
            return
        if self.error is not None:
            self.future.set_exception(self.error)
        else:
            self.future.set_result(self.result)


# -- helpers that run inside a write's transaction ---------------------------------


async def _lock_user(conn: Conn, user_id: int) -> None:
    """Serializes changes of one user's mailbox tree and METADATA across processes; a
    user deleted (or moved to another shard) while this waited is NoSuchUser."""
    if await conn.fetchval("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user_id) is None:
        raise NoSuchUser(str(user_id))


async def _find(conn: Conn, user_id: int, name: str) -> int | None:
    value = await conn.fetchval(
        "SELECT id FROM mailboxes WHERE user_id = $1 AND name = $2", user_id, name
    )
    return int(value) if value is not None else None


async def _find_selectable(conn: Conn, user_id: int, name: str) -> int | None:
    value = await conn.fetchval(
        "SELECT id FROM mailboxes WHERE user_id = $1 AND name = $2 AND NOT noselect",
        user_id,
        name,
    )
    return int(value) if value is not None else None


async def _create_mailbox(
    conn: Conn, user_id: int, name: str, special_use: str
) -> tuple[int, list[Event]]:
    row = await conn.fetchrow(
        "SELECT id, noselect FROM mailboxes WHERE user_id = $1 AND name = $2", user_id, name
    )
    if row is not None:
        if not row[1]:
            raise MailboxExists(name)
        await conn.execute("DELETE FROM mailboxes WHERE id = $1", row[0])
    events: list[Event] = []
    parts = name.split("/")
    for depth in range(1, len(parts)):
        superior = "/".join(parts[:depth])
        if superior and await _find(conn, user_id, superior) is None:
            sid = await _insert_mailbox(conn, user_id, superior, "")
            events.append(MailboxCreated(user_id, sid, superior))
    mailbox_id = await _insert_mailbox(conn, user_id, name, special_use)
    events.append(MailboxCreated(user_id, mailbox_id, name))
    return mailbox_id, events


async def _metadata_count(conn: Conn, user_id: int) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM metadata WHERE user_id = $1", user_id))


async def _set_metadata(
    conn: Conn, user_id: int, mailbox_id: int, entries: MetadataUpdate, origin: object | None
) -> list[Event]:
    """Applies the entries; one MetadataChanged event naming those that really changed."""
    changed: set[str] = set()
    for name, value in entries:
        name = name.lower()
        old = await conn.fetchrow(
            "SELECT value FROM metadata WHERE user_id = $1 AND mailbox_id = $2 AND name = $3",
            user_id,
            mailbox_id,
            name,
        )
        if value is None:
            if old is not None:
                await conn.execute(
                    "DELETE FROM metadata WHERE user_id = $1 AND mailbox_id = $2 AND name = $3",
                    user_id,
                    mailbox_id,
                    name,
                )
                changed.add(name)
        elif old is None or bytes(old[0]) != value:
            await conn.execute(
                "INSERT INTO metadata (user_id, mailbox_id, name, value) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (user_id, mailbox_id, name) DO UPDATE SET value = excluded.value",
                user_id,
                mailbox_id,
                name,
                bytes(value),
            )
            changed.add(name)
    if not changed:
        return []
    return [MetadataChanged(user_id, mailbox_id, tuple(sorted(changed)), origin)]


async def _drop_orphan_metadata(conn: Conn, user_id: int) -> None:
    """Entries of mailboxes that no longer exist (pruned \\Noselect names) go too."""
    await conn.execute(
        "DELETE FROM metadata WHERE user_id = $1 AND mailbox_id <> 0"
        " AND mailbox_id NOT IN (SELECT id FROM mailboxes WHERE user_id = $1)",
        user_id,
    )


async def _next_uidvalidity(conn: Conn) -> int:
    """Strictly increasing across the database (all processes), so a re-created name never
    reuses one (RFC 3501 §2.3.1.1); the row lock orders concurrent creations."""
    value = await conn.fetchval(
        "UPDATE meta SET value = (greatest($1::bigint, value::bigint + 1) & 4294967295)::text"
        " WHERE key = 'uidvalidity' RETURNING value::bigint",
        int(time.time()),
    )
    return int(value)


async def _insert_mailbox(conn: Conn, user_id: int, name: str, special_use: str) -> int:
    value = await conn.fetchval(
        "INSERT INTO mailboxes (user_id, name, uidvalidity, special_use) VALUES ($1, $2, $3, $4)"
        " RETURNING id",
        user_id,
        name,
        await _next_uidvalidity(conn),
        special_use,
    )
    return int(value)


async def _copy_rows(
    conn: Conn, source_id: int, uids: list[int], target_id: int
) -> list[tuple[int, int]]:
    target = await conn.fetchrow(
        "SELECT uidnext, highestmodseq, keywords FROM mailboxes WHERE id = $1", target_id
    )
    if target is None:
        raise NoSuchMailbox(str(target_id))
    first_uid, modseq, known = target
    modseq += 1
    keywords = set(Flags.parse_keywords(known))
    rows = await conn.fetch(
        "SELECT uid, blob_id, keywords FROM messages WHERE mailbox_id = $1"
        " AND uid = ANY($2::bigint[]) ORDER BY uid",
        source_id,
        uids,
    )
    mapping = [(row[0], first_uid + i) for i, row in enumerate(rows)]
    if rows:
        await conn.execute(
            "INSERT INTO messages (mailbox_id, uid, blob_id, flags, keywords, modseq, size,"
            " internaldate, tz_minutes)"
            " SELECT $1, t.new_uid, m.blob_id, m.flags, m.keywords, $2, m.size, m.internaldate,"
            " m.tz_minutes FROM unnest($3::bigint[], $4::bigint[]) AS t(old_uid, new_uid)"
            " JOIN messages m ON m.mailbox_id = $5 AND m.uid = t.old_uid",
            target_id,
            modseq,
            [old for old, _ in mapping],
            [new for _, new in mapping],
            source_id,
        )
        await _add_refs(conn, [row[1] for row in rows], 1)
        for row in rows:
            keywords.update(Flags.parse_keywords(row[2]))
    await conn.execute(
        "UPDATE mailboxes SET uidnext = $1, highestmodseq = $2, keywords = $3 WHERE id = $4",
        first_uid + len(mapping),
        modseq,
        " ".join(sorted(keywords)),
        target_id,
    )
    return mapping


async def _add_refs(conn: Conn, blob_ids: list[int], sign: int) -> None:
    """Counts (sign 1) or releases (sign -1) references of bodies, one per list entry."""
    await conn.execute(
        "UPDATE blobs b SET refs = b.refs + $2 * c.n"
        " FROM (SELECT id, count(*) AS n FROM unnest($1::bigint[]) AS id GROUP BY id) c"
        " WHERE b.id = c.id",
        blob_ids,
        sign,
    )


async def _expunge_rows(conn: Conn, mailbox_id: int, uids: list[int], cache: BodyCache) -> int:
    """Deletes the messages, leaves tombstones (RFC 7162 §3.2.5 VANISHED) and releases
    bodies no longer used; returns the expunge's mod-sequence."""
    modseq = int(
        await conn.fetchval(
            "UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = $1"
            " RETURNING highestmodseq",
            mailbox_id,
        )
    )
    rows = await conn.fetch(
        "DELETE FROM messages WHERE mailbox_id = $1 AND uid = ANY($2::bigint[]) RETURNING blob_id",
        mailbox_id,
        uids,
    )
    await conn.execute(
        "INSERT INTO expunged (mailbox_id, uid, modseq)"
        " SELECT $1, uid, $2 FROM unnest($3::bigint[]) AS uid"
        " ON CONFLICT (mailbox_id, uid) DO UPDATE SET modseq = excluded.modseq",
        mailbox_id,
        modseq,
        uids,
    )
    await _release_blobs(conn, [row[0] for row in rows], cache)
    return modseq


async def _release_blobs(conn: Conn, blob_ids: list[int], cache: BodyCache) -> None:
    """Releases references; bodies no longer used are deleted and leave the cache (even
    if the transaction then fails: dropping an entry is always right)."""
    if not blob_ids:
        return
    cache.forget(blob_ids)
    await _add_refs(conn, blob_ids, -1)
    await conn.execute(
        "DELETE FROM blobs WHERE id = ANY($1::bigint[]) AND refs <= 0", sorted(set(blob_ids))
    )


async def _prune_placeholders(conn: Conn, user_id: int) -> None:
    """\\Noselect names exist only for their inferiors; without any they go away."""
    while _count(
        await conn.execute(
            "DELETE FROM mailboxes AS m WHERE m.user_id = $1 AND m.noselect AND NOT EXISTS ("
            " SELECT 1 FROM mailboxes AS c WHERE c.user_id = m.user_id"
            " AND left(c.name, length(m.name) + 1) = m.name || '/')",
            user_id,
        )
    ):
        pass


async def delete_user_rows(
    conn: Conn, user_id: int, cache: BodyCache, *, moved: bool = False
) -> list[Event]:
    """Deletes a user (its row locked by the caller) with everything of theirs; the events
    make every process let go of the user's mailboxes (row cache, states, NOTIFY) and end
    the user's sessions."""
    boxes = await conn.fetch(
        "SELECT id, name FROM mailboxes WHERE user_id = $1 ORDER BY id FOR UPDATE", user_id
    )
    for row in boxes:
        await _drop_mailbox_contents(conn, row[0], cache)
    # mailboxes, subscriptions, metadata and aliases go with the user (CASCADE)
    await conn.execute("DELETE FROM users WHERE id = $1", user_id)
    events: list[Event] = [MailboxDeleted(user_id, row[0], row[1]) for row in boxes]
    return [*events, UserGone(user_id, moved)]


def notify_sql(events: list[Event]) -> str:
    """The SQL that notifies `events` to every process as another process's (a token of
    nobody's), for writes made outside a store (`coi shard move`)."""
    return _notify_sql(encode(secrets.token_hex(8), 0, events))


async def _drop_mailbox_contents(conn: Conn, mailbox_id: int, cache: BodyCache) -> None:
    rows = await conn.fetch(
        "DELETE FROM messages WHERE mailbox_id = $1 RETURNING blob_id", mailbox_id
    )
    await conn.execute("DELETE FROM expunged WHERE mailbox_id = $1", mailbox_id)
    await conn.execute("DELETE FROM recent_floors WHERE mailbox_id = $1", mailbox_id)
    await _release_blobs(conn, [row[0] for row in rows], cache)
