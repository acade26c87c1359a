"""In-process cost of single IMAP commands on coi's command path (issue 18), no sockets:

    PYTHONPATH=src:bench .venv/bin/python -m coi_bench.micro [--repeat 5] [--count 2000]

A `Session` on a temporary SQLite store with a transport that only counts bytes: each
command is framed, parsed and executed `count` times, `repeat` rounds, and the median
(or, with --min, the fastest) round's microseconds of CPU (the process's, all its
threads) per command are printed. It measures framing, parsing, dispatch, the handler,
store reads and response rendering; not the
socket or the event loop's I/O (the `load` workload measures those). Commands that
write (STORE) include the writer thread's commit."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from coi.auth.passwords import hash_password
from coi.config import ServerConfig
from coi.imap.server.server import ImapServer
from coi.imap.server.session import Session, Transport
from coi.imap.wire.commands import parse_command
from coi.imap.wire.framing import CommandFramer, CommandReady
from coi.mail.prepare import prepare
from coi_bench import mailgen

ADDRESS = "micro@example.org"
MESSAGES = 40

COMMANDS = [
    b"NOOP",
    b"FETCH 1:20 (UID FLAGS)",
    b"FETCH 1:20 (UID FLAGS MODSEQ)",
    b"FETCH 40:* (UID FLAGS)",
    b"UID FETCH 1:* (FLAGS)",
    b"FETCH 1:5 (UID RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE)",
    b"FETCH 1:3 (UID BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE MESSAGE-ID)])",
    b"UID FETCH 7 (RFC822.SIZE BODY.PEEK[])",
    b"SEARCH UNSEEN",
    b"STATUS Other (MESSAGES UIDNEXT UIDVALIDITY UNSEEN)",
    b"STORE 1:5 +FLAGS (\\Seen $Done)",
    b"STORE 1:5 -FLAGS.SILENT (\\Seen $Done)",
]


class Sink(Transport):
    """Counts what the session writes."""

    __slots__ = ("loopback", "octets", "peer", "secure")

    def __init__(self) -> None:
        self.octets = 0
        self.secure = True
        self.loopback = True
        self.peer = "127.0.0.1"

    def write(self, data: bytes) -> None:
        self.octets += len(data)

    def flush(self) -> None:
        pass

    async def drain(self) -> None:
        pass


async def _run(session: Session, line: bytes) -> None:
    framer = CommandFramer()
    framer.feed(line + b"\r\n")
    event = framer.next_event()
    assert isinstance(event, CommandReady)
    await session.execute(parse_command(event))


async def main(args: argparse.Namespace) -> None:
    from coi.cli.common import open_store

    tmp = Path(tempfile.mkdtemp(prefix="coi-micro-"))
    policy = {"fsync": args.fsync} if args.fsync != "always" else {}  # main has no setting
    config = ServerConfig(data_dir=tmp, **policy)
    store = open_store(config)
    server = ImapServer(config, store, None)
    await store.add_user(ADDRESS, hash_password("pw"), [("Other", "")])
    sink = Sink()
    session = Session(server, sink)
    await _run(session, b'a LOGIN micro@example.org "pw"')
    for i in range(MESSAGES):
        data = mailgen.big_mailbox_message(i, ADDRESS)
        await _run(session, b"b APPEND INBOX {%d+}\r\n" % len(data) + data)
    await _run(session, b"c ENABLE CONDSTORE")
    await _run(session, b"d SELECT INBOX")
    for command in COMMANDS:
        if args.only and not any(o.encode() in command for o in args.only):
            continue
        rounds = []
        for _ in range(args.repeat):
            t0 = time.process_time()  # CPU of all threads: robust to other processes' load
            for n in range(args.count):
                await _run(session, b"t%d " % n + command)
            rounds.append((time.process_time() - t0) / args.count * 1e6)
        figure = min(rounds) if args.min else statistics.median(rounds)
        print(f"{figure:8.1f} us  {command.decode()}", flush=True)
    session.close()
    store.close()
    if not args.only or "prepare" in args.only:
        print(f"{_prepare_cost(args):8.1f} us  prepare (index, search data, preview)", flush=True)


def _prepare_cost(args: argparse.Namespace) -> float:
    """CPU per message of indexing new messages (`coi.mail.prepare`, done at APPEND and
    delivery): the benchmark's APPEND messages and its delivery mix."""
    messages = [mailgen.big_mailbox_message(i, ADDRESS) for i in range(600)]
    messages += mailgen.delivery_mix(1, 300, ADDRESS)
    rounds = []
    for _ in range(args.repeat):
        t0 = time.process_time()
        for data in messages:
            prepare(data, (), None)
        rounds.append((time.process_time() - t0) / len(messages) * 1e6)
    return min(rounds) if args.min else statistics.median(rounds)


def cli() -> int:
    p = argparse.ArgumentParser(prog="coi_bench.micro")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--only", action="append", default=[])
    p.add_argument("--min", action="store_true", help="the fastest round (noisy machine)")
    p.add_argument("--fsync", choices=["always", "optimized"], default="always")
    asyncio.run(main(p.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(cli())
