"""The `load` workload (issue 18, "measure first"): pure command load, no LOGIN/LOGOUT per
cycle, against both servers alternating, with the server's CPU time per command.

Sessions log in and SELECT once (untimed), then run the stress client's command mix
(`stress.MIX`) with its checks off for `seconds`: operations per second, and the server's
CPU seconds (user + system, summed over its process and all its descendants, from
/proc/<pid>/stat deltas, not wall time) divided by the operations. Run twice: sessions
spread over users (5 per user, as `stress`) and all sessions on one user's mailbox.

Then one phase per command kind (`PHASES`), each running only that command for
`phase_seconds`: server CPU milliseconds per command, the per-command cost table."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from coi_bench import stress
from coi_bench.servers import Server, process_tree

TICK = os.sysconf("SC_CLK_TCK")

# (key, label, mix): read-only commands first; the ones that grow or shrink mailboxes last
PHASES: list[tuple[str, str, dict[str, float]]] = [
    ("noop", "NOOP", {"noop": 1}),
    ("fetch_flags", "FETCH a:b (UID FLAGS), 1-20 messages", {"fetch_flags": 1}),
    ("sync", "UID FETCH 1:* (FLAGS) [(CHANGEDSINCE m)]", {"sync": 1}),
    (
        "fetch_envelope",
        "FETCH a:b (UID RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE), 1-5",
        {"fetch_envelope": 1},
    ),
    ("fetch_headers", "FETCH a:b (BODY.PEEK[HEADER.FIELDS (...)]), 1-3", {"fetch_headers": 1}),
    ("fetch_body", "UID FETCH u (RFC822.SIZE BODY.PEEK[])", {"fetch_body": 1}),
    ("fetch_part", "FETCH n (BODY[1] / BODY[TEXT] / ...), sets \\Seen", {"fetch_part": 1}),
    ("search", "SEARCH (UNSEEN, KEYWORD, FROM, DELETED, MODSEQ)", {"search": 1}),
    ("status", "STATUS (MESSAGES UIDNEXT UIDVALIDITY UNSEEN ...)", {"status": 1}),
    ("select", "SELECT/EXAMINE + FETCH 1:* (UID FLAGS)", {"select": 1}),
    ("store", "[UID] STORE ±FLAGS[.SILENT] 1-5 messages", {"store": 1}),
    ("append", "APPEND (0.3-20 KB)", {"append": 1}),
    ("copy", "[UID] COPY 1-3 messages", {"copy": 1}),
    ("move", "[UID] MOVE 1-3 messages (SELECT the other box once empty)", {"move": 1}),
    ("delete_expunge", "STORE +FLAGS.SILENT (\\Deleted) / EXPUNGE", {"delete": 1, "expunge": 1}),
]


def cpu_seconds(root: int) -> float:
    """utime + stime of root and its live descendants (threads included)."""
    total = 0
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / TICK


async def measured(
    server: Server,
    world: stress.World,
    users: list[tuple[str, str]],
    clients: int,
    seconds: float,
    seed: int,
    mix: dict[str, float] | None = None,
    on_ready: Callable[[], None] | None = None,
) -> tuple[stress.RunResult, float]:
    """One run without checks; returns it and the server CPU seconds it took (on_ready: called
    once the sessions are logged in, e.g. to start a profiler)."""
    marks: list[float] = []

    def ready() -> None:
        marks.append(sum(map(cpu_seconds, server.cpu_pids)))
        if on_ready is not None:
            on_ready()

    res = await stress.run(
        world,
        server.host,
        server.imap_port,
        users,
        clients,
        seconds,
        seed,
        check=False,
        mix=mix,
        on_ready=ready,
        on_done=lambda: marks.append(sum(map(cpu_seconds, server.cpu_pids))),
    )
    return res, marks[1] - marks[0]


async def command_load(
    server: Server,
    world: stress.World,
    users: list[tuple[str, str]],
    clients: int,
    seconds: float,
    phase_seconds: float,
    seed: int,
    phases: bool = True,
) -> dict[str, float]:
    """Figures of one server: mixed load spread and shared, then the per-command phases."""
    out: dict[str, float] = {}
    for key, chosen in (("spread", users), ("shared", users[:1])):
        res, cpu = await measured(server, world, chosen, clients, seconds, seed)
        ops = sum(res.ops.values())
        out[f"{key}_ops_per_s"] = ops / res.seconds
        out[f"{key}_cpu_ms_per_op"] = cpu / max(1, ops) * 1000
        out[f"{key}_cpu_share"] = cpu / res.seconds  # cores busy
        out[f"{key}_disconnects"] = float(res.disconnects)
    if not phases:
        return out
    for key, _, mix in PHASES:
        t0 = time.perf_counter()
        res, cpu = await measured(server, world, users, clients, phase_seconds, seed, mix)
        ops = sum(res.ops.values())
        out[f"cmd_{key}_cpu_ms"] = cpu / max(1, ops) * 1000
        out[f"cmd_{key}_ops_per_s"] = ops / res.seconds
        out[f"cmd_{key}_no"] = float(sum(res.no.values()))
        del t0
    return out
