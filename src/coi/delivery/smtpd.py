"""aiosmtpd's SMTP server class with coi's cheaper DATA reading and address parsing.

Invariants: the replies and state changes are aiosmtpd's (same texts, same envelope
reset after DATA), except where coi.delivery.data says otherwise (SIZE counted on the
unstuffed message, 552 before 500).
"""

from __future__ import annotations

import asyncio
import logging
import re
from email._header_value_parser import get_addr_spec, get_angle_addr
from typing import AnyStr

from aiosmtpd.smtp import MISSING, SMTP, syntax

from coi.delivery.data import DataCollector, crlf_lines, read_data

log = logging.getLogger("coi.smtp")

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
# "<dot-atom@dot-atom>" then parameters; email's parser drops the blanks after ">"
_SIMPLE_PATH = re.compile(
    rf"<({_ATOM}(?:\.{_ATOM})*@{_ATOM}(?:\.{_ATOM})*)>(?![ \t]*\()[ \t]*(.*)", re.S
)
# RFC 5321 §4.2: reply text is TAB, SP and printable characters (RFC 6531 §3.7.4 adds UTF-8)
_NOT_TEXT = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _is_utf8(text: str) -> bool:
    """Whether `text` (decoded with surrogateescape) came from valid UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class FastSMTP(SMTP):
    """aiosmtpd's SMTP with DATA read in blocks and addresses parsed without waste.

    Put it before SMTP/LMTP in the bases of a server class.
    """

    long_data_lines = False  # True: a DATA line may be as long as the message (LMTP)

    async def push(self, status: AnyStr) -> None:
        """Sends a reply whose text is reply text (RFC 5321 §4.2), whatever it echoes.

        aiosmtpd echoes the client's words (an unknown command, an address) into replies:
        control characters there (a bare CR, NUL) become "?", so a reply is never broken or
        split, and octets that are not UTF-8 (kept by surrogateescape) become "?" instead of
        failing to encode (aiosmtpd then answered "500 Error: (UnicodeEncodeError) ...").
        The CRLFs of a multiline status stay: each line is cleaned on its own.
        """
        text = status if isinstance(status, str) else status.decode("utf-8", "replace")
        text = "\r\n".join(_NOT_TEXT.sub("?", line) for line in text.split("\r\n"))
        charset = "utf-8" if self.enable_SMTPUTF8 else "ascii"
        await super().push(text.encode(charset, "replace"))

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        collector = DataCollector(
            self.data_size_limit, 0 if self.long_data_lines else self.line_length_limit
        )
        try:
            await read_data(self._reader, collector)
        except asyncio.CancelledError:  # the connection is gone (aiosmtpd cancels us)
            log.info("connection lost during DATA")
            self._writer.close()
            raise
        except asyncio.IncompleteReadError:
            log.info("EOF during DATA")
            self._writer.close()
            return
        content = collector.result()
        if isinstance(content, str):
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            await self.push(content)
            return
        content = crlf_lines(content)  # stored mail never mixes LF and CRLF
        self.envelope.content = content  # never decoded: coi works on bytes
        self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push("250 OK" if status is MISSING else status)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's, without the class it built on every call, and a fast common case.

        `<local@domain>` with dot-atoms gives what email's header parser gives (tested);
        anything else (quoted local parts, literals, routes, comments, "<>") goes to it.
        """
        if not arg:
            return "", ""
        simple = _SIMPLE_PATH.fullmatch(arg)
        if simple is not None:
            addr, rest = simple.group(1), simple.group(2)
        else:
            try:
                parse = get_angle_addr if arg.lstrip().startswith("<") else get_addr_spec
                address, rest = parse(arg)
                # email's parser fails on some input it accepted (`<"`: IndexError,
                # `<"a"@[b>`: AttributeError, in addr_spec); aiosmtpd answered
                # "500 Error: (IndexError) ...": whatever it raises, the address is malformed
                addr = address.addr_spec
            except Exception:
                return None, None
        if self.local_part_limit and len(addr.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        if not addr.isascii() and not _is_utf8(addr):
            # RFC 6531 §3.3: a mailbox is UTF-8; octets that are not (kept by aiosmtpd as
            # surrogates) are a malformed address (553), not a store lookup that cannot encode
            return None, None
        return addr, rest
