"""The store contract: fixtures that give each test a fresh store of every backend.

The tests in this folder are typed against `coi.store.protocol.Store` and never name a
backend class, so the same behaviour is checked on SQLite and on any backend added to
BACKENDS. `backend.open()` opens another handle on the same database (a restart, or a
second server process), for tests of durability and of what is shared.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.contract.helpers import Backend

from coi.store.protocol import Store
from coi.store.sqlite.store import SqliteStore

BACKENDS = ["sqlite", "postgres", "sharded"]


async def _sqlite(tmp_path: Path) -> Store:
    return SqliteStore(tmp_path / "coi.sqlite3")


async def _postgres(dsn: str) -> Store:
    from coi.store.postgres.store import PostgresStore  # asyncpg: only when tested

    return PostgresStore(dsn)


async def _sharded(directory: str) -> Store:
    """Two shards on two clusters: the directory (shard 0) and shard 1; the tests' users
    land on both (a new user goes to the shard with the fewest)."""
    from coi.store.postgres.sharded import open_sharded
    from coi.store.postgres.store import PostgresStore

    store = PostgresStore(directory)
    sharded = open_sharded(store)
    assert sharded is not None
    return sharded


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    name: str = request.param
    if name == "sqlite":
        made = Backend(name, lambda: _sqlite(tmp_path))
    elif name == "postgres":  # a fresh database on the test process's private cluster
        dsn: str = request.getfixturevalue("postgres_dsn")
        made = Backend(name, lambda: _postgres(dsn))
    elif name == "sharded":  # a directory and a shard, on two private clusters
        directory, _ = request.getfixturevalue("sharded_dsns")
        made = Backend(name, lambda: _sharded(directory))
    else:  # pragma: no cover - every name in BACKENDS has a branch
        raise AssertionError(name)
    try:
        yield made
    finally:
        for store in reversed(made.opened):
            store.close()


@pytest.fixture
async def store(backend: Backend) -> Store:
    return await backend.open()
