"""Shared fixtures: a real coi IMAP server on a loopback port, with users alice and bob; and
plain_mail, Debian's Dovecot as a plain IMAP provider without COI (tests/plainserver.py)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from tests import pg
from tests.plainserver import PlainMailServer, start_plain_server
from tests.plainserver import unavailable as plainserver_unavailable

from coi.auth.passwords import hash_password
from coi.cli.common import DEFAULT_MAILBOXES
from coi.config import ServerConfig
from coi.imap.server.server import ImapServer
from coi.store.protocol import Store
from coi.store.sqlite.store import SqliteStore
from coi.tls import ensure_self_signed, server_context
from coi.webpush.keys import load_keys

pytest_plugins = ["tests.push_endpoint"]

PASSWORDS = {"alice@example.org": "alice-secret", "bob@example.org": "bob-secret"}
_HASHES: dict[str, str] = {}


def _hash(password: str) -> str:
    # hashing is slow on purpose; do it once per test run
    if password not in _HASHES:
        _HASHES[password] = hash_password(password)
    return _HASHES[password]


@dataclasses.dataclass
class RunningServer:
    server: ImapServer
    store: Store
    host: str
    port: int
    tls_port: int
    data_dir: Path


def on_postgres() -> bool:
    """COI_TEST_STORE=postgres (or sharded): test servers and `coi serve` processes use
    PostgreSQL."""
    return os.environ.get("COI_TEST_STORE", "sqlite") in ("postgres", "sharded")


def require_postgres() -> None:
    """Skips without PostgreSQL, saying how to get it; fails instead when $CI is set, so a
    CI pass meant for PostgreSQL never skips its tests silently."""
    reason = pg.unavailable()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"COI_TEST_STORE=postgres: {reason} (CI is set)")
        pytest.skip(reason)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "sqlite_only(why): the test needs the SQLite store (it reads or edits its files);"
        " skipped, with `why`, when COI_TEST_STORE=postgres",
    )


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    pg.after_test()  # the test's databases, in the background


def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker("sqlite_only")
    if marker is not None and on_postgres():
        why = marker.args[0] if marker.args else "needs the SQLite store"
        pytest.skip(f"SQLite only (COI_TEST_STORE=postgres): {why}")


def open_test_store(tmp_path: Path) -> Store:
    """The store of a test server: SQLite in `tmp_path`, or, with COI_TEST_STORE=postgres,
    a fresh database on this test process's PostgreSQL cluster (tests/pg.py), so the
    server's tests run on either backend; COI_TEST_STORE=sharded: a sharded directory of
    two databases there (coi.store.postgres.sharded: alice on shard 0, bob on shard 1)."""
    kind = os.environ.get("COI_TEST_STORE", "sqlite")
    if on_postgres():
        require_postgres()
        from coi.store.postgres.sharded import open_sharded
        from coi.store.postgres.store import PostgresStore

        cluster = pg.shared_cluster()
        if kind == "sharded":
            sharded = open_sharded(PostgresStore(pg.sharded_directory(cluster)))
            assert sharded is not None
            return sharded
        return PostgresStore(cluster.dsn(cluster.new_database()))
    return SqliteStore(tmp_path / "coi.sqlite3")


def require_sqlite(running: RunningServer, why: str) -> None:
    """Skips a test that edits the SQLite file directly (to make data an older coi left)."""
    if not isinstance(running.store, SqliteStore):
        pytest.skip(f"SQLite only (COI_TEST_STORE=postgres): edits the SQLite file: {why}")


def store_args(running: RunningServer) -> list[str]:
    """The flags that point a `coi` command at the test server's store."""
    args = ["--data-dir", str(running.data_dir)]
    dsn = getattr(running.store, "dsn", None)
    return [*args, "--store", dsn] if dsn else args


def open_other_store(running: RunningServer) -> Store:
    """A second handle on the server's database (another process's view of it) whose
    events stay its own: on PostgreSQL it does not listen, so the server hears its writes
    only through NOTIFY, as from any other process."""
    if isinstance(running.store, SqliteStore):
        return SqliteStore(running.store.path)
    from coi.store.postgres.sharded import ShardedStore, open_sharded
    from coi.store.postgres.store import PostgresStore

    if isinstance(running.store, ShardedStore):
        other = open_sharded(PostgresStore(running.store.dsn, listen=False))
        assert other is not None
        return other
    assert isinstance(running.store, PostgresStore)
    return PostgresStore(running.store.dsn, listen=False)


async def start_server(tmp_path: Path, **overrides: object) -> RunningServer:
    settings: dict[str, object] = {
        "data_dir": tmp_path,
        "imap": "127.0.0.1:0",
        "imaps": "127.0.0.1:0",
        "login_timeout": 30.0,
    }
    settings.update(overrides)
    config = ServerConfig(**settings)  # type: ignore[arg-type]
    store = open_test_store(tmp_path)
    for address, password in PASSWORDS.items():
        await store.add_user(address, _hash(password), DEFAULT_MAILBOXES)
    cert, key = ensure_self_signed(tmp_path, "localhost")
    server = ImapServer(config, store, server_context(cert, key), load_keys(tmp_path))
    await server.start()
    ports = {kind: port for kind, _, port in server.addresses}
    return RunningServer(server, store, "127.0.0.1", ports["imap"], ports["imaps"], tmp_path)


@contextlib.asynccontextmanager
async def serving(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """A test server (`start_server`), stopped and its store closed afterwards."""
    running = await start_server(tmp_path)
    try:
        yield running
    finally:
        await running.server.stop(grace=2)
        running.store.close()


@pytest.fixture
async def imap_server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with serving(tmp_path) as running:
        yield running


class LineClient:
    """A raw IMAP client for transcripts: exact bytes out, exact lines back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, running: RunningServer) -> LineClient:
        reader, writer = await asyncio.open_connection(running.host, running.port)
        return cls(reader, writer)

    async def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        self.writer.write(data)
        await self.writer.drain()

    async def line(self, timeout: float = 10.0) -> bytes:
        data = await asyncio.wait_for(self.reader.readline(), timeout)
        if not data:
            raise EOFError("server closed the connection")
        # fold literals into the line so transcripts can show them inline
        match = re.search(rb"\{(\d+)\}\r\n$", data)
        while match:
            literal = await asyncio.wait_for(self.reader.readexactly(int(match.group(1))), timeout)
            rest = await asyncio.wait_for(self.reader.readline(), timeout)
            data = data + literal + rest
            match = re.search(rb"\{(\d+)\}\r\n$", rest)
        return data

    async def until_tagged(self, tag: str, timeout: float = 10.0) -> list[bytes]:
        lines = []
        while True:
            line = await self.line(timeout)
            lines.append(line)
            if line.startswith(tag.encode() + b" "):
                return lines

    async def command(self, text: str) -> list[bytes]:
        tag = text.split(" ", 1)[0]
        await self.send(text + "\r\n")
        return await self.until_tagged(tag)

    async def login(self, address: str = "alice@example.org") -> None:
        greeting = await self.line()
        assert greeting.startswith(b"* OK")
        lines = await self.command(f'L1 LOGIN {address} "{PASSWORDS[address]}"')
        assert lines[-1].startswith(b"L1 OK"), lines

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass


async def run_transcript(client: LineClient, transcript: str) -> None:
    """Plays `C:` lines and checks the `S:` lines that follow, in order and exactly.

    In `S:` lines, `{{regex}}` stands for a value that varies (a date, a UIDVALIDITY).
    A `C:` line ending with `{N}` or `{N+}` is sent with CRLF, and the next `C:` line is
    its literal content (sent without an added CRLF when it ends in `\\`).
    """
    expected: list[str] = []

    async def check() -> None:
        for want in expected:
            got = (await client.line()).decode("utf-8", "replace").rstrip("\r\n")
            pattern = "".join(
                part if i % 2 else re.escape(part)
                for i, part in enumerate(re.split(r"\{\{(.*?)\}\}", want))
            )
            assert re.fullmatch(pattern, got, re.DOTALL), f"expected {want!r}\n     got {got!r}"
        expected.clear()

    for raw in transcript.strip("\n").splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("C: "):
            await check()
            await client.send(line[3:].replace("\\r\\n", "\r\n") + "\r\n")
        elif line.startswith("S: "):
            expected.append(line[3:])
        else:
            raise ValueError(f"transcript line must start with C: or S: ({raw!r})")
    await check()


@pytest.fixture
def plain_mail() -> Iterator[PlainMailServer]:
    """Debian's Dovecot as a plain IMAP provider (no COI) with an SMTP front, fresh per test
    (start-up takes some 40 ms): see tests/plainserver.py. Skips where Dovecot cannot run,
    but fails when $CI is set, so CI never skips it silently."""
    reason = plainserver_unavailable()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"plain_mail: {reason} (CI is set)")
        pytest.skip(f"plain_mail: {reason}")
    server = start_plain_server()
    try:
        yield server
    finally:
        server.stop()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stops this test process's PostgreSQL cluster, if one was started (COI_TEST_STORE=
    postgres starts it outside any fixture), and removes its files: a pytest-xdist
    worker ends without running atexit handlers."""
    pg.stop_shared()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[pg.Cluster]:
    """A private PostgreSQL cluster for this test process (tests/pg.py); skips where
    PostgreSQL is not installed, saying how to get it."""
    reason = pg.unavailable()
    if reason is not None:
        pytest.skip(reason)
    try:
        yield pg.shared_cluster()
    finally:
        pg.stop_shared()


@pytest.fixture(scope="session")
def second_postgres_cluster(postgres_cluster: pg.Cluster) -> Iterator[pg.Cluster]:
    """Another private cluster, for the shards of a sharded store (two clusters on one
    machine); with COI_TEST_POSTGRES, the one server given (two of its databases)."""
    if postgres_cluster.process is None:  # not ours: a server named by COI_TEST_POSTGRES
        yield postgres_cluster
        return
    cluster = pg.start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def sharded_dsns(
    postgres_cluster: pg.Cluster, second_postgres_cluster: pg.Cluster
) -> Iterator[tuple[str, str]]:
    """(directory, shard) databases on two clusters: the directory is shard 0, and the
    shard, on the second cluster, is added as shard 1 (coi.store.postgres.sharded)."""
    from coi.store.postgres.sharded import add_shard
    from coi.store.postgres.store import PostgresStore

    directory = postgres_cluster.new_database()
    shard = second_postgres_cluster.new_database()
    try:
        dsns = postgres_cluster.dsn(directory), second_postgres_cluster.dsn(shard)
        store = PostgresStore(dsns[0], min_size=1, max_size=2, listen=False)
        try:
            assert add_shard(store, dsns[1]) == 1
        finally:
            store.close()
        yield dsns
    finally:
        postgres_cluster.drop_database(directory)
        second_postgres_cluster.drop_database(shard)


@pytest.fixture
def postgres_dsn(postgres_cluster: pg.Cluster) -> Iterator[str]:
    """A fresh database with the store's schema, dropped after the test."""
    name = postgres_cluster.new_database()
    try:
        yield postgres_cluster.dsn(name)
    finally:
        postgres_cluster.drop_database(name)
