"""Profile coi under one workload with py-spy (pip install py-spy):

    PYTHONPATH=bench .venv/bin/python -m coi_bench.profile big --size 20000 -o /tmp/big
    PYTHONPATH=bench .venv/bin/python -m coi_bench.profile delivery --rounds 2 -o /tmp/lmtp
    PYTHONPATH=bench .venv/bin/python -m coi_bench.profile many --store postgresql://...
    PYTHONPATH=bench .venv/bin/python -m coi_bench.profile load --mix store --gil

Starts coi, does the untimed set-up (fill), then records the server with
`py-spy record --format raw` while the timed part runs, and prints the functions with the
largest inclusive and self share of samples (from the collapsed stacks). With `--gil`
only samples taken while coi holds the GIL count: its CPU, where the default also counts
time spent waiting (on a busy machine a `send` that wakes the client and is descheduled
shows as a quarter of the time; the kernel's own share of it is small)."""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from coi_bench import load, mailgen, servers, stress, workloads
from coi_bench.__main__ import users_for
from coi_bench.clients import Imap
from coi_bench.workloads import QUICK


async def big_ops(
    server: servers.Server, sizes: workloads.Sizes, rounds: int, only: list[str]
) -> None:
    user = workloads.user_list(server, "big")[0]
    c = await Imap.login(server.host, server.imap_port, *user)
    n, k = sizes.big_mailbox, sizes.fetch_count
    rng = f"{n // 2 - k // 2}:{n // 2 + k // 2 - 1}"
    for _ in range(rounds):
        for cmd in (
            "SELECT INBOX",
            "UID FETCH 1:* (FLAGS)",
            f"FETCH {rng} (ENVELOPE BODYSTRUCTURE)",
            f"FETCH {rng} (BODY.PEEK[])",
            f"SEARCH TEXT {mailgen.RARE_WORD}",
            f'SEARCH FROM "{mailgen.SEARCH_FROM}"',
        ):
            if only and not any(o in cmd for o in only) and not cmd.startswith("SELECT"):
                continue
            t0 = time.perf_counter()
            await c.ok(cmd)
            print(f"{cmd[:40]:40} {(time.perf_counter() - t0) * 1000:8.1f} ms", flush=True)
    await c.logout()


def _function(frame: str) -> str:
    """`name (file.py:123)` -> `name (file.py)`: shares per function, not per line."""
    head, sep, tail = frame.rpartition(":")
    return head + ")" if sep and tail[:-1].isdigit() else frame


def summarize(raw: Path, top: int = 25) -> str:
    total = 0
    incl: collections.Counter[str] = collections.Counter()
    self_: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().split("\n"):  # not splitlines: a frame may hold \x1c-\x1e
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [_function(f) for f in stack.split(";")]
        for f in set(frames):
            incl[f] += n
        self_[frames[-1]] += n
    out = [f"{total} samples", "-- inclusive"]
    out += [f"{100 * v / total:5.1f}%  {k}" for k, v in incl.most_common(top)]
    out += ["-- self"]
    out += [f"{100 * v / total:5.1f}%  {k}" for k, v in self_.most_common(top)]
    return "\n".join(out)


async def run(args: argparse.Namespace, server: servers.Server, sizes: workloads.Sizes) -> None:
    if args.workload == "big":
        user = workloads.user_list(server, "big")[0]
        await workloads.fill(
            server, user, sizes.big_mailbox, lambda i: mailgen.big_mailbox_message(i, user[0])
        )
    elif args.workload == "many":
        await workloads.prepare_user_mailboxes(server, sizes)
    elif args.workload == "load":
        world = stress.World("coi")
        chosen = stress.users_for_clients(dict(server.users), args.clients, 5)
        if args.shared:
            chosen = chosen[:1]
        await stress.prepare(world, server.host, server.imap_port, chosen, 30, 7)
    spy = shutil.which("py-spy") or str(servers.VENV_BIN / "py-spy")
    out = str(args.output) + ".txt"
    recs: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        cmd = [spy, "record", "--format", "raw", "--rate", "200", "--pid", str(server.pid)]
        cmd += ["--threads", "--nonblocking", "-o", out]
        if args.gil:  # CPU only: by default waits (a descheduled send, select) count too
            cmd.append("--gil")
        if args.workers > 1:  # the supervisor's workers
            cmd.append("--subprocesses")
        recs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL))

    if args.workload not in ("many", "load"):
        start()
        await asyncio.sleep(1.0)
    try:
        if args.workload == "big":
            await big_ops(server, sizes, args.rounds, args.only)
        elif args.workload == "many":
            print(await workloads.many_clients(server, sizes, 1, start))
        elif args.workload == "login":
            print(await workloads.idle(server, sizes, 1))
        elif args.workload == "append":
            for _ in range(args.rounds):
                print(await workloads.append(server, sizes, 8))
        elif args.workload == "load":
            mix = {args.mix: 1.0} if args.mix else None
            for r in range(args.rounds):
                res, cpu = await load.measured(
                    server,
                    world,
                    chosen,
                    args.clients,
                    args.seconds,
                    7 + r,
                    mix,
                    on_ready=start if r == 0 and not args.no_profile else None,
                )
                ops = sum(res.ops.values())
                print(
                    f"load round {r}: {ops / res.seconds:8.1f} op/s  "
                    f"{cpu / max(1, ops) * 1000:6.3f} ms CPU/op  {cpu / res.seconds:4.2f} cores",
                    flush=True,
                )
                if args.latency:
                    print(latency_table(res.latency))
        elif args.workload == "delivery":
            for r in range(args.rounds):
                for conns in (1, 8):
                    print(conns, await workloads.delivery(server, sizes, conns, r))
    finally:
        for rec in recs:
            rec.send_signal(2)
            rec.wait(60)


def latency_table(latency: dict[str, list[float]]) -> str:
    """Per command kind: count, mean and p99 latency, and its share of all the time the
    clients waited (what to make faster first, when the load is bound by latency)."""
    total = sum(sum(v) for v in latency.values()) or 1.0
    rows = sorted(latency.items(), key=lambda kv: -sum(kv[1]))
    out = [f"  {'kind':22} {'ops':>7} {'mean ms':>8} {'p99 ms':>8} {'share':>6}"]
    for kind, values in rows:
        values = sorted(values)
        mean = sum(values) / len(values) * 1000
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))] * 1000
        share = 100 * sum(values) / total
        out.append(f"  {kind:22} {len(values):7} {mean:8.2f} {p99:8.2f} {share:5.1f}%")
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(prog="coi_bench.profile")
    p.add_argument("workload", choices=["big", "many", "login", "append", "delivery", "load"])
    p.add_argument("--shared", action="store_true", help="load: all sessions on one mailbox")
    p.add_argument("--mix", help="load: only this stress.MIX command kind (e.g. fetch_flags)")
    p.add_argument("--fsync", choices=["always", "optimized"], default="always")
    p.add_argument("--no-profile", action="store_true", help="load: measure only, no py-spy")
    p.add_argument("--latency", action="store_true", help="load: latency per command kind")
    p.add_argument(
        "--gil", action="store_true", help="sample only while the GIL is held (CPU, not waits)"
    )
    p.add_argument("--size", type=int, default=20000, help="big mailbox messages")
    p.add_argument("--clients", type=int, default=200, help="many: 200; load: give 10")
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--messages", type=int, default=300, help="delivery: messages per run")
    p.add_argument("--only", action="append", default=[], help="big: commands containing this")
    p.add_argument("-o", "--output", type=Path, default=Path("/tmp/coi-profile"))
    p.add_argument(
        "--store", help="coi on this (empty) PostgreSQL database (as COI_BENCH_STORE does)"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="coi serve --workers (PostgreSQL; py-spy samples every worker)",
    )
    args = p.parse_args()
    if args.store:
        os.environ["COI_BENCH_STORE"] = args.store  # read by servers.start_coi
    sizes = dataclasses.replace(
        QUICK,
        big_mailbox=args.size,
        fetch_count=1000,
        many_clients=args.clients,
        many_seconds=args.seconds,
        many_mailbox=200,
        idle_counts=(200,),
        users=8,
        delivery_messages=args.messages,
    )
    workloads.raise_nofile()
    extra = ["--fsync", args.fsync] if args.fsync != "always" else []  # older coi: no flag
    if args.store:
        extra += ["--workers", str(args.workers)]
    server = servers.start_coi(users_for(sizes), 100_000, extra=extra)
    try:
        asyncio.run(run(args, server, sizes))
    finally:
        server.stop()
    if not (args.workload == "load" and args.no_profile):
        print(summarize(Path(str(args.output) + ".txt")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
