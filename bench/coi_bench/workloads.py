"""The workloads. Each takes a running Server and a Sizes and returns a dict of figures;
only the measured operations are timed, never set-up such as filling a mailbox."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import random
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from coi_bench import mailgen, servers
from coi_bench.clients import Imap, Lmtp, ProtocolError
from coi_bench.servers import Server


@dataclass
class Sizes:
    delivery_messages: int = 300
    append_messages: int = 600
    big_mailbox: int = 100_000
    fetch_count: int = 1000
    many_clients: int = 200
    many_seconds: float = 6.0
    many_mailbox: int = 200
    idle_counts: tuple[int, ...] = (1000, 10_000)
    idle_deliveries: int = 40
    client_deliveries: int = 200  # client workload: deliveries timed to coi.client's watch
    client_mailbox: int = 10_000  # client workload: messages in the resynced INBOX
    login_concurrency: int = 32
    repeats: int = 3
    settle_seconds: float = 2.0  # wait before reading memory
    users: int = 8  # of each kind (user*, idle*)
    stress_clients: tuple[int, ...] = (10, 50)  # stress: state-checked sessions per round
    stress_seconds: float = 30.0
    load_clients: int = 10  # load: pure command load, server CPU per command
    load_seconds: float = 20.0
    load_phase_seconds: float = 4.0


QUICK = Sizes(
    delivery_messages=40,
    append_messages=150,
    big_mailbox=2000,
    fetch_count=500,
    many_clients=40,
    many_seconds=3.0,
    many_mailbox=50,
    idle_counts=(50, 200),
    idle_deliveries=20,
    client_deliveries=50,
    client_mailbox=2000,
    login_concurrency=16,
    repeats=2,
    stress_clients=(10, 50),
    stress_seconds=10.0,
    load_seconds=8.0,
    load_phase_seconds=2.0,
)
TINY = Sizes(
    delivery_messages=12,
    append_messages=20,
    big_mailbox=60,
    fetch_count=20,
    many_clients=4,
    many_seconds=0.5,
    many_mailbox=10,
    idle_counts=(5, 10),
    idle_deliveries=3,
    client_deliveries=5,
    client_mailbox=100,
    login_concurrency=4,
    repeats=1,
    settle_seconds=0.2,
    users=1,
    stress_clients=(4,),
    stress_seconds=1.0,
    load_clients=4,
    load_seconds=1.0,
    load_phase_seconds=0.3,
)


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


async def gather_limited(n: int, factories: list, concurrency: int) -> list:
    sem = asyncio.Semaphore(concurrency)

    async def one(f):  # type: ignore[no-untyped-def]
        async with sem:
            return await f()

    return await asyncio.gather(*(one(f) for f in factories))


def user_list(server: Server, prefix: str) -> list[tuple[str, str]]:
    return [(u, p) for u, p in server.users.items() if u.startswith(prefix)]


# -- delivery -------------------------------------------------------------------------------


async def delivery(server: Server, sizes: Sizes, concurrency: int, seed: int) -> dict[str, float]:
    """Messages per second through LMTP (or IMAP APPEND when the server has no LMTP),
    `concurrency` connections, each delivering its share of the mix to a rotating user."""
    users = user_list(server, "user")
    n = sizes.delivery_messages
    messages = mailgen.delivery_mix(seed, n, users[0][0])
    total_bytes = sum(len(m) for m in messages)
    shares = [messages[i::concurrency] for i in range(concurrency)]

    if server.lmtp_port:
        conns = [await Lmtp.connect(server.host, server.lmtp_port) for _ in range(concurrency)]

        async def worker(k: int) -> None:
            for j, m in enumerate(shares[k]):
                await conns[k].deliver("someone@example.net", users[(k + j) % len(users)][0], m)

        start = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        elapsed = time.perf_counter() - start
        for c in conns:
            await c.quit()
    else:
        imaps = [
            await Imap.login(server.host, server.imap_port, *users[k % len(users)])
            for k in range(concurrency)
        ]

        async def worker(k: int) -> None:
            for m in shares[k]:
                await imaps[k].append("INBOX", m)

        start = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        elapsed = time.perf_counter() - start
        for c in imaps:
            await c.logout()
    return {"msgs_per_s": n / elapsed, "mb_per_s": total_bytes / elapsed / 1e6, "seconds": elapsed}


# -- APPEND ---------------------------------------------------------------------------------


async def append(server: Server, sizes: Sizes, concurrency: int) -> dict[str, float]:
    """IMAP APPEND (one command at a time per connection) of 2-4 KB mails, messages/s."""
    users = user_list(server, "user")
    n = sizes.append_messages
    messages = [mailgen.big_mailbox_message(i, users[0][0]) for i in range(n)]
    conns = [
        await Imap.login(server.host, server.imap_port, *users[k % len(users)])
        for k in range(concurrency)
    ]
    for c in conns[: len(users)]:
        await c.command("CREATE Archive")  # Dovecot has no Archive until asked; coi answers NO

    async def worker(k: int) -> None:
        for m in messages[k::concurrency]:
            await conns[k].append("Archive", m)

    start = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    elapsed = time.perf_counter() - start
    for c in conns:
        await c.logout()
    return {"msgs_per_s": n / elapsed, "seconds": elapsed}


# -- the big mailbox ------------------------------------------------------------------------


async def fill(
    server: Server,
    user: tuple[str, str],
    count: int,
    make,
    mailbox: str = "INBOX",
    connections: int = 4,
    batch: int = 100,
) -> float:
    """Pipelined APPENDs from a few connections; returns seconds (not a reported figure)."""
    start = time.perf_counter()
    conns = [await Imap.login(server.host, server.imap_port, *user) for _ in range(connections)]
    chunks = [list(range(s, min(s + batch, count))) for s in range(0, count, batch)]

    async def worker(k: int) -> None:
        for chunk in chunks[k::connections]:
            await conns[k].append_pipelined(mailbox, [make(i) for i in chunk])

    await asyncio.gather(*(worker(k) for k in range(connections)))
    for c in conns:
        await c.logout()
    return time.perf_counter() - start


def search_hits(lines: list[bytes]) -> int:
    """Numbers in the `* SEARCH` response (Dovecot also sends `* OK Searched n%...` lines)."""
    for line in lines:
        if line.startswith(b"* SEARCH"):
            return len(line.split()) - 2
    return 0


async def fill_big_mailbox(server: Server, sizes: Sizes) -> float:
    """Fills the big mailbox (untimed set-up; both servers may fill at once); seconds."""
    user = user_list(server, "big")[0]
    n = sizes.big_mailbox
    make = lambda i: mailgen.big_mailbox_message(i, user[0])  # noqa: E731
    if server.name == "dovecot":
        assert server.workdir is not None
        t0 = time.perf_counter()
        make_one = functools.partial(mailgen.big_mailbox_message, to=user[0])
        # a process of its own: in a thread it would share this one's GIL with coi's fill
        with concurrent.futures.ProcessPoolExecutor(1) as pool:
            await asyncio.get_running_loop().run_in_executor(
                pool, servers.fill_maildir, server.workdir, user[0], n, make_one
            )
        return time.perf_counter() - t0
    return await fill(server, user, n, make)


# messages STOREd \Deleted and UID EXPUNGEd one by one in each round of `big_mailbox`
_EXPUNGED_PER_ROUND = 10


async def big_mailbox(server: Server, sizes: Sizes, fill_s: float) -> dict[str, float]:
    """Times (ms, median of `repeats`) of operations on a mailbox of sizes.big_mailbox messages."""
    user = user_list(server, "big")[0]
    n = sizes.big_mailbox
    k = min(sizes.fetch_count, n)
    lo = max(1, n // 2 - k // 2)
    rng = f"{lo}:{lo + k - 1}"
    results: dict[str, list[float]] = {}

    def add(key: str, t0: float) -> None:
        results.setdefault(key, []).append((time.perf_counter() - t0) * 1000)

    # warm-up: the first SELECT after the fill may build indexes on either server
    c = await Imap.login(server.host, server.imap_port, *user)
    untagged = await c.ok("SELECT INBOX")
    exists = [ln for ln in untagged if ln.endswith(b"EXISTS\r\n")]
    if not exists or int(exists[0].split()[1]) != n:
        raise RuntimeError(f"{server.name}: big mailbox has {exists!r}, expected {n}")
    await c.ok("UID FETCH 1:* (FLAGS)")
    await c.logout()
    counts: dict[str, int] = {}
    for _ in range(sizes.repeats):
        c = await Imap.login(server.host, server.imap_port, *user)
        t0 = time.perf_counter()
        await c.ok("SELECT INBOX")
        add("select_ms", t0)
        t0 = time.perf_counter()
        lines = await c.ok("UID FETCH 1:* (FLAGS)")
        add("uid_fetch_flags_ms", t0)
        counts["uid_fetch_flags"] = len(lines)
        t0 = time.perf_counter()
        lines = await c.ok(f"FETCH {rng} (ENVELOPE BODYSTRUCTURE)")
        add("fetch_envelope_bodystructure_ms", t0)
        counts["fetch_envelope"] = len(lines)
        t0 = time.perf_counter()
        lines = await c.ok(f"FETCH {rng} (BODY.PEEK[])")
        add("fetch_body_ms", t0)
        counts["fetch_body"] = len(lines)
        t0 = time.perf_counter()
        lines = await c.ok(f"SEARCH TEXT {mailgen.RARE_WORD}")
        add("search_text_ms", t0)
        counts["search_text_hits"] = search_hits(lines)
        t0 = time.perf_counter()
        lines = await c.ok(f'SEARCH FROM "{mailgen.SEARCH_FROM}"')
        add("search_from_ms", t0)
        counts["search_from_hits"] = search_hits(lines)
        await c.logout()
    # last (an expunge makes the next SELECT of some servers slower): one message at a time
    # from the top, as a client deleting mail does; a server that reads or rewrites the
    # whole mailbox for it shows here
    c = await Imap.login(server.host, server.imap_port, *user)
    await c.ok("SELECT INBOX")
    top = n  # the highest UID: the fill appended n messages to an empty mailbox
    for _ in range(sizes.repeats):
        t0 = time.perf_counter()
        for _ in range(_EXPUNGED_PER_ROUND):
            await c.ok(f"UID STORE {top} +FLAGS.SILENT (\\Deleted)")
            await c.ok(f"UID EXPUNGE {top}")
            top -= 1
        results.setdefault("store_expunge_ms", []).append(
            (time.perf_counter() - t0) * 1000 / _EXPUNGED_PER_ROUND
        )
    await c.logout()
    out: dict[str, float] = {key: statistics.median(v) for key, v in results.items()}
    out["fill_seconds"] = fill_s
    out.update({f"count_{k}": float(v) for k, v in counts.items()})
    return out


# -- many clients ---------------------------------------------------------------------------


async def prepare_user_mailboxes(server: Server, sizes: Sizes) -> None:
    """Each user* INBOX gets sizes.many_mailbox messages (once per server)."""
    await asyncio.gather(
        *(
            fill(
                server,
                u,
                sizes.many_mailbox,
                lambda i, to=u[0]: mailgen.big_mailbox_message(i, to),
                connections=1,
            )
            for u in user_list(server, "user")
        )
    )


async def many_clients(
    server: Server, sizes: Sizes, seed: int, on_ready: Callable[[], None] | None = None
) -> dict[str, float]:
    """sizes.many_clients sessions, each SELECTed on its user's INBOX, in a closed loop of
    a mixed read/flag workload for sizes.many_seconds: 50% fetch of one message's flags and
    headers, 15% fetch of a whole small message, 20% STORE +/-FLAGS, 10% NOOP, 5% SEARCH UNSEEN."""
    users = user_list(server, "user")
    conns: list[Imap] = await gather_limited(
        sizes.many_clients,
        [
            lambda k=k: Imap.login(server.host, server.imap_port, *users[k % len(users)])
            for k in range(sizes.many_clients)
        ],
        sizes.login_concurrency,
    )
    for c in conns:
        await c.ok("SELECT INBOX")
    latencies: list[float] = []
    by_kind: dict[str, list[float]] = {"fetch": [], "store": [], "noop": [], "search": []}
    errors = 0
    stop_at = 0.0
    m = sizes.many_mailbox

    async def worker(k: int) -> None:
        nonlocal errors
        rnd = random.Random(seed * 1000 + k)
        c = conns[k]
        while time.perf_counter() < stop_at:
            r = rnd.random()
            uid = rnd.randrange(1, m + 1)
            if r < 0.50:
                kind, cmd = (
                    "fetch",
                    f"UID FETCH {uid} (FLAGS BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)])",
                )
            elif r < 0.65:
                kind, cmd = "fetch", f"UID FETCH {uid} (BODY.PEEK[])"
            elif r < 0.85:
                kind, cmd = "store", f"UID STORE {uid} {rnd.choice('+-')}FLAGS (\\Seen)"
            elif r < 0.95:
                kind, cmd = "noop", "NOOP"
            else:
                kind, cmd = "search", "SEARCH UNSEEN"
            t0 = time.perf_counter()
            _, tagged = await c.command(cmd)
            latencies.append(time.perf_counter() - t0)
            by_kind[kind].append(latencies[-1])
            if b" OK " not in tagged:
                errors += 1

    if on_ready is not None:
        on_ready()  # e.g. start a profiler once the sessions are set up
        await asyncio.sleep(1.0)
    stop_at = time.perf_counter() + sizes.many_seconds
    start = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(len(conns))))
    elapsed = time.perf_counter() - start
    await asyncio.gather(*(c.logout() for c in conns))
    result = {
        "ops_per_s": len(latencies) / elapsed,
        "p50_ms": pct(latencies, 50) * 1000,
        "p99_ms": pct(latencies, 99) * 1000,
        "errors": float(errors),
    }
    for kind, times in by_kind.items():  # where the tail comes from
        if times:
            result[f"{kind}_p50_ms"] = pct(times, 50) * 1000
            result[f"{kind}_p99_ms"] = pct(times, 99) * 1000
    return result


# -- idle connections -----------------------------------------------------------------------


async def open_idle(
    server: Server, users: list[tuple[str, str]], n: int, concurrency: int
) -> list[Imap]:
    async def one(k: int) -> Imap:
        c = await Imap.login(server.host, server.imap_port, *users[k % len(users)])
        await c.ok("SELECT INBOX")
        c.idle_tag = await c.idle_start()  # type: ignore[attr-defined]
        return c

    return await gather_limited(n, [lambda k=k: one(k) for k in range(n)], concurrency)


async def settle_memory(server: Server, seconds: float = 2.0) -> dict[str, int]:
    await asyncio.sleep(seconds)
    return server.memory()


async def deliver_one(server: Server, via: Imap | Lmtp, to: str, message: bytes) -> None:
    if isinstance(via, Lmtp):
        await via.deliver("someone@example.net", to, message)
    else:
        await via.append("INBOX", message)


async def idle(server: Server, sizes: Sizes, seed: int) -> dict[str, float]:
    """Memory with N authenticated connections in IDLE (each N of sizes.idle_counts), and the
    latency from a delivery to the EXISTS on an idle client (with the first N connected)."""
    users = user_list(server, "idle")
    watch_user = user_list(server, "watch")[0]
    out: dict[str, float] = {}
    base = await settle_memory(server, sizes.settle_seconds)
    out["base_rss_kib"] = base["rss_kib"]
    out["base_pss_kib"] = base["pss_kib"]
    conns: list[Imap] = []
    rng = random.Random(seed)
    try:
        for i, n in enumerate(sizes.idle_counts):
            t0 = time.perf_counter()
            conns += await open_idle(server, users, n - len(conns), sizes.login_concurrency)
            setup = time.perf_counter() - t0
            mem = await settle_memory(server, sizes.settle_seconds)
            out[f"n{n}_setup_conns_per_s"] = (n - (sizes.idle_counts[i - 1] if i else 0)) / setup
            out[f"n{n}_rss_kib"] = mem["rss_kib"]
            out[f"n{n}_pss_kib"] = mem["pss_kib"]
            out[f"n{n}_processes"] = mem["processes"]
            out[f"n{n}_rss_kib_per_conn"] = (mem["rss_kib"] - base["rss_kib"]) / n
            out[f"n{n}_pss_kib_per_conn"] = (mem["pss_kib"] - base["pss_kib"]) / n
            if i == 0:
                # delivery -> EXISTS latency, on a watcher idling among the first n connections
                watcher = await Imap.login(server.host, server.imap_port, *watch_user)
                await watcher.ok("SELECT INBOX")
                tag = await watcher.idle_start()
                if server.lmtp_port:
                    via: Imap | Lmtp = await Lmtp.connect(server.host, server.lmtp_port)
                else:
                    via = await Imap.login(server.host, server.imap_port, *watch_user)
                lat = []
                for j in range(sizes.idle_deliveries):
                    msg = mailgen.chat(rng, j, watch_user[0])
                    t_send = time.perf_counter()
                    waiter = asyncio.ensure_future(watcher.wait_exists())
                    await deliver_one(server, via, watch_user[0], msg)
                    t_seen, _ = await asyncio.wait_for(waiter, 60)
                    lat.append(t_seen - t_send)
                    await asyncio.sleep(0.02)
                out["exists_p50_ms"] = pct(lat, 50) * 1000
                out["exists_p99_ms"] = pct(lat, 99) * 1000
                await watcher.idle_done(tag)
                await watcher.logout()
                if isinstance(via, Lmtp):
                    await via.quit()
                else:
                    await via.logout()
    except (OSError, ConnectionError, TimeoutError, ProtocolError) as exc:
        # keep the figures of the smaller counts; say where it broke
        out["error"] = f"{exc!r} with {len(conns)} connections open"  # type: ignore[assignment]
    for c in conns:
        c.close()
    await asyncio.sleep(sizes.settle_seconds)
    return out
