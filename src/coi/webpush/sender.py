"""Sends encrypted push messages to push services (RFC 8030 §5) over HTTPS.

Safety: a subscription's endpoint is chosen by a client, so it must never make the server
reach hosts inside its own network. Endpoints must be https URLs; every address a name
resolves to is checked, and only globally routable ones are connected to (the check and
the connection use the same resolved address, so DNS rebinding cannot slip past it).
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from cryptography.hazmat.primitives.asymmetric import ec

from coi import metrics
from coi.webpush import crypto


class PushRefused(Exception):
    """The endpoint may not be used (not https, or it points inside the network)."""


class EndpointUnresolved(Exception):
    """The endpoint's host name does not resolve (now: DNS may be failing for a while)."""


@dataclass(frozen=True, slots=True)
class PushTarget:
    endpoint: str
    p256dh: bytes  # uncompressed P-256 point
    auth: bytes  # 16 octets


@dataclass(frozen=True, slots=True)
class PushResult:
    status: int
    retry_after: float | None = None

    @property
    def delivered(self) -> bool:
        return 200 <= self.status < 300

    @property
    def gone(self) -> bool:
        """404/410: the subscription expired or was removed (webpush-spec: response codes)."""
        return self.status in (404, 410)


def check_endpoint(endpoint: str) -> None:
    parts = urlsplit(endpoint)
    if parts.scheme != "https" or not parts.hostname:
        raise PushRefused("push endpoints must be https URLs")
    if parts.username or parts.password:
        raise PushRefused("push endpoints must not carry credentials")


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def refuse_internal(endpoint: str, *, timeout: float = 5.0) -> None:
    """Raises PushRefused if the endpoint's host is an internal address or resolves only to
    internal addresses (webpush-spec: Security Considerations), EndpointUnresolved if it
    does not resolve. Checked when a subscription is stored, so the client hears of it;
    the connection checks again (GuardedResolver), as a name may resolve otherwise later."""
    host = urlsplit(endpoint).hostname or ""
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    else:
        if not is_public(host):
            raise PushRefused(f"{host} is an internal address")
        return
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            infos = await loop.getaddrinfo(host, 443, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError, UnicodeError) as exc:
        raise EndpointUnresolved(f"cannot resolve {host}") from exc
    if not any(is_public(str(info[4][0])) for info in infos):
        raise PushRefused(f"{host} resolves only to internal addresses")


class GuardedResolver(AbstractResolver):
    """Resolves names, then keeps only globally routable addresses (unless allowed)."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, family=family)
        except socket.gaierror as exc:
            raise OSError(f"cannot resolve {host}: {exc}") from exc
        results: list[ResolveResult] = []
        for fam, _, proto, _, sockaddr in infos:
            address = str(sockaddr[0])
            if not self.allow_private and not is_public(address):
                continue
            results.append(
                ResolveResult(
                    hostname=host,
                    host=address,
                    port=int(sockaddr[1]),
                    family=fam,
                    proto=proto,
                    flags=socket.AI_NUMERICHOST,
                )
            )
        if not results:
            raise PushRefused(f"{host} resolves only to internal addresses")
        return results

    async def close(self) -> None:
        return None


class PushSender:
    def __init__(
        self,
        vapid_key: ec.EllipticCurvePrivateKey,
        subject: str,
        *,
        allow_private: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 15.0,
    ) -> None:
        self.vapid_key = vapid_key
        self.subject = subject
        self.allow_private = allow_private
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                resolver=GuardedResolver(self.allow_private), ssl=self.ssl_context, limit=100
            )
            self._session = aiohttp.ClientSession(connector=connector, timeout=self.timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(
        self, target: PushTarget, payload: bytes, *, ttl: int = 86400, validation: bool = False
    ) -> PushResult:
        check_endpoint(target.endpoint)
        host = urlsplit(target.endpoint).hostname or ""
        if not self.allow_private:
            # aiohttp connects to an address literal without asking the resolver
            try:
                literal = ipaddress.ip_address(host.split("%", 1)[0])
            except ValueError:
                literal = None
            if literal is not None and not is_public(host):
                raise PushRefused(f"{host} is an internal address")
        body = crypto.encrypt(payload, target.p256dh, target.auth)
        headers: dict[str, Any] = {
            "TTL": str(ttl),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "Urgency": "high",
            "Authorization": crypto.vapid_authorization(
                self.vapid_key, target.endpoint, self.subject
            ),
        }
        if validation:
            headers["WebPush-Validation"] = ""  # webpush-spec: header without a value
        async with self._client().post(
            target.endpoint, data=body, headers=headers, allow_redirects=False
        ) as response:
            retry = response.headers.get("Retry-After")
            metrics.push(f"{response.status // 100}xx" if response.status not in (404, 410, 429)
                         else str(response.status))  # fmt: skip
            return PushResult(response.status, retry_after_seconds(retry))


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` (RFC 9110 §10.2.3) as seconds from now: delay-seconds or an HTTP-date
    (IMF-fixdate, or the obsolete forms); None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(int(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)  # HTTP dates are GMT
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)
