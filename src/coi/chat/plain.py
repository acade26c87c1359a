"""Folding quotes and signatures of plain email out of view.

# coi-client-spec: Text Messages
"Any existing signatures and quote blocks SHOULD be either stripped away or
folded out of view."  We fold, never drop: the folded text stays in the model
so a client can offer "show full message".

Only a trailing quote block (bottom-posting leftovers and the usual top-post
reply) and a leading one are folded; quotes interleaved with answers stay,
since without them the answers lose their meaning.
"""

from __future__ import annotations

import re

_SIGNATURE = re.compile(r"^(?:-- ?|_{10,}|-{5,} ?Original Message ?-{5,}|Sent from my .{1,40})$")
_ATTRIBUTION = re.compile(
    r"^\S.{0,300}(?:wrote|schrieb|écrit|escribió|skrev|scrisse|napisał)\s*:\s*$", re.IGNORECASE
)


def fold(text: str) -> tuple[str, str]:
    """Split ``text`` into (visible, folded) parts."""
    lines = text.replace("\r\n", "\n").split("\n")
    folded_tail: list[str] = []
    # Signature or forwarded original: everything from the separator on.
    for index, line in enumerate(lines):
        if _SIGNATURE.match(line.rstrip()) and index > 0:
            folded_tail = lines[index:]
            lines = lines[:index]
            break
    # Trailing quote block, with blank lines and the attribution line above it.
    end = len(lines)
    while end > 0 and (lines[end - 1].startswith(">") or not lines[end - 1].strip()):
        end -= 1
    if any(line.startswith(">") for line in lines[end:]):
        start = end
        if start > 0 and _ATTRIBUTION.match(lines[start - 1].strip()):
            start -= 1
        folded_tail = lines[start:] + folded_tail
        lines = lines[:start]
    # Leading quote block (top-quoting) with its attribution line.
    begin = 0
    if lines and _ATTRIBUTION.match(lines[0].strip()):
        begin = 1
    quoted_start = begin
    while begin < len(lines) and (lines[begin].startswith(">") or not lines[begin].strip()):
        begin += 1
    folded_head: list[str] = []
    if (
        begin > quoted_start
        and any(line.startswith(">") for line in lines[:begin])
        and begin < len(lines)
    ):
        folded_head = lines[:begin]
        lines = lines[begin:]
    visible = "\n".join(lines).strip("\n")
    folded = "\n".join([*folded_head, *([""] if folded_head and folded_tail else []), *folded_tail])
    return visible.rstrip(), folded.strip("\n")


def split_top_quote(text: str) -> tuple[str, str]:
    """(quote, rest) when ``text`` starts with a ``>`` block followed by more text.

    A chat reply carries the answered message quoted on top (Delta Chat does so); the
    quote is shown apart from what the sender wrote. Quote markers are removed.
    """
    lines = text.replace("\r\n", "\n").split("\n")
    end = 0
    while end < len(lines) and lines[end].startswith(">"):
        end += 1
    rest = "\n".join(lines[end:]).strip("\n")
    if end == 0 or not rest:
        return "", text
    quote = "\n".join(line[2:] if line.startswith("> ") else line[1:] for line in lines[:end])
    return quote, rest
