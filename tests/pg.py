"""A private PostgreSQL cluster for the tests (issue 17: tests with a real PostgreSQL).

`start_cluster()` runs Debian's `initdb` into a new temporary directory and starts
`postgres` on a free port of 127.0.0.1, with its unix socket in that directory, so it
never meets a system cluster. As root the server runs as the `postgres` system user
(PostgreSQL refuses to run as root). Each test gets a database of its own, copied from
a template that already holds the schema (`Cluster.new_database`). `Cluster.stop()`
stops the server by its PID and removes the directory. Under pytest-xdist each worker
starts its own cluster.

`COI_TEST_POSTGRES=postgresql://user@host:port/db` uses a running server instead (the
user must be allowed to create databases); nothing is started then.

The cluster trades durability for speed (fsync=off): it is thrown away after the run.
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

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

    def dsn(self, database: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

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

    def new_database(self) -> str:
        """A fresh database with the store's schema (copied from the template)."""
        name = f"coi_test_{os.getpid()}_{next(self._names)}"
        self.psql(f"CREATE DATABASE {name} TEMPLATE {self.template} STRATEGY FILE_COPY")
        return name

    def drop_database(self, name: str) -> None:
        self.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        """Stops the server we started (SIGINT: fast shutdown) by its PID; removes its files."""
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
