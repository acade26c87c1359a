"""The JSON payload of a push notification (webpush-spec: Payload Data Format).

String fields are cut at a byte limit measured on their JSON form, never inside a UTF-8
sequence or an escape, and end with U+2026 when cut. `content` is included only if the
whole payload stays within what one encrypted record can carry.
"""

from __future__ import annotations

import json
from datetime import UTC
from email.parser import HeaderParser
from email.policy import compat32
from email.utils import parsedate_to_datetime
from typing import Any

from coi.chat.groups import find_group_id
from coi.chat.headers import decode_words, parse_message_ids, parse_single_address
from coi.webpush.crypto import MAX_PLAINTEXT

ELLIPSIS = "\u2026"
_SHORT = 100  # from-email, from-name, subject, msg-id
_LONG = 200  # content-type; folder is left out beyond this
_GROUP_ID_MAX = 128


def json_text(value: str) -> str:
    """The JSON string body of `value` (no quotes), UTF-8 kept as is."""
    return json.dumps(value, ensure_ascii=False)[1:-1]


def truncate(value: str, limit: int) -> str:
    """`value`, shortened so its JSON form fits in `limit` bytes plus a trailing U+2026."""
    if len(json_text(value).encode("utf-8")) <= limit:
        return value
    used = 0
    kept: list[str] = []
    for ch in value:
        size = len(json_text(ch).encode("utf-8"))
        if used + size > limit:
            break
        kept.append(ch)
        used += size
    return "".join(kept) + ELLIPSIS


def _header_end(raw: bytes) -> int:
    if raw.startswith((b"\r\n", b"\n")):  # no header fields at all
        return 2 if raw.startswith(b"\r\n") else 1
    for marker in (b"\r\n\r\n", b"\n\n"):
        position = raw.find(marker)
        if position >= 0:
            return position + len(marker)
    return len(raw)


def build_payload(
    raw: bytes, *, uid: int, uidvalidity: int, folder: str, limit: int = MAX_PLAINTEXT
) -> bytes:
    """The UTF-8 JSON payload for a newly delivered message."""
    end = _header_end(raw)
    # RFC 6532: header fields may carry raw UTF-8 (we offer SMTPUTF8); read them as such
    headers = HeaderParser(policy=compat32).parsestr(raw[:end].decode("utf-8", "replace"))
    fields: dict[str, Any] = {}
    sender = parse_single_address(decode_words(str(headers.get("From", ""))))
    if sender is not None:
        fields["from-email"] = truncate(sender.addr.lower(), _SHORT)
        if sender.name:
            fields["from-name"] = truncate(sender.name, _SHORT)
    subject = decode_words(str(headers.get("Subject", "") or ""))
    if subject:
        fields["subject"] = truncate(subject, _SHORT)
    date = headers.get("Date")
    if date:
        try:
            when = parsedate_to_datetime(str(date))
            if when.tzinfo is None:  # RFC 5322 §3.3: "-0000" is UTC, local zone unknown
                when = when.replace(tzinfo=UTC)
            fields["date"] = when.isoformat()  # RFC 3339 needs the offset
        except (TypeError, ValueError, IndexError):
            pass
    ids = parse_message_ids(str(headers.get("Message-ID", "") or ""))
    if ids:
        fields["msg-id"] = truncate(ids[0], _SHORT)
    fields["uid"] = uid
    fields["uidvalidity"] = uidvalidity
    if len(json_text(folder).encode("utf-8")) <= _LONG:
        fields["folder"] = folder
    references = parse_message_ids(str(headers.get("References", "") or ""))
    reply_to = parse_message_ids(str(headers.get("In-Reply-To", "") or ""))
    group_id = find_group_id(ids[0] if ids else "", references, reply_to[0] if reply_to else None)
    if group_id is not None and len(group_id) <= _GROUP_ID_MAX:
        fields["group-id"] = group_id
    compact = _encode(fields)
    with_content = dict(fields)
    with_content["content"] = raw[end:].decode("utf-8", "replace")
    content_type = " ".join(str(headers.get("Content-Type", "text/plain")).split())
    if content_type.split(";")[0].strip().lower() != "text/plain":
        with_content["content-type"] = truncate(content_type, _LONG)
    encoding = str(headers.get("Content-Transfer-Encoding", "") or "").strip().lower()
    if encoding and encoding != "8bit":
        with_content["content-encoding"] = encoding
    full = _encode(with_content)
    return full if len(full) <= limit else compact


def _encode(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
