"""bench/run: coi against Debian's Dovecot on loopback, same users, same workloads, one table.

Ratio: coi's advantage, >= 1.0 means coi is at least as good (throughput coi/Dovecot,
times/latencies/memory Dovecot/coi)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from coi_bench import client, load, push, servers, stress, workloads
from coi_bench.servers import Server
from coi_bench.workloads import QUICK, TINY, Sizes

FULL = Sizes()
RESULTS = Path(__file__).resolve().parents[1] / "results"

# (workload, figure key, label, unit, higher is better)
ROWS = [
    ("delivery1", "msgs_per_s", "delivery, 1 connection", "msg/s", True),
    ("delivery8", "msgs_per_s", "delivery, 8 connections", "msg/s", True),
    ("append1", "msgs_per_s", "APPEND, 1 connection", "msg/s", True),
    ("append8", "msgs_per_s", "APPEND, 8 connections", "msg/s", True),
    ("big", "select_ms", "big mailbox: SELECT", "ms", False),
    ("big", "uid_fetch_flags_ms", "big mailbox: UID FETCH 1:* (FLAGS)", "ms", False),
    (
        "big",
        "fetch_envelope_bodystructure_ms",
        "big mailbox: FETCH ENVELOPE BODYSTRUCTURE",
        "ms",
        False,
    ),
    ("big", "fetch_body_ms", "big mailbox: FETCH BODY[]", "ms", False),
    ("big", "search_text_ms", "big mailbox: SEARCH TEXT", "ms", False),
    ("big", "search_from_ms", "big mailbox: SEARCH FROM", "ms", False),
    (
        "big",
        "store_expunge_ms",
        "big mailbox: UID STORE +FLAGS (\\Deleted) + UID EXPUNGE of one",
        "ms",
        False,
    ),
    ("many", "ops_per_s", "many clients: operations", "op/s", True),
    ("many", "p50_ms", "many clients: median latency", "ms", False),
    ("many", "p99_ms", "many clients: p99 latency", "ms", False),
    ("many", "store_p50_ms", "many clients: STORE median latency", "ms", False),
    ("many", "store_p99_ms", "many clients: STORE p99 latency", "ms", False),
    ("idle", "exists_p50_ms", "delivery -> EXISTS in IDLE, median", "ms", False),
    ("idle", "exists_p99_ms", "delivery -> EXISTS in IDLE, p99", "ms", False),
    ("push", "push_p50_ms", "delivery -> WebPush, median (coi only)", "ms", False),
    ("push", "push_p99_ms", "delivery -> WebPush, p99 (coi only)", "ms", False),
    ("client", "watch_p50_ms", "client: delivery -> shown by watch, median", "ms", False),
    ("client", "watch_p99_ms", "client: delivery -> shown by watch, p99", "ms", False),
    ("client", "resync_ms", "client: resync of an unchanged account (with login)", "ms", False),
    ("client", "resync_bytes", "client: resync bytes (read + written, with login)", "B", False),
    ("client", "cli_sync_ms", "client: `coi sync` command, start to exit", "ms", False),
    ("client", "first_sync_s", "client: first sync of the account", "s", False),
    ("load", "spread_ops_per_s", "command load (no login per cycle): operations", "op/s", True),
    ("load", "spread_cpu_ms_per_op", "command load: server CPU per operation", "ms", False),
    ("load", "shared_ops_per_s", "command load, one shared mailbox: operations", "op/s", True),
    ("load", "shared_cpu_ms_per_op", "command load, shared: server CPU per operation", "ms", False),
]


def users_for(sizes: Sizes) -> dict[str, str]:
    n_users = sizes.users
    users = {f"user{i:02d}@example.org": f"pw-user-{i}" for i in range(n_users)}
    users["big@example.org"] = "pw-big"
    users |= {f"idle{i:02d}@example.org": f"pw-idle-{i}" for i in range(n_users)}
    users["watch@example.org"] = "pw-watch"
    users["cwatch@example.org"] = "pw-cwatch"  # the client workload's watch
    users["csync@example.org"] = "pw-csync"  # the client workload's resynced account
    per_user = 5  # stress and load: five sessions share each user's mailboxes
    users |= stress.stress_users(max(1, max(sizes.stress_clients) // per_user))
    return users


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/run",
        description="Benchmark coi against Debian's Dovecot on loopback ports and print one table "
        "(workload, coi, Dovecot, ratio; ratio >= 1.0 means coi is at least as good). "
        "Results go to bench/results/*.json.",
    )
    p.add_argument("--quick", action="store_true", help="small sizes, about a minute or two")
    p.add_argument("--tiny", action="store_true", help="smoke-test sizes (seconds)")
    p.add_argument(
        "--servers",
        default="coi,dovecot",
        help="comma-separated subset of coi,dovecot (default: both)",
    )
    p.add_argument(
        "--workloads",
        default="delivery,append,big,many,idle,push,client,stress,load",
        help="comma-separated subset of delivery,append,big,many,idle,push,client,stress,load",
    )
    p.add_argument(
        "--big-mailbox", type=int, help=f"messages in the big mailbox ({FULL.big_mailbox})"
    )
    p.add_argument(
        "--delivery-messages",
        type=int,
        help=f"messages per delivery run ({FULL.delivery_messages})",
    )
    p.add_argument(
        "--append-messages", type=int, help=f"messages per APPEND run ({FULL.append_messages})"
    )
    p.add_argument(
        "--fetch-count",
        type=int,
        help=f"messages per FETCH in the big mailbox ({FULL.fetch_count})",
    )
    p.add_argument("--many-clients", type=int, help=f"concurrent sessions ({FULL.many_clients})")
    p.add_argument(
        "--many-seconds",
        type=float,
        help=f"seconds of the many-clients loop ({FULL.many_seconds:g})",
    )
    p.add_argument(
        "--idle",
        help=f"comma-separated idle connection counts ({','.join(map(str, FULL.idle_counts))})",
    )
    p.add_argument("--idle-deliveries", type=int, help=f"timed deliveries ({FULL.idle_deliveries})")
    p.add_argument(
        "--client-deliveries",
        type=int,
        help=f"deliveries timed to the client's watch ({FULL.client_deliveries})",
    )
    p.add_argument(
        "--client-mailbox",
        type=int,
        help=f"messages in the client's resynced INBOX ({FULL.client_mailbox})",
    )
    p.add_argument(
        "--repeats", type=int, help=f"rounds per server of each measurement ({FULL.repeats})"
    )
    p.add_argument(
        "--dovecot-scheme",
        default="SHA512-CRYPT",
        help="Dovecot password scheme (default SHA512-CRYPT, Dovecot's documented default)",
    )
    p.add_argument("--results-dir", type=Path, default=RESULTS)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--coi-fsync",
        choices=["always", "optimized"],
        default="always",
        help="coi's fsync policy (Dovecot runs with mail_fsync = optimized, as shipped)",
    )
    p.add_argument(
        "--coi-store",
        choices=["sqlite", "postgresql"],
        default="sqlite",
        help="coi's store: SQLite in its data directory, or a PostgreSQL cluster of its own"
        " (Debian's postgresql, fsync on; its CPU counts as coi's)",
    )
    p.add_argument(
        "--coi-workers",
        type=int,
        help="coi serve --workers N (PostgreSQL only; default there: one per core)",
    )
    return p.parse_args(argv)


def sizes_from(args: argparse.Namespace) -> Sizes:
    base = TINY if args.tiny else QUICK if args.quick else Sizes()
    changes: dict[str, object] = {}
    for name in (
        "big_mailbox",
        "delivery_messages",
        "append_messages",
        "fetch_count",
        "many_clients",
        "many_seconds",
        "idle_deliveries",
        "client_deliveries",
        "client_mailbox",
        "repeats",
    ):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if args.idle:
        changes["idle_counts"] = tuple(int(x) for x in args.idle.split(","))
    return dataclasses.replace(base, **changes) if changes else base


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


async def run_all(
    args: argparse.Namespace, sizes: Sizes, srv: list[Server]
) -> dict[str, dict[str, dict[str, float]]]:
    res: dict[str, dict[str, dict[str, float]]] = {s.name: {} for s in srv}
    errors: dict[str, dict[str, str]] = {s.name: {} for s in srv}
    wanted = args.workloads.split(",")
    order = 0

    async def guarded(s: Server, key: str, coro):  # type: ignore[no-untyped-def]
        """A failing workload is recorded and reported, and the run goes on."""
        try:
            return await coro
        except Exception as exc:
            log(f"{key} {s.name} FAILED: {exc!r}")
            errors[s.name][key] = repr(exc)[:500]
            return None

    def alternating() -> list[Server]:
        nonlocal order
        order += 1
        return srv if order % 2 else list(reversed(srv))

    async def repeated(key: str, fn, figure: str) -> None:  # type: ignore[no-untyped-def]
        runs: dict[str, list[dict[str, float]]] = {s.name: [] for s in srv}
        for r in range(sizes.repeats):
            for s in alternating():
                got = await guarded(s, key, fn(s, r))
                if got is None:
                    continue
                runs[s.name].append(got)
                log(f"{key} {s.name} round {r + 1}: {runs[s.name][-1][figure]:.1f} {figure}")
        for s in srv:
            if not runs[s.name]:
                continue
            ordered = sorted(runs[s.name], key=lambda d: d[figure])
            res[s.name][key] = ordered[len(ordered) // 2]  # the median round

    if "delivery" in wanted:
        for c in (1, 8):
            await repeated(
                f"delivery{c}",
                lambda s, r, c=c: workloads.delivery(s, sizes, c, args.seed + r),
                "msgs_per_s",
            )
    if "append" in wanted:
        for c in (1, 8):
            await repeated(
                f"append{c}", lambda s, r, c=c: workloads.append(s, sizes, c), "msgs_per_s"
            )
    if "big" in wanted:
        # the untimed fills run side by side (a third of the run otherwise); timing after
        log(f"big mailbox: filling {sizes.big_mailbox} messages in {len(srv)} server(s)")
        fills = await asyncio.gather(
            *(guarded(s, "big", workloads.fill_big_mailbox(s, sizes)) for s in srv)
        )
        filled = {s.name: f for s, f in zip(srv, fills, strict=True) if f is not None}
        for s in alternating():
            if s.name not in filled:
                continue
            got = await guarded(s, "big", workloads.big_mailbox(s, sizes, filled[s.name]))
            if got is None:
                continue
            res[s.name]["big"] = got
            log(f"big mailbox {s.name}: {res[s.name]['big']}")
    if "many" in wanted:
        for s in srv:
            await guarded(s, "many", workloads.prepare_user_mailboxes(s, sizes))
        await repeated(
            "many", lambda s, r: workloads.many_clients(s, sizes, args.seed + r), "ops_per_s"
        )
    if "push" in wanted:
        for s in srv:
            if s.name != "coi" or not s.lmtp_port:
                continue
            user = workloads.user_list(s, "watch")[0]
            got = await guarded(
                s, "push", push.push_latency(s, args.push_dir, user, sizes.idle_deliveries)
            )
            if got is not None:
                res[s.name]["push"] = got
                log(f"push {s.name}: {got}")
    if "client" in wanted:
        # coi.client on each server: COI mode on coi serve, fallback mode on Dovecot
        log(f"client: filling {sizes.client_mailbox} messages in {len(srv)} server(s)")
        fills = await asyncio.gather(
            *(guarded(s, "client", client.fill_mailbox(s, sizes)) for s in srv)
        )
        for s, fill_s in zip(srv, fills, strict=True):
            if fill_s is None or not s.lmtp_port:
                continue
            got = await guarded(s, "client", client.client_workload(s, sizes, fill_s))
            if got is not None:
                res[s.name]["client"] = got
                log(f"client {s.name}: {got}")
    worlds = {s.name: stress.World(s.name) for s in srv}
    prepared: dict[str, set[str]] = {s.name: set() for s in srv}

    async def prepare(s: Server, chosen: list[tuple[str, str]]) -> None:
        todo = [u for u in chosen if u[0] not in prepared[s.name]]
        if todo:
            await stress.prepare(worlds[s.name], s.host, s.imap_port, todo, 30, args.seed)
            prepared[s.name].update(u for u, _ in todo)

    if "stress" in wanted:
        for clients in sizes.stress_clients:
            chosen = stress.users_for_clients(dict(srv[0].users), clients, 5)
            for s in alternating():

                async def one(
                    s: Server = s, clients: int = clients, chosen: list[tuple[str, str]] = chosen
                ) -> dict[str, float]:
                    await prepare(s, chosen)
                    world = worlds[s.name]
                    before = sum(world.errors.values())
                    got = await stress.run(
                        world, s.host, s.imap_port, chosen, clients, sizes.stress_seconds, args.seed
                    )
                    ops = sum(got.ops.values())
                    errors = sum(world.errors.values()) - before
                    if errors:
                        log(f"stress {s.name}: {dict(world.errors)}")
                        log(stress.format_reports(world, 3))
                    return {
                        "ops_per_s": ops / got.seconds,
                        "protocol_errors": float(errors),
                        "disconnects": float(got.disconnects),
                    }

                res_one = await guarded(s, "stress", one())
                if res_one is not None:
                    res[s.name][f"stress{clients}"] = res_one
                    log(f"stress {s.name} {clients} clients: {res_one}")
    if "load" in wanted:
        chosen = stress.users_for_clients(dict(srv[0].users), sizes.load_clients, 5)
        for s in alternating():
            await guarded(s, "load", prepare(s, chosen))
            got = await guarded(
                s,
                "load",
                load.command_load(
                    s,
                    worlds[s.name],
                    chosen,
                    sizes.load_clients,
                    sizes.load_seconds,
                    sizes.load_phase_seconds,
                    args.seed,
                ),
            )
            if got is not None:
                res[s.name]["load"] = got
                log(f"load {s.name}: {got}")
    if "idle" in wanted:
        # memory is a difference from a baseline: restart both servers (same data) so that
        # what the earlier workloads left in their heaps counts for neither
        for s in srv:
            s.restart()
        for s in alternating():
            log(f"idle {s.name}: {sizes.idle_counts} connections")
            got = await guarded(s, "idle", workloads.idle(s, sizes, args.seed))
            if got is None:
                continue
            res[s.name]["idle"] = got
            log(f"idle {s.name}: {res[s.name]['idle']}")
    for s in srv:
        if errors[s.name]:
            res[s.name]["errors"] = errors[s.name]  # type: ignore[assignment]
    return res


def fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def table(
    res: dict[str, dict[str, dict[str, float]]],
    sizes: Sizes,
    coi: Server | None,
    dov: Server | None,
) -> tuple[str, list[dict[str, object]]]:
    rows: list[dict[str, object]] = []

    def get(name: str, work: str, key: str) -> float | None:
        return res.get(name, {}).get(work, {}).get(key)

    for work, key, label, unit, higher in ROWS:
        c, d = get("coi", work, key), get("dovecot", work, key)
        if c is None and d is None:
            continue
        if work.startswith("delivery") or (work == "idle" and key.startswith("exists")):
            via = coi.delivery_via if coi else "LMTP"
            if via != "LMTP":
                label += f" (coi: {via})"
        ratio = None
        if c and d:
            ratio = c / d if higher else d / c
        rows.append(
            {
                "workload": label,
                "unit": unit,
                "coi": c,
                "dovecot": d,
                "ratio": ratio,
                "higher_is_better": higher,
            }
        )
    for clients in sizes.stress_clients:
        for key, label, unit, higher in (
            ("ops_per_s", "operations", "op/s", True),
            ("protocol_errors", "protocol errors", "count", False),
        ):
            c = get("coi", f"stress{clients}", key)
            d = get("dovecot", f"stress{clients}", key)
            if c is None and d is None:
                continue
            rows.append(
                {
                    "workload": f"stress (state-checked), {clients} clients: {label}",
                    "unit": unit,
                    "coi": c,
                    "dovecot": d,
                    "ratio": (c / d if higher else d / c) if c and d else None,
                    "higher_is_better": higher,
                }
            )
    for key, label, _ in load.PHASES:
        c, d = get("coi", "load", f"cmd_{key}_cpu_ms"), get("dovecot", "load", f"cmd_{key}_cpu_ms")
        if c is None and d is None:
            continue
        rows.append(
            {
                "workload": f"server CPU per command: {label}",
                "unit": "ms",
                "coi": c,
                "dovecot": d,
                "ratio": d / c if c and d else None,
                "higher_is_better": False,
            }
        )
    for n in sizes.idle_counts:
        for kind in ("rss", "pss"):
            key = f"n{n}_{kind}_kib_per_conn"
            c, d = get("coi", "idle", key), get("dovecot", "idle", key)
            if c is None and d is None:
                continue
            ratio = d / c if c and d and c > 0 else None
            rows.append(
                {
                    "workload": f"idle memory per connection, {n:,} in IDLE ({kind.upper()})",
                    "unit": "KiB",
                    "coi": c,
                    "dovecot": d,
                    "ratio": ratio,
                    "higher_is_better": False,
                }
            )
        c, d = (
            get("coi", "idle", f"n{n}_setup_conns_per_s"),
            get("dovecot", "idle", f"n{n}_setup_conns_per_s"),
        )
        if c is not None or d is not None:
            rows.append(
                {
                    "workload": f"idle set-up (LOGIN+SELECT+IDLE), to {n:,}",
                    "unit": "conn/s",
                    "coi": c,
                    "dovecot": d,
                    "ratio": c / d if c and d else None,
                    "higher_is_better": True,
                }
            )
    lines = ["| workload | unit | coi | Dovecot | ratio |", "| --- | --- | ---: | ---: | ---: |"]
    for r in rows:
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
        if r.get("note"):
            ratio = r["note"]
        lines.append(
            f"| {r['workload']} | {r['unit']} | {fmt(r['coi'])} | {fmt(r['dovecot'])} | {ratio} |"
        )  # type: ignore[arg-type]
    return "\n".join(lines), rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = sizes_from(args)
    wanted = args.servers.split(",")
    nofile = workloads.raise_nofile()
    limit = max(sizes.idle_counts) + sizes.many_clients + 100
    if nofile < max(sizes.idle_counts) + 200:
        log(f"open-file limit {nofile} is too low for {max(sizes.idle_counts)} connections")
        return 2
    users = users_for(sizes)
    if "dovecot" in wanted and servers.dovecot_version() is None:
        log("dovecot is not installed: measuring coi only (bench/run installs it)")
        wanted = [w for w in wanted if w != "dovecot"]
    srv: list[Server] = []
    started = time.time()
    try:
        if "coi" in wanted:
            args.push_dir = Path(tempfile.mkdtemp(prefix="coi-bench-push-"))
            ca = push.push_ca(args.push_dir)  # coi must trust the local push service
            extra = ["--webpush-allow-private", "--webpush-ca-file", str(ca)]
            if args.coi_fsync != "always":
                extra += ["--fsync", args.coi_fsync]
            if args.coi_workers is not None:
                extra += ["--workers", str(args.coi_workers)]
            srv.append(servers.start_coi(users, limit, extra=extra, store=args.coi_store))
            log(
                f"coi {srv[-1].version} pid {srv[-1].pid} imap {srv[-1].imap_port} "
                f"delivery via {srv[-1].delivery_via}, store {srv[-1].store}"
            )
        if "dovecot" in wanted:
            srv.append(servers.start_dovecot(users, limit, args.dovecot_scheme))
            log(
                f"dovecot {srv[-1].version} pid {srv[-1].pid} imap {srv[-1].imap_port} "
                f"lmtp {srv[-1].lmtp_port}"
            )
        res = asyncio.run(run_all(args, sizes, srv))
    finally:
        for s in srv:
            s.stop()
        if getattr(args, "push_dir", None) is not None:
            shutil.rmtree(args.push_dir, ignore_errors=True)
    by_name = {s.name: s for s in srv}
    text, rows = table(res, sizes, by_name.get("coi"), by_name.get("dovecot"))
    print(text)
    stamp = datetime.now(UTC)
    doc = {
        "date": stamp.isoformat(timespec="seconds"),
        "mode": "tiny" if args.tiny else "quick" if args.quick else "full",
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": {s.name: s.version for s in srv},
        "coi_delivery_via": by_name["coi"].delivery_via if "coi" in by_name else None,
        "coi_store": args.coi_store,
        "coi_workers": args.coi_workers,
        "coi_fsync": args.coi_fsync,
        "dovecot_password_scheme": args.dovecot_scheme,
        "git_commit": _git_commit(),
        "sizes": dataclasses.asdict(sizes),
        "seconds": round(time.time() - started, 1),
        "rows": rows,
        "raw": res,
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    path = args.results_dir / f"{stamp:%Y%m%d-%H%M%S}-{doc['mode']}.json"
    path.write_text(json.dumps(doc, indent=1) + "\n")
    log(f"results written to {path} ({doc['seconds']} s)")
    return 0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
    except OSError:
        return ""


if __name__ == "__main__":
    sys.exit(main())
