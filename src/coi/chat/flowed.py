"""RFC 3676 ``format=flowed`` encoding and decoding.

# coi-client-spec: Text Messages
COI text parts are ``text/plain; charset=UTF-8; format=flowed``, so long
paragraphs reflow on small screens while plain clients still show them well.
"""

from __future__ import annotations

DEFAULT_WIDTH = 76
_SIGNATURE_SEPARATOR = "-- "


def _needs_stuffing(line: str) -> bool:
    # RFC 3676 4.4: lines starting with space, ">" or "From " must be stuffed.
    return line.startswith((" ", ">", "From "))


def encode(text: str, width: int = DEFAULT_WIDTH, delsp: bool = False) -> str:
    """Encode paragraphs of ``text`` as flowed lines (joined with ``\\n``).

    Trailing spaces before hard line breaks are removed (RFC 3676 4.2) since they
    would otherwise turn hard breaks into soft ones.  With ``delsp`` the soft
    break inserts a space that the decoder deletes, allowing breaks inside words.
    """
    output: list[str] = []
    for paragraph in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if paragraph == _SIGNATURE_SEPARATOR:
            output.append(paragraph)
            continue
        paragraph = paragraph.rstrip(" ")
        output.extend(_wrap(paragraph, width, delsp))
    return "\n".join(output)


def _wrap(paragraph: str, width: int, delsp: bool) -> list[str]:
    """Split one paragraph into flowed lines, each but the last ending in a space."""
    lines: list[str] = []
    rest = paragraph
    while len(rest) > width:
        # Break after a space so that the space stays at the line end.
        cut = rest.rfind(" ", 1, width)
        if cut == 2 and rest.startswith(_SIGNATURE_SEPARATOR):
            cut = -1  # a line "-- " would read as the signature separator
        if cut <= 0:
            if delsp:
                cut = width - 1
                lines.append(_stuff(rest[:cut]) + " ")
                rest = rest[cut:]
                continue
            cut = rest.find(" ", max(width, 3))
            if cut < 0:
                break
        piece, rest = rest[: cut + 1], rest[cut + 1 :]
        if delsp:
            piece = piece + " "
        if rest == "":
            # Never end a paragraph with a soft break.
            rest = piece.rstrip(" ")
            break
        lines.append(_stuff(piece))
    lines.append(_stuff(rest))
    return lines


def _stuff(line: str) -> str:
    return " " + line if _needs_stuffing(line) else line


def decode(text: str, delsp: bool = False) -> str:
    """Decode flowed text back into paragraphs separated by ``\\n``.

    Quoted lines keep their quote depth; a soft break only joins lines of the
    same depth (RFC 3676 4.5).  The signature separator ``-- `` is never flowed.
    """
    result: list[str] = []
    current: str | None = None
    current_depth = 0
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        depth = len(raw) - len(raw.lstrip(">"))
        line = raw[depth:]
        if line.startswith(" "):
            line = line[1:]  # space-stuffing (and the space after quote marks)
        is_soft = line.endswith(" ") and line != _SIGNATURE_SEPARATOR
        if is_soft and delsp:
            line = line[:-1]
        if current is not None and current_depth != depth:
            # A soft break followed by another quote depth counts as hard.
            current = current.rstrip(" ")
            result.append(">" * current_depth + (" " if current_depth else "") + current)
            current = None
        current = line if current is None else current + line
        current_depth = depth
        if not is_soft:
            result.append(">" * depth + (" " if depth and current else "") + current)
            current = None
    if current is not None:
        result.append(">" * current_depth + (" " if current_depth else "") + current)
    return "\n".join(result)
