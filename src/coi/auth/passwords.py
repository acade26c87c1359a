"""Password hashes with scrypt, a memory-hard KDF from the standard library.

Format: ``scrypt$<log2 n>$<r>$<p>$<salt b64>$<hash b64>`` so parameters can be raised later
without invalidating stored hashes.
"""

from __future__ import annotations

import asyncio
import base64
import ctypes
import ctypes.util
import functools
import hashlib
import hmac
import os
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

_LOG2_N = 14  # n = 16384, r = 8: 16 MiB per hash, about 50 ms on one core
_R = 8
_P = 1
_LEN = 32


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = _scrypt(password, salt, _LOG2_N, _R, _P)
    return "$".join(("scrypt", str(_LOG2_N), str(_R), str(_P), _b64(salt), _b64(digest)))


def verify_password(password: str, encoded: str) -> bool:
    try:
        scheme, log2_n, r, p, salt, digest = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = _scrypt(password, base64.b64decode(salt), int(log2_n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(expected, actual)


# One thread for the KDF: scrypt needs 16 MiB while it runs, and glibc keeps that much
# per thread that ever ran it; one thread (trimmed after each hash) keeps it to one buffer.
_KDF = ThreadPoolExecutor(max_workers=1, thread_name_prefix="coi-kdf")


def _libc_trim() -> Callable[[], None]:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to trim
        return lambda: None

    def release() -> None:
        trim(0)

    return release


_trim = _libc_trim()


def _verify_and_release(password: str, encoded: str) -> bool:
    try:
        return verify_password(password, encoded)
    finally:
        _trim()  # give the scrypt buffer back to the system


class _FairKdf:
    """The one KDF thread, shared fairly between peers: waiting checks are served one per
    peer in turn, not first come first served, so a flood of password guesses from some
    addresses delays another address's login by one hash per flooding address, not by
    the whole flood (issue 16)."""

    def __init__(self) -> None:
        self._waiting: OrderedDict[str, deque[tuple[asyncio.Future[bool], str, str]]]
        self._waiting = OrderedDict()
        self._busy = False

    async def verify(self, peer: str, password: str, encoded: str) -> bool:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(peer, deque()).append((future, password, encoded))
        if not self._busy:
            self._next()
        return await future

    def _next(self) -> None:
        while self._waiting:
            peer, queue = next(iter(self._waiting.items()))
            future, password, encoded = queue.popleft()
            if queue:
                self._waiting.move_to_end(peer)
            else:
                del self._waiting[peer]
            if future.cancelled():  # the client went away while it waited
                continue
            self._busy = True
            job = future.get_loop().run_in_executor(_KDF, _verify_and_release, password, encoded)
            job.add_done_callback(functools.partial(self._done, future))
            return
        self._busy = False

    def _done(self, future: asyncio.Future[bool], job: asyncio.Future[bool]) -> None:
        if not future.cancelled():
            error = job.exception()
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(job.result())
        self._next()


_fair_kdf = _FairKdf()


async def verify_password_async(password: str, encoded: str, peer: str = "") -> bool:
    """`verify_password` off the event loop, on the one KDF thread, fairly by `peer`."""
    return await _fair_kdf.verify(peer, password, encoded)


def _scrypt(password: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    n = 1 << log2_n
    return hashlib.scrypt(
        password.encode("utf-8", "surrogateescape"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        maxmem=256 * n * r + 1024 * 1024,
        dklen=_LEN,
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class VerifiedCache:
    """Remembers recent successful logins so a reconnecting client does not pay for scrypt
    again (as Dovecot's auth cache does). Entries are keyed by the stored hash, so a changed
    password is never served from the cache, and hold only a keyed fast digest of the
    password, which is worthless without this process's random key."""

    def __init__(self, ttl: float = 3600.0, max_entries: int = 100_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._key = os.urandom(32)
        self._entries: dict[str, tuple[bytes, float]] = {}

    def _digest(self, password: str) -> bytes:
        return hmac.new(self._key, password.encode("utf-8", "surrogateescape"), "sha256").digest()

    def check(self, encoded: str, password: str, now: float) -> bool:
        entry = self._entries.get(encoded)
        if entry is None or entry[1] < now:
            return False
        return hmac.compare_digest(entry[0], self._digest(password))

    def remember(self, encoded: str, password: str, now: float) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[encoded] = (self._digest(password), now + self.ttl)

    async def verify(self, password: str, encoded: str, peer: str = "") -> bool:
        """Like `verify_password`, off the event loop (fairly by `peer`), cached on success."""
        now = time.monotonic()
        if self.check(encoded, password, now):
            return True
        ok = await verify_password_async(password, encoded, peer)
        if ok:
            self.remember(encoded, password, now)
        return ok
