"""Fixtures of the store unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from coi.store.postgres.store import PostgresStore


@pytest.fixture
async def pair(postgres_dsn: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    """Two handles on one database: two `coi serve` processes."""
    from coi.store.postgres.store import PostgresStore

    first = PostgresStore(postgres_dsn)
    second = PostgresStore(postgres_dsn)
    try:
        yield first, second
    finally:
        first.close()
        second.close()
