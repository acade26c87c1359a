"""Exceptions shared by the wire modules (kept separate so no module imports a cycle)."""

from __future__ import annotations


class ParseError(Exception):
    """A command could not be parsed; the server answers ``tag BAD message``.

    ``tag`` is None when the tag itself was unreadable (answer with ``* BAD``).
    """

    def __init__(self, tag: str | None, message: str) -> None:
        super().__init__(message)
        self.tag = tag
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(tag={self.tag!r}, message={self.message!r})"


class BadCharset(ParseError):
    """SEARCH named a charset we do not support.

    Kept distinct so the server can answer ``NO [BADCHARSET (UTF-8 US-ASCII)]``
    (RFC 3501 §6.4.4, §7.1) instead of BAD.
    """

    def __init__(self, tag: str | None, charset: str, save: bool = False) -> None:
        super().__init__(tag, f"unsupported charset {charset}")
        self.charset = charset
        self.save = save  # the command had RETURN (SAVE): "$" becomes empty (RFC 5182 §2.1)


class ResponseParseError(ValueError):
    """A server response could not be framed or parsed (client side).

    ``fatal``: the byte stream itself is broken (a line or literal over the limit),
    so no later response can be trusted; otherwise only this one response (``raw``,
    truncated) was malformed and reading may go on.
    """

    def __init__(self, message: str, raw: bytes = b"", fatal: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.raw = raw
        self.fatal = fatal
