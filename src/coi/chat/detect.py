"""Decide whether a message is a COI (chat) message.

This is the single place where the rule lives; the server's delivery filter and
the client both call it, so they can never disagree.

# coi-client-spec: Manual Message Filtering
# coi-server-spec: Configure Message Filtering
A message is a chat message when at least one of these holds:

* the ``Chat-Version`` header is present,
* the ``Message-ID`` starts with ``chat$``,
* the first message id in ``References`` starts with ``chat$``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from email.message import Message
from typing import Any

CHAT_ID_PREFIX = "chat$"

# The header block ends at the first empty line; we never look further.
_HEADER_END = re.compile(rb"\r?\n\r?\n")
# One logical header line: name, colon, value including folded continuation lines.
_FIELD = re.compile(
    rb"^(chat-version|message-id|references)[ \t]*:((?:[^\r\n]*)(?:\r?\n[ \t][^\r\n]*)*)",
    re.IGNORECASE | re.MULTILINE,
)
_FIRST_ID = re.compile(r"<\s*([^>\s]*)")


def is_chat_id(message_id: str) -> bool:
    """True when a bare or bracketed message id is a COI id (``chat$...``)."""
    return message_id.strip().lstrip("<").lstrip().lower().startswith(CHAT_ID_PREFIX)


def _first_id(value: str) -> str:
    """The first message id of a References/Message-ID value, brackets removed."""
    match = _FIRST_ID.search(value)
    if match:
        return match.group(1)
    parts = value.split()
    return parts[0] if parts else ""


def _decide(chat_version: bool, message_id: str | None, references: str | None) -> bool:
    if chat_version:
        return True
    if message_id is not None and is_chat_id(_first_id(message_id)):
        return True
    return references is not None and is_chat_id(_first_id(references))


def _lookup(headers: Any, name: str) -> str | None:
    try:
        if isinstance(headers, Message):
            value = headers.get(name)
        elif isinstance(headers, Mapping):
            value = headers.get(name)
            if value is None:
                for key, candidate in headers.items():
                    if isinstance(key, str) and key.lower() == name.lower():
                        value = candidate
                        break
        else:
            value = None
        if value is None:
            return None
        if isinstance(value, (list, tuple)):
            value = value[0] if value else ""
        if isinstance(value, bytes):
            return value.decode("latin-1")
        return str(value)
    except Exception:
        return None


def is_chat_message(headers: Mapping[str, Any] | Message | Iterable[tuple[str, str]]) -> bool:
    """True when the headers belong to a COI message.

    Accepts an ``email.message.Message``, a mapping of header name to value (or
    list of values), or an iterable of (name, value) pairs.  Never raises.
    """
    try:
        if not isinstance(headers, (Message, Mapping)):
            collected: dict[str, str] = {}
            for name, value in headers:
                collected.setdefault(str(name).lower(), str(value))
            headers = collected
        return _decide(
            _lookup(headers, "Chat-Version") is not None,
            _lookup(headers, "Message-ID"),
            _lookup(headers, "References"),
        )
    except Exception:
        return False


def is_chat_message_bytes(raw_header: bytes) -> bool:
    """Same decision as :func:`is_chat_message`, on a raw header block.

    Meant for the delivery path: one regular-expression scan over the header
    block only (the body, if passed along, is cut off first), no MIME parsing,
    never raises.
    """
    try:
        end = _HEADER_END.search(raw_header)
        block = raw_header[: end.start()] if end else raw_header
        message_id: str | None = None
        references: str | None = None
        for match in _FIELD.finditer(block):
            name = match.group(1).lower()
            if name == b"chat-version":
                return True
            value = match.group(2).decode("latin-1")
            if name == b"message-id" and message_id is None:
                message_id = value
            elif name == b"references" and references is None:
                references = value
        return _decide(False, message_id, references)
    except Exception:
        return False
