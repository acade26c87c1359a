"""The relay worker: sends queued messages to the smarthost or to the recipient's MX.

Invariants: a recipient leaves the queue only after the remote server accepted it (250
to DATA) or after its bounce was stored/queued; a crash between the two sends the message
again rather than losing it. Temporary failures (4xx, connection errors) are retried with
doubling delays from `retry` up to `_MAX_DELAY`; after `expiry` seconds, or on a 5xx, the
sender gets an RFC 3464 bounce. Bounces have the null sender and never bounce themselves.
The worker wakes when a message is queued and at least every `_POLL` seconds (so
`coi queue flush` from another process takes effect).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import aiosmtplib
import dns.asyncresolver
import dns.exception
import dns.resolver

from coi.delivery.dkim import DkimSigner
from coi.delivery.dsn import Failure, build_dsn, enhanced_status
from coi.delivery.local import LocalDelivery, split_domain
from coi.delivery.queue import Queue, QueuedMessage, Recipient

log = logging.getLogger("coi.relay")
_MAX_DELAY = 4 * 3600.0
_POLL = 30.0

# domain -> [(host, port)] in preference order
MxResolver = Callable[[str], Awaitable[list[tuple[str, int]]]]


async def resolve_mx(domain: str) -> list[tuple[str, int]]:
    """MX hosts of `domain` by preference; the domain itself when it has none (RFC 5321 §5.1)."""
    try:
        answer = await dns.asyncresolver.resolve(domain, "MX")
    except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
        return [(domain, 25)]
    except dns.exception.DNSException as exc:
        raise TemporaryFailure(f"DNS lookup of MX for {domain} failed: {exc}") from exc
    hosts = sorted(answer, key=lambda r: r.preference)
    out = [(str(r.exchange).rstrip("."), 25) for r in hosts]
    if out == [("", 25)]:  # RFC 7505 null MX: the domain accepts no mail
        raise PermanentFailure("5.1.10", f"{domain} does not accept mail (null MX)")
    return out


class TemporaryFailure(Exception):
    pass


class PermanentFailure(Exception):
    def __init__(self, status: str, text: str) -> None:
        super().__init__(text)
        self.status = status


@dataclass(frozen=True, slots=True)
class RelaySettings:
    hostname: str
    relay_host: tuple[str, int] | None = None
    relay_user: str = ""
    relay_password: str = ""
    relay_tls: str = "starttls"  # starttls (when offered) | tls | none
    retry: float = 300.0
    expiry: float = 5 * 24 * 3600.0
    postmaster: str = ""


class RelayWorker:
    def __init__(
        self,
        queue: Queue,
        settings: RelaySettings,
        local: LocalDelivery,
        signer: DkimSigner | None = None,
        resolver: MxResolver = resolve_mx,
    ) -> None:
        self.queue = queue
        self.settings = settings
        self.local = local
        self.signer = signer
        self.resolver = resolver
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._busy: set[int] = set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    def wake(self) -> None:
        self._wake.set()

    async def enqueue(self, sender: str, rcpts: Sequence[str], raw: bytes) -> int:
        """Durably queues the message (signed now, when a DKIM key exists) and wakes the worker."""
        if self.signer is not None and sender:
            raw = await asyncio.to_thread(self.signer.sign, raw, split_domain(sender))
        message_id = await self.queue.enqueue_async(sender, rcpts, raw)
        self.wake()
        return message_id

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("relay pass failed")
            due = await asyncio.to_thread(self.queue.next_due)
            delay = _POLL if due is None else min(_POLL, max(0.0, due - time.time()))
            self._wake.clear()
            if delay > 0:
                try:
                    await asyncio.wait_for(self._wake.wait(), delay)
                except TimeoutError:
                    pass

    async def run_once(self) -> None:
        """One pass over every due message (used by the loop and by tests). With a shared
        queue the pass works what it claimed, renewing the claims while it sends."""
        items = await asyncio.to_thread(self.queue.claim, time.time())
        items = [item for item in items if item.id not in self._busy]
        renewing = None
        if self.queue.lease > 0 and items:
            ids = [r.id for item in items for r in item.recipients]
            renewing = asyncio.create_task(self._renew(ids))
        try:
            await asyncio.gather(*(self._attempt(item) for item in items))
        finally:
            if renewing is not None:
                renewing.cancel()

    async def _renew(self, recipient_ids: list[int]) -> None:
        """Keeps this pass's claims while its sends last (a slow MX, a big message)."""
        while True:
            await asyncio.sleep(self.queue.lease / 3)
            try:
                await asyncio.to_thread(self.queue.renew, recipient_ids)
            except Exception:
                log.exception("renewing the relay queue's claims failed")

    async def _attempt(self, item: QueuedMessage) -> None:
        self._busy.add(item.id)
        try:
            raw = await asyncio.to_thread(self.queue.raw, item.id)
            if raw is None:
                return
            groups: dict[str, list[Recipient]] = {}
            for rcpt in item.recipients:
                key = "" if self.settings.relay_host else split_domain(rcpt.rcpt)
                groups.setdefault(key, []).append(rcpt)
            for domain, rcpts in groups.items():
                await self._send_group(item, raw, domain, rcpts)
        finally:
            self._busy.discard(item.id)

    async def _send_group(
        self, item: QueuedMessage, raw: bytes, domain: str, rcpts: list[Recipient]
    ) -> None:
        failures: list[Failure] = []
        delivered: list[Recipient] = []
        deferred: list[tuple[Recipient, str]] = []
        try:
            refused = await self._transmit(item.sender, raw, domain, [r.rcpt for r in rcpts])
        except PermanentFailure as exc:
            failures = [Failure(r.rcpt, exc.status, str(exc)) for r in rcpts]
        except TemporaryFailure as exc:
            deferred = [(r, str(exc)) for r in rcpts]
        else:
            for r in rcpts:
                reply = refused.get(r.rcpt)
                if reply is None:
                    delivered.append(r)
                elif reply[0] >= 500:
                    failures.append(Failure(r.rcpt, enhanced_status(reply[1], reply[0]), reply[1]))
                else:
                    deferred.append((r, f"{reply[0]} {reply[1]}"))
        if delivered:
            await asyncio.to_thread(self.queue.done, [r.id for r in delivered])
            log.info("relayed message=%d rcpts=%d", item.id, len(delivered))
        now = time.time()
        for r, error in deferred:
            if now - item.created >= self.settings.expiry:
                failures.append(Failure(r.rcpt, "4.4.7", f"delivery time expired: {error}"))
                continue
            delay = min(_MAX_DELAY, self.settings.retry * (2**r.attempts))
            await asyncio.to_thread(self.queue.defer, [r.id], error, now + delay)
            log.info(
                "deferred message=%d rcpt=%s retry_in=%.0fs: %s", item.id, r.rcpt, delay, error
            )
        if failures:
            await self._bounce(item, raw, failures)
            ids = {f.rcpt for f in failures}
            await asyncio.to_thread(self.queue.done, [r.id for r in rcpts if r.rcpt in ids])

    async def _transmit(
        self, sender: str, raw: bytes, domain: str, rcpts: list[str]
    ) -> dict[str, tuple[int, str]]:
        """Sends to the smarthost or the domain's MX; returns the refused recipients."""
        if self.settings.relay_host is not None:
            hosts = [self.settings.relay_host]
        else:
            hosts = await self.resolver(domain)
        last = "no host to deliver to"
        for host, port in hosts:
            try:
                return await self._send_to(host, port, sender, raw, rcpts)
            except aiosmtplib.SMTPRecipientsRefused as exc:
                return {e.recipient: (e.code, e.message) for e in exc.recipients}
            except aiosmtplib.SMTPResponseException as exc:
                if exc.code >= 500:
                    raise PermanentFailure(
                        enhanced_status(exc.message, exc.code), str(exc)
                    ) from exc
                last = f"{host}:{port}: {exc.code} {exc.message}"
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                last = f"{host}:{port}: {exc}"
        raise TemporaryFailure(last)

    async def _send_to(
        self, host: str, port: int, sender: str, raw: bytes, rcpts: list[str]
    ) -> dict[str, tuple[int, str]]:
        smarthost = self.settings.relay_host is not None
        tls = self.settings.relay_tls if smarthost else "starttls"
        auth = smarthost and bool(self.settings.relay_user)
        client = aiosmtplib.SMTP(
            hostname=host,
            port=port,
            local_hostname=self.settings.hostname,
            use_tls=tls == "tls",
            # None: STARTTLS when offered; required before sending smarthost credentials
            start_tls=False if tls == "none" else (True if auth else None),
            # MX hosts are authenticated by nothing here (no DANE/MTA-STS yet): opportunistic TLS
            validate_certs=auth and tls != "none",
            timeout=60,
        )
        await client.connect()
        try:
            if auth:
                await client.login(self.settings.relay_user, self.settings.relay_password)
            errors, _ = await client.sendmail(sender, rcpts, raw)
        finally:
            try:
                await client.quit()
            except aiosmtplib.SMTPException:
                client.close()
        return {rcpt: (reply.code, reply.message) for rcpt, reply in errors.items()}

    async def _bounce(self, item: QueuedMessage, raw: bytes, failures: list[Failure]) -> None:
        for f in failures:
            log.info("bounced message=%d rcpt=%s status=%s", item.id, f.rcpt, f.status)
        if not item.sender:
            return  # RFC 5321 §4.5.5: never bounce a bounce
        dsn = build_dsn(
            reporting_mta=self.settings.hostname,
            postmaster=self.settings.postmaster or f"MAILER-DAEMON@{self.settings.hostname}",
            sender=item.sender,
            original=raw,
            arrival=datetime.fromtimestamp(item.created, UTC),
            failures=failures,
        )
        user = self.local.local_user(item.sender)
        if user is not None:
            await self.local.deliver(user, dsn, "")
        else:
            await self.queue.enqueue_async("", [item.sender], dsn)
