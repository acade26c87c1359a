"""`coi serve`: run the COI server on the embedded store until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import logging
import os
import secrets
import signal
import socket
import ssl
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

from coi.auth.passwords import hash_password
from coi.cli.common import (
    DEFAULT_MAILBOXES,
    config_or_exit,
    open_store,
    redact,
    setup_logging,
)
from coi.config import ConfigError, ServerConfig, add_arguments, parse_listen
from coi.imap.server.server import ImapServer
from coi.store.errors import UserExists
from coi.store.protocol import UserStore
from coi.tls import ensure_self_signed, server_context
from coi.webpush.keys import load_keys

log = logging.getLogger("coi.serve")
DEMO_USERS = ("alice@example.org", "bob@example.org")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "serve",
        help="run the COI server",
        description="Run the COI server (IMAP with STARTTLS and implicit TLS, LMTP, SMTP "
        "submission and the relay queue) on the embedded SQLite store in --data-dir, or on a "
        "PostgreSQL database (--store postgresql://...) that any number of coi serve processes "
        "share. Every setting can come from --config FILE (TOML, same names with underscores) "
        "or from the flags below; flags win.",
    )
    add_arguments(parser)
    parser.add_argument(
        "--demo",
        action="store_true",
        help=f"create demo accounts ({', '.join(DEMO_USERS)}) and print their passwords",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    config = config_or_exit(args)
    setup_logging(config.log_level, config.log_format)
    if config.protocol_trace:  # the trace is opt-in, independent of --log-level
        logging.getLogger("coi.imap.trace").setLevel(logging.DEBUG)
    # aiosmtpd logs each LMTP/SMTP command line and reply at INFO: a protocol trace, so
    # opt-in too (it was 5 % of the server's CPU time in LMTP delivery)
    smtp_trace = logging.INFO if config.protocol_trace else logging.WARNING
    logging.getLogger("mail.log").setLevel(smtp_trace)
    try:
        workers = worker_count(config)
    except ConfigError as exc:
        print(f"coi: {exc}", file=sys.stderr)
        return 2
    umask = os.umask(0o077)  # the store holds all mail and password hashes: 0600, dirs 0700
    try:
        return _run_locked(config, args.demo, workers)
    finally:
        os.umask(umask)


def worker_count(config: ServerConfig) -> int:
    """How many processes serve: `workers`, or by default one per core the process may run
    on with PostgreSQL; SQLite serves from one process (one writer, events in memory)."""
    if not config.store:
        if config.workers > 1:
            raise ConfigError(
                f"--workers {config.workers}: SQLite serves from one process; use"
                " --store postgresql://... for several"
            )
        return 1
    if config.workers:
        return config.workers
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _run_locked(config: ServerConfig, demo: bool, workers: int = 1) -> int:
    try:
        lock = lock_data_dir(config.data_dir)
    except OSError as exc:
        print(f"coi: cannot start: {exc}", file=sys.stderr)
        return 1
    try:
        if workers > 1:
            from coi.cli.workers import supervise

            return reporting(lambda: supervise(config, demo, workers))
        return reporting(lambda: asyncio.run(serve(config, demo=demo)))
    finally:
        lock.close()


def reporting(run: Callable[[], int]) -> int:
    """Runs the server; what keeps it from starting is one line on stderr, not a traceback."""
    try:
        return run()
    except KeyboardInterrupt:
        return 0
    except ConfigError as exc:  # a listen address that is not HOST:PORT, say
        print(f"coi: {exc}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as exc:
        print(f"coi: cannot start: {exc}", file=sys.stderr)
        return 1


def lock_data_dir(data_dir: Path) -> IO[str]:
    """One ``coi serve`` per data directory: a second one's IDLE clients would never hear
    of mail the first delivers, and both would work one relay queue. The lock is released
    by the kernel when the process ends, however it ends."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    for path in (data_dir, *data_dir.glob("*.sqlite3*"), *data_dir.glob("*.pem")):
        if path.stat().st_mode & 0o077:  # made before coi kept them private
            path.chmod(0o700 if path.is_dir() else 0o600)
    lock = open(data_dir / "serve.lock", "a+", encoding="utf-8")  # noqa: SIM115
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        pid = lock.read().strip() or "?"
        lock.close()
        raise OSError(
            f"another coi serve (pid {pid}) uses {data_dir}; stop it or give another --data-dir"
        ) from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock


async def ensure_demo_users(store: UserStore, config: ServerConfig) -> list[tuple[str, str]]:
    """Creates the demo accounts once; their passwords are kept in the data directory."""
    path = config.data_dir / "demo-passwords.txt"
    known: dict[str, str] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            address, _, password = line.partition(" ")
            known[address] = password
    for address in DEMO_USERS:
        if store.get_user(address) is not None and address in known:
            continue
        password = known.get(address) or secrets.token_urlsafe(9)
        try:
            await store.add_user(address, hash_password(password), DEFAULT_MAILBOXES)
        except UserExists:
            await store.set_password(address, hash_password(password))
        known[address] = password
    path.write_text("".join(f"{a} {p}\n" for a, p in known.items()), encoding="utf-8")
    path.chmod(0o600)
    return [(a, known[a]) for a in DEMO_USERS]


def certificate(config: ServerConfig) -> tuple[Path, Path]:
    """The TLS certificate and key files: the configured ones, or a self-signed pair made
    once in the data directory (before a supervisor forks: all workers share it)."""
    if config.tls_cert is not None and config.tls_key is not None:
        cert, key = config.tls_cert, config.tls_key
        for what, path in (("--tls-cert", cert), ("--tls-key", key)):
            if not path.is_file():
                raise RuntimeError(f"{what} {path}: no such file")
        return cert, key
    if config.tls_cert is not None or config.tls_key is not None:
        raise RuntimeError("--tls-cert and --tls-key must be given together")
    return ensure_self_signed(config.data_dir, config.hostname)


async def serve(
    config: ServerConfig,
    *,
    demo: bool = False,
    sockets: Mapping[str, Sequence[socket.socket]] | None = None,
    primary: bool = True,
    ready: Callable[[], None] | None = None,
) -> int:
    """Serves until SIGTERM/SIGINT. Alone (`ready` None) it binds its listeners and prints
    where it listens; as a worker of coi.cli.workers it serves the supervisor's `sockets`
    and calls `ready` once it accepts. The `primary` process (the only one, or worker 1)
    also does what must happen once: demo accounts, moving an old SQLite relay queue into
    PostgreSQL."""
    from coi.delivery.service import DeliveryService  # heavy (aiosmtpd, dns, dkim): lazily
    from coi.webpush.service import WebPushService  # heavy (aiohttp): lazily

    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(config)
    cert, key = certificate(config)
    context = server_context(cert, key)
    keys = load_keys(config.data_dir, config.webpush_vapid_key)
    server = ImapServer(config, store, context, keys)
    delivery = DeliveryService(config, store, context)
    webpush = WebPushService(config, store, keys)
    await store.warm_up()
    accounts = await ensure_demo_users(store, config) if demo else []
    if primary and config.store:
        from coi.delivery.pgqueue import PgQueue

        if isinstance(delivery.queue, PgQueue):
            await asyncio.to_thread(delivery.queue.import_sqlite, config.data_dir / "queue.sqlite3")
    metrics_runner = None
    where = parse_listen(config.metrics, "--metrics")
    if where is not None and (sockets is None or "metrics" in sockets):
        from coi import metrics  # prometheus_client: only when asked for

        # before the listeners: every connection is counted
        metrics_runner = await metrics.start(
            *where,
            store.database_bytes,
            delivery.queue.count,
            None if sockets is None else sockets["metrics"],
        )
    elif where is not None:  # a worker other than the first: worker 1 serves its counts
        from coi import metrics

        metrics.count_only()
    await server.start(sockets)
    try:
        await delivery.start(sockets)
    except BaseException:
        if metrics_runner is not None:
            await metrics_runner.cleanup()
        await server.stop()
        await webpush.stop()
        store.close()
        raise
    webpush.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload_certificate, context, cert, key)
    listening = [*server.addresses, *delivery.addresses]
    if metrics_runner is not None:
        listening += [("metrics", str(a[0]), int(a[1])) for a in metrics_runner.addresses]
    if ready is None:
        print("\n".join(banner(config, listening, accounts)), flush=True)
    else:
        ready()
    log.info("started listeners=%s", ",".join(f"{h}:{p}" for _, h, p in listening))
    await stop.wait()
    log.info("stopping")
    if metrics_runner is not None:
        await metrics_runner.cleanup()
    await delivery.stop()
    await server.stop()
    await webpush.stop()
    store.close()
    log.info("stopped")
    return 0


def banner(
    config: ServerConfig,
    listening: Sequence[tuple[str, str, int]],
    accounts: Sequence[tuple[str, str]],
    workers: Sequence[int] = (),
) -> list[str]:
    """What `coi serve` prints once it accepts: where it listens, and how to try it."""
    lines = [f"coi {config.data_dir} ready"]
    if config.store:
        lines.append(f"  store       {redact(config.store)} (PostgreSQL)")
    if workers:
        lines.append(f"  workers     {len(workers)} (pids {' '.join(map(str, workers))})")
    modes = {
        "imap": "STARTTLS",
        "imaps": "implicit TLS",
        "lmtp": "from the MTA",
        "submission": "STARTTLS",
        "submissions": "implicit TLS",
    }
    for kind, host, port in listening:
        if kind == "metrics":
            lines.append(f"  metrics     http://{host}:{port}/metrics (Prometheus)")
        else:
            lines.append(f"  {kind:11} {host}:{port} ({modes[kind]})")
    for address, password in accounts:
        lines.append(f"  demo account {address} password {password}")
    imap = [a for a in listening if a[0] in ("imap", "imaps")]
    delivery = [a for a in listening if a[0] in ("lmtp", "submission", "submissions")]
    lines += _chat_hint(list(accounts), imap, delivery, config.data_dir)
    if not config.allow_plaintext_auth:
        lines.append("  plaintext login: loopback only (use TLS or --allow-plaintext-auth)")
    return lines


def reload_certificate(context: ssl.SSLContext, cert: Path, key: Path) -> None:
    """SIGHUP: the renewed certificate is used for new connections (as Dovecot and Postfix
    do on reload); a broken one is refused and the one in use kept."""
    try:
        context.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        log.warning("SIGHUP: certificate %s not reloaded, keeping the old one: %s", cert, exc)
        return
    log.info("SIGHUP: certificate %s reloaded", cert)


def _chat_hint(
    accounts: list[tuple[str, str]],
    imap: list[tuple[str, str, int]],
    delivery: list[tuple[str, str, int]],
    data_dir: Path,
) -> list[str]:
    """How to chat as the first demo user with the coi client (docs/client.md)."""
    plain = [(h, p) for kind, h, p in imap if kind == "imap"]
    submission = [(h, p) for kind, h, p in delivery if kind == "submission"]
    if not accounts or not plain or not submission:
        return []
    (ihost, iport), (shost, sport) = plain[0], submission[0]
    address = accounts[0][0]
    profile = data_dir / "profiles" / address.partition("@")[0]
    coi = sys.argv[0] if Path(sys.argv[0]).name == "coi" else "coi"
    return [
        f"  chat as {address} (password above):",
        f"    {coi} account add {address} --imap {ihost}:{iport} --smtp {shost}:{sport}"
        f" --security plain --profile {profile}",
        f"    {coi} send bob@example.org hello --profile {profile}",
    ]
