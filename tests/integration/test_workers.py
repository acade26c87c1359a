"""`coi serve --workers N` on PostgreSQL (issue 17): one supervisor, N processes on the
same listeners, and the relay queue shared by every process (coi.delivery.pgqueue).

Which worker serves a connection is read from the kernel (/proc: the process holding the
server side of the TCP connection), so the server needs no test hook.
"""

from __future__ import annotations

import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from tests.integration.serverproc import ServerProcess

ALICE = "alice@example.org"
BOB = "bob@example.org"


def _inode(server_port: int, client_port: int) -> int | None:
    """The inode of the server side of a loopback connection (Linux /proc/net/tcp)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote = fields[1], fields[2]
            if (
                int(local.rsplit(":", 1)[1], 16) == server_port
                and int(remote.rsplit(":", 1)[1], 16) == client_port
            ):
                return int(fields[9])
    return None


def serving_pid(sock: socket.socket, server_port: int, pids: list[int]) -> int | None:
    """Which of `pids` holds the server side of the connection `sock` is the client of."""
    inode = _inode(server_port, sock.getsockname()[1])
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return pid
            except OSError:
                continue
    return None


class Imap:
    """A line-level IMAP client (IDLE, APPEND with LITERAL+)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.file = self.sock.makefile("rb")
        self.tags = 0
        assert self.line().startswith(b"* OK")

    def line(self) -> bytes:
        data = self.file.readline()
        if not data:
            raise ConnectionError("connection closed")
        return data

    def command(self, text: bytes, literal: bytes | None = None) -> list[bytes]:
        self.tags += 1
        tag = b"t%d" % self.tags
        if literal is None:
            self.sock.sendall(tag + b" " + text + b"\r\n")
        else:
            self.sock.sendall(tag + b" " + text + b" {%d+}\r\n" % len(literal) + literal + b"\r\n")
        lines = []
        while True:
            line = self.line()
            lines.append(line)
            if line.startswith(tag + b" "):
                return lines

    def login(self, address: str, password: str) -> None:
        assert self.command(f"LOGIN {address} {password}".encode())[-1].split()[1] == b"OK"

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def _workers(tmp_path: Path, dsn: str, *extra: str) -> ServerProcess:
    server = ServerProcess(tmp_path / "data", "--store", dsn, "--workers", "2", *extra, drain=True)
    server.start()
    assert len(server.worker_pids) == 2, server.output
    return server


def test_connections_spread_and_delivery_reaches_idle_on_the_other_worker(
    tmp_path: Path, postgres_dsn: str
) -> None:
    server = _workers(tmp_path, postgres_dsn)
    clients: list[Imap] = []
    try:
        pids = server.worker_pids
        by_pid: dict[int, list[Imap]] = {}
        for _ in range(60):  # the kernel hands each connection to one waiting worker
            client = Imap(server.port)
            clients.append(client)
            pid = serving_pid(client.sock, server.port, pids)
            assert pid in pids
            by_pid.setdefault(pid, []).append(client)
            if len(by_pid) == 2 and len(clients) >= 10:
                break
        assert set(by_pid) == set(pids), {p: len(c) for p, c in by_pid.items()}
        idler_pid = pids[0]
        idler = by_pid[idler_pid][0]
        idler.login(BOB, server.password(BOB))
        assert b"* 0 EXISTS\r\n" in idler.command(b"SELECT INBOX")
        idler.sock.sendall(b"idle IDLE\r\n")
        assert idler.line().startswith(b"+ ")
        # an LMTP connection served by the other worker delivers. One served by the first
        # stays open: the first then holds more connections, and leaves the next to the
        # other (coi.listener), however the IMAP connections above were shared.
        first: list[smtplib.LMTP] = []
        for _ in range(60):
            lmtp = smtplib.LMTP("127.0.0.1", server.lmtp_port)
            assert lmtp.sock is not None
            if serving_pid(lmtp.sock, server.lmtp_port, pids) == pids[1]:
                break
            first.append(lmtp)
        else:
            pytest.fail("no LMTP connection reached worker 2")
        message = b"From: alice@example.org\r\nSubject: across workers\r\n\r\nhi\r\n"
        assert lmtp.sendmail(ALICE, [BOB], message) == {}
        for other in (lmtp, *first):
            other.quit()
        assert idler.line() == b"* 1 EXISTS\r\n"
        idler.sock.sendall(b"DONE\r\n")
        while not (line := idler.line()).startswith(b"idle "):
            assert line.startswith(b"* ")  # * 1 RECENT
        assert line.startswith(b"idle OK")
    finally:
        for client in clients:
            client.close()
        assert server.terminate() == 0
    text = "".join(server.output)
    assert "Traceback" not in text
    assert f"worker=1 pid={pids[0]} coi.serve stopped" in text
    assert f"worker=2 pid={pids[1]} coi.serve stopped" in text


def test_connections_one_after_another_are_shared_evenly(
    tmp_path: Path, postgres_dsn: str
) -> None:
    """Each connection greeted before the next is made (an MTA's LMTP connections, clients
    coming back one by one): the worker that woke first took most of them before (2 and
    6 of 8 seen); each worker now leaves them to one that holds fewer."""
    server = _workers(tmp_path, postgres_dsn)
    clients: list[Imap] = []
    try:
        served: list[int | None] = []
        for _ in range(12):
            client = Imap(server.port)  # greeted: accepted by a worker
            clients.append(client)
            served.append(serving_pid(client.sock, server.port, server.worker_pids))
        counts = sorted(served.count(pid) for pid in server.worker_pids)
        # a worker leaves a connection to the other for only 1 ms (DEFER_SECONDS): on a
        # machine busy with other tests the other may not wake in time now and then (4
        # and 8 seen once in a full run); without the deferral it was 2 and 10 or worse
        assert sum(counts) == 12 and counts[0] >= 4, served
    finally:
        for client in clients:
            client.close()
        server.stop()


def _one_on_each_worker(server: ServerProcess) -> list[Imap]:
    """A connection served by each worker (the kernel picks; keep trying until it has)."""
    by_pid: dict[int, Imap] = {}
    spare: list[Imap] = []
    for _ in range(60):
        client = Imap(server.port)
        pid = serving_pid(client.sock, server.port, server.worker_pids)
        if pid is not None and pid not in by_pid:
            by_pid[pid] = client
        else:
            spare.append(client)
        if len(by_pid) == 2:
            break
    for client in spare:
        client.close()
    assert len(by_pid) == 2
    return list(by_pid.values())


def _restarted(server: ServerProcess, victim: int) -> int:
    """The pid of worker 2 started again in place of `victim` (within 30 s)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.findall(r"worker 2 ready pid=(\d+)", "".join(server.output))
        restarted = next((int(p) for p in found if int(p) != victim), None)
        if restarted is not None:
            return restarted
        time.sleep(0.1)
    raise AssertionError("".join(server.output))


def _noop_until(client: Imap, wanted: bytes, seconds: float = 10.0) -> list[bytes]:
    """NOOPs until `wanted` shows (the other worker's events arrive by LISTEN/NOTIFY)."""
    seen: list[bytes] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen += client.command(b"NOOP")
        if wanted in seen:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"no {wanted!r} in {seen!r}")


def test_recent_goes_to_one_session_and_uidnext_covers_the_view_across_workers(
    tmp_path: Path, postgres_dsn: str
) -> None:
    """RFC 3501 §2.3.2: a new message is \\Recent in one session only, also when the
    sessions that have the mailbox selected are in two processes; RFC 3501 §2.3.1.1: a
    SELECT's UIDNEXT is above every UID it shows (the state-checking stress test found
    both with --workers 2)."""
    server = _workers(tmp_path, postgres_dsn)
    sessions: list[Imap] = []
    try:
        sessions = _one_on_each_worker(server)
        for client in sessions:
            client.login(ALICE, server.password(ALICE))
            assert b"* 0 EXISTS\r\n" in client.command(b"SELECT INBOX")
        writer = Imap(server.port)
        sessions.append(writer)
        writer.login(ALICE, server.password(ALICE))
        recent = [0, 0]  # each session's RECENT count, as last reported
        for i in range(5):
            message = b"From: bob@example.org\r\nSubject: %d\r\n\r\nhello\r\n" % i
            assert writer.command(b"APPEND INBOX", message)[-1].split()[1] == b"OK"
            for n, client in enumerate(sessions[:2]):
                lines = _noop_until(client, b"* %d EXISTS\r\n" % (i + 1))
                for line in lines:
                    if line.endswith(b" RECENT\r\n"):
                        recent[n] = int(line.split()[1])
            assert sum(recent) == i + 1, (i, recent)  # each message recent in one of them
        for client in sessions[:2]:
            lines = client.command(b"SELECT INBOX")
            codes = [line for line in lines if b"[UIDNEXT " in line]
            assert codes == [b"* OK [UIDNEXT 6] Predicted next UID\r\n"], lines
            assert b"* 0 RECENT\r\n" in lines  # taken before by one of them
    finally:
        for client in sessions:
            client.close()
        server.stop()


def test_killed_worker_is_restarted_and_nothing_acknowledged_is_lost(
    tmp_path: Path, postgres_dsn: str
) -> None:
    server = _workers(tmp_path, postgres_dsn)
    password = server.password(ALICE)
    acked: list[str] = []
    sent: list[str] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        count = 0
        client: Imap | None = None
        while not stop.is_set():
            try:
                if client is None:
                    client = Imap(server.port)
                    client.login(ALICE, password)
                count += 1
                mid = f"<w{n}-{count}@example.org>"
                sent.append(mid)
                body = f"From: {ALICE}\r\nMessage-ID: {mid}\r\nSubject: load\r\n\r\nx\r\n"
                reply = client.command(b"APPEND INBOX", body.encode())[-1]
                if b" OK " in reply:
                    acked.append(mid)
                else:
                    errors.append(AssertionError(reply))
            except (OSError, ConnectionError, AssertionError):
                if client is not None:
                    client.close()
                client = None  # the worker died: connect again (to either worker)
                time.sleep(0.05)
            except BaseException as exc:  # pragma: no cover
                errors.append(exc)
                return
        if client is not None:
            client.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while len(acked) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        victim = server.worker_pids[1]
        os.kill(victim, signal.SIGKILL)
        before = len(acked)
        _restarted(server, victim)  # the supervisor starts worker 2 again
        deadline = time.monotonic() + 30
        while len(acked) < before + 20 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    try:
        assert not errors, errors
        assert len(acked) >= before + 20
        client = Imap(server.port)
        client.login(ALICE, password)
        client.command(b"SELECT INBOX")
        lines = client.command(b"FETCH 1:* (BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        client.close()
        stored = Counter(
            m.decode() for m in re.findall(rb"<w\d+-\d+@example\.org>", b"".join(lines))
        )
        assert all(stored[mid] == 1 for mid in acked), "acknowledged APPEND lost"
        assert all(count == 1 for count in stored.values()), "APPEND stored twice"
        assert set(stored) <= set(sent)
        assert re.search(r"worker 2 exited \(signal SIGKILL\)", "".join(server.output))
    finally:
        assert server.terminate() == 0


def test_sqlite_refuses_several_workers_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "coi.cli.main",
            "serve",
            "--data-dir",
            str(tmp_path),
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "coi: --workers 2: SQLite serves from one process; use --store postgresql://... for several"
    ]


def test_port_in_use_is_one_line(tmp_path: Path, postgres_dsn: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [
                sys.executable, "-m", "coi.cli.main", "serve", "--data-dir", str(tmp_path),
                "--store", postgres_dsn, "--workers", "2", "--imap", "127.0.0.1:0",
                "--imaps", "off", "--lmtp", f"127.0.0.1:{port}", "--submission", "off",
                "--submissions", "off",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"coi: cannot start: --lmtp 127.0.0.1:{port}: address already in use"
    ]


# -- the relay queue in PostgreSQL ---------------------------------------------------------


class SlowSink:
    """A remote SMTP server that takes its time with DATA, so that both workers get a share
    of the queue; records each message's Message-ID."""

    def __init__(self) -> None:
        self.received: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        import asyncio

        await asyncio.sleep(1.0)
        found = re.search(rb"Message-ID: (<[^>]+>)", envelope.original_content)
        self.received.append(found.group(1).decode() if found else "?")
        return "250 OK"


def _queue(dsn: str, lease: float = 120.0) -> Any:
    from coi.delivery.pgqueue import PgQueue
    from coi.store.postgres.store import PostgresStore

    return PgQueue(PostgresStore(dsn, listen=False), lease=lease)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_two_workers_send_each_queued_message_once(tmp_path: Path, postgres_dsn: str) -> None:
    queue = _queue(postgres_dsn)
    sink = SlowSink()
    controller = Controller(sink, hostname="127.0.0.1", port=_free_port())
    server = None
    try:
        expected = []
        for i in range(60):
            mid = f"<q{i}@example.org>"
            expected.append(mid)
            raw = f"From: {ALICE}\r\nTo: carol@remote.example\r\nMessage-ID: {mid}\r\n\r\nhi\r\n"
            queue.enqueue(ALICE, ["carol@remote.example"], raw.encode())
        controller.start()
        server = _workers(
            tmp_path,
            postgres_dsn,
            "--relay-host",
            f"127.0.0.1:{controller.port}",
            "--relay-tls",
            "none",
        )
        deadline = time.monotonic() + 90
        while (len(sink.received) < 60 or queue.count()) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # a second send would show by now
        assert sorted(sink.received) == sorted(expected)
        assert queue.count() == 0
    finally:
        if server is not None:
            assert server.terminate() == 0
        controller.stop()
        queue.store.close()
    relayed = Counter(re.findall(r"worker=(\d) pid=\d+ coi.relay relayed", "".join(server.output)))
    assert set(relayed) == {"1", "2"}, relayed  # both processes worked the queue


CLAIMER = """
import sys, time
from coi.delivery.pgqueue import PgQueue
from coi.store.postgres.store import PostgresStore
queue = PgQueue(PostgresStore(sys.argv[1], listen=False), lease=float(sys.argv[2]))
claimed = queue.claim(time.time())
print(" ".join(str(r.id) for item in claimed for r in item.recipients), flush=True)
time.sleep(600)
"""


def test_claim_of_a_killed_process_is_retried_after_its_lease(postgres_dsn: str) -> None:
    queue = _queue(postgres_dsn, lease=1.0)
    try:
        queue.enqueue(ALICE, ["carol@remote.example", "dave@remote.example"], b"Subject: x\r\n\r\n")
        claimer = subprocess.Popen(
            [sys.executable, "-c", CLAIMER, postgres_dsn, "5.0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert claimer.stdout is not None
        ids = sorted(int(i) for i in claimer.stdout.readline().split())
        assert len(ids) == 2
        claimer.kill()  # SIGKILL in the middle of its "send"
        claimer.wait(10)
        claimer.stdout.close()
        assert queue.claim(time.time()) == []  # its lease still holds
        deadline = time.monotonic() + 15
        retried: list[int] = []
        while not retried and time.monotonic() < deadline:
            time.sleep(0.2)
            retried = sorted(r.id for item in queue.claim(time.time()) for r in item.recipients)
        assert retried == ids
        assert queue.claim(time.time()) == []  # now this handle holds them
        queue.defer(ids[:1], "421 try later", time.time() - 1)
        queue.done(ids[1:])
        again = queue.claim(time.time())
        assert [(r.id, r.attempts, r.last_error) for r in again[0].recipients] == [
            (ids[0], 1, "421 try later")
        ]
        queue.done(ids[:1])
        assert queue.count() == 0
    finally:
        queue.store.close()


def test_metrics_count_the_work_of_every_worker(tmp_path: Path, postgres_dsn: str) -> None:
    """Worker 1's /metrics sums every worker's counters (coi.metrics: a directory of
    counts the supervisor makes); a killed worker's open connections stop counting."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    server = _workers(tmp_path, postgres_dsn, "--metrics", "127.0.0.1:0")
    url = next(
        m.group(1)
        for line in server.output
        if (m := re.search(r"metrics\s+(http://\S+/metrics)", line))
    )

    def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    clients = _one_on_each_worker(server)
    try:
        for client in clients:
            client.login(ALICE, server.password(ALICE))
            client.command(b"NOOP")
        samples = scrape()
        assert samples[("coi_imap_command_seconds_count", (("command", "NOOP"),))] == 2
        assert samples[("coi_logins_total", (("protocol", "imap"), ("result", "ok")))] == 2
        assert samples[("coi_connections", (("protocol", "imap"),))] == 2
        second = serving_pid(clients[1].sock, server.port, server.worker_pids)
        assert second is not None
        os.kill(second, signal.SIGKILL)
        for _ in range(100):  # reaped by the supervisor: its live gauge goes
            if scrape()[("coi_connections", (("protocol", "imap"),))] == 1:
                break
            time.sleep(0.1)
        samples = scrape()
        assert samples[("coi_connections", (("protocol", "imap"),))] == 1
        assert samples[("coi_imap_command_seconds_count", (("command", "NOOP"),))] == 2
    finally:
        for client in clients:
            client.close()
        assert server.terminate() == 0


def test_hung_worker_is_killed_and_started_again(tmp_path: Path, postgres_dsn: str) -> None:
    """A worker whose event loop stops answering (here: SIGSTOP) sends no heartbeat: after
    --worker-timeout the supervisor kills it, and it is started again like a dead one;
    the other worker serves meanwhile."""
    server = _workers(tmp_path, postgres_dsn, "--worker-timeout", "3")
    try:
        victim = server.worker_pids[1]
        os.kill(victim, signal.SIGSTOP)
        _restarted(server, victim)
        text = "".join(server.output)
        assert f"worker 2 pid={victim} sent no heartbeat" in text
        assert "worker 2 exited (signal SIGKILL)" in text
        client = Imap(server.port)  # both workers serve again
        client.login(ALICE, server.password(ALICE))
        client.close()
    finally:
        assert server.terminate() == 0
    hung = [line for line in server.output if "sent no heartbeat" in line]
    assert len(hung) == 1 and f"worker 2 pid={victim} " in hung[0]  # worker 1 kept serving
