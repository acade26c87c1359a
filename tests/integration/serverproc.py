"""Runs `coi serve` as a real process, for tests that stop or kill it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

# data directory -> its PostgreSQL database, so a restart on one directory finds its mail
_DATABASES: dict[Path, str] = {}


def _store_for(data_dir: Path) -> tuple[str, ...]:
    """With COI_TEST_STORE=postgres: --store on a database of the test process's cluster;
    =sharded: on a sharded directory there (two databases)."""
    kind = os.environ.get("COI_TEST_STORE", "sqlite")
    if kind not in ("postgres", "sharded"):
        return ()
    from tests import pg

    if data_dir not in _DATABASES:
        cluster = pg.shared_cluster()
        _DATABASES[data_dir] = (
            pg.sharded_directory(cluster)
            if kind == "sharded"
            else cluster.dsn(cluster.new_database())
        )
    return ("--store", _DATABASES[data_dir])


class ServerProcess:
    def __init__(self, data_dir: Path, *extra: str, drain: bool = False) -> None:
        """`drain`: after start, a thread keeps reading the output into `output` (a server
        that logs much never blocks on a full pipe); else the test may read the rest."""
        self.data_dir = data_dir
        self.drain = drain
        self.extra = extra if "--store" in extra else (*_store_for(data_dir), *extra)
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.lmtp_port = 0
        self.output: list[str] = []
        self.worker_pids: list[int] = []  # with --workers N > 1: as the banner names them

    def start(self, timeout: float = 30.0) -> None:
        cmd = [
            sys.executable,
            "-m",
            "coi.cli.main",
            "serve",
            "--demo",
            "--data-dir",
            str(self.data_dir),
            "--imap",
            "127.0.0.1:0",
            "--imaps",
            "off",
            "--lmtp",
            "127.0.0.1:0",
            "--submission",
            "127.0.0.1:0",
            "--submissions",
            "off",
            *self.extra,
        ]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.output.append(line)
            match = re.search(r"imap\s+127\.0\.0\.1:(\d+)", line)
            if match:
                self.port = int(match.group(1))
            match = re.search(r"lmtp\s+127\.0\.0\.1:(\d+)", line)
            if match:
                self.lmtp_port = int(match.group(1))
            match = re.search(r"workers\s+\d+ \(pids ([\d ]+)\)", line)
            if match:
                self.worker_pids = [int(p) for p in match.group(1).split()]
            if "plaintext login" in line or (self.port and "demo account bob" in line):
                if self.drain:
                    threading.Thread(target=self._drain, daemon=True).start()
                return
        raise RuntimeError("server did not start:\n" + "".join(self.output))

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def password(self, address: str) -> str:
        for line in (self.data_dir / "demo-passwords.txt").read_text().splitlines():
            name, _, password = line.partition(" ")
            if name == address:
                return password
        raise KeyError(address)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
