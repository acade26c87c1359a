"""Shared pieces of the transcript tests: logged-in clients and sample messages."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from tests.conftest import LineClient, RunningServer


def crlf(text: str) -> bytes:
    """A message written with \\n line ends, as it goes on the wire."""
    return text.replace("\n", "\r\n").encode()


def literal(data: bytes, plus: bool = True) -> tuple[str, str]:
    """`{N+}` (or `{N}`) and the data as a transcript `C:` line (CRLF escaped)."""
    text = data.decode("utf-8").replace("\r\n", "\\r\\n")
    return "{" + str(len(data)) + ("+}" if plus else "}"), text


async def connect(server: RunningServer) -> LineClient:
    client = await LineClient.connect(server)
    return client


async def logged_in(server: RunningServer, address: str = "alice@example.org") -> LineClient:
    client = await LineClient.connect(server)
    await client.login(address)
    return client


async def append(
    client: LineClient, data: bytes, mailbox: str = "INBOX", extra: str = ""
) -> list[bytes]:
    """APPENDs with a non-synchronizing literal; returns the response lines."""
    await client.send(f"AP APPEND {mailbox} {extra}{{{len(data)}+}}\r\n".encode() + data + b"\r\n")
    lines = await client.until_tagged("AP")
    assert lines[-1].startswith(b"AP OK"), lines
    return lines


@pytest.fixture
async def alice(imap_server: RunningServer) -> AsyncIterator[LineClient]:
    client = await logged_in(imap_server)
    try:
        yield client
    finally:
        await client.close()


# The message of the RFC 3501 §8 example: 4286 octets, a body of 3028 octets in 92 lines.
_BODY_LINES = ["x" * 31] * 84 + ["y" * 30] * 8
RFC8_BODY = "".join(line + "\r\n" for line in _BODY_LINES).encode()
_RFC8_HEADER = (
    "Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\r\n"
    "From: Terry Gray <gray@cac.washington.edu>\r\n"
    "Subject: IMAP4rev1 WG mtg summary and minutes\r\n"
    "To: imap@cac.washington.edu\r\n"
    "cc: minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>\r\n"
    "Message-Id: <B27397-0100000@cac.washington.edu>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n"
)
_PAD = 4286 - len(RFC8_BODY) - len(_RFC8_HEADER) - len("X-Padding: \r\n\r\n")
RFC8_HEADER = (_RFC8_HEADER + "X-Padding: " + "p" * _PAD + "\r\n\r\n").encode()
RFC8_MESSAGE = RFC8_HEADER + RFC8_BODY
assert len(RFC8_MESSAGE) == 4286 and len(RFC8_BODY) == 3028
RFC8_DATE = '"17-Jul-1996 02:44:25 -0700"'
RFC8_ENVELOPE = (
    'ENVELOPE ("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" '
    '"IMAP4rev1 WG mtg summary and minutes" '
    '(("Terry Gray" NIL "gray" "cac.washington.edu")) '
    '(("Terry Gray" NIL "gray" "cac.washington.edu")) '
    '(("Terry Gray" NIL "gray" "cac.washington.edu")) '
    '((NIL NIL "imap" "cac.washington.edu")) '
    '((NIL NIL "minutes" "CNRI.Reston.VA.US")'
    '("John Klensin" NIL "KLENSIN" "MIT.EDU")) NIL NIL '
    '"<B27397-0100000@cac.washington.edu>")'
)
RFC8_BODY_STRUCTURE = '("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92)'

SIMPLE = crlf(
    "Date: Mon, 7 Feb 1994 21:52:25 -0800\n"
    "From: Fred Foobar <foobar@Blurdybloop.example>\n"
    "Subject: afternoon meeting\n"
    "To: mooch@owatagu.siam.example\n"
    "Message-Id: <B27397-0100000@Blurdybloop.example>\n"
    "MIME-Version: 1.0\n"
    "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\n"
    "\n"
    "Hello Joe, do you think we can meet at 3:30 tomorrow?\n"
)

MULTIPART = crlf(
    "Date: Tue, 1 Mar 2022 10:00:00 +0100\n"
    "From: Bob <bob@example.org>\n"
    "To: Alice <alice@example.org>\n"
    "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\n"
    "Message-ID: <multi@example.org>\n"
    "MIME-Version: 1.0\n"
    'Content-Type: multipart/mixed; boundary="XX"\n'
    "\n"
    "preamble\n"
    "--XX\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "Content-Transfer-Encoding: quoted-printable\n"
    "\n"
    "Sch=C3=B6ne Gr=C3=BC=C3=9Fe\n"
    "--XX\n"
    "Content-Type: application/octet-stream; name=a.bin\n"
    "Content-Disposition: attachment; filename=a.bin\n"
    "Content-Transfer-Encoding: base64\n"
    "\n"
    "AAECAwQ=\n"
    "--XX--\n"
)
