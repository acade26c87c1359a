"""Fuzz target: the MIME indexer run on every stored message (coi.mail.prepare).

The input is a raw message as APPEND or delivery would store it. ``prepare`` indexes it
(ENVELOPE, BODY, BODYSTRUCTURE, part offsets) and extracts its search text; every part's
sections are then cut as FETCH would.

Invariants: nothing raises ("never raises on any input"); part offsets lie within the message
and children within their parent, in order; ENVELOPE, BODY and BODYSTRUCTURE parse as IMAP
(RFC 3501 §9) with coi's own response reader, and each leaf's size and line count there
equal those of its ``BODY[part]`` octets; the stored index and search data load back equal.
"""

from __future__ import annotations

from datetime import UTC, datetime

from coi.imap.wire.errors import ResponseParseError
from coi.imap.wire.responses import MAX_DEPTH, FetchData, parse_response
from coi.mail.index import MAX_DEPTH as MAX_MIME_DEPTH
from coi.mail.index import MAX_PARTS, MessageIndex, Part, index_message, load_index, served_form
from coi.mail.prepare import prepare
from coi.mail.search import load_search, search_data
from coi.mail.sections import decoded_part, section_bytes

from ._common import bounded

_WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def _parts(part: Part, depth: int = 0) -> list[tuple[Part, int]]:
    out = [(part, depth)]
    for child in part.children:
        out.extend(_parts(child, depth + 1))
    return out


def _check_offsets(raw: bytes, part: Part) -> None:
    assert 0 <= part.header_start <= part.body_start <= part.body_end <= len(raw), part
    last = part.body_start
    for child in part.children:
        assert last <= child.header_start and child.body_end <= part.body_end, (part, child)
        if not part.is_message:  # an encapsulated message spans its part's whole body
            last = child.body_end
        _check_offsets(raw, child)


def _check_sizes(
    raw: bytes, index: MessageIndex, bs: object, part: Part, path: tuple[int, ...], message: bool
) -> None:
    """Walks BODYSTRUCTURE beside the part tree: sizes and line counts match the octets.

    ``message``: ``part`` is a message (top level or encapsulated), whose body, when it is
    not multipart, is the section ``path`` + 1 (RFC 3501 §6.4.5)."""
    assert isinstance(bs, tuple), bs
    if part.is_multipart:
        assert len(bs) >= len(part.children) + 1, (bs, part)
        for n, child in enumerate(part.children, 1):
            _check_sizes(raw, index, bs[n - 1], child, (*path, n), False)
        return
    section = (*path, 1) if message else path
    octets = section_bytes(raw, index, section, "")
    assert octets is not None, section
    assert bs[6] == len(octets), (section, bs[6], len(octets))
    decoded_part(raw, index, section)
    section_bytes(raw, index, section, "MIME")
    mtype = bs[0]
    if part.is_message:
        assert bs[9] == octets.count(b"\n"), (section, bs[9])
        inner = part.children[0]
        _check_sizes(raw, index, bs[8], inner, section, True)
        for text in ("HEADER", "TEXT", "HEADER.FIELDS", "HEADER.FIELDS.NOT"):
            assert section_bytes(raw, index, section, text, ("From", "Subject")) is not None
    elif mtype == b"TEXT":
        assert bs[7] == octets.count(b"\n"), (section, bs[7])


@bounded
def check(data: bytes) -> None:
    """Indexes ``data`` as a stored message and checks what FETCH and SEARCH would use."""
    new = prepare(data, ("\\Seen",), _WHEN)
    index = load_index(new.meta)
    parts = _parts(index.root)
    assert len(parts) <= MAX_PARTS + 1, len(parts)
    assert max(depth for _, depth in parts) <= MAX_MIME_DEPTH + 1
    _check_offsets(data, index.root)
    assert load_search(new.search) == search_data(data, index)
    response = b"* 1 FETCH (ENVELOPE %s BODY %s BODYSTRUCTURE %s)\r\n" % (
        index.envelope,
        index.body,
        index.bodystructure,
    )
    try:
        fetch = parse_response(response)
    except ResponseParseError as exc:
        # the client's reader stops at MAX_DEPTH nested lists: deeper MIME is still valid
        deep = max(depth for _, depth in parts) * 3 >= MAX_DEPTH
        assert deep and "deep" in exc.message, (exc, response[:300])
        return
    assert isinstance(fetch, FetchData), fetch
    # a message with NUL in a part is served converted (RFC 3516 §6), as FETCH does
    served = served_form(data, index) if index.served else None
    view, view_index = (data, index) if served is None else (served, index_message(served))
    _check_sizes(view, view_index, fetch.items["BODYSTRUCTURE"], view_index.root, (), True)
    for text in ("", "HEADER", "TEXT"):
        assert section_bytes(view, view_index, (), text) is not None
