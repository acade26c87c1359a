"""Content-transfer-encodings (RFC 2045 §6): decoding for BINARY and SEARCH, and the
base64 form a part holding NUL is served in where NUL cannot go (RFC 3516 §6)."""

from __future__ import annotations

import binascii
import re

_B64_JUNK_RE = re.compile(rb"[^A-Za-z0-9+/]+")


def _b64(data: bytes) -> bytes:
    """Lenient base64 (RFC 2045 §6.8: ignore characters outside the alphabet)."""
    data = _B64_JUNK_RE.sub(b"", data)
    rem = len(data) % 4
    if rem == 1:
        data = data[:-1]
    elif rem:
        data += b"=" * (4 - rem)
    try:
        return binascii.a2b_base64(data)
    except binascii.Error:  # pragma: no cover - input is sanitized above
        return b""


_QP_LINE_RE = re.compile(rb"[^\n]+\n?|\n")
_QP_ESCAPE_RE = re.compile(rb"=([0-9A-Fa-f]{2})")


def _qp_octet(match: re.Match[bytes]) -> bytes:
    return bytes((int(match.group(1), 16),))


def decode_quoted_printable(data: bytes) -> bytes:
    """Quoted-printable decoding by RFC 2045 §6.7.

    Trailing whitespace on a line is deleted (rule 3: transports may add or drop it); a
    line that then ends in `=` is a soft line break (rule 5, also when `=` was followed by
    whitespace); every hard line break decodes to CRLF (rule 4, RFC 3516 §6); `=XX`
    decodes in either case (the robust reading the RFC allows); any other `=` is kept as
    it is (§6.7 note 2)."""
    out: list[bytes] = []
    for match in _QP_LINE_RE.finditer(data):
        line = match.group()
        hard = line.endswith(b"\n")
        if hard:
            line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
        line = line.rstrip(b" \t")
        if line.endswith(b"="):
            line = line[:-1]
            hard = False
        if b"=" in line:
            line = _QP_ESCAPE_RE.sub(_qp_octet, line)
        out.append(line)
        if hard:
            out.append(b"\r\n")
    return b"".join(out)


def decode_body(data: bytes, encoding: str) -> bytes | None:
    """Undo a content-transfer-encoding; None for unknown ones (RFC 3516 UNKNOWN-CTE)."""
    if encoding in ("7bit", "8bit", "binary"):
        return data
    if encoding == "base64":
        return _b64(data)
    if encoding == "quoted-printable":
        return decode_quoted_printable(data)
    return None


_LINE_OCTETS = 57  # 76 base64 characters a line (RFC 2045 §6.8)


def base64_lines(data: bytes) -> bytes:
    """`data` in base64, lines of 76 characters joined by CRLF; no CRLF after the last
    (the CRLF before a boundary belongs to the boundary, RFC 2046 §5.1.1)."""
    return b"\r\n".join(
        binascii.b2a_base64(data[i : i + _LINE_OCTETS], newline=False)
        for i in range(0, len(data), _LINE_OCTETS)
    )
