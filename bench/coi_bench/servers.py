"""Start and stop the servers under test: `coi serve` and Dovecot, each on loopback ports,
on a fresh data directory, with the same users and passwords. Both are stopped by PID."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
# the `coi` beside the running interpreter (the repo's .venv when started by bench/run)
VENV_BIN = Path(sys.executable).parent
if not (VENV_BIN / "coi").exists():
    VENV_BIN = REPO / ".venv" / "bin"
MAIL_USER = "coibench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def process_tree(root: int) -> list[int]:
    """root and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def memory_kib(root: int) -> dict[str, int]:
    """Sum of VmRSS and of Pss (shared pages divided among sharers) over the process tree."""
    rss = pss = n = 0
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
                        break
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
                        break
            n += 1
        except (OSError, ValueError):
            continue
    return {"rss_kib": rss, "pss_kib": pss, "processes": n}


@dataclass
class Server:
    name: str
    host: str = "127.0.0.1"
    imap_port: int = 0
    lmtp_port: int | None = None  # None: delivery falls back to IMAP APPEND
    users: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    workdir: Path | None = None
    version: str = ""
    inotify_old: int | None = None
    argv: list[str] = field(default_factory=list)  # how it was started, for restart()
    log_path: Path | None = None
    store: str = "sqlite"  # coi's store: "sqlite", or "postgresql" (its own cluster)
    cluster: Any = None  # the private PostgreSQL cluster coi runs on (tests/pg.py's Cluster)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def cpu_pids(self) -> list[int]:
        """The process trees whose CPU is the server's: coi's own, and the PostgreSQL
        cluster it runs on (its work is part of every command)."""
        pids = [self.pid]
        if self.cluster is not None and self.cluster.process is not None:
            pids.append(self.cluster.process.pid)
        return pids

    @property
    def delivery_via(self) -> str:
        return "LMTP" if self.lmtp_port else "APPEND (no LMTP yet)"

    def memory(self) -> dict[str, int]:
        return memory_kib(self.pid)

    def launch(self) -> None:
        assert self.log_path is not None
        with open(self.log_path, "ab") as log:  # the child keeps its own copy
            self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=log)
        wait_port(self.imap_port, self.proc)
        if self.lmtp_port:
            wait_port(self.lmtp_port, self.proc)

    def _terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        """Same data, fresh processes: a memory baseline free of what earlier workloads left."""
        self._terminate()
        self.launch()

    def stop(self) -> None:
        self._terminate()
        restore_inotify(self.inotify_old)
        self.inotify_old = None
        if self.cluster is not None:
            self.cluster.stop()
            self.cluster = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


def coi_has_lmtp() -> bool:
    out = subprocess.run(
        [str(VENV_BIN / "coi"), "serve", "--help"], capture_output=True, text=True, check=True
    ).stdout
    return "--lmtp" in out


def start_postgres() -> Any:
    """A private PostgreSQL cluster on a free loopback port with fsync on (the tests'
    `tests/pg.py`, which runs it as the `postgres` user under root); stopped by its PID."""
    sys.path.insert(0, str(REPO))
    from tests import pg

    why = pg.unavailable()
    if why is not None:
        raise RuntimeError(f"no PostgreSQL for coi: {why}")
    return pg.start_cluster(durable=True)


def start_coi(
    users: dict[str, str],
    limit: int,
    keep_dir: Path | None = None,
    extra: list[str] | None = None,
    store: str = "sqlite",
) -> Server:
    workdir = Path(tempfile.mkdtemp(prefix="coi-bench-coi-", dir=keep_dir))
    # store="postgresql": coi on a PostgreSQL cluster of its own (fsync on, as SQLite's);
    # COI_BENCH_STORE=postgresql://...: on that (empty) database instead (issue 17)
    cluster: Any = None
    dsn = os.environ.get("COI_BENCH_STORE", "")
    if store == "postgresql" and not dsn:
        cluster = start_postgres()
        dsn = cluster.socket_dsn(cluster.new_database())  # as on one machine (scale-out.md)
    store_args = ["--store", dsn] if dsn else []
    try:
        return _start_coi(users, limit, workdir, store_args, extra or [], cluster)
    except BaseException:
        if cluster is not None:
            cluster.stop()
        raise


def _start_coi(
    users: dict[str, str],
    limit: int,
    workdir: Path,
    store_args: list[str],
    extra: list[str],
    cluster: Any,
) -> Server:
    data = workdir / "data"
    coi = str(VENV_BIN / "coi")
    add_user = [coi, "user", "add", "--password-stdin", "--data-dir", str(data), *store_args]
    # one `coi user add` per user, a few at a time (each hashes a password)
    items = list(users.items())
    for start in range(0, len(items), 4):
        procs = [
            subprocess.Popen(
                [*add_user, address],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for address, _ in items[start : start + 4]
        ]
        for proc, (address, password) in zip(procs, items[start : start + 4], strict=True):
            _, err = proc.communicate((password + "\n").encode(), timeout=60)
            if proc.returncode:
                raise RuntimeError(f"coi user add {address}: {err.decode(errors='replace')}")
    store = "postgresql" if store_args else "sqlite"
    server = Server("coi", users=users, workdir=workdir, store=store)
    server.cluster = cluster
    server.imap_port = free_port()
    args = [
        coi,
        "serve",
        "--data-dir",
        str(data),
        "--imap",
        f"127.0.0.1:{server.imap_port}",
        "--imaps",
        "off",
        "--max-connections-per-ip",
        str(limit),
        "--max-connections-per-user",
        str(limit),
    ]
    if coi_has_lmtp():
        server.lmtp_port = free_port()
        # submission is not measured; its default ports would clash with another coi
        args += ["--lmtp", f"127.0.0.1:{server.lmtp_port}", "--submission", "off"]
        args += ["--submissions", "off"]
    args += store_args + extra
    server.argv, server.log_path = args, workdir / "coi.log"
    server.launch()
    from importlib.metadata import version

    server.version = version("coi")
    return server


def fill_maildir(workdir: Path, address: str, count: int, make: Callable[[int], bytes]) -> None:
    """Writes messages straight into a Dovecot user's maildir (as the mail user would own
    them); Dovecot indexes them on the next, untimed, SELECT. Used because Dovecot's APPEND
    with fsync as shipped is too slow here to fill 100,000 messages in minutes. Picklable
    arguments: it runs in a process of its own, beside coi's fill."""
    pw = pwd.getpwnam(MAIL_USER)
    root = workdir / "mail" / address / "Maildir"
    for d in (root.parent, root, root / "cur", root / "new", root / "tmp"):
        d.mkdir(exist_ok=True)
        os.chown(d, pw.pw_uid, pw.pw_gid)
    base = int(time.time()) - count
    for i in range(count):
        data = make(i)
        path = root / "cur" / f"{base + i}.M{i}P0.bench,S={len(data)},W={len(data)}:2,"
        path.write_bytes(data)
        os.chown(path, pw.pw_uid, pw.pw_gid)


def dovecot_version() -> str | None:
    if shutil.which("dovecot") is None:
        return None
    return subprocess.run(["dovecot", "--version"], capture_output=True, text=True).stdout.strip()


def ensure_mail_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(MAIL_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", MAIL_USER],
            check=True,
        )
        return pwd.getpwnam(MAIL_USER)


DOVECOT_CONF = """\
# generated by bench/coi_bench/servers.py: Debian's Dovecot, as shipped except for paths,
# loopback listeners, users and the connection limits the benchmark needs
protocols = imap lmtp
listen = 127.0.0.1
base_dir = {work}/run
state_dir = {work}/state
log_path = {work}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = 1
mail_location = maildir:~/Maildir
mail_privileged_group =
postmaster_address = postmaster@example.org
default_process_limit = {procs}
default_client_limit = {clients}
default_vsz_limit = 256M
passdb {{
  driver = passwd-file
  args = scheme={scheme} {work}/passwd
}}
userdb {{
  driver = passwd-file
  args = {work}/passwd
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  process_limit = {procs}
  client_limit = {clients}
}}
service imap {{
  process_limit = {procs}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp_port}
  }}
  unix_listener lmtp {{
    mode = 0600
  }}
}}
service anvil {{
  client_limit = {anvil}
}}
service auth {{
  client_limit = {anvil}
}}
protocol imap {{
  mail_max_userip_connections = {limit}
}}
"""


INOTIFY = Path("/proc/sys/fs/inotify/max_user_instances")


def raise_inotify(instances: int) -> int | None:
    """Each Dovecot imap process in IDLE takes an inotify instance; past the kernel's per-user
    limit (128 by default) Dovecot silently falls back to polling every 30 s. Dovecot's
    documentation asks to raise the limit; returns the old value to restore, or None."""
    try:
        old = int(INOTIFY.read_text())
        if old < instances:
            INOTIFY.write_text(f"{instances}\n")
            return old
    except (OSError, ValueError):
        pass
    return None


def restore_inotify(old: int | None) -> None:
    if old is not None:
        try:
            INOTIFY.write_text(f"{old}\n")
        except OSError:
            pass


def start_dovecot(
    users: dict[str, str], limit: int, scheme: str, keep_dir: Path | None = None
) -> Server:
    version = dovecot_version()
    if version is None:
        raise RuntimeError(
            "dovecot is not installed (bench/run installs dovecot-imapd, dovecot-lmtpd)"
        )
    pw = ensure_mail_user()
    workdir = Path(tempfile.mkdtemp(prefix="coi-bench-dovecot-", dir=keep_dir))
    workdir.chmod(0o755)
    (workdir / "mail").mkdir()
    os.chown(workdir / "mail", pw.pw_uid, pw.pw_gid)
    lines = []
    for address, password in users.items():
        hashed = subprocess.run(
            ["doveadm", "-c", "/dev/null", "pw", "-s", scheme, "-p", password],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        home = workdir / "mail" / address
        lines.append(f"{address}:{hashed}:{pw.pw_uid}:{pw.pw_gid}::{home}::\n")
    (workdir / "passwd").write_text("".join(lines))
    (workdir / "passwd").chmod(0o644)
    server = Server("dovecot", users=users, workdir=workdir, version=version)
    server.inotify_old = raise_inotify(limit + 1000)
    server.imap_port = free_port()
    server.lmtp_port = free_port()
    procs = limit + 100
    conf = DOVECOT_CONF.format(
        work=workdir,
        procs=procs,
        clients=procs,
        anvil=3 * procs + 100,
        scheme=scheme,
        imap_port=server.imap_port,
        lmtp_port=server.lmtp_port,
        limit=limit,
    )
    (workdir / "dovecot.conf").write_text(conf)
    server.argv = ["dovecot", "-F", "-c", str(workdir / "dovecot.conf")]
    server.log_path = workdir / "dovecot.stderr"
    try:
        server.launch()
    except RuntimeError:
        sys.stderr.write((workdir / "dovecot.stderr").read_text(errors="replace"))
        server.stop()
        raise
    return server
