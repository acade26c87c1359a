"""The delivery side of `coi serve`: LMTP and submission listeners, local delivery, relay.

Invariants: listeners are plain asyncio servers on the serving loop (no threads); stop()
closes the listeners first, then stops the relay worker, then closes the queue, so no
accepted message is left half-written.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence

from coi.auth.throttle import LoginThrottle
from coi.config import ServerConfig, parse_listen
from coi.delivery.dkim import DkimSigner
from coi.delivery.lmtp import lmtp_factory
from coi.delivery.local import LocalDelivery
from coi.delivery.queue import Queue, RelayQueue
from coi.delivery.relay import MxResolver, RelaySettings, RelayWorker, resolve_mx
from coi.delivery.routing import CoiSettingsSource, StoreCoiSource
from coi.delivery.submission import SubmissionHandler, SubmissionSMTP
from coi.listener import Listener, open_listeners
from coi.store.protocol import Store


def open_queue(config: ServerConfig, store: Store) -> Queue:
    """The relay queue: in the PostgreSQL database when the store is there (every process
    works it), else `queue.sqlite3` in the data directory (this process only)."""
    if config.store:
        from coi.delivery.pgqueue import PgQueue
        from coi.store.postgres.sharded import ShardedStore
        from coi.store.postgres.store import PostgresStore

        if isinstance(store, ShardedStore):  # the queue is in the directory database
            store = store.directory
        if not isinstance(store, PostgresStore):
            raise RuntimeError("a postgresql:// store needs the PostgreSQL store")
        return PgQueue(store)
    return RelayQueue(config.data_dir / "queue.sqlite3")


def relay_settings(config: ServerConfig) -> RelaySettings:
    relay = parse_listen(config.relay_host, "--relay-host") if config.relay_host else None
    if config.relay_tls not in ("starttls", "tls", "none"):
        raise ValueError(f"--relay-tls {config.relay_tls!r}: use starttls, tls or none")
    domain = config.domains[0] if config.domains else config.hostname
    return RelaySettings(
        hostname=config.hostname,
        relay_host=relay,
        relay_user=config.relay_user,
        relay_password=config.relay_password,
        relay_tls=config.relay_tls,
        retry=config.queue_retry,
        expiry=config.queue_expiry,
        postmaster=f"MAILER-DAEMON@{domain}",
    )


class DeliveryService:
    def __init__(
        self,
        config: ServerConfig,
        store: Store,
        tls: ssl.SSLContext,
        settings: CoiSettingsSource | None = None,
        resolver: MxResolver = resolve_mx,
        queue: Queue | None = None,
    ) -> None:
        self.config = config
        self.tls = tls
        source = settings or StoreCoiSource(store, config.coi_mailbox_root)
        self.local = LocalDelivery(
            store,
            config.domains,
            source,
            detect_encrypted=config.coi_detect_encrypted,
            recipient_delimiter=config.recipient_delimiter,
            postmaster=config.postmaster,
            default_quota=config.default_quota,
        )
        self.queue = queue if queue is not None else open_queue(config, store)
        self.relay = RelayWorker(
            self.queue,
            relay_settings(config),
            self.local,
            DkimSigner(config.data_dir, config.dkim_selector),
            resolver,
        )
        self.throttle = LoginThrottle()
        self.addresses: list[tuple[str, str, int]] = []
        self._servers: list[Listener] = []

    def _submission(self, implicit: bool) -> Callable[[], SubmissionSMTP]:
        config = self.config

        def factory() -> SubmissionSMTP:
            handler = SubmissionHandler(
                self.local, self.relay.enqueue, config.hostname, config.max_recipients
            )
            return SubmissionSMTP(
                handler,
                store_lookup=self.local.local_user,
                throttle=self.throttle,
                implicit_tls=implicit,
                allow_plaintext_auth=config.allow_plaintext_auth,
                hostname=config.hostname,
                data_size_limit=config.max_message_size,
                enable_SMTPUTF8=True,
                tls_context=None if implicit else self.tls,
                ident="coi ESMTP",
            )

        return factory

    async def start(self, sockets: Mapping[str, Sequence[socket.socket]] | None = None) -> None:
        """Listens as configured, or on `sockets` (kind -> bound sockets) that a
        supervisor bound once for all its workers (coi.cli.workers)."""
        config = self.config
        listeners: list[tuple[str, str, Callable[[], asyncio.BaseProtocol], bool]] = [
            (
                "lmtp",
                config.lmtp,
                lambda: lmtp_factory(
                    self.local, config.hostname, config.max_message_size, config.max_recipients
                ),
                False,
            ),
            ("submission", config.submission, self._submission(False), False),
            ("submissions", config.submissions, self._submission(True), True),
        ]
        try:
            for kind, spec, factory, implicit in listeners:
                where = parse_listen(spec, f"--{kind}")
                if where is None:
                    continue
                context = self.tls if implicit else None
                shared = None if sockets is None else sockets.get(kind, ())
                servers = await open_listeners(factory, where, shared, context)
                for server in servers:
                    self._servers.append(server)
                    for sock in server.sockets:
                        host, port = sock.getsockname()[:2]
                        self.addresses.append((kind, host, port))
        except BaseException:
            await self.stop()
            raise
        self.relay.start()

    def port(self, kind: str) -> int:
        return next(port for k, _, port in self.addresses if k == kind)

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for server in self._servers:
            try:
                await asyncio.wait_for(server.wait_closed(), 2)
            except TimeoutError:
                pass
        self._servers.clear()
        await self.relay.stop()
        self.local.close()
        self.queue.close()
