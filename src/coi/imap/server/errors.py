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
