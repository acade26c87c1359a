"""Decide whether a message is a COI (chat) message.

This is the single place where the rule lives; the server's delivery filter and
the client both call it, so they can never disagree.

# coi-client-spec: Manual Message Filtering
# coi-server-spec: Configure Message Filtering
A message is a chat message when at least one of these holds:

* the ``Chat-Version`` header is present,
* the ``Message-ID`` starts with ``chat$``,
* the first message id in ``References`` starts with ``chat$``,
* (encrypted rule, on unless switched off) the message is PGP/MIME encrypted
  (``Content-Type: multipart/encrypted`` with ``protocol="application/pgp-encrypted"``)
  and its outer ``Subject`` is exactly ``[...]``.

The encrypted rule exists because Delta Chat encrypts by default and its encrypted
messages carry none of the markers above outside the encryption: the outer header
has only From, Date, a ``<uuid@localhost>`` Message-ID, ``To: "hidden-recipients": ;``,
the header-protection placeholder ``Subject: [...]`` and the PGP/MIME Content-Type.
``[...]`` is the placeholder of the header-protection draft (now RFC 9788) that chat
clients write; Thunderbird's built-in OpenPGP writes ``...`` instead, so its encrypted
*e-mail* is not taken for chat.  See docs/chat-detection.md for the reasoning and
limits, and the server setting ``coi_detect_encrypted`` that switches the rule off.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from email.message import Message
from typing import Any

CHAT_ID_PREFIX = "chat$"
# Outer Subject of a chat client's encrypted message (header-protection placeholder).
ENCRYPTED_SUBJECT = "[...]"

# The header block ends at the first empty line; we never look further.
_HEADER_END = re.compile(rb"\r?\n\r?\n")
# One logical header line: name, colon, value including folded continuation lines.
_FIELD = re.compile(
    rb"^(chat-version|message-id|references|subject|content-type)[ \t]*:"
    rb"((?:[^\r\n]*)(?:\r?\n[ \t][^\r\n]*)*)",
    re.IGNORECASE | re.MULTILINE,
)
_FIRST_ID = re.compile(r"<\s*([^>\s]*)")
# The protocol parameter of a multipart/encrypted Content-Type (RFC 1847, RFC 3156 §4).
_PGP_PROTOCOL = re.compile(
    r'(?:^|;)\s*protocol\s*=\s*(?:"application/pgp-encrypted"|application/pgp-encrypted)\s*(?:;|$)',
    re.IGNORECASE,
)


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


def _unfold(value: str) -> str:
    return value.replace("\r", "").replace("\n", "").strip()


def is_pgp_encrypted(content_type: str | None) -> bool:
    """True for ``multipart/encrypted; protocol="application/pgp-encrypted"`` (PGP/MIME)."""
    if content_type is None:
        return False
    media, _, params = _unfold(content_type).partition(";")
    if "".join(media.split()).lower() != "multipart/encrypted":
        return False
    return _PGP_PROTOCOL.search(params) is not None


def is_encrypted_chat(subject: str | None, content_type: str | None) -> bool:
    """The encrypted rule: PGP/MIME encrypted with the outer Subject exactly ``[...]``."""
    return (
        subject is not None
        and _unfold(subject) == ENCRYPTED_SUBJECT
        and is_pgp_encrypted(content_type)
    )


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


def is_chat_message(
    headers: Mapping[str, Any] | Message | Iterable[tuple[str, str]],
    *,
    detect_encrypted: bool = True,
) -> bool:
    """True when the headers belong to a COI message.

    Accepts an ``email.message.Message``, a mapping of header name to value (or
    list of values), or an iterable of (name, value) pairs.  Never raises.
    ``detect_encrypted=False`` leaves out the encrypted rule (strict spec rule).
    """
    try:
        if not isinstance(headers, (Message, Mapping)):
            collected: dict[str, str] = {}
            for name, value in headers:
                collected.setdefault(str(name).lower(), str(value))
            headers = collected
        if _decide(
            _lookup(headers, "Chat-Version") is not None,
            _lookup(headers, "Message-ID"),
            _lookup(headers, "References"),
        ):
            return True
        if not detect_encrypted:
            return False
        if isinstance(headers, Message):
            # the values as they arrived: a parsing policy would decode an encoded-word
            # Subject, which the raw path (and the rule) takes literally
            subject = content_type = None
            for name, value in headers.raw_items():
                lowered = name.lower()
                if lowered == "subject" and subject is None:
                    subject = str(value)
                elif lowered == "content-type" and content_type is None:
                    content_type = str(value)
            return is_encrypted_chat(subject, content_type)
        return is_encrypted_chat(_lookup(headers, "Subject"), _lookup(headers, "Content-Type"))
    except Exception:
        return False


def is_chat_message_bytes(raw_header: bytes, *, detect_encrypted: bool = True) -> bool:
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
        subject: bytes | None = None
        content_type: bytes | None = None
        for match in _FIELD.finditer(block):
            name = match.group(1).lower()
            if name == b"chat-version":
                return True
            if name == b"subject":
                if subject is None:
                    subject = match.group(2)
                continue
            if name == b"content-type":
                if content_type is None:
                    content_type = match.group(2)
                continue
            value = match.group(2).decode("latin-1")
            if name == b"message-id" and message_id is None:
                message_id = value
            elif name == b"references" and references is None:
                references = value
        if _decide(False, message_id, references):
            return True
        # decoded only when the cheap Subject test passes (it almost never does for e-mail)
        return (
            detect_encrypted
            and subject is not None
            and b"[...]" in subject
            and content_type is not None
            and is_encrypted_chat(subject.decode("latin-1"), content_type.decode("latin-1"))
        )
    except Exception:
        return False
