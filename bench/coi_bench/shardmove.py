"""How long `coi shard move` holds a user: a mailbox of N messages moved between two
shards on a private cluster with fsync on (docs/scale-out.md: Sharding).

    PYTHONPATH=src:bench python -m coi_bench.shardmove --messages 5000 --size 20000

Prints the seconds of each move (there and back, alternated `--repeat` times) with
messages/s and MB/s. The user's writes wait for the whole move; other users do not.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from coi.mail.prepare import prepare
from coi.store.postgres.moving import move_user
from coi.store.postgres.sharded import open_sharded
from coi.store.postgres.store import PostgresStore
from coi_bench.servers import start_postgres


def _message(n: int, size: int) -> bytes:
    line = f"lorem ipsum dolor sit amet {n} " * 3 + "\r\n"
    body = line * max(1, size // len(line))
    return (
        f"From: Carol <carol@example.net>\r\nTo: alice@example.org\r\nSubject: note {n}\r\n"
        f"Message-ID: <note-{n}@example.net>\r\n\r\n{body}"
    ).encode()


async def main(args: argparse.Namespace) -> None:
    from tests import pg

    cluster = start_postgres()
    try:
        directory = pg.sharded_directory(cluster)
        store = open_sharded(PostgresStore(directory))
        assert store is not None
        try:
            user = await store.add_user("alice@example.org", "x", [])
            inbox = store.get_mailbox(user.id, "INBOX")
            assert inbox is not None
            for start in range(0, args.messages, 200):
                batch = range(start, min(start + 200, args.messages))
                new = [prepare(_message(n, args.size), (), None) for n in batch]
                await store.append(inbox.id, new)
            megabytes = args.messages * args.size / 1e6
            print(f"{args.messages} messages of {args.size} bytes ({megabytes:.0f} MB)")
            for _ in range(args.repeat):
                for target in (1, 0):
                    started = time.perf_counter()
                    done = await move_user(directory, "alice@example.org", target)
                    took = time.perf_counter() - started
                    assert done.messages == args.messages
                    print(
                        f"to shard {target}: {took:.2f} s, {args.messages / took:,.0f} messages/s,"
                        f" {megabytes / took:.1f} MB/s"
                    )
        finally:
            store.close()
    finally:
        cluster.stop()


def cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--size", type=int, default=20000, help="bytes per message")
    parser.add_argument("--repeat", type=int, default=2, help="moves there and back")
    asyncio.run(main(parser.parse_args()))
    return 0


if __name__ == "__main__":
    raise SystemExit(cli())
