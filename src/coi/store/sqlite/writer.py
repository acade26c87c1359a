"""One writer thread per database with group commit.

Invariants: every write runs on the writer thread inside one transaction shared with the
other jobs queued at the same moment (each job in its own SAVEPOINT, so one failing job
does not undo the others). The transaction is committed (fsync, synchronous=FULL) before
anything is reported: the loop first publishes the batch's events in commit order, then
resolves the jobs' futures, so a session sees its own change before it sends its OK.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from coi.store.events import Event

T = TypeVar("T")
# A job gets the connection and returns (result, events to publish after commit).
Job = Callable[[sqlite3.Connection], tuple[Any, list[Event]]]

_MAX_BATCH = 256


class _Work:
    __slots__ = ("future", "job", "loop")

    def __init__(self, job: Job, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]):
        self.job = job
        self.loop = loop
        self.future = future


class Writer:
    def __init__(
        self, connect: Callable[[], sqlite3.Connection], publish: Callable[[Event], None]
    ) -> None:
        self._connect = connect
        self._publish = publish
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="coi-sqlite-writer", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put(_Work(job, loop, future))
        return future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        conn = self._connect()
        try:
            while True:
                first = self._queue.get()
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
            conn.close()

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Work]) -> None:
        outcomes: list[tuple[_Work, Any, BaseException | None, list[Event]]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for work in batch:
                conn.execute("SAVEPOINT job")
                try:
                    result, events = work.job(conn)
                except Exception as exc:
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    outcomes.append((work, None, exc, []))
                else:
                    conn.execute("RELEASE job")
                    outcomes.append((work, result, None, events))
            conn.execute("COMMIT")
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
