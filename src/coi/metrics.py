"""Prometheus metrics of ``coi serve`` (``metrics = "127.0.0.1:9464"``; off by default).

The metrics live in a registry of their own and are only counted while the endpoint is
on: with it off, each hook is one attribute check, so the command path pays nothing.
Sizes that change slowly (the relay queue, the store's files) are read when scraped.

With ``--workers`` (coi.cli.workers), the supervisor names a directory in
``PROMETHEUS_MULTIPROC_DIR`` before it starts the workers: every worker counts into its
own files there (prometheus_client's multiprocess mode), and worker 1's endpoint serves
the sums, so a scrape sees the whole server whichever worker took each connection.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterable, Sequence

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)

CONNECTIONS = Gauge(
    "coi_connections", "Open client connections", ["protocol"],
    multiprocess_mode="livesum", registry=REGISTRY,
)  # fmt: skip
LOGINS = Counter(
    "coi_logins", "Login attempts by outcome", ["protocol", "result"], registry=REGISTRY
)
COMMANDS = Counter(
    "coi_imap_commands", "IMAP commands by name and result", ["command", "result"],
    registry=REGISTRY,
)  # fmt: skip
COMMAND_SECONDS = Histogram(
    "coi_imap_command_seconds", "IMAP command latency", ["command"],
    buckets=_LATENCY_BUCKETS, registry=REGISTRY,
)  # fmt: skip
DELIVERIES = Counter(
    "coi_deliveries", "Messages taken for delivery, per recipient", ["via", "result"],
    registry=REGISTRY,
)  # fmt: skip
PUSHES = Counter("coi_webpush", "Web Push requests by outcome", ["outcome"], registry=REGISTRY)


class _State:
    enabled = False


state = _State()


def count_only() -> None:
    """Counting on without an endpoint: a worker other than the first, whose counts
    worker 1 serves from the shared directory."""
    _count_in_shared_files()
    state.enabled = True


def _count_in_shared_files() -> None:
    """A worker's counts go to files of its own in PROMETHEUS_MULTIPROC_DIR. The variable
    was set after prometheus_client was imported (by the supervisor, before the fork), so
    its choice of value class is made again here; every metric here has labels, whose
    values are made at their first use, after this."""
    from prometheus_client import values

    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def command(name: str, result: str, started: float) -> None:
    """One IMAP command done: ``result`` is OK, NO or BAD."""
    if state.enabled:
        COMMANDS.labels(name, result).inc()
        COMMAND_SECONDS.labels(name).observe(time.perf_counter() - started)


def login(protocol: str, ok: bool) -> None:
    if state.enabled:
        LOGINS.labels(protocol, "ok" if ok else "failed").inc()


def connection(protocol: str, delta: int) -> None:
    if state.enabled:
        CONNECTIONS.labels(protocol).inc(delta)


def delivery(via: str, result: str, count: int = 1) -> None:
    if state.enabled and count:
        DELIVERIES.labels(via, result).inc(count)


def push(outcome: str) -> None:
    if state.enabled:
        PUSHES.labels(outcome).inc()


class _Sizes(Collector):
    """Read at scrape time: what waits in the relay queue, what the store takes on disk."""

    def __init__(self, store_size: Callable[[], int], queue_size: Callable[[], int]) -> None:
        self.store_size = store_size
        self.queue_size = queue_size

    def collect(self) -> Iterable[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "coi_queue_messages", "Messages waiting in the relay queue", value=self.queue_size()
        )
        yield GaugeMetricFamily(
            "coi_store_bytes", "Bytes the store takes on disk", value=self.store_size()
        )


async def start(
    listen_host: str,
    listen_port: int,
    store_size: Callable[[], int],
    queue_size: Callable[[], int],
    sockets: Sequence[socket.socket] | None = None,
) -> web.AppRunner:
    """Serves ``/metrics`` (Prometheus text format) and turns counting on; on `sockets`
    when a supervisor bound them (coi.cli.workers)."""
    sizes = _Sizes(store_size, queue_size)
    shared = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if shared:  # every worker's counts, summed
        from prometheus_client import multiprocess

        _count_in_shared_files()
        served = CollectorRegistry()
        multiprocess.MultiProcessCollector(served, shared)  # type: ignore[no-untyped-call]
    else:
        served = REGISTRY
    served.register(sizes)

    async def scrape(request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(served),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )

    async def unregister(_app: web.Application) -> None:
        state.enabled = False
        served.unregister(sizes)

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    app.on_cleanup.append(unregister)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        if sockets is None:
            await web.TCPSite(runner, listen_host, listen_port).start()
        else:
            for sock in sockets:
                await web.SockSite(runner, sock).start()
    except BaseException:
        await runner.cleanup()
        raise
    state.enabled = True
    return runner
