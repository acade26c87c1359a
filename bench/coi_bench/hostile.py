"""Hostile pre-login load (issue 16, "Done means"): many connections that never log in,
each sending what costs a server most before authentication, while one logged-in user
runs NOOPs and newcomers try to log in.

Attackers come from many loopback addresses (127.0.0.2 ... on Linux all of 127/8 is
local), so the per-address limit does not stop them and the global limit on connections
not logged in (`max_unauthenticated_connections`) is what is measured. Each attacker
reconnects as soon as the server drops it, so the pressure holds for the whole run.

Kinds, in turn:
- literals: `LOGIN {8192+}` parts as fast as the socket takes them (a command built of
  many small non-synchronizing literals), until the server ends the connection
- huge-sync: `LOGIN {60000000}` and wait for the answer, again and again
- huge-nonsync: `LOGIN {60000000+}` followed by megabytes of data
- trickle: `LOGIN ` then one byte a second
- long-line: 60,000 bytes without a line end, then one byte a second
- wrong-password: LOGIN with a wrong password, again and again (password hashing cost)

Reported: the server's peak and final resident memory (VmRSS summed over its processes),
the logged-in user's NOOP latency (median, p99, max), how many newcomers logged in, and
how the attack connections ended. Run it:

    PYTHONPATH=bench .venv/bin/python -m coi_bench.hostile --connections 500 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from coi_bench.servers import Server, memory_kib, start_coi

USER, PASSWORD = "alice@bench.test", "pw-alice"
NEWCOMER, NEWCOMER_PASSWORD = "bob@bench.test", "pw-bob"
KINDS = ["literals", "huge-sync", "huge-nonsync", "trickle", "long-line", "wrong-password"]
PER_ADDRESS = 5  # attackers per source address, well under the per-address limit


async def _expect_line(reader: asyncio.StreamReader, timeout: float = 30.0) -> bytes:
    return await asyncio.wait_for(reader.readline(), timeout)


async def _literals(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"t LOGIN {8192+}\r\n" + b"x" * 8192)
    while True:
        writer.write(b" {8192+}\r\n" + b"x" * 8192)
        await writer.drain()


async def _huge_sync(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        writer.write(b"t LOGIN {60000000}\r\n")
        await writer.drain()
        if not await _expect_line(reader):
            return


async def _huge_nonsync(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"t LOGIN {60000000+}\r\n")
    chunk = b"y" * (1 << 20)
    while True:
        writer.write(chunk)
        await writer.drain()


async def _trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"t LOGIN ")
    while True:
        writer.write(b"a")
        await writer.drain()
        await asyncio.sleep(1.0)


async def _long_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"t LOGIN " + b"z" * 60000)
    await _trickle(reader, writer)


async def _wrong_password(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    n = 0
    while True:
        n += 1
        writer.write(f'w{n} LOGIN {USER} "wrong-{n}"\r\n'.encode())
        await writer.drain()
        while True:
            line = await _expect_line(reader)
            if not line or line.startswith(f"w{n} ".encode()) or line.startswith(b"* BYE"):
                break
        if not line or line.startswith(b"* BYE"):
            return


BEHAVIOURS: dict[str, Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]] = {
    "literals": _literals,
    "huge-sync": _huge_sync,
    "huge-nonsync": _huge_nonsync,
    "trickle": _trickle,
    "long-line": _long_line,
    "wrong-password": _wrong_password,
}


async def _attacker(
    server: Server, kind: str, source: str, deadline: float, ends: Counter[str]
) -> None:
    behaviour = BEHAVIOURS[kind]
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection(
                server.host, server.imap_port, local_addr=(source, 0), limit=1 << 20
            )
        except OSError:
            ends["connect failed"] += 1
            await asyncio.sleep(0.1)
            continue
        try:
            greeting = await _expect_line(reader)
            if greeting.startswith(b"* BYE"):
                ends["refused at connect"] += 1
            else:
                async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                    await behaviour(reader, writer)
                ends[f"{kind}: closed by server"] += 1
        except TimeoutError:
            ends[f"{kind}: still open at the end"] += 1
        except (ConnectionError, asyncio.IncompleteReadError):
            ends[f"{kind}: closed by server"] += 1
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        await asyncio.sleep(0.05)


async def _session(server: Server, address: str, password: str) -> tuple[Any, Any] | None:
    """A logged-in session, or None when the server refused it."""
    reader, writer = await asyncio.open_connection(server.host, server.imap_port)
    greeting = await _expect_line(reader)
    if not greeting.startswith(b"* OK"):
        writer.close()
        return None
    writer.write(f'l LOGIN {address} "{password}"\r\n'.encode())
    while True:
        line = await _expect_line(reader)
        if not line or line.startswith(b"l ") or line.startswith(b"* BYE"):
            break
    if not line.startswith(b"l OK"):
        writer.close()
        return None
    return reader, writer


async def _command(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tag: str) -> float:
    start = time.perf_counter()
    writer.write(f"{tag} NOOP\r\n".encode())
    while not (await _expect_line(reader)).startswith(tag.encode() + b" "):
        pass
    return time.perf_counter() - start


async def attack(
    server: Server, connections: int, seconds: float, kinds: list[str]
) -> dict[str, int]:
    """Runs the attackers until the deadline; how their connections ended."""
    deadline = time.monotonic() + seconds
    ends: Counter[str] = Counter()
    await asyncio.gather(
        *(
            _attacker(
                server, kinds[i % len(kinds)], f"127.0.0.{2 + i // PER_ADDRESS}", deadline, ends
            )
            for i in range(connections)
        )
    )
    return dict(sorted(ends.items()))


async def run(
    connections: int, seconds: float, server: Server, kinds: list[str] = KINDS
) -> dict[str, Any]:
    """The attack runs in a process of its own, so its work does not slow the measuring."""
    session = await _session(server, USER, PASSWORD)
    assert session is not None, "the logged-in user could not log in before the attack"
    reader, writer = session
    baseline = memory_kib(server.pid)["rss_kib"]
    attacker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "coi_bench.hostile",
        "--attack-port",
        str(server.imap_port),
        "--connections",
        str(connections),
        "--seconds",
        str(seconds),
        "--kinds",
        ",".join(kinds),
        stdout=asyncio.subprocess.PIPE,
    )
    await asyncio.sleep(1.0)  # the attack builds up
    noops: list[float] = []
    peak = baseline
    logins = Counter[str]()
    deadline = time.monotonic() + seconds - 2.0
    next_login = time.monotonic()
    n = 0
    while time.monotonic() < deadline:
        n += 1
        noops.append(await _command(reader, writer, f"n{n}"))
        if n % 10 == 0:
            peak = max(peak, memory_kib(server.pid)["rss_kib"])
        if time.monotonic() >= next_login:  # a newcomer every second
            next_login += 1.0
            try:
                newcomer = await _session(server, NEWCOMER, NEWCOMER_PASSWORD)
            except (OSError, TimeoutError):
                newcomer = None
            logins["logged in" if newcomer else "refused"] += 1
            if newcomer:
                newcomer[1].close()
        await asyncio.sleep(0.02)
    out, _ = await attacker.communicate()
    peak = max(peak, memory_kib(server.pid)["rss_kib"])
    await asyncio.sleep(2.0)  # let the server close what the attackers left
    after = memory_kib(server.pid)["rss_kib"]
    writer.close()
    noops.sort()
    return {
        "connections": connections,
        "seconds": seconds,
        "rss_baseline_kib": baseline,
        "rss_peak_kib": peak,
        "rss_after_kib": after,
        "noop_count": len(noops),
        "noop_median_ms": round(statistics.median(noops) * 1000, 2),
        "noop_p99_ms": round(noops[max(0, int(len(noops) * 0.99) - 1)] * 1000, 2),
        "noop_max_ms": round(noops[-1] * 1000, 2),
        "newcomer_logins": dict(logins),
        "attack_ends": json.loads(out),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="coi_bench.hostile", description=__doc__.split("\n\n")[0])
    p.add_argument("--connections", type=int, default=500, help="attack connections (500)")
    p.add_argument("--seconds", type=float, default=30.0, help="length of the attack (30)")
    p.add_argument("--kinds", default=",".join(KINDS), help="comma-separated attack kinds")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--attack-port", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    kinds = args.kinds.split(",")
    if unknown := set(kinds) - set(KINDS):
        p.error(f"unknown kinds: {', '.join(sorted(unknown))} (known: {', '.join(KINDS)})")
    if args.attack_port:  # the attacking process that run() starts
        target = Server("coi", imap_port=args.attack_port)
        print(json.dumps(asyncio.run(attack(target, args.connections, args.seconds, kinds))))
        return 0
    server = start_coi({USER: PASSWORD, NEWCOMER: NEWCOMER_PASSWORD}, limit=100)
    try:
        result = asyncio.run(run(args.connections, args.seconds, server, kinds))
        if server.proc is None or server.proc.poll() is not None:
            print("the server died during the attack", file=sys.stderr)
            return 1
    finally:
        server.stop()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:>20}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
