"""One writer thread per database with group commit, and the fsync policy.

Invariants: every write runs on the writer thread inside one transaction shared with the
other jobs queued at the same moment (each job in its own SAVEPOINT, so one failing job
does not undo the others). The transaction is committed before anything is reported: the
loop first publishes the batch's events in commit order, then resolves the jobs' futures,
so a session sees its own change before it sends its OK.

fsync policy (like Dovecot's `mail_fsync`):

- `always`: every commit is fsynced (WAL, synchronous=FULL) before it is reported.
- `optimized`: a batch of only *lazy* jobs (flag changes, \\Recent bookkeeping, cached
  previews) commits with synchronous=NORMAL: written to the WAL (so in the kernel's page
  cache: a killed process loses nothing), reported, and fsynced within `sync_delay`
  seconds, or earlier by the next durable commit (one fsync of the WAL covers every frame
  before it), and always before `close` returns (clean stop). Any batch holding one
  durable job (APPEND, delivery, COPY, MOVE, EXPUNGE, everything else) commits with
  synchronous=FULL, as under `always`. What an OS crash or power loss can lose is thus the
  lazy changes of the last `sync_delay` seconds, never a durable one, and never a lazy one
  older than a durable one acknowledged after it.
"""

from __future__ import annotations

import asyncio
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from coi.store.events import Event
from coi.store.model import FSYNC_POLICIES

T = TypeVar("T")
# A job gets the connection and returns (result, events to publish after commit).
Job = Callable[[sqlite3.Connection], tuple[Any, list[Event]]]

_MAX_BATCH = 256


class _Work:
    __slots__ = ("future", "job", "lazy", "loop")

    def __init__(
        self, job: Job, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], lazy: bool
    ):
        self.job = job
        self.loop = loop
        self.future = future
        self.lazy = lazy


class Writer:
    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        publish: Callable[[Event], None],
        *,
        fsync: str = "always",
        sync_delay: float = 1.0,
        wal_path: Path | None = None,
    ) -> None:
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync policy {fsync!r}: use always or optimized")
        self._connect = connect
        self._publish = publish
        self._optimized = fsync == "optimized"
        self._sync_delay = sync_delay
        self._wal_path = wal_path
        self._unsynced_since: float | None = None  # monotonic time of the oldest lazy commit
        self.syncs = 0  # deferred fsyncs done (for tests and metrics)
        self._full = True  # the connection's synchronous setting: FULL (True) or NORMAL
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="coi-sqlite-writer", daemon=True)
        self._thread.start()

    def submit(self, job: Job, *, lazy: bool = False) -> asyncio.Future[Any]:
        """Queues a job; its future resolves once committed, and, unless `lazy` under the
        `optimized` policy, fsynced."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put(_Work(job, loop, future, lazy))
        return future

    @property
    def unsynced(self) -> bool:
        """True while lazy commits wait for their deferred fsync."""
        return self._unsynced_since is not None

    def close(self) -> None:
        """Stops the thread after the queued jobs, with every commit fsynced."""
        self._queue.put(None)
        self._thread.join()

    def _next(self) -> _Work | None:
        """The next job; while lazy commits are unsynced, waits no longer than their
        deadline and fsyncs the WAL when it passes."""
        while self._unsynced_since is not None:
            remaining = self._unsynced_since + self._sync_delay - time.monotonic()
            if remaining <= 0:
                self._sync()
                break
            try:
                return self._queue.get(timeout=remaining)
            except queue.Empty:
                self._sync()
        return self._queue.get()

    def _sync(self) -> None:
        """Makes the lazy commits durable: one fsync of the WAL file covers every frame
        written to it (a checkpoint in synchronous=NORMAL fsyncs what it copies itself)."""
        self._unsynced_since = None
        if self._wal_path is None:
            return
        try:
            fd = os.open(self._wal_path, os.O_RDONLY)
        except FileNotFoundError:  # no WAL: everything is in the database file
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self.syncs += 1

    def _run(self) -> None:
        conn = self._connect()
        try:
            while True:
                first = self._next()
                if first is None:
                    return
                batch = [first]
                stop = False
                while len(batch) < _MAX_BATCH:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        stop = True
                        break
                    batch.append(more)
                self._run_batch(conn, batch)
                if stop:
                    return
        finally:
            if self._unsynced_since is not None:
                self._sync()  # clean stop: nothing acknowledged stays unsynced
            conn.close()

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Work]) -> None:
        outcomes: list[tuple[_Work, Any, BaseException | None, list[Event]]] = []
        full = not self._optimized or not all(work.lazy for work in batch)
        if full != self._full:
            conn.execute("PRAGMA synchronous=FULL" if full else "PRAGMA synchronous=NORMAL")
            self._full = full
        written = 0  # rows changed by the jobs that succeeded: frames for the WAL
        # a batch of one job needs no SAVEPOINT: its failure rolls back the transaction
        single = len(batch) == 1
        try:
            conn.execute("BEGIN IMMEDIATE")
            for work in batch:
                if not single:
                    conn.execute("SAVEPOINT job")
                before = conn.total_changes
                try:
                    result, events = work.job(conn)
                except Exception as exc:
                    if single:
                        conn.execute("ROLLBACK")
                    else:
                        conn.execute("ROLLBACK TO job")
                        conn.execute("RELEASE job")
                    outcomes.append((work, None, exc, []))
                else:
                    if not single:
                        conn.execute("RELEASE job")
                    written += conn.total_changes - before
                    outcomes.append((work, result, None, events))
            if conn.in_transaction:
                conn.execute("COMMIT")
            if written:
                if full:  # its fsync of the WAL covered every earlier lazy frame too
                    self._unsynced_since = None
                elif self._unsynced_since is None:
                    self._unsynced_since = time.monotonic()
        except BaseException as exc:  # the commit itself failed: nothing is durable
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            outcomes = [(work, None, exc, []) for work in batch]
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for outcome in outcomes:
            by_loop.setdefault(outcome[0].loop, []).append(outcome)
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(self._report, items)
            except RuntimeError:  # loop already closed: nobody is waiting any more
                pass

    def _report(self, items: list[tuple[_Work, Any, BaseException | None, list[Event]]]) -> None:
        for _work, _result, _error, events in items:
            for event in events:
                self._publish(event)
        for work, result, error, _events in items:
            if work.future.done():
                continue
            if error is not None:
                work.future.set_exception(error)
            else:
                work.future.set_result(result)
