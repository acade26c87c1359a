"""Modified UTF-7 mailbox name coding (RFC 3501 §5.1.3).

Decoding is strict: only the canonical encoding is accepted, so that every
mailbox has exactly one wire spelling and names cannot alias each other.
"""

from __future__ import annotations

import binascii


class InvalidName(str):
    """A mailbox name (or pattern) as sent that is not valid modified UTF-7, kept as its
    raw text. No mailbox has such a name: the server answers NO to commands naming it and
    lists nothing for a LIST pattern like it (RFC 3501 §5.1.3, RFC 5258 §3), where a parse
    error would be BAD."""

    __slots__ = ()


def _is_direct(ch: str) -> bool:
    # RFC 3501 §5.1.3: printable US-ASCII except "&" represents itself.
    return "\x20" <= ch <= "\x7e" and ch != "&"


def _b64(chunk: str) -> str:
    raw = chunk.encode("utf-16-be")
    enc = binascii.b2a_base64(raw, newline=False).decode("ascii")
    return enc.rstrip("=").replace("/", ",")


def encode(name: str) -> str:
    """Encode a Unicode mailbox name into its canonical mUTF-7 form."""
    out: list[str] = []
    pending: list[str] = []
    for ch in name:
        if _is_direct(ch):
            if pending:
                out.append("&" + _b64("".join(pending)) + "-")
                pending.clear()
            out.append(ch)
        elif ch == "&":
            if pending:
                out.append("&" + _b64("".join(pending)) + "-")
                pending.clear()
            out.append("&-")
        else:
            pending.append(ch)
    if pending:
        out.append("&" + _b64("".join(pending)) + "-")
    return "".join(out)


_B64CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,")


def _decode_run(run: str) -> str:
    if not run:
        raise ValueError("empty base64 run")
    if any(c not in _B64CHARS for c in run):
        raise ValueError("invalid character in modified base64")
    if len(run) % 4 == 1:
        raise ValueError("truncated modified base64")
    padded = run.replace(",", "/") + "=" * (-len(run) % 4)
    try:
        raw = binascii.a2b_base64(padded.encode("ascii"), strict_mode=True)
    except binascii.Error as exc:
        raise ValueError(f"invalid modified base64: {exc}") from None
    if len(raw) % 2:
        raise ValueError("odd number of UTF-16 octets")
    try:
        text = raw.decode("utf-16-be")
    except UnicodeDecodeError as exc:
        raise ValueError(f"invalid UTF-16 in mailbox name: {exc}") from None
    # Canonical form: re-encoding must reproduce the run exactly (this rejects
    # non-zero padding bits) and no directly representable char may be shifted.
    if _b64(text) != run:
        raise ValueError("non-canonical modified base64")
    if any(_is_direct(c) for c in text):
        raise ValueError("printable ASCII must not be base64 encoded")
    return text


def decode(name: str) -> str:
    """Decode a wire mailbox name; raise ValueError on anything non-canonical."""
    if "&" not in name:
        for ch in name:
            if not _is_direct(ch):
                raise ValueError(f"invalid character {ch!r} in mailbox name")
        return name
    out: list[str] = []
    i = 0
    n = len(name)
    run_end = -1  # index just past the last base64 run's "-"
    while i < n:
        ch = name[i]
        if ch == "&":
            end = name.find("-", i + 1)
            if end < 0:
                raise ValueError("unterminated '&' shift in mailbox name")
            if end == i + 1:
                out.append("&")
            else:
                if i == run_end:
                    # Two adjacent shifts would have been one in canonical form.
                    raise ValueError("adjacent base64 runs are not canonical")
                out.append(_decode_run(name[i + 1 : end]))
                run_end = end + 1
            i = end + 1
        elif _is_direct(ch):
            out.append(ch)
            i += 1
        else:
            raise ValueError(f"invalid character {ch!r} in mailbox name")
    return "".join(out)
