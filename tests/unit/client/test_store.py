"""The local store's migrations: an older profile opens and keeps its data."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from coi.client.profile import ProfileError
from coi.client.store import _MIGRATIONS, SCHEMA_VERSION, LocalStore


def test_a_first_version_profile_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "client.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(f"{_MIGRATIONS[0]} PRAGMA user_version=1;")
    db.execute(
        "INSERT INTO account (address, imap_host, imap_port, smtp_host, smtp_port, security)"
        " VALUES ('a@example.org', 'h', 993, 'h', 465, 'ssl')"
    )
    db.commit()
    db.close()
    store = LocalStore(path)
    assert int(store.db.execute("PRAGMA user_version").fetchone()[0]) == SCHEMA_VERSION
    [account] = store.accounts()
    assert account.address == "a@example.org"
    store.db.execute("SELECT addr, public FROM peer").fetchall()


def test_a_newer_profile_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "client.sqlite3"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(ProfileError, match="newer coi"):
        LocalStore(path)
