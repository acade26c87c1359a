"""`coi serve --workers N`: one supervisor, N worker processes on the same listeners.

Invariants:
- The supervisor binds every listener once (IMAP, IMAPS, LMTP, submission, submissions,
  metrics), so ports are exact (a port of 0 is one port for all) and a port in use is one
  error before anything starts; it makes the shared keys (self-signed certificate, VAPID
  key) before it forks. Then it forks the workers; each inherits the listening sockets
  and runs `coi.cli.serve.serve` on them. Each worker accepts one connection per wake-up,
  and leaves it to the others for a moment while it holds more connections than one of them
  (coi/listener.py), so connections are shared evenly however they arrive. The
  supervisor has no event loop and no threads, so forking is safe.
- Worker 1 starts first and alone: it migrates the schema, makes the demo accounts and
  moves an old SQLite relay queue into PostgreSQL (what must happen once); the others
  start when it is ready. Worker 1 alone serves --metrics, with every worker's counts:
  each counts into its own files in a directory the supervisor makes (coi.metrics), and
  the live gauges of a worker that ended are dropped when it is reaped.
- A worker that dies is started again after 1 s, doubling up to 30 s while it keeps
  dying (logged); one that cannot start at first stops everything with exit status 1.
- A worker's event loop writes a heartbeat byte to its pipe every HEARTBEAT seconds;
  one silent for `worker_timeout` seconds (a hung loop serves none of its connections)
  is killed with SIGKILL and so started again like a dead one. Acknowledged writes are
  committed before their OK, so killing loses nothing acknowledged.
- SIGTERM/SIGINT go to every worker, each of which stops as a lone `coi serve` does
  (listeners closed, running commands finished, so every acknowledged write is
  committed); the supervisor exits when all have, non-zero if one did not stop cleanly.
  SIGHUP (reload the certificate) is passed on. A worker dies with its supervisor
  (PR_SET_PDEATHSIG), so a killed supervisor frees its ports.
- The data directory's `serve.lock` is held by the supervisor for all of them; the relay
  queue is in PostgreSQL (SQLite cannot be served by several processes: refused before).
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import logging
import os
import select
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from types import FrameType
from typing import NoReturn

from coi.cli.common import tag_worker
from coi.config import ServerConfig, parse_listen
from coi.listener import BACKLOG, WorkerLoads
from coi.webpush.keys import load_keys

log = logging.getLogger("coi.serve")

KINDS = ("imap", "imaps", "lmtp", "submission", "submissions", "metrics")
FIRST_DELAY = 1.0  # seconds before a dead worker is started again, doubling to MAX_DELAY
MAX_DELAY = 30.0
STEADY = 60.0  # a worker that ran this long starts again after FIRST_DELAY
STOP_GRACE = 60.0  # seconds workers have to stop (a lone coi serve gives commands 30 s)
HEARTBEAT = 2.0  # seconds between a worker's heartbeats
_PR_SET_PDEATHSIG = 1
SHARED_METRICS = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's multiprocess mode


Sockets = dict[str, list[socket.socket]]


def bind_listeners(config: ServerConfig) -> Sockets:
    """Binds and listens on every configured listener, as asyncio's create_server would
    (every address the host name resolves to, SO_REUSEADDR, IPv6 sockets v6-only)."""
    out: Sockets = {}
    try:
        for kind in KINDS:
            where = parse_listen(getattr(config, kind), f"--{kind}")
            if where is not None:
                out[kind] = _bind(kind, *where)
    except BaseException:
        for socks in out.values():
            for sock in socks:
                sock.close()
        raise
    return out


def _bind(kind: str, host: str, port: int) -> list[socket.socket]:
    try:
        infos = socket.getaddrinfo(
            host or None, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise OSError(f"--{kind} {host}:{port}: {exc.strerror}") from None
    socks: list[socket.socket] = []
    try:
        for family, type_, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, type_, proto)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                why = (exc.strerror or str(exc)).lower()
                raise OSError(f"--{kind} {host}:{port}: {why}") from None
            sock.listen(BACKLOG)
            sock.setblocking(False)
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


@dataclass(slots=True)
class _Worker:
    index: int  # 0-based; shown 1-based
    pid: int = 0
    last_pid: int = 0  # the process that ended last
    # read end of the pipe the worker writes a byte to when ready, then each HEARTBEAT
    ready_fd: int = -1
    ready: bool = False
    last_beat: float = 0.0
    started: float = 0.0
    failures: int = 0  # deaths in a row without running STEADY seconds
    restart_at: float | None = None


class Supervisor:
    def __init__(
        self,
        config: ServerConfig,
        demo: bool,
        count: int,
        sockets: Sockets,
        metrics_dir: str | None = None,
    ) -> None:
        self.config = config
        self.metrics_dir = metrics_dir  # the workers' shared counts (coi.metrics)
        self.demo = demo
        self.sockets = sockets
        self.workers = [_Worker(i) for i in range(count)]
        self.loads = WorkerLoads(count)  # each worker's connections, seen by every worker
        self._stopping = False
        self._hup = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    # -- signals -------------------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            self._stopping = True
        elif signum == signal.SIGHUP:
            self._hup = True
        # SIGCHLD: the wake-up byte is enough; children are reaped in the loop

    def _install(self) -> None:
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(signum, self._on_signal)

    # -- workers -------------------------------------------------------------------------

    def _spawn(self, worker: _Worker) -> None:
        ready_r, ready_w = os.pipe()
        parent = os.getpid()
        sys.stdout.flush()  # else the worker would write the supervisor's buffered output too
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker
            os.close(ready_r)
            self._worker_main(worker.index, ready_w, parent)
        os.close(ready_w)
        worker.pid, worker.ready_fd, worker.ready = pid, ready_r, False
        worker.started, worker.restart_at = time.monotonic(), None
        log.info("worker %d started pid=%d", worker.index + 1, pid)

    def _worker_main(self, index: int, ready_w: int, parent: int) -> NoReturn:
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
                signal.signal(signum, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            os.close(self._wake_r)
            os.close(self._wake_w)
            for other in self.workers:
                if other.ready_fd >= 0:
                    os.close(other.ready_fd)
            _die_with_parent(parent)
            tag_worker(index + 1)
            self.loads.become(index)
            primary = index == 0
            sockets = {k: v for k, v in self.sockets.items() if k != "metrics" or primary}
            from coi.cli.serve import reporting, serve

            def ready() -> None:
                os.set_blocking(ready_w, False)
                _beat(asyncio.get_running_loop(), ready_w)

            code = reporting(
                lambda: asyncio.run(
                    serve(
                        self.config,
                        demo=self.demo and primary,
                        sockets=sockets,
                        primary=primary,
                        ready=ready,
                    )
                )
            )
        except BaseException:  # never return into the supervisor's code
            log.exception("worker %d failed", index + 1)
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
                logging.shutdown()
            finally:
                os._exit(code)

    def _reap(self) -> list[tuple[_Worker, int]]:
        """Collects every worker that ended: (worker, exit code; -N for signal N)."""
        ended: list[tuple[_Worker, int]] = []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            for worker in self.workers:
                if worker.pid == pid:
                    worker.pid, worker.last_pid = 0, pid
                    if worker.ready_fd >= 0:
                        os.close(worker.ready_fd)
                        worker.ready_fd = -1
                    ended.append((worker, os.waitstatus_to_exitcode(status)))
        return ended

    def _check_ready(self, readable: list[int]) -> None:
        """Reads the workers' ready bytes and heartbeats."""
        for worker in self.workers:
            if worker.ready_fd >= 0 and worker.ready_fd in readable:
                try:
                    data = os.read(worker.ready_fd, 512)
                except OSError:
                    data = b""
                if not data:  # the worker closed it (it is ending): nothing more comes
                    os.close(worker.ready_fd)
                    worker.ready_fd = -1
                    continue
                worker.last_beat = time.monotonic()
                if not worker.ready:
                    worker.ready = True
                    log.info("worker %d ready pid=%d", worker.index + 1, worker.pid)

    def _next_check(self) -> float | None:
        """When the first heartbeat comes due (None: not watched)."""
        limit = self.config.worker_timeout
        beats = [w.last_beat for w in self.workers if w.ready and w.pid and w.ready_fd >= 0]
        return min(beats) + limit if limit > 0 and beats else None

    def _kill_hung(self) -> None:
        limit = self.config.worker_timeout
        if limit <= 0:
            return
        now = time.monotonic()
        for worker in self.workers:
            if worker.ready and worker.pid and now - worker.last_beat > limit:
                log.error(
                    "worker %d pid=%d sent no heartbeat for %.0f s (a hung event loop);"
                    " killing it",
                    worker.index + 1,
                    worker.pid,
                    now - worker.last_beat,
                )
                worker.last_beat = now  # one SIGKILL, then it is reaped and restarted
                try:
                    os.kill(worker.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def _wait(self, timeout: float | None) -> list[int]:
        """Sleeps until a signal, a worker's ready byte or `timeout`; returns readable fds."""
        fds = [self._wake_r, *(w.ready_fd for w in self.workers if w.ready_fd >= 0)]
        try:
            readable, _, _ = select.select(fds, [], [], timeout)
        except InterruptedError:  # pragma: no cover (PEP 475 retries select)
            readable = []
        if self._wake_r in readable:
            try:
                while os.read(self._wake_r, 512):
                    pass
            except BlockingIOError:
                pass
        return readable

    def _start(self, workers: list[_Worker]) -> str | None:
        """Starts `workers` and waits until each is ready; why one could not, or None."""
        for worker in workers:
            self._spawn(worker)
        while not all(w.ready for w in workers):
            readable = self._wait(1.0)
            self._check_ready(readable)
            for worker, code in self._reap():
                if not worker.ready:
                    return f"worker {worker.index + 1} exited ({_how(code)}) before it was ready"
                return f"worker {worker.index + 1} exited ({_how(code)}) while starting"
            if self._stopping:
                return ""
        return None

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> int:
        self._install()
        try:
            failed = self._start(self.workers[:1])
            if failed is None and len(self.workers) > 1:
                failed = self._start(self.workers[1:])
            if failed:
                print(f"coi: cannot start: {failed}", file=sys.stderr)
                self._stop_all()
                return 1
            if failed == "":  # asked to stop while starting
                return self._stop_all()
            self._announce()
            while not self._stopping:
                now = time.monotonic()
                due = [w.restart_at for w in self.workers if w.restart_at is not None]
                check = self._next_check()
                if check is not None:
                    due.append(check)
                timeout = max(0.0, min(due) - now) if due else None
                readable = self._wait(timeout)
                self._check_ready(readable)
                self._kill_hung()
                if self._hup:
                    self._hup = False
                    self._signal_all(signal.SIGHUP)
                for worker, code in self._reap():
                    self._schedule_restart(worker, code)
                    self._forget_gauges(worker.last_pid)
                now = time.monotonic()
                for worker in self.workers:
                    if worker.restart_at is not None and worker.restart_at <= now:
                        self._spawn(worker)
            return self._stop_all()
        finally:
            for socks in self.sockets.values():
                for sock in socks:
                    sock.close()

    def _forget_gauges(self, pid: int) -> None:
        """A dead worker's open connections are no longer counted."""
        if self.metrics_dir is not None:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(pid, self.metrics_dir)  # type: ignore[no-untyped-call]

    def _schedule_restart(self, worker: _Worker, code: int) -> None:
        lived = time.monotonic() - worker.started
        worker.failures = 0 if lived >= STEADY else worker.failures + 1
        delay = min(MAX_DELAY, FIRST_DELAY * 2 ** max(0, worker.failures - 1))
        worker.restart_at = time.monotonic() + delay
        log.warning(
            "worker %d exited (%s) after %.0f s; starting it again in %.0f s",
            worker.index + 1,
            _how(code),
            lived,
            delay,
        )

    def _announce(self) -> None:
        from coi.cli.serve import banner

        listening = [
            (kind, str(sock.getsockname()[0]), int(sock.getsockname()[1]))
            for kind, socks in self.sockets.items()
            for sock in socks
        ]
        accounts: list[tuple[str, str]] = []
        passwords = self.config.data_dir / "demo-passwords.txt"
        if self.demo and passwords.exists():
            for line in passwords.read_text(encoding="utf-8").splitlines():
                address, _, password = line.partition(" ")
                accounts.append((address, password))
        pids = [w.pid for w in self.workers]
        print("\n".join(banner(self.config, listening, accounts, pids)), flush=True)
        log.info("started workers=%d pids=%s", len(pids), ",".join(map(str, pids)))

    def _signal_all(self, signum: int) -> None:
        for worker in self.workers:
            if worker.pid:
                try:
                    os.kill(worker.pid, signum)
                except ProcessLookupError:
                    pass

    def _stop_all(self) -> int:
        """SIGTERM to every worker, then waits for them (SIGKILL after STOP_GRACE)."""
        log.info("stopping workers=%d", sum(1 for w in self.workers if w.pid))
        for worker in self.workers:
            worker.restart_at = None
        self._signal_all(signal.SIGTERM)
        clean = True
        deadline = time.monotonic() + STOP_GRACE
        while any(w.pid for w in self.workers):
            left = deadline - time.monotonic()
            if left <= 0:
                for worker in self.workers:
                    if worker.pid:
                        log.error("worker %d did not stop; killing it", worker.index + 1)
                self._signal_all(signal.SIGKILL)
                clean = False
                deadline = time.monotonic() + 10
            self._check_ready(self._wait(max(0.05, min(left, 1.0))))  # heartbeats drained
            for worker, code in self._reap():
                if code != 0:
                    clean = False
                    log.warning("worker %d stopped (%s)", worker.index + 1, _how(code))
        log.info("stopped")
        return 0 if clean else 1


def _beat(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    """One heartbeat byte now and every HEARTBEAT seconds while the loop runs (a full
    pipe means the supervisor is behind, not that we are hung: skipped)."""
    try:
        os.write(fd, b"1")
    except BlockingIOError:
        pass
    except OSError:  # the supervisor is gone
        return
    loop.call_later(HEARTBEAT, _beat, loop, fd)


def _how(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"status {code}"


def _die_with_parent(parent: int) -> None:
    """The kernel kills this worker when the supervisor dies, however it dies (Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl")
    except (OSError, AttributeError) as exc:  # not Linux: the worker may outlive it
        if getattr(exc, "errno", None) not in (None, errno.EINVAL, errno.ENOSYS):
            log.warning("worker cannot follow its supervisor's death: %s", exc)
    if os.getppid() != parent:  # the supervisor died before prctl
        os._exit(1)


def supervise(config: ServerConfig, demo: bool, count: int) -> int:
    """Prepares what the workers share, binds the listeners and runs `count` workers."""
    from coi.cli.serve import certificate

    config.data_dir.mkdir(parents=True, exist_ok=True)
    certificate(config)  # made once here: every worker reads the same files
    load_keys(config.data_dir, config.webpush_vapid_key)
    sockets = bind_listeners(config)
    metrics_dir = None
    if parse_listen(config.metrics, "--metrics") is not None:
        metrics_dir = tempfile.mkdtemp(prefix="coi-metrics-")
        # prometheus_client reads it when first imported: in the workers (coi.metrics)
        os.environ[SHARED_METRICS] = metrics_dir
    try:
        return Supervisor(config, demo, count, sockets, metrics_dir).run()
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
