"""Pinned messages, polls, locations, extension messages and chat export on the store.

* Pins (coi-client-spec: Pinned Messages): a message that arrives with
  ``Content-Disposition: pinned`` is the chat's pin until its timeout, until a newer
  pinned message arrives in the chat, or until the user unpins it locally.
* Polls (docs/polls.md): votes and closes are hidden rows answering the poll
  (In-Reply-To); the tally is ``coi.chat.polls.tally`` over them, in arrival order.
* Locations and extension messages are ordinary visible rows; their data is read back
  from the stored message when shown.
* Export: a chat's visible messages as text, JSON or an mbox (RFC 4155, mboxrd quoting).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parseaddr
from typing import Any

from coi.chat.model import ChatMessage, Location, MessageKind
from coi.chat.parse import parse
from coi.chat.polls import PollResult, tally
from coi.client.store import Chat, LocalStore, MessageRow

EXPORT_FORMATS = ("text", "json", "mbox")


# -- pins -------------------------------------------------------------------------------


def applied(
    store: LocalStore, row: int, msg: ChatMessage, chat_id: int | None, arrived: float
) -> None:
    """Hook in the Applier for each visible message."""
    if msg.pin is None or chat_id is None:
        return
    until = msg.pin.timeout.timestamp() if msg.pin.timeout is not None else 0.0
    with store.transaction() as db:
        db.execute(
            "INSERT OR IGNORE INTO pin (message, chat_id, until, at) VALUES (?, ?, ?, ?)",
            (row, chat_id, until, arrived),
        )


@dataclass(frozen=True, slots=True)
class PinState:
    message: int
    until: float  # 0: no timeout


def active_pin(store: LocalStore, chat_id: int, now: float | None = None) -> PinState | None:
    """The chat's pinned message: the newest pin, unless it expired or was unpinned."""
    now = time.time() if now is None else now
    row = store.db.execute(
        "SELECT p.message, p.until, p.unpinned FROM pin p JOIN message m ON m.id = p.message"
        " WHERE p.chat_id=? AND m.deleted=0 ORDER BY p.at DESC, m.seq DESC LIMIT 1",
        (chat_id,),
    ).fetchone()
    if row is None or row[2] or (row[1] and float(row[1]) <= now):
        return None
    return PinState(int(row[0]), float(row[1]))


def unpin(store: LocalStore, chat_id: int) -> int:
    """Unpins the chat's pins here (a local decision, as the spec says)."""
    with store.transaction() as db:
        cur = db.execute("UPDATE pin SET unpinned=1 WHERE chat_id=? AND unpinned=0", (chat_id,))
    return cur.rowcount


# -- polls ------------------------------------------------------------------------------


def poll_of(store: LocalStore, account_id: int, msg: ChatMessage) -> MessageRow | None:
    """The stored poll a vote or close answers (for ``coi watch`` to show the new tally)."""
    answer = msg.poll_vote or msg.poll_close
    if answer is None:
        return None
    row = store.message_by_mid(account_id, answer.poll_id)
    return row if row is not None and row.kind == MessageKind.POLL.value else None


def poll_result(store: LocalStore, row: MessageRow) -> tuple[ChatMessage, PollResult] | None:
    if row.kind != MessageKind.POLL.value:
        return None
    poll = parse(store.raw(row.id))
    if poll.poll is None:
        return None
    answers = store.db.execute(
        "SELECT id FROM message WHERE account_id=? AND in_reply_to=? AND kind IN (?, ?)"
        " ORDER BY arrived, seq",
        (row.account_id, row.message_id, MessageKind.POLL_VOTE.value,
         MessageKind.POLL_CLOSE.value),
    ).fetchall()  # fmt: skip
    votes = [parse(store.raw(int(a[0]))) for a in answers]
    # the stored poll row may carry an older sender form; tally compares addresses only
    return poll, tally(poll, votes)


def _poll_note(poll: ChatMessage, result: PollResult) -> str:
    assert poll.poll is not None
    counts = ", ".join(
        f"{n}. {o.text}: {c}"
        for n, (o, c) in enumerate(zip(poll.poll.options, result.counts, strict=True), 1)
    )
    return f"votes: {counts}" + (" (closed)" if result.closed else "")


# -- locations ----------------------------------------------------------------------------


def location(store: LocalStore, row: MessageRow) -> Location | None:
    if row.kind != MessageKind.LOCATION.value:
        return None
    return parse(store.raw(row.id)).location


def map_link(loc: Location) -> str:
    return f"geo:{loc.latitude!r},{loc.longitude!r}"


# -- display --------------------------------------------------------------------------


def notes(store: LocalStore, row: MessageRow) -> list[str]:
    """What ``coi show`` adds to a message line: pin, tally, position, extension."""
    out: list[str] = []
    if row.chat_id is not None:
        pin = active_pin(store, row.chat_id)
        if pin is not None and pin.message == row.id:
            until = f" until {_iso(pin.until)}" if pin.until else ""
            out.append(f"pinned{until}")
    found = poll_result(store, row)
    if found is not None:
        out.append(_poll_note(*found))
    loc = location(store, row)
    if loc is not None:
        out.append(f"location {loc.latitude!r}, {loc.longitude!r} ({map_link(loc)})")
    if row.kind == MessageKind.EXTENSION.value:
        ext = parse(store.raw(row.id)).extension
        if ext is not None:
            out.append(f"extension {ext.name}")
    return out


def details(store: LocalStore, row: MessageRow) -> dict[str, Any]:
    """The same for ``--json``."""
    data: dict[str, Any] = {}
    if row.chat_id is not None:
        pin = active_pin(store, row.chat_id)
        if pin is not None and pin.message == row.id:
            data["pinned"] = {"until": pin.until or None}
    found = poll_result(store, row)
    if found is not None:
        poll, result = found
        assert poll.poll is not None
        data["poll"] = {
            "question": poll.poll.title,
            "options": [o.text for o in poll.poll.options],
            "counts": list(result.counts),
            "closed": result.closed,
        }
    loc = location(store, row)
    if loc is not None:
        data["location"] = {"latitude": loc.latitude, "longitude": loc.longitude}
    if row.kind == MessageKind.EXTENSION.value:
        ext = parse(store.raw(row.id)).extension
        if ext is not None:
            data["extension"] = ext.name
    return data


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


# -- export -----------------------------------------------------------------------------

_FROM_LINE = re.compile(rb"^>*From ", re.MULTILINE)


def export(store: LocalStore, chat: Chat, fmt: str) -> bytes:
    """The chat's whole history in ``fmt`` (text, json or mbox)."""
    rows = store.messages(chat.id)
    if fmt == "text":
        lines = [f"Chat {chat.id}: {chat.title}"]
        for m in rows:
            who = m.sender_name or m.sender
            text = "(deleted)" if m.deleted else m.text
            extra = notes(store, m)
            files = [a.filename for a in store.attachments(m.id)]
            if files:
                extra.append("files: " + ", ".join(files))
            lines.append(f"[{_iso(m.arrived)}] {who}: {text}"
                         + (f"  [{'; '.join(extra)}]" if extra else ""))  # fmt: skip
        return ("\n".join(lines) + "\n").encode()
    if fmt == "json":
        data = {
            "chat": {"id": chat.id, "peer": chat.peer, "name": chat.name},
            "messages": [
                {
                    "id": m.id,
                    "message_id": m.message_id,
                    "from": m.sender,
                    "name": m.sender_name,
                    "outgoing": m.outgoing,
                    "kind": m.kind,
                    "time": _iso(m.arrived),
                    "text": "" if m.deleted else m.text,
                    "edited": m.edited,
                    "deleted": m.deleted,
                    "reply_to": m.in_reply_to,
                    "files": [a.filename for a in store.attachments(m.id)],
                    **details(store, m),
                }
                for m in rows
            ],
        }
        return json.dumps(data, ensure_ascii=False, indent=1).encode() + b"\n"
    if fmt == "mbox":
        return b"".join(_mbox_entry(m, store.raw(m.id)) for m in rows)
    raise ValueError(f"unknown export format {fmt!r}")


def _mbox_entry(row: MessageRow, raw: bytes) -> bytes:
    """One RFC 4155 entry: From_ line, the message with LF endings and >From quoting."""
    sender = parseaddr(row.sender)[1] or "MAILER-DAEMON"
    stamp = datetime.fromtimestamp(row.arrived, UTC).strftime("%a %b %d %H:%M:%S %Y")
    body = raw.replace(b"\r\n", b"\n")
    body = _FROM_LINE.sub(lambda m: b">" + m.group(0), body)
    if not body.endswith(b"\n"):
        body += b"\n"
    return f"From {sender.replace(' ', '_')} {stamp}\n".encode() + body + b"\n"
