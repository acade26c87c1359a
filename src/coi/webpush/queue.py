"""Fair sending of pushes: per-user queues served round-robin, a concurrency limit per push
service, bounded queues, and retries with back-off (RFC 8030 §5, §8.4; RFC 9110 §10.2.3).

Invariants: at most `total` pushes are in flight, at most `per_service` of them to one push
service (scheme, host and port of the endpoint), so one slow service holds only its own
share and every other user's pushes go on; users take turns (round-robin), so one user's
burst waits behind nobody else's single push; a user's queue holds at most `per_user`
pushes and drops its oldest, with a log line, when full; a push answered 429 or 5xx is
tried again after `Retry-After` (seconds or an HTTP date) or, without one, after an
exponentially growing delay, at most `retries` times, and waits for that outside any
slot. What a final answer means (404/410: unsubscribe) is the caller's `finish`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from coi.webpush.crypto import audience_of
from coi.webpush.sender import PushResult
from coi.webpush.subscriptions import Subscription

log = logging.getLogger("coi.webpush")


@dataclass(frozen=True, slots=True)
class PushJob:
    user_id: int
    sub: Subscription
    payload: bytes
    validation: bool = False
    attempt: int = 0  # retries so far

    @property
    def service(self) -> str:
        """The push service as an origin (RFC 6454): what the per-service limit counts."""
        return audience_of(self.sub.endpoint)


Send = Callable[[PushJob], Awaitable[PushResult | None]]  # None: failed, not retryable
Finish = Callable[[PushJob, PushResult], Awaitable[None]]


def should_retry(status: int) -> bool:
    """429 Too Many Requests and 5xx are worth another try (RFC 8030 §8.4, RFC 6585 §4)."""
    return status == 429 or 500 <= status < 600


class FairPushQueue:
    def __init__(
        self,
        send: Send,
        finish: Finish,
        *,
        total: int = 64,
        per_service: int = 8,
        per_user: int = 256,
        retries: int = 4,
        backoff: float = 2.0,
        max_delay: float = 600.0,
    ) -> None:
        self._send = send
        self._finish = finish
        self.total = total
        self.per_service = per_service
        self.per_user = per_user
        self.retries = retries
        self.backoff = backoff
        self.max_delay = max_delay
        self._queues: dict[int, deque[PushJob]] = {}
        self._turns: deque[int] = deque()  # users with queued pushes, next turn first
        self._busy = 0
        self._per_service: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self._closed = False

    # -- queueing ----------------------------------------------------------------------

    def put(self, job: PushJob) -> None:
        if self._closed:
            return
        queue = self._queues.get(job.user_id)
        if queue is None:
            queue = self._queues[job.user_id] = deque()
            self._turns.append(job.user_id)
        queue.append(job)
        if len(queue) > self.per_user:
            dropped = queue.popleft()
            log.warning(
                "push queue full, dropping the oldest push user=%d id=%s",
                dropped.user_id,
                dropped.sub.id,
            )
        self._pump()

    def pending(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def _take(self) -> PushJob | None:
        """The next push to start: users in turn, within a user the oldest push whose
        service has a free slot."""
        for _ in range(len(self._turns)):
            user_id = self._turns[0]
            self._turns.rotate(-1)
            queue = self._queues[user_id]
            for index, job in enumerate(queue):
                if self._per_service[job.service] < self.per_service:
                    del queue[index]
                    if not queue:
                        del self._queues[user_id]
                        self._turns.remove(user_id)
                    return job
        return None

    def _pump(self) -> None:
        while self._busy < self.total and not self._closed:
            job = self._take()
            if job is None:
                return
            self._busy += 1
            self._per_service[job.service] += 1
            task = asyncio.get_running_loop().create_task(self._run(job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    # -- sending -----------------------------------------------------------------------

    async def _run(self, job: PushJob) -> None:
        try:
            result = await self._send(job)
        finally:
            self._busy -= 1
            self._per_service[job.service] -= 1
            if self._per_service[job.service] <= 0:
                del self._per_service[job.service]
            self._pump()
        if result is None:
            return
        if should_retry(result.status) and job.attempt < self.retries:
            delay = self.delay(job.attempt, result.retry_after)
            if delay is not None:
                log.info(
                    "push deferred status=%d user=%d id=%s: retry %d in %.1f s",
                    result.status,
                    job.user_id,
                    job.sub.id,
                    job.attempt + 1,
                    delay,
                )
                self._later(delay, replace(job, attempt=job.attempt + 1))
                return
        await self._finish(job, result)

    def delay(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds before retry `attempt + 1`: the service's Retry-After if it gave one,
        else `backoff` doubled per attempt; None when that is beyond `max_delay`."""
        delay = retry_after if retry_after is not None else self.backoff * 2**attempt
        return delay if delay <= self.max_delay else None

    def _later(self, delay: float, job: PushJob) -> None:
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.discard(handle)
            self.put(job)

        handle = loop.call_later(delay, fire)
        self._timers.add(handle)

    async def close(self, grace: float = 5.0) -> None:
        """Stops taking pushes; waits a little for those in flight, then cancels them."""
        self._closed = True
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        self._queues.clear()
        self._turns.clear()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace)
        for task in list(self._tasks):
            task.cancel()
