"""The two ways a command fails: NO (with an optional response code) and BAD."""

from __future__ import annotations


class CommandNo(Exception):
    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = code

    def response(self) -> str:
        return f"NO [{self.code}] {self.text}" if self.code else f"NO {self.text}"


class CommandBad(Exception):
    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = code

    def response(self) -> str:
        return f"BAD [{self.code}] {self.text}" if self.code else f"BAD {self.text}"


class Autologout(Exception):
    """The connection ends without a tagged response to the command in progress: the
    connection answers `* BYE` (RFC 3501 §7.1.5) and closes. Raised while waiting for
    the client, including in the middle of a command (IDLE, AUTHENTICATE)."""


class IdleTimeout(Autologout):
    """Silent past the idle timeout once authenticated (RFC 3501 §5.4), also within
    IDLE (RFC 2177 §3: the server may log an idling client off at its timeout)."""


class LoginTimeout(Autologout):
    """Not logged in by the deadline, however busy the connection kept itself."""


class PreloginInputExceeded(Autologout):
    """More input before login than any real login needs (issue 16): a peer streaming
    data at us without authenticating is cut off instead of costing CPU for ever."""
