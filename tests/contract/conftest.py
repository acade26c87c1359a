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

BACKENDS = ["sqlite", "postgres"]


async def _sqlite(tmp_path: Path) -> Store:
    return SqliteStore(tmp_path / "coi.sqlite3")


async def _postgres(dsn: str) -> Store:
    from coi.store.postgres.store import PostgresStore  # asyncpg: only when tested

    return PostgresStore(dsn)


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    name: str = request.param
    if name == "sqlite":
        made = Backend(name, lambda: _sqlite(tmp_path))
    elif name == "postgres":  # a fresh database on the test process's private cluster
        dsn: str = request.getfixturevalue("postgres_dsn")
        made = Backend(name, lambda: _postgres(dsn))
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
