"""SORT and UID SORT (RFC 5256) with ESORT results (RFC 5267) and the DISPLAYFROM and
DISPLAYTO keys (RFC 5957).

Sort keys come from what was stored at delivery: size and arrival from the message row,
subject, addresses and the sent date from the stored index (the ENVELOPE computed once,
plus the parsed Date). The raw message is never loaded; the index only when a key
needs it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from coi.imap.server import search
from coi.imap.server.rev2 import parse_stored
from coi.imap.server.session import SELECTED, Route, Session
from coi.imap.wire import commands as cmd
from coi.imap.wire.sequence import format_sequence
from coi.mail.index import load_envelope
from coi.mail.search import decode_words
from coi.store.model import MessageRow

# -- ENVELOPE reader (our own stored ENVELOPE: NIL, quoted strings, literals, lists) --

_Node = bytes | None | list[Any]


_UNESCAPE = re.compile(rb"\\(.)", re.DOTALL)


_FAST_TOKEN = re.compile(rb'(\()|(\))|(NIL)|"((?:[^"\\]|\\.)*)"')
_LITERAL = re.compile(rb"\{\d+\}\r\n")


def parse_sexp(data: bytes) -> _Node:
    """Reads the ENVELOPE we stored ourselves: NIL, quoted strings, literals, lists."""
    if _LITERAL.search(data) is not None:  # quoted strings never hold CRLF
        node = parse_stored(data)
        if isinstance(node, int):  # an ENVELOPE holds no numbers
            raise ValueError("malformed stored envelope")
        return node
    stack: list[list[_Node]] = [[]]
    for opening, closing, nil, text in _FAST_TOKEN.findall(data):
        if opening:
            stack.append([])
        elif closing:
            done = stack.pop()
            stack[-1].append(done)
        elif nil:
            stack[-1].append(None)
        else:
            stack[-1].append(_UNESCAPE.sub(rb"\1", text) if b"\\" in text else text)
    if len(stack) != 1 or not stack[0]:
        raise ValueError("malformed stored envelope")
    return stack[0][0]


# -- RFC 5256 §2.1 base subject ---------------------------------------------------------

_WSP_RUN = re.compile(r"[ \t\r\n]+")
_TRAILER = re.compile(r"(?:[ \t]|\(fwd\))+$", re.IGNORECASE)
_BLOB = r"\[[^\[\]]*\][ \t]*"
_LEADER = re.compile(rf"^(?:(?:{_BLOB})*(?:re|fwd?)[ \t]*(?:{_BLOB})?:|[ \t])+", re.IGNORECASE)
_LEADING_BLOB = re.compile(rf"^{_BLOB}")


def base_subject(subject: str) -> str:
    """The subject with reply/forward markers and list tags removed (RFC 5256 §2.1)."""
    s = _WSP_RUN.sub(" ", subject)  # (1) whitespace runs become one space
    while True:
        s = _TRAILER.sub("", s)  # (2) trailing "(fwd)" and blanks
        while True:  # (5) repeat (3) and (4) until nothing changes
            before = s
            s = _LEADER.sub("", s, count=1)  # (3) "Re:", "Fwd:", "[list] Re:", blanks
            blob = _LEADING_BLOB.match(s)
            if blob is not None and s[blob.end() :]:  # (4) a leading [blob] if more follows
                s = s[blob.end() :]
            if s == before:
                break
        if len(s) > 6 and s[:5].lower() == "[fwd:" and s.endswith("]"):
            s = s[5:-1]  # (6) "[fwd: ...]" and again from (2)
            continue
        return s


# -- sort keys ---------------------------------------------------------------------------

_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _fold(text: str) -> str:
    """i;ascii-casemap (RFC 4790 §9.2), the comparator RFC 5256 §2.2 requires."""
    return text.translate(_ASCII_UPPER)


class _Envelope:
    __slots__ = ("_tree", "sent")

    def __init__(self, tree: list[Any], sent: datetime | None) -> None:
        self._tree = tree
        self.sent = sent

    def subject(self) -> str:
        raw = self._tree[1]
        return decode_words(raw) if raw else ""

    def first(self, field: int) -> list[Any] | None:
        addrs = self._tree[field]
        return addrs[0] if addrs else None


_FROM, _TO, _CC = 2, 5, 6


def _mailbox_key(env: _Envelope, field: int) -> str:
    # RFC 5256 §3: the addr-mailbox of the first address
    addr = env.first(field)
    if addr is None or addr[2] is None:
        return ""
    return _fold(decode_words(addr[2]))


def _display_key(env: _Envelope, field: int) -> str:
    # RFC 5957 §2: the decoded display name of the first address, else its addr-spec
    addr = env.first(field)
    if addr is None:
        return ""
    if addr[0]:
        name = decode_words(addr[0]).strip()
        if name:
            return _fold(name)
    mailbox = (addr[2] or b"").decode("utf-8", "replace")
    host = (addr[3] or b"").decode("utf-8", "replace")
    return _fold(f"{mailbox}@{host}" if host else mailbox)


class _Sortable:
    __slots__ = ("_env", "_meta", "row", "seq")

    def __init__(self, seq: int, row: MessageRow, meta: bytes | None) -> None:
        self.seq = seq
        self.row = row
        self._meta = meta
        self._env: _Envelope | None = None

    @property
    def env(self) -> _Envelope:
        if self._env is None:
            if self._meta is None:
                self._env = _Envelope([None] * 10, None)
            else:
                envelope, sent = load_envelope(self._meta)
                tree = parse_sexp(envelope)
                assert isinstance(tree, list)
                self._env = _Envelope(tree, sent)
        return self._env


def _date_key(item: _Sortable) -> float:
    # RFC 5256 §3: the sent date in UTC; the internal date when it is missing or invalid
    sent = item.env.sent
    return sent.timestamp() if sent else float(item.row.internal_ts)


_KEYS: dict[str, Callable[[_Sortable], Any]] = {
    "ARRIVAL": lambda m: m.row.internal_ts,
    "SIZE": lambda m: m.row.size,
    "DATE": _date_key,
    "SUBJECT": lambda m: _fold(base_subject(m.env.subject())),
    "FROM": lambda m: _mailbox_key(m.env, _FROM),
    "TO": lambda m: _mailbox_key(m.env, _TO),
    "CC": lambda m: _mailbox_key(m.env, _CC),
    "DISPLAYFROM": lambda m: _display_key(m.env, _FROM),
    "DISPLAYTO": lambda m: _display_key(m.env, _TO),
}


KEYS = _KEYS  # for the UPDATE contexts of CONTEXT=SORT (context.py)


def sortable(row: MessageRow, meta: bytes | None) -> _Sortable:
    """A message as the sort keys read it (`KEYS`), from its row and stored index."""
    return _Sortable(0, row, meta)


def sort_rows(
    session: Session, rows: list[MessageRow], criteria: tuple[tuple[str, bool], ...]
) -> list[MessageRow]:
    """Rows in the requested order; ties in sequence-number order (RFC 5256 §3)."""
    view = session.require_selected()
    metas: dict[int, bytes] = {}
    if any(name not in ("ARRIVAL", "SIZE") for name, _ in criteria):
        metas = session.store.metas([row.blob_id for row in rows])  # one query per 500
    items = [_Sortable(view.seq_of(row.uid) or 0, row, metas.get(row.blob_id)) for row in rows]
    items.sort(key=lambda m: m.seq)
    # Stable sorts from the least significant key up give the combined order; a reverse
    # sort keeps ties in their earlier order too, so REVERSE applies to its key only.
    for name, reverse in reversed(criteria):
        key = _KEYS[name]
        items.sort(key=key, reverse=reverse)
    return [m.row for m in items]


async def handle_sort(session: Session, command: cmd.Sort) -> str:
    from coi.imap.server import context  # it builds on this module

    view = session.require_selected()
    with_modseq = search.uses_modseq(command.key)
    if with_modseq:
        session.enable_condstore()  # RFC 7162 §3.1
    # RFC 5267 §4.3: an UPDATE context watches changes from before the search runs
    update = context.begin(
        session, command.tag, command.uid, command.key, command.criteria, command.return_opts
    )
    try:
        found = await search.search_rows(session, command.key)
    except BaseException:
        if update is not None:
            context.abandon(session, update)
        raise
    found = sort_rows(session, found, command.criteria)
    if update is not None:
        context.start(session, update, [row.uid for row in found])

    def number(row: MessageRow) -> int:
        return row.uid if command.uid else view.seq_of(row.uid) or 0

    numbers = [number(row) for row in found]
    options = command.return_opts
    if options is None:
        # RFC 7162 §3.1.9: a MODSEQ criterion adds the highest mod-sequence returned
        tail = f" (MODSEQ {max(r.modseq for r in found)})" if found and with_modseq else ""
        session.untagged("SORT" + "".join(f" {n}" for n in numbers) + tail)
        return "SORT completed"
    # RFC 5267 §3.1: MIN/MAX are the first/last in sort order; ALL keeps the order
    uids = [row.uid for row in found]
    modseqs = {row.uid: row.modseq for row in found} if with_modseq else None
    search.extended_result(
        session, command.tag, command.uid, options, uids, numbers, modseqs, ordered_set
    )
    return "SORT completed"


def ordered_set(numbers: list[int]) -> str:
    """A sequence set that keeps the given order: only ascending runs become ranges
    (RFC 5267 §3.2)."""
    parts: list[str] = []
    start = 0
    for i in range(1, len(numbers) + 1):
        if i < len(numbers) and numbers[i] == numbers[i - 1] + 1:
            continue
        run = numbers[start:i]
        parts.append(format_sequence(run) if len(run) > 1 else str(run[0]))
        start = i
    return ",".join(parts)


ROUTES: dict[type, Route] = {cmd.Sort: Route(handle_sort, SELECTED)}
