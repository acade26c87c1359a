"""Online backups of a data directory, and restoring one.

The databases are copied with SQLite's online backup API, so a backup taken while ``coi
serve`` runs is a consistent snapshot of each database (a message acknowledged before the
copy of ``coi.sqlite3`` began is in it); the keys and certificates are copied as files.
A manifest lists every file with its SHA-256, so a restore refuses a damaged backup
before it touches anything (docs/deploy.md: Backups).

With the PostgreSQL store the database is dumped with PostgreSQL's own `pg_dump` (one
consistent snapshot, taken while every `coi serve` goes on) into `store.pgdump`, and
restored with `pg_restore` in one transaction (docs/deploy.md: Backups).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from coi import __version__
from coi.config import is_postgres_url

MANIFEST = "coi-backup.json"
PG_DUMP = "store.pgdump"  # pg_dump's custom format: the PostgreSQL store
DATABASES = ("coi.sqlite3", "queue.sqlite3")
KEY_FILES = (
    "tls-cert.pem", "tls-key.pem", "vapid-key.pem", "webpush-secret", "demo-passwords.txt",
)  # fmt: skip
KEY_DIRS = ("dkim",)


class BackupError(Exception):
    """The backup or restore cannot go on; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class BackupFile:
    name: str
    size: int
    sha256: str


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _copy_database(source: Path, target: Path) -> None:
    """SQLite's online backup: readers and the writer go on while it copies."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst, pages=1024)
        check = dst.execute("PRAGMA integrity_check").fetchone()[0]
        if check != "ok":
            raise BackupError(f"the copy of {source.name} failed its integrity check: {check}")
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
    finally:
        dst.close()
        src.close()


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)


def _run_tool(args: list[str]) -> None:
    """Runs pg_dump or pg_restore; its last error line becomes a BackupError."""
    try:
        done = subprocess.run(args, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise BackupError(
            f"{args[0]} is not installed: install PostgreSQL's client tools"
            " (Debian: apt install postgresql-client)"
        ) from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise BackupError(f"{args[0]} failed: {lines[-1] if lines else done.returncode}")


def _database_state(store: str) -> tuple[bool, bool, bool]:
    """(coi's schema is there, it holds users, it is a sharded directory) of ``store``."""
    import asyncio

    try:
        import asyncpg
    except ImportError:
        raise BackupError(
            "--store postgresql://... needs asyncpg: pip install 'coi[postgres]'"
        ) from None

    async def read() -> tuple[bool, bool, bool]:
        try:
            conn = await asyncpg.connect(store)
        except (OSError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise BackupError(f"cannot reach the store {store}: {exc}") from None
        try:
            if await conn.fetchval("SELECT to_regclass('schema_version')") is None:
                return False, False, False
            users = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM users)")
            shards = await conn.fetchval("SELECT to_regclass('shards')") is not None and (
                await conn.fetchval("SELECT EXISTS (SELECT 1 FROM shards)")
            )
            return True, bool(users), bool(shards)
        finally:
            await conn.close()

    return asyncio.run(read())


def backup(
    data_dir: Path,
    dest: Path,
    progress: Callable[[str], None] | None = None,
    *,
    store: str = "",
) -> list[BackupFile]:
    """Copies ``data_dir`` (and with a PostgreSQL ``store``, a dump of that database) into
    the new or empty directory ``dest``."""
    postgres = is_postgres_url(store)
    if postgres:
        schema, _, sharded = _database_state(store)
        if not schema:
            raise BackupError(f"{store} holds no coi store: check --store")
        if sharded:
            raise BackupError(
                "the store is sharded: back up each shard's database and the directory"
                " with pg_dump (docs/deploy.md: Backups)"
            )
    elif not (data_dir / DATABASES[0]).exists():
        raise BackupError(f"{data_dir} holds no coi store ({DATABASES[0]}): check --data-dir")
    if dest.exists() and any(dest.iterdir()):
        raise BackupError(f"{dest} is not empty: give a new directory")
    _private_dir(dest)
    say = progress or (lambda _line: None)
    old_umask = os.umask(0o077)
    files: list[BackupFile] = []
    try:
        if postgres:
            say("dumping the PostgreSQL store (pg_dump)")
            _run_tool(
                ["pg_dump", "--format=custom", "--no-owner", "--no-privileges",
                 "--file", str(dest / PG_DUMP), "--dbname", store]
            )  # fmt: skip
            files.append(_entry(dest, PG_DUMP))
        for name in () if postgres else DATABASES:  # the queue is in the database too
            if (data_dir / name).exists():
                say(f"copying {name}")
                _copy_database(data_dir / name, dest / name)
                files.append(_entry(dest, name))
        for name in KEY_FILES:
            if (data_dir / name).is_file():
                shutil.copy2(data_dir / name, dest / name)
                files.append(_entry(dest, name))
        for folder in KEY_DIRS:
            for path in (
                sorted((data_dir / folder).glob("*")) if (data_dir / folder).is_dir() else []
            ):
                if path.is_file():
                    _private_dir(dest / folder)
                    name = f"{folder}/{path.name}"
                    shutil.copy2(path, dest / name)
                    files.append(_entry(dest, name))
        manifest = {
            "coi": __version__,
            "store": "postgresql" if postgres else "sqlite",
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "source": str(data_dir.resolve()),
            "files": [{"name": f.name, "size": f.size, "sha256": f.sha256} for f in files],
        }
        (dest / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", "utf-8")
    finally:
        os.umask(old_umask)
    say(f"backup of {len(files)} files in {dest}")
    return files


def _entry(root: Path, name: str) -> BackupFile:
    path = root / name
    return BackupFile(name, path.stat().st_size, _digest(path))


def read_manifest(source: Path) -> list[BackupFile]:
    """The backup's files, each checked against its size and SHA-256."""
    try:
        data = json.loads((source / MANIFEST).read_text("utf-8"))
        files = [BackupFile(f["name"], int(f["size"]), f["sha256"]) for f in data["files"]]
    except FileNotFoundError:
        raise BackupError(f"{source} is no coi backup (no {MANIFEST})") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"the manifest of {source} is damaged: {exc}") from None
    for f in files:
        if ".." in Path(f.name).parts or Path(f.name).is_absolute():
            raise BackupError(f"the manifest of {source} names a file outside it: {f.name}")
        path = source / f.name
        if not path.is_file() or path.stat().st_size != f.size or _digest(path) != f.sha256:
            raise BackupError(f"{path} is missing or changed since the backup: not restoring")
    return files


def restore(
    source: Path,
    data_dir: Path,
    *,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
    store: str = "",
) -> list[BackupFile]:
    """Copies a checked backup into ``data_dir``; the caller holds the data dir's lock, so
    no server runs on it meanwhile.  What was there is kept aside with ``force``. A dump
    of the PostgreSQL store goes into the database ``store`` names, which must hold no
    users unless ``force`` (then what it holds is replaced)."""
    files = read_manifest(source)
    say = progress or (lambda _line: None)
    dumped = any(f.name == PG_DUMP for f in files)
    if dumped != is_postgres_url(store):
        raise BackupError(
            f"{source} holds a PostgreSQL store: give --store postgresql://... (a database"
            " with no users; stop every coi serve on it)"
            if dumped
            else f"{source} holds a SQLite store: restore it without --store (then move it"
            " with coi migrate --to postgresql://...)"
        )
    if dumped:
        schema, users, sharded = _database_state(store)
        if (users or sharded) and not force:
            raise BackupError(
                f"{store} already holds users: restore into a database without, or pass"
                " --force to replace its contents (stop every coi serve on it first)"
            )
    files = [f for f in files if f.name != PG_DUMP]
    present = [f for f in files if (data_dir / f.name).exists()]
    if present and not force:
        raise BackupError(
            f"{data_dir} already holds a store: restore into an empty --data-dir, or pass"
            " --force to keep the current files aside (*.before-restore) and replace them"
        )
    if dumped:  # one transaction: a failed restore leaves the database as it was
        say("restoring the PostgreSQL store (pg_restore)")
        _run_tool(
            ["pg_restore", "--no-owner", "--no-privileges", "--single-transaction",
             "--exit-on-error", *(["--clean", "--if-exists"] if schema else []),
             "--dbname", store, str(source / PG_DUMP)]
        )  # fmt: skip
    _private_dir(data_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    old_umask = os.umask(0o077)
    try:
        for f in present:
            current = data_dir / f.name
            current.rename(current.with_name(f"{current.name}.before-restore-{stamp}"))
            for suffix in ("-wal", "-shm"):  # a database's journal belongs to the old file
                journal = current.with_name(current.name + suffix)
                if journal.exists():
                    journal.rename(journal.with_name(f"{journal.name}.before-restore-{stamp}"))
        for f in files:
            target = data_dir / f.name
            _private_dir(target.parent)
            tmp = target.with_name(target.name + ".restoring")
            shutil.copy2(source / f.name, tmp)
            os.replace(tmp, target)
            say(f"restored {f.name}")
    finally:
        os.umask(old_umask)
    return files
