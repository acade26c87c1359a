"""A private PostgreSQL cluster for the tests (issue 17: tests with a real PostgreSQL).

`start_cluster()` runs Debian's `initdb` into a new temporary directory and starts
`postgres` on a free port of 127.0.0.1, with its unix socket in that directory, so it
never meets a system cluster. As root the server runs as the `postgres` system user
(PostgreSQL refuses to run as root). Each test gets a database of its own with the store's
schema and nothing else (`Cluster.new_database`): a copy of a template that already holds
the schema, or one a finished test used, emptied back to the template's contents (every
row deleted, the template's rows and sequence positions put back; a database whose schema
a test changed is dropped instead). This happens after the test, on a thread of its own
(`_Databases`): a copy costs some 0.2 s of PostgreSQL's CPU, emptying some 20 ms, and a
copy per test left hundreds of databases behind. `Cluster.stop()`
stops the server by its PID and removes the directory. Under pytest-xdist each worker
starts its own cluster.

`COI_TEST_POSTGRES=postgresql://user@host:port/db` uses a running server instead (the
user must be allowed to create databases); nothing is started then.

The cluster trades durability for speed (fsync=off): it is thrown away after the run.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SUPERUSER = "coi"


def find_bindir() -> Path | None:
    """The newest installed PostgreSQL's bin directory (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def unavailable() -> str | None:
    """Why no cluster can be had here, or None."""
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        return "asyncpg is not installed (pip install -e '.[dev]', or coi[postgres])"
    if os.environ.get("COI_TEST_POSTGRES"):
        return None
    if find_bindir() is None:
        return (
            "PostgreSQL is not installed (no initdb under /usr/lib/postgresql/*/bin): run"
            " scripts/bootstrap as root (it installs Debian's postgresql), or set"
            " COI_TEST_POSTGRES=postgresql://... to use a running server"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root, but there is no 'postgres' user to run PostgreSQL as"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    """A running server: `dsn(db)` names one of its databases."""

    host: str
    port: int
    user: str
    bindir: Path | None = None
    directory: Path | None = None  # None: not ours (COI_TEST_POSTGRES)
    process: subprocess.Popen[bytes] | None = None
    admin_db: str = "postgres"
    template: str = "coi_template"
    _names: itertools.count[int] = field(default_factory=itertools.count)
    _databases: _Databases | None = None

    def dsn(self, database: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def socket_dsn(self, database: str) -> str:
        """`dsn` through the cluster's Unix socket when it is ours: the way to reach a
        database on the same machine (a round trip costs less CPU than over TCP)."""
        if self.directory is None:
            return self.dsn(database)
        return f"postgresql://{self.user}@/{database}?host={self.directory}&port={self.port}"

    def psql(self, sql: str, database: str | None = None) -> str:
        """Runs one statement as the cluster's superuser (CREATE/DROP DATABASE cannot run
        in a transaction, so not through a store)."""
        psql = shutil.which("psql") if self.bindir is None else str(self.bindir / "psql")
        if psql is None:
            raise RuntimeError("psql not found")
        done = subprocess.run(
            [
                psql,
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
                self.dsn(database or self.admin_db),
            ],
            capture_output=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql {sql!r}: {done.stderr.decode(errors='replace')}")
        return done.stdout.decode()

    def new_name(self) -> str:
        return f"coi_test_{os.getpid()}_{next(self._names)}"

    def new_database(self) -> str:
        """A database with the store's schema and no data (made ahead of use); after the
        test, `release_idle` takes it back."""
        if self._databases is None:
            self._databases = _Databases(self)
        return self._databases.take()

    def drop_database(self, name: str) -> None:
        if self._databases is not None:
            self._databases.drop(name)
        else:
            self.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def release_idle(self) -> None:
        """Empties for reuse, in the background, the databases handed out that have no
        connection left (called after each test: a server of a module-scoped fixture still
        holds its own)."""
        if self._databases is not None:
            self._databases.release_idle()

    def stop(self) -> None:
        """Stops the server we started (SIGINT: fast shutdown) by its PID; removes its files."""
        if self._databases is not None:
            self._databases.close(drop_all=self.process is None)
            self._databases = None
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(2)
                try:
                    self.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            self.process = None
        elif self.template != "coi_template":  # a shared server: drop what we made
            self.psql(f"DROP DATABASE IF EXISTS {self.template} WITH (FORCE)")
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


# the schema of the public namespace: relations, columns, constraints, triggers
_SCHEMA_PRINT = """
SELECT md5(
  coalesce((SELECT string_agg(format('%s %s %s', c.relname, c.relkind::text,
      a.attname || ':' || a.atttypid::text || ':' || a.attnotnull || ':'
      || a.attgenerated::text || a.attidentity::text),
      ',' ORDER BY c.relname, a.attnum)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    WHERE n.nspname = 'public'), '')
  || coalesce((SELECT string_agg(pg_get_constraintdef(k.oid), ',' ORDER BY k.conname)
    FROM pg_constraint k JOIN pg_namespace n ON n.oid = k.connamespace
    WHERE n.nspname = 'public'), '')
  || coalesce((SELECT string_agg(t.tgname, ',' ORDER BY t.tgname) FROM pg_trigger t
    JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public'), ''))
"""


@dataclass
class _Contents:
    """What the template holds besides its schema: the rows of its tables that have any
    (the schema version, the object-id key) and the positions of its sequences."""

    schema: str
    tables: list[str]
    rows: dict[str, tuple[list[str], list[Any]]]
    sequences: list[tuple[str, int, bool]]

    @classmethod
    async def read(cls, dsn: str) -> _Contents:
        import asyncpg

        conn = await asyncpg.connect(dsn)
        try:
            schema = await conn.fetchval(_SCHEMA_PRINT)
            tables = [
                row[0]
                for row in await conn.fetch(
                    "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables"
                    " WHERE schemaname = 'public' ORDER BY 1"
                )
            ]
            rows: dict[str, tuple[list[str], list[Any]]] = {}
            for table in tables:
                records = await conn.fetch(f"SELECT * FROM {table}")
                if records:
                    columns = [
                        row[0]
                        for row in await conn.fetch(
                            "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass"
                            " AND attnum > 0 AND NOT attisdropped AND attgenerated = ''"
                            " ORDER BY attnum",
                            table,
                        )
                    ]
                    rows[table] = (columns, [tuple(r[c] for c in columns) for r in records])
            sequences = [
                (row[0], row[1] if row[1] is not None else row[2], row[1] is not None)
                for row in await conn.fetch(
                    "SELECT format('%I.%I', schemaname, sequencename), last_value, start_value"
                    " FROM pg_sequences WHERE schemaname = 'public'"
                )
            ]
        finally:
            await conn.close()
        return cls(schema, tables, rows, sequences)

    async def restore(self, conn: Any) -> None:
        """Inside a transaction on a database with the same schema. DELETE, with foreign
        keys not checked (a superuser's session_replication_role): the few rows a test
        leaves go in a few ms, where TRUNCATE makes new files for every table and index
        (some 0.15 s); TRUNCATE where the role cannot be set."""
        import asyncpg

        try:
            async with conn.transaction():  # a savepoint: the SET may be refused
                await conn.execute("SET LOCAL session_replication_role = replica")
        except asyncpg.InsufficientPrivilegeError:
            if self.tables:
                await conn.execute(f"TRUNCATE {', '.join(self.tables)} RESTART IDENTITY")
        else:
            for table in self.tables:
                await conn.execute(f"DELETE FROM {table}")
        for table, (columns, records) in self.rows.items():
            schema, _, name = table.partition(".")
            await conn.copy_records_to_table(
                name.strip('"'), schema_name=schema.strip('"'), columns=columns, records=records
            )
        for sequence, value, called in self.sequences:
            await conn.execute("SELECT setval($1::regclass, $2, $3)", sequence, value, called)


class _Databases:
    """The databases handed out to tests: copies of the template made ahead of use, and
    used ones emptied once no one is connected to them (or dropped), on an asyncio loop of
    a thread of its own, off the test's loop. CREATE and DROP DATABASE go serially over one
    connection to the cluster's admin database."""

    AHEAD = 2  # a test may start two servers on databases of their own

    def __init__(self, cluster: Cluster) -> None:
        import asyncpg

        self.cluster = cluster
        self.ready: list[str] = []
        self.handed: dict[str, int] = {}  # name -> which hand-out (a reused name is handed again)
        self.handouts = itertools.count()
        self.emptying: set[str] = set()
        self.error: BaseException | None = None
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="pg-databases")
        self.thread.daemon = True
        self.thread.start()
        self.lock: asyncio.Lock
        self.made: asyncio.Event
        self.refilling: asyncio.Task[None] | None = None
        self.template: _Contents | None = None
        self.releasing: list[concurrent.futures.Future[None]] = []
        self.conn: Any = self._run(self._connect(asyncpg))

    def _run(self, coro: Any, timeout: float = 120) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _connect(self, asyncpg: Any) -> Any:
        self.lock = asyncio.Lock()
        self.made = asyncio.Event()
        return await asyncpg.connect(self.cluster.dsn(self.cluster.admin_db))

    def take(self) -> str:
        name: str = self._run(self._take())
        return name

    async def _take(self) -> str:
        while not self.ready:
            if self.error is not None:
                error, self.error = self.error, None
                raise RuntimeError("creating a test database failed") from error
            self.made.clear()
            self._refill()
            await self.made.wait()
        name = self.ready.pop(0)
        self.handed[name] = next(self.handouts)
        self._refill()
        return name

    def _refill(self) -> None:
        if self.refilling is None and len(self.ready) < self.AHEAD:
            self.refilling = self.loop.create_task(self._create())

    async def _create(self) -> None:
        try:
            while len(self.ready) < self.AHEAD:
                name = self.cluster.new_name()
                async with self.lock:
                    await self.conn.execute(
                        f"CREATE DATABASE {name} TEMPLATE {self.cluster.template}"
                        " STRATEGY FILE_COPY"
                    )
                self.ready.append(name)
                self.made.set()
        except BaseException as exc:  # reported to the test that waits for a database
            self.error = exc
            self.made.set()
        finally:
            self.refilling = None

    def drop(self, name: str) -> None:
        self._run(self._drop([name], force=True))

    async def _drop(self, names: list[str], force: bool) -> None:
        async with self.lock:
            for name in names:
                try:
                    await self.conn.execute(
                        f"DROP DATABASE IF EXISTS {name}" + (" WITH (FORCE)" if force else "")
                    )
                except Exception:  # in use after all (a process still exiting): next time
                    continue
                self.handed.pop(name, None)

    def release_idle(self) -> None:
        self.releasing.append(asyncio.run_coroutine_threadsafe(self._release_idle(), self.loop))
        self.releasing = [f for f in self.releasing if not f.done()]

    async def _release_idle(self) -> None:
        # what was handed out until now: this runs before the `_take` of the next test
        # (the loop runs callbacks in the order they came), whose databases are not done;
        # a name handed out again meanwhile (another hand-out) is not this test's any more
        handed = dict(self.handed)
        if not handed:
            return
        async with self.lock:
            rows = await self.conn.fetch(
                "SELECT DISTINCT datname FROM pg_stat_activity"
                " WHERE datname = ANY($1::text[]) AND backend_type = 'client backend'",
                sorted(handed),
            )
        busy = {row[0] for row in rows}
        for name, handout in sorted(handed.items()):
            if name in busy or name in self.emptying or self.handed.get(name) != handout:
                continue
            self.emptying.add(name)
            try:
                if await self._empty(name):
                    if self.handed.get(name) == handout:
                        del self.handed[name]
                        self.ready.append(name)
                        self.made.set()
                elif self.handed.get(name) == handout:
                    await self._drop([name], force=False)
            finally:
                self.emptying.discard(name)

    async def _empty(self, name: str) -> bool:
        """Puts a used database back to the template's contents; False when its schema is
        not the template's any more (or it cannot be emptied): it is to be dropped."""
        import asyncpg

        try:
            if self.template is None:
                self.template = await _Contents.read(self.cluster.dsn(self.cluster.template))
            conn = await asyncpg.connect(self.cluster.dsn(name))
        except (OSError, asyncpg.PostgresError):
            return False
        try:
            if await conn.fetchval(_SCHEMA_PRINT) != self.template.schema:
                return False
            async with conn.transaction():
                await self.template.restore(conn)
            return True
        except Exception:  # whatever went wrong: a new copy instead
            return False
        finally:
            await conn.close()

    def close(self, *, drop_all: bool) -> None:
        """Closes the connection; on a server that is not ours, drops what was made."""
        try:
            for future in self.releasing:  # let a test's databases be emptied first
                future.result(timeout=30)
            if drop_all:
                self._run(self._drop([*self.ready, *self.handed], force=True))
            self._run(self.conn.close(), timeout=30)
        except Exception:  # the cluster goes away next: nothing to keep
            pass
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            if not self.thread.is_alive():
                self.loop.close()


def sharded_directory(cluster: Cluster, shard_cluster: Cluster | None = None) -> str:
    """A fresh sharded directory (shard 0) with one more shard (shard 1) on
    `shard_cluster` (default: the same cluster); its URL is what `coi serve` is given."""
    from coi.store.postgres.sharded import add_shard
    from coi.store.postgres.store import PostgresStore

    shards = shard_cluster or cluster
    directory = cluster.dsn(cluster.new_database())
    store = PostgresStore(directory, min_size=1, max_size=2, listen=False)
    try:
        add_shard(store, shards.dsn(shards.new_database()))
    finally:
        store.close()
    return directory


_shared: Cluster | None = None


def after_test() -> None:
    """Takes back the databases of the test that just ended (`Cluster.release_idle`)."""
    if _shared is not None:
        _shared.release_idle()


def shared_cluster() -> Cluster:
    """This test process's cluster, started on first use, stopped at exit at the latest."""
    global _shared
    if _shared is None:
        _shared = start_cluster()
        atexit.register(stop_shared)
    return _shared


def stop_shared() -> None:
    global _shared
    if _shared is not None:
        _shared.stop()
        _shared = None


def start_cluster(*, durable: bool = False) -> Cluster:
    """A private cluster (or the one COI_TEST_POSTGRES names) with the template database;
    `durable` keeps fsync on (for measurements against SQLite, which fsyncs)."""
    external = os.environ.get("COI_TEST_POSTGRES")
    if external:
        return _external(external)
    bindir = find_bindir()
    assert bindir is not None
    directory = Path(tempfile.mkdtemp(prefix="coi-pg-"))
    as_root = os.geteuid() == 0
    owner = pwd.getpwnam("postgres") if as_root else None
    if owner is not None:
        os.chown(directory, owner.pw_uid, owner.pw_gid)
    run_as: dict[str, object] = (
        {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []} if owner else {}
    )
    data = directory / "data"
    try:
        subprocess.run(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            cwd=directory,
            capture_output=True,
            check=True,
            timeout=120,
            **run_as,  # type: ignore[arg-type]
        )
        port = _free_port()
        log = open(directory / "postgres.log", "wb")  # noqa: SIM115 - the server's stderr
        process = subprocess.Popen(
            [
                str(bindir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={directory}",
                *(() if durable else ("-c", "fsync=off", "-c", "full_page_writes=off")),
                "-c",
                "max_connections=200",
                "-c",
                "shared_buffers=32MB",
            ],
            cwd=directory,
            stdout=log,
            stderr=subprocess.STDOUT,
            **run_as,  # type: ignore[arg-type]
        )
        log.close()
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    cluster = Cluster("127.0.0.1", port, SUPERUSER, bindir, directory, process)
    try:
        _wait_ready(cluster)
        _make_template(cluster)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _external(dsn: str) -> Cluster:
    from urllib.parse import urlsplit

    parts = urlsplit(dsn)
    cluster = Cluster(
        parts.hostname or "127.0.0.1",
        parts.port or 5432,
        parts.username or SUPERUSER,
        admin_db=parts.path.lstrip("/") or "postgres",
        template=f"coi_template_{os.getpid()}",
    )
    cluster.psql(f"DROP DATABASE IF EXISTS {cluster.template}")
    _make_template(cluster)
    return cluster


def _wait_ready(cluster: Cluster) -> None:
    deadline = time.monotonic() + 60
    while True:
        assert cluster.process is not None
        if cluster.process.poll() is not None:
            log = (cluster.directory or Path("/nonexistent")) / "postgres.log"
            text = log.read_text(errors="replace") if log.exists() else ""
            raise RuntimeError(f"postgres exited at start: {text[-2000:]}")
        try:
            cluster.psql("SELECT 1")
            return
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _make_template(cluster: Cluster) -> None:
    """The template database: the store's schema, migrated once per cluster."""
    cluster.psql(f"CREATE DATABASE {cluster.template}")
    from coi.store.postgres.store import PostgresStore

    PostgresStore(cluster.dsn(cluster.template), min_size=1, max_size=1).close()
