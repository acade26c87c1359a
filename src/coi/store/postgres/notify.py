"""Change events across processes: PostgreSQL LISTEN/NOTIFY (DESIGN.md: Scale-out).

Every write that has events sends them with `pg_notify` inside its own transaction, so
PostgreSQL delivers them when (and only if) it commits, and to every listening process
in commit order. Each process keeps one connection LISTENing on `CHANNEL` and replays
the stream on its `EventBus`: other processes' events as they come, and its own writes'
events when their last notification comes back, so all events, local and remote, are
published in one commit order. (A local write's events are taken from memory, with their
`origin`; the notification only marks the place.)

Payloads stay small (NOTIFY's limit is 8000 bytes): one JSON array per event, events with
many UIDs split into several of the same kind, UIDs as ranges; an APPEND's or a COPY's
event carries its messages' flags while they fit in a few KB. A remote event's
`origin` is `REMOTE`: no session of this process caused it, and it was no delivery
here (so this process sends no WebPush for it; the delivering process does).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from typing import Any

from coi.store.events import (
    REMOTE,
    Event,
    FlagsChanged,
    MailboxCreated,
    MailboxDeleted,
    MailboxRenamed,
    MessagesAdded,
    MessagesExpunged,
    MetadataChanged,
    SubscriptionChanged,
    UserGone,
)
from coi.store.model import Flags, stored_flags

__all__ = ["CHANNEL", "REMOTE", "decode", "encode"]

log = logging.getLogger("coi.store.postgres")

CHANNEL = "coi_events"
MAX_PAYLOAD = 7000  # under NOTIFY's 8000 bytes, with room for the header




def _ranges(uids: Sequence[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for uid in uids:
        if out and out[-1][1] == uid - 1:
            out[-1][1] = uid
        else:
            out.append([uid, uid])
    return out


def _uids(ranges: Sequence[Sequence[int]]) -> tuple[int, ...]:
    return tuple(uid for start, end in ranges for uid in range(start, end + 1))


def _pieces(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Splits `items` so that the JSON of each piece stays around `size` bytes."""
    piece: list[Any] = []
    used = 0
    for item in items:
        length = len(json.dumps(item, separators=(",", ":"))) + 1
        if piece and used + length > size:
            yield piece
            piece, used = [], 0
        piece.append(item)
        used += length
    if piece:
        yield piece


def _bodies(event: Event) -> Iterator[list[Any]]:
    """The JSON bodies of one event, split where it carries many UIDs."""
    if isinstance(event, MessagesAdded | MessagesExpunged):
        kind = "A" if isinstance(event, MessagesAdded) else "E"
        for piece in _pieces(_ranges(event.uids), MAX_PAYLOAD):
            yield [kind, event.user_id, event.mailbox_id, event.modseq, piece]
    elif isinstance(event, FlagsChanged):
        previous = event.previous or (Flags(),) * len(event.changes)
        entries = [
            [uid, flags.bits, flags.keywords_text(), modseq, old.bits, old.keywords_text()]
            for (uid, flags, modseq), old in zip(event.changes, previous, strict=True)
        ]
        for piece in _pieces(entries, MAX_PAYLOAD):
            yield ["F", event.user_id, event.mailbox_id, piece]
    elif isinstance(event, MailboxCreated):
        yield ["C", event.user_id, event.mailbox_id, event.name]
    elif isinstance(event, MailboxDeleted):
        yield ["D", event.user_id, event.mailbox_id, event.name]
    elif isinstance(event, MailboxRenamed):
        yield ["R", event.user_id, event.mailbox_id, event.old_name, event.new_name]
    elif isinstance(event, SubscriptionChanged):
        yield ["S", event.user_id, event.name, event.subscribed]
    elif isinstance(event, MetadataChanged):  # (ChangesMissed stays in its process)
        for piece in _pieces(event.entries, MAX_PAYLOAD):
            yield ["M", event.user_id, event.mailbox_id, piece]
    elif isinstance(event, UserGone):
        yield ["U", event.user_id, event.moved]


def encode(token: str, write_id: int, events: Sequence[Event]) -> list[str]:
    """The payloads of one write: [token, write id, last?, body]; the last one marks the
    write's place in the commit order for its own process."""
    bodies = [body for event in events for body in _bodies(event)]
    out: list[str] = []
    for index, body in enumerate(bodies):
        text = json.dumps([token, write_id, index == len(bodies) - 1, body], separators=(",", ":"))
        if len(text.encode()) > 7900:  # one name longer than NOTIFY carries: not sent
            log.warning("event too large to notify other processes: %s", body[:3])
            text = json.dumps([token, write_id, index == len(bodies) - 1, None])
        out.append(text)
    if not out:
        out.append(json.dumps([token, write_id, True, None]))
    return out


def token_prefix(token: str) -> str:
    """How every payload of `token` starts (json.dumps and PostgreSQL's to_json write a
    token of hex digits alike)."""
    return "[" + json.dumps(token) + ","


def own_write(payload: str, prefix: str) -> tuple[int, bool] | None:
    """(write id, last?) of a payload that starts with `prefix` (`token_prefix`); None
    for another token's. A process's own notifications only report its writes, so the
    body, often the longest part, is not parsed."""
    if not payload.startswith(prefix):
        return None
    write_id, last, _ = payload[len(prefix) :].split(",", 2)
    return int(write_id), last == "true"


def decode(payload: str) -> tuple[str, int, bool, Event | None]:
    """(token, write id, last?, the event as a remote one, or None)."""
    token, write_id, last, body = json.loads(payload)
    return str(token), int(write_id), bool(last), None if body is None else _event(body)


def _event(body: list[Any]) -> Event:
    kind = body[0]
    if kind == "A":  # the flags of the new messages come along while they are short
        flags = (
            tuple(stored_flags(b, k) for b, k in zip(body[5], body[6], strict=True))
            if len(body) > 6
            else None
        )
        return MessagesAdded(body[1], body[2], _uids(body[4]), body[3], REMOTE, flags)
    if kind == "E":
        return MessagesExpunged(body[1], body[2], _uids(body[4]), body[3], REMOTE)
    if kind == "F":
        entries = body[3]
        return FlagsChanged(
            body[1],
            body[2],
            tuple((e[0], Flags(e[1], Flags.parse_keywords(e[2])), e[3]) for e in entries),
            REMOTE,
            tuple(Flags(e[4], Flags.parse_keywords(e[5])) for e in entries),
        )
    if kind == "C":
        return MailboxCreated(body[1], body[2], body[3])
    if kind == "D":
        return MailboxDeleted(body[1], body[2], body[3])
    if kind == "R":
        return MailboxRenamed(body[1], body[2], body[3], body[4])
    if kind == "S":
        return SubscriptionChanged(body[1], body[2], bool(body[3]))
    if kind == "M":
        return MetadataChanged(body[1], body[2], tuple(body[3]), REMOTE)
    if kind == "U":
        return UserGone(body[1], bool(body[2]))
    raise ValueError(f"unknown event kind {kind!r}")
