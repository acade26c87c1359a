"""Online backups of a data directory, and restoring one.

The databases are copied with SQLite's online backup API, so a backup taken while ``coi
serve`` runs is a consistent snapshot of each database (a message acknowledged before the
copy of ``coi.sqlite3`` began is in it); the keys and certificates are copied as files.
A manifest lists every file with its SHA-256, so a restore refuses a damaged backup
before it touches anything (docs/deploy.md: Backups).

With the PostgreSQL store the database is dumped with PostgreSQL's own `pg_dump` (one
consistent snapshot, taken while every `coi serve` goes on) into `store.pgdump`, and
restored with `pg_restore` in one transaction (docs/deploy.md: Backups). A sharded store
(docs/scale-out.md: Sharding) is dumped shard by shard (`shard-N.pgdump`), the directory
last: a user added meanwhile is then at worst claimed in the map without its rows, which
`coi user del` clears, never rows without their claim. Each database is its own snapshot.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from coi import __version__
from coi.config import is_postgres_url

MANIFEST = "coi-backup.json"
PG_DUMP = "store.pgdump"  # pg_dump's custom format: the PostgreSQL store
DATABASES = ("coi.sqlite3", "queue.sqlite3")
KEY_FILES = (
    "tls-cert.pem", "tls-key.pem", "vapid-key.pem", "webpush-secret", "demo-passwords.txt",
)  # fmt: skip
KEY_DIRS = ("dkim",)
T = TypeVar("T")


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


def _shard_dump(number: int) -> str:
    return f"shard-{number}.pgdump"


def _dump(dsn: str, target: Path) -> None:
    _run_tool(
        ["pg_dump", "--format=custom", "--no-owner", "--no-privileges",
         "--file", str(target), "--dbname", dsn]
    )  # fmt: skip


def _restore_dump(dsn: str, dump: Path, *, clean: bool) -> None:
    """pg_restore in one transaction: a failed restore leaves the database as it was."""
    _run_tool(
        ["pg_restore", "--no-owner", "--no-privileges", "--single-transaction",
         "--exit-on-error", *(["--clean", "--if-exists"] if clean else []),
         "--dbname", dsn, str(dump)]
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class _State:
    schema: bool  # coi's schema is there
    users: bool  # it holds users
    shards: dict[int, str]  # a sharded directory's map (0: itself, as ''); {} when not


def _with_database(dsn: str, work: Callable[[Any], Awaitable[T]]) -> T:
    """Runs `work` with a connection to `dsn` (asyncpg's), one line when it cannot."""
    import asyncio

    try:
        import asyncpg
    except ImportError:
        raise BackupError(
            "--store postgresql://... needs asyncpg: pip install 'coi[postgres]'"
        ) from None

    async def run() -> T:
        try:
            conn = await asyncpg.connect(dsn)
        except (OSError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise BackupError(f"cannot reach the store {dsn}: {exc}") from None
        try:
            return await work(conn)
        finally:
            await conn.close()

    return asyncio.run(run())


async def _move_shards(conn: Any, moved: dict[int, str]) -> None:
    """The map of a restored directory names where its shards were restored to."""
    async with conn.transaction():
        for number, dsn in moved.items():
            await conn.execute("UPDATE shards SET dsn = $2 WHERE id = $1", number, dsn)


def _database_state(store: str) -> _State:
    """What ``store`` holds."""

    async def read(conn: Any) -> _State:
        if await conn.fetchval("SELECT to_regclass('schema_version')") is None:
            return _State(False, False, {})
        users = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM users)")
        shards: dict[int, str] = {}
        if await conn.fetchval("SELECT to_regclass('shards')") is not None:
            rows = await conn.fetch("SELECT id, dsn FROM shards ORDER BY id")
            shards = {int(r[0]): str(r[1]) for r in rows}
        return _State(True, bool(users), shards)

    return _with_database(store, read)


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
    shards: dict[int, str] = {}
    if postgres:
        state = _database_state(store)
        if not state.schema:
            raise BackupError(f"{store} holds no coi store: check --store")
        shards = {number: dsn for number, dsn in state.shards.items() if number}
    elif not (data_dir / DATABASES[0]).exists():
        raise BackupError(f"{data_dir} holds no coi store ({DATABASES[0]}): check --data-dir")
    if dest.exists() and any(dest.iterdir()):
        raise BackupError(f"{dest} is not empty: give a new directory")
    _private_dir(dest)
    say = progress or (lambda _line: None)
    old_umask = os.umask(0o077)
    files: list[BackupFile] = []
    try:
        for number, dsn in sorted(shards.items()):  # the shards first, the directory last
            say(f"dumping shard {number} (pg_dump)")
            _dump(dsn, dest / _shard_dump(number))
            files.append(_entry(dest, _shard_dump(number)))
        if postgres:
            say("dumping the PostgreSQL store (pg_dump)")
            _dump(store, dest / PG_DUMP)
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
        manifest: dict[str, object] = {
            "coi": __version__,
            "store": "postgresql" if postgres else "sqlite",
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "source": str(data_dir.resolve()),
            "files": [{"name": f.name, "size": f.size, "sha256": f.sha256} for f in files],
        }
        if shards:  # where each shard was: where `coi restore` puts it unless told
            manifest["shards"] = {str(number): dsn for number, dsn in sorted(shards.items())}
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
    data = _manifest(source)
    try:
        files = [BackupFile(f["name"], int(f["size"]), f["sha256"]) for f in data["files"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"the manifest of {source} is damaged: {exc}") from None
    for f in files:
        if ".." in Path(f.name).parts or Path(f.name).is_absolute():
            raise BackupError(f"the manifest of {source} names a file outside it: {f.name}")
        path = source / f.name
        if not path.is_file() or path.stat().st_size != f.size or _digest(path) != f.sha256:
            raise BackupError(f"{path} is missing or changed since the backup: not restoring")
    return files


def _manifest(source: Path) -> dict[str, Any]:
    try:
        data = json.loads((source / MANIFEST).read_text("utf-8"))
    except FileNotFoundError:
        raise BackupError(f"{source} is no coi backup (no {MANIFEST})") from None
    except ValueError as exc:
        raise BackupError(f"the manifest of {source} is damaged: {exc}") from None
    if not isinstance(data, dict):
        raise BackupError(f"the manifest of {source} is damaged: not an object")
    return data


def _saved_shards(source: Path, files: list[BackupFile]) -> dict[int, str]:
    """The shards a backup of a sharded store holds, with where each was (its DSN)."""
    try:
        saved = {int(n): str(dsn) for n, dsn in _manifest(source).get("shards", {}).items()}
    except (ValueError, AttributeError) as exc:
        raise BackupError(f"the manifest of {source} is damaged: {exc}") from None
    names = {f.name for f in files}
    for number in saved:
        if number < 1 or _shard_dump(number) not in names:
            raise BackupError(f"the manifest of {source} names shard {number} without its dump")
    return saved


def restore(
    source: Path,
    data_dir: Path,
    *,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
    store: str = "",
    shards: Mapping[int, str] | None = None,
) -> list[BackupFile]:
    """Copies a checked backup into ``data_dir``; the caller holds the data dir's lock, so
    no server runs on it meanwhile.  What was there is kept aside with ``force``. A dump
    of the PostgreSQL store goes into the database ``store`` names, which must hold no
    users unless ``force`` (then what it holds is replaced). A sharded store's shards go
    where they were, or where ``shards`` says (number -> DSN; the map then says so too),
    each under the same rule."""
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
    saved = _saved_shards(source, files)
    wanted = dict(shards or {})
    for number in sorted(set(wanted) - set(saved)):
        held = f"its shards: {', '.join(map(str, sorted(saved)))}" if saved else "not sharded"
        raise BackupError(f"{source} holds no shard {number} ({held})")
    targets = {number: wanted.get(number, dsn) for number, dsn in saved.items()}
    if len({store, *targets.values()}) != 1 + len(targets):
        raise BackupError("the directory and each shard need a database of their own")
    schemas: dict[str, bool] = {}  # each target database: coi's schema is there
    for dsn in (store, *targets.values()) if dumped else ():
        state = _database_state(dsn)
        if (state.users or state.shards) and not force:
            raise BackupError(
                f"{dsn} already holds users: restore into a database without, or pass"
                " --force to replace its contents (stop every coi serve on it first)"
            )
        schemas[dsn] = state.schema
    dumps = {PG_DUMP, *(_shard_dump(number) for number in saved)}
    files = [f for f in files if f.name not in dumps]
    present = [f for f in files if (data_dir / f.name).exists()]
    if present and not force:
        raise BackupError(
            f"{data_dir} already holds a store: restore into an empty --data-dir, or pass"
            " --force to keep the current files aside (*.before-restore) and replace them"
        )
    for number, dsn in sorted(targets.items()):  # each in one transaction of its own
        say(f"restoring shard {number} (pg_restore)")
        _restore_dump(dsn, source / _shard_dump(number), clean=schemas[dsn])
    if dumped:
        say("restoring the PostgreSQL store (pg_restore)")
        _restore_dump(store, source / PG_DUMP, clean=schemas[store])
    moved = {number: dsn for number, dsn in targets.items() if dsn != saved[number]}
    if moved:
        _with_database(store, lambda conn: _move_shards(conn, moved))
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
