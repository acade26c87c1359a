"""``coi backup`` while the server takes mail, ``coi restore`` into a new data directory,
and the refusals that keep a restore from doing harm (docs/deploy.md: Backups)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from pathlib import Path

import pytest
from tests.integration.serverproc import ServerProcess
from tests.integration.test_crash import ADDRESS, _message_ids, start_burst


async def coi(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "coi.cli.main", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


# these copy the data directory's SQLite files; test_backup_postgres.py has the PostgreSQL
# store's backup (pg_dump) and restore (pg_restore)
pytestmark = pytest.mark.sqlite_only("coi backup and coi restore copy the SQLite store's files")


async def test_backup_while_serving_then_restore(tmp_path: Path) -> None:
    live, copy, restored = tmp_path / "live", tmp_path / "backup", tmp_path / "restored"
    server = ServerProcess(live)
    try:
        server.start()
        password = server.password(ADDRESS)
        burst = await start_burst(server.port, password, 3, 20)
        before = set(burst.acked)  # acknowledged before the backup began: must be in it
        code, out = await coi("backup", str(copy), "--data-dir", str(live))
        await burst.end()
        sent = burst.sent
        assert code == 0, out
        assert out.splitlines()[-1] == f"backup of 7 files in {copy}"
        assert os.stat(copy).st_mode & 0o077 == 0
        assert server.terminate() == 0
    finally:
        server.stop()

    code, out = await coi("restore", str(copy), "--data-dir", str(restored))
    assert code == 0, out
    again = ServerProcess(restored)
    try:
        again.start()
        found = await _message_ids(again.port, password)  # the same demo password
        assert len(found) == len(set(found))
        assert before <= set(found) <= sent
        # a restore never runs under a running server
        code, out = await coi("restore", str(copy), "--data-dir", str(restored), "--force")
        assert code == 1 and "another coi serve" in out and "uses" in out, out
    finally:
        again.stop()


async def test_restore_refuses_damage_and_keeps_what_it_replaces(tmp_path: Path) -> None:
    live, copy = tmp_path / "live", tmp_path / "backup"
    server = ServerProcess(live)
    try:
        server.start()
        assert server.terminate() == 0
    finally:
        server.stop()
    code, out = await coi("backup", str(copy), "--data-dir", str(live))
    assert code == 0, out
    code, out = await coi("backup", str(copy), "--data-dir", str(live))
    assert (code, out) == (1, f"coi backup: {copy} is not empty: give a new directory\n")

    code, out = await coi("restore", str(copy), "--data-dir", str(live))
    assert code == 1 and "already holds a store" in out and "--force" in out
    code, out = await coi("restore", str(copy), "--data-dir", str(live), "--force")
    assert code == 0, out
    assert len(list(live.glob("coi.sqlite3.before-restore-*"))) == 1

    with (copy / "vapid-key.pem").open("ab") as fh:
        fh.write(b"tampered")
    code, out = await coi("restore", str(copy), "--data-dir", str(tmp_path / "other"))
    assert code == 1 and "changed since the backup: not restoring" in out, out
    assert not (tmp_path / "other" / "coi.sqlite3").exists()


async def test_a_store_from_a_newer_coi_is_refused(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path)
    try:
        server.start()
        assert server.terminate() == 0
        with sqlite3.connect(tmp_path / "coi.sqlite3") as db:
            db.execute("UPDATE schema_version SET version = 999")
        try:
            server.start()
            raise AssertionError("the server started on a newer schema")
        except RuntimeError as exc:
            assert "written by a newer coi (schema 999" in str(exc)
            assert "Traceback" not in str(exc)
    finally:
        server.stop()
