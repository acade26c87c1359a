"""LMTP (RFC 2033) for an MTA such as Postfix: mail from the internet enters here.

Invariants: unknown local users are refused at RCPT (550 5.1.1); after DATA there is one
reply per accepted RCPT, in RCPT order (RFC 2033 §4.2), and each 250 is sent only after
that recipient's copy is durable in the store. SIZE is announced in the LHLO reply and
enforced by aiosmtpd at MAIL and by coi.delivery.data after DATA (552).
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, AnyStr

from aiosmtpd.lmtp import LMTP

from coi import metrics
from coi.delivery.local import LocalDelivery
from coi.delivery.smtpd import FastSMTP
from coi.store.errors import NoSuchMailbox, NoSuchUser
from coi.store.model import User
from coi.store.quota import exceeds

log = logging.getLogger("coi.lmtp")


class LmtpHandler:
    def __init__(self, local: LocalDelivery, max_recipients: int) -> None:
        self.local = local
        self.max_recipients = max_recipients

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        """LHLO: PIPELINING and ENHANCEDSTATUSCODES, which RFC 2033 §5 requires."""
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", "250-ENHANCEDSTATUSCODES", responses[-1]]

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        found = await self.local.read_recipient(address)
        if found is None:
            return f"550 5.1.1 <{address}>: no such user here"
        user, usage = found
        if exceeds(usage, 1):  # RFC 3463 5.2.2: mailbox full, a permanent failure
            return f"552 5.2.2 <{address}>: mailbox full"
        if len(envelope.rcpt_tos) >= self.max_recipients:
            return "452 4.5.3 Too many recipients"
        # DATA follows at once (PIPELINING): it delivers to the user and quota found here
        # rather than reading them again (a user deleted meanwhile fails at the append: 451)
        _recipients(envelope)[address] = (user, usage)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw: bytes = envelope.original_content or b""
        sender: str = envelope.mail_from or ""
        if sender == "<>":  # aiosmtpd keeps the null reverse-path as written
            sender = ""
        # RFC 5321 §4.4: the final delivery adds Return-Path
        message = f"Return-Path: <{sender}>\r\n".encode("utf-8", "surrogateescape") + raw
        rcpts: list[str] = list(envelope.rcpt_tos)
        found = _recipients(envelope)
        # one copy per user, however many of its addresses (aliases, user+tag) were named
        targets = {found[rcpt][0].id: found[rcpt] for rcpt in rcpts}
        done = await asyncio.gather(
            *(self._deliver(u, usage, message, sender) for u, usage in targets.values())
        )
        stored = dict(zip(targets, done, strict=True))
        # stored[user]: True, False (try again later) or None (over quota)
        replies = []  # RFC 2033 §4.2: one reply per successful RCPT, in order
        for rcpt in rcpts:
            user = found[rcpt][0]
            if stored[user.id]:
                replies.append(f"250 2.0.0 <{rcpt}> delivered")
            elif stored[user.id] is None:
                replies.append(f"552 5.2.2 <{rcpt}>: mailbox full")
            else:
                replies.append(f"451 4.3.0 <{rcpt}>: temporary failure, try again later")
        return "\r\n".join(replies)

    async def _deliver(
        self, user: User, usage: tuple[int, int], message: bytes, sender: str
    ) -> bool | None:
        if exceeds(usage, len(message)):
            metrics.delivery("lmtp", "overquota")
            return None
        try:
            await self.local.deliver(user, message, sender, quota_checked=True)
        except (NoSuchMailbox, NoSuchUser) as gone:
            # the user was deleted or moved to another shard after RCPT found them: the
            # sending server tries again and finds them where they are now (or gets 550)
            log.warning(
                "delivery deferred user=%s: deleted or moved meanwhile (%s)", user.address, gone
            )
            metrics.delivery("lmtp", "tempfail")
            return False
        except Exception:
            log.exception("delivery failed user=%s", user.address)
            metrics.delivery("lmtp", "tempfail")
            return False
        metrics.delivery("lmtp", "delivered")
        return True


def _recipients(envelope: Any) -> dict[str, tuple[User, tuple[int, int]]]:
    """The accepted recipients of this transaction: address -> (user, quota usage)."""
    found: dict[str, tuple[User, tuple[int, int]]] | None = getattr(envelope, "coi_found", None)
    if found is None:
        found = envelope.coi_found = {}
    return found


_ENHANCED = re.compile(r"^([245])(\d\d)([ -])(?!\d\.\d{1,3}\.\d{1,3}\b)")


class CoiLMTP(FastSMTP, LMTP):
    """aiosmtpd's LMTP with coi.delivery.smtpd's cheaper DATA and address parsing.

    RFC 2033 §5: an LMTP server MUST offer PIPELINING and ENHANCEDSTATUSCODES; with the
    latter every 2xx/4xx/5xx reply but the greeting and the LHLO lines carries an
    enhanced code (RFC 2034 §3), which aiosmtpd's own replies lack ("250 OK").
    """

    _in_lhlo = False
    long_data_lines = True  # the MTA accepted the mail already: take long lines as they are

    async def smtp_LHLO(self, arg: str) -> None:
        self._in_lhlo = True
        try:
            await super().smtp_LHLO(arg)
        finally:
            self._in_lhlo = False

    async def push(self, status: AnyStr) -> None:
        text = status if isinstance(status, str) else status.decode("utf-8", "replace")
        if not self._in_lhlo and not text.startswith("220"):
            text = _ENHANCED.sub(lambda m: f"{m[1]}{m[2]}{m[3]}{m[1]}.0.0 ", text, count=1)
        await super().push(text)


def lmtp_factory(local: LocalDelivery, hostname: str, max_size: int, max_recipients: int) -> LMTP:
    return CoiLMTP(
        LmtpHandler(local, max_recipients),
        hostname=hostname,
        data_size_limit=max_size,
        enable_SMTPUTF8=True,
        ident="coi LMTP",
    )
