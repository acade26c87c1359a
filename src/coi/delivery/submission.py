"""SMTP submission (RFC 6409) for chat clients: STARTTLS on 587, implicit TLS on 465 (RFC 8314).

Invariants: every transaction needs AUTH (PLAIN or LOGIN, RFC 4954) against the store's
users; AUTH is offered only over TLS unless the peer is on loopback or
`--allow-plaintext-auth` is set. The envelope sender and every From address must be the
authenticated user's address (RFC 6409 §6.1). The 250 after DATA is sent only after the
local recipients' copies are durable, the remote recipients are in the durable relay
queue, and the sender's own \\Seen copy is stored.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from aiosmtpd.smtp import AuthResult, LoginPassword

from coi import metrics
from coi.auth.passwords import verify_password_async
from coi.auth.throttle import LoginThrottle
from coi.delivery.local import LocalDelivery, from_addresses
from coi.delivery.smtpd import FastSMTP
from coi.store.model import User
from coi.store.quota import OverQuota, exceeds

log = logging.getLogger("coi.submission")
# aiosmtpd itself sets the deprecated Session.login_data on every AUTH and warns about it
logging.getLogger("mail.log").addFilter(
    lambda record: "login_data is deprecated" not in record.getMessage()
)

Enqueue = Callable[[str, list[str], bytes], Awaitable[int]]


def is_loopback(peer: Any) -> bool:
    try:
        host = peer[0] if isinstance(peer, tuple) else str(peer)
        return ipaddress.ip_address(host).is_loopback
    except (ValueError, TypeError, IndexError):
        return False


class SubmissionHandler:
    def __init__(
        self, local: LocalDelivery, enqueue: Enqueue, hostname: str, max_recipients: int
    ) -> None:
        self.local = local
        self.enqueue = enqueue
        self.hostname = hostname
        self.max_recipients = max_recipients

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        user: User = session.auth_data
        if address.lower() != user.address:
            return f"553 5.7.1 Sender <{address}> is not yours: you are logged in as {user.address}"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if len(envelope.rcpt_tos) >= self.max_recipients:
            return f"452 4.5.3 Too many recipients (at most {self.max_recipients} per message)"
        found = await self.local.read_recipient(address)
        if found is None and self.local.is_local_domain(address):
            return f"550 5.1.1 <{address}>: no such user here"
        if found is not None and exceeds(found[1], 1):
            return f"552 5.2.2 <{address}>: mailbox full"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        user: User = session.auth_data
        raw: bytes = envelope.original_content or b""
        senders = from_addresses(raw)
        if not senders:
            return "550 5.6.0 The message has no From header"
        foreign = [a for a in senders if a != user.address]
        if foreign:
            return (
                f"550 5.7.1 From <{foreign[0]}> is not yours: you are logged in as {user.address}"
            )
        sender: str = envelope.mail_from
        tls = server.implicit_tls or session.ssl is not None
        received = (
            f"Received: from {session.host_name or 'unknown'} by {self.hostname} (coi)"
            f" with {'ESMTPSA' if tls else 'ESMTPA'}; {format_datetime(datetime.now(UTC))}\r\n"
        )
        message = received.encode("utf-8", "surrogateescape") + raw
        rcpts: list[str] = list(envelope.rcpt_tos)
        local: list[tuple[str, User]] = []
        remote: list[str] = []
        trace_size = len(sender) + 20
        for rcpt in rcpts:  # quota checked before anything is stored or queued
            found = await self.local.read_recipient(rcpt)
            if found is None:
                remote.append(rcpt)
            elif exceeds(found[1], len(message) + trace_size):
                return f"552 5.2.2 <{rcpt}>: mailbox full, the message was not sent"
            else:
                local.append((rcpt, found[0]))
        try:
            if remote:
                await self.enqueue(sender, remote, message)
            trace = f"Return-Path: <{sender}>\r\n".encode("utf-8", "surrogateescape")
            targets = {target.id: target for _, target in local}  # one copy per user
            await asyncio.gather(
                *(
                    self.local.deliver(target, trace + message, sender, quota_checked=True)
                    for target in targets.values()
                )
            )
        except Exception:
            log.exception("submission failed user=%s", user.address)
            return "451 4.3.0 Temporary failure storing the message, try again later"
        # A sender who is among the recipients (Delta Chat's copy to self, a BCC to oneself)
        # already got the message delivered: a Sent copy as well would show it twice.
        to_self = any(target.id == user.id for _, target in local)
        try:
            if not to_self:
                await self.local.store_sent(user, raw)
        except OverQuota:
            log.warning("no Sent copy: user=%s is over quota", user.address)
        except Exception:  # the message went out; a retry would send it twice
            log.exception("storing the sent copy failed user=%s", user.address)
        log.info(
            "submitted user=%s local=%d remote=%d size=%d",
            user.address,
            len(local),
            len(remote),
            len(raw),
        )
        metrics.delivery("submission", "delivered", len(local))
        metrics.delivery("submission", "queued", len(remote))
        return f"250 2.0.0 OK: {len(local)} delivered, {len(remote)} queued"


class SubmissionSMTP(FastSMTP):
    """aiosmtpd's SMTP (DATA and addresses as coi.delivery.smtpd) with per-connection TLS
    rules for AUTH and non-blocking password checks."""

    def __init__(
        self,
        handler: SubmissionHandler,
        *,
        store_lookup: Callable[[str], User | None],
        throttle: LoginThrottle,
        implicit_tls: bool,
        allow_plaintext_auth: bool,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, auth_required=True, auth_require_tls=True, **kwargs)
        self.implicit_tls = implicit_tls
        self._allow_plaintext_auth = allow_plaintext_auth
        self._lookup = store_lookup
        self._throttle = throttle

    def connection_made(self, transport: Any) -> None:
        if self.transport is None:  # the TCP connection, not the STARTTLS upgrade
            peer = transport.get_extra_info("peername")
            # RFC 8314 §3 / RFC 4954 §4: credentials only over TLS, unless loopback or allowed
            self._auth_require_tls = not (
                self.implicit_tls or self._allow_plaintext_auth or is_loopback(peer)
            )
        super().connection_made(transport)

    def _authenticate(self, mechanism: str, auth_data: Any) -> AuthResult:
        # parsing only; the password is checked off the event loop in _verify
        return AuthResult(success=True, auth_data=auth_data)

    async def auth_PLAIN(self, _: Any, args: list[str]) -> AuthResult:
        """RFC 4616 §2: ``authzid NUL authcid NUL passwd``; an authorization identity other
        than the authenticated user must fail (aiosmtpd ignores it)."""
        if len(args) == 1:
            data = await self.challenge_auth("")
            if not isinstance(data, bytes):
                return AuthResult(success=False)
        else:
            try:
                data = base64.b64decode(args[1].encode(), validate=True)
            except (binascii.Error, ValueError):
                await self.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        parts = data.split(b"\x00")
        if len(parts) != 3:
            await self.push("501 5.5.2 Can't split auth value")
            return AuthResult(success=False, handled=True)
        authzid, login, password = parts
        if authzid and authzid.strip().lower() != login.strip().lower():
            await self.push("535 5.7.8 Acting as another user is not allowed")
            return AuthResult(success=False, handled=True)
        parsed = AuthResult(success=True, auth_data=LoginPassword(login, password))
        return await self._verify(parsed)

    async def auth_LOGIN(self, _: Any, args: list[str]) -> AuthResult:
        return await self._verify(await super().auth_LOGIN(_, args))

    async def _verify(self, result: AuthResult) -> AuthResult:
        if not result.success or not isinstance(result.auth_data, LoginPassword):
            return result
        login = result.auth_data.login.decode("utf-8", "replace").strip().lower()
        password = result.auth_data.password.decode("utf-8", "surrogateescape")
        assert self.session is not None
        peer = self.session.peer
        ip = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        delay = self._throttle.delay(ip, login)
        if delay:
            await asyncio.sleep(delay)
        user = self._lookup(login)
        ok = user is not None and await verify_password_async(password, user.password_hash, ip)
        if user is None or not ok:
            self._throttle.failed(ip, login)
            metrics.login("submission", False)
            log.info("auth failed peer=%s user=%s", ip, login)
            return AuthResult(success=False, handled=False)
        self._throttle.succeeded(ip, login)
        metrics.login("submission", True)
        log.info("auth ok peer=%s user=%s", ip, login)
        return AuthResult(success=True, auth_data=user)
