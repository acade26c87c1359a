"""Parsing any message into the model, best effort, never raising.

Broken MIME, unknown charsets, missing or duplicated headers and 8-bit garbage
all end up as entries in ``ChatMessage.defects`` instead of exceptions.  Work
is linear in the input: nesting, part count and header sizes are capped.
"""

from __future__ import annotations

import binascii
import codecs
import email
import quopri
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from email import policy as email_policy
from email.message import Message
from email.utils import parsedate_to_datetime

from coi.chat import deltachat, flowed, microformats, plain, polls
from coi.chat.contacts import split_categories
from coi.chat.detect import is_chat_id
from coi.chat.groups import find_group_id
from coi.chat.headers import (
    MAX_HEADER_CHARS,
    decode_words,
    parse_address_list,
    parse_message_ids,
    parse_single_address,
    split_parameters,
    strip_reply_prefixes,
)
from coi.chat.mentions import find_html_mentions, find_mentions
from coi.chat.model import (
    Address,
    Attachment,
    Card,
    ChatMessage,
    ContactStorage,
    Dialect,
    Extension,
    GroupInfo,
    GroupRef,
    Location,
    MessageKind,
    Pin,
    Poll,
    PollClose,
    PollVote,
    Profile,
    ReadReceipt,
)

MAX_DEPTH = 32
MAX_PARTS = 500
MAX_MULTIPARTS = 64  # nested structures (multipart, message); beyond, read flat
MAX_DEFECTS = 50

# compat32 keeps headers as raw strings: no header-registry parsing during the MIME
# walk (faster, and none of its corner cases can raise); we parse what we need.
_PARSE_POLICY = email_policy.compat32
_READABLE_TEXT = frozenset({"text/plain", "text/html", "text/markdown"})
_EXTENSION_NAME = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)+")
_KNOWN_CHAT_CONTENT = frozenset(
    {
        "ignore",
        "status",
        "editrequest",
        "edit",
        "deleterequest",
        "delete",
        "preview",
        "contact",
        "profile",
        "profilerequest",
        "group",
        "groupprofile",
        "groupinfo",
        "groupprofilerequest",
        "grouprequested",
        "groupleft",
        "poll",
        "pollvote",
        "pollclose",
        "location",
    }
)
_LOCATION_FALLBACK = re.compile(r"(?:\n-\n|^-\n|^)Position: *[-+0-9.eE]+, *[-+0-9.eE]+\s*$")


@dataclass
class _Part:
    """One leaf MIME part, with the headers the model needs, already decoded."""

    content_type: str
    params: dict[str, str]
    disposition: str
    disposition_params: dict[str, str]
    chat_content: str
    chat_params: dict[str, str]
    message: Message


@dataclass
class _Collected:
    leaves: list[_Part] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    has_report: bool = False
    report_type: str = ""  # of the outermost multipart/report
    encrypted: bool = False


def _clean(value: str) -> str:
    """Turn surrogate-escaped 8-bit header bytes into text (UTF-8, else Latin-1)."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        raw = value.encode("utf-8", "surrogateescape")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")


def _raw_headers(message: Message, defects: list[str]) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    try:
        items = list(message.raw_items())
    except Exception:
        items = []
        defects.append("headers could not be read")
    for name, value in items:
        text = _clean(str(value))
        if len(text) > MAX_HEADER_CHARS:
            defects.append(f"header {name} truncated ({len(text)} characters)")
            text = text[:MAX_HEADER_CHARS]
        headers.append((str(name).lower(), text))
    return headers


def _part_info(message: Message, defects: list[str], default_type: str) -> _Part:
    headers = dict(reversed(_raw_headers(message, defects)))
    content_type, params = split_parameters(headers.get("content-type", default_type))
    if "/" not in content_type:
        if "content-type" in headers:
            defects.append(f"invalid Content-Type {content_type!r}")
        content_type = default_type
    disposition, disposition_params = split_parameters(headers.get("content-disposition", ""))
    chat_content, chat_params = split_parameters(headers.get("chat-content", ""), lower_main=False)
    if chat_content.lower() in _KNOWN_CHAT_CONTENT:
        chat_content = chat_content.lower()
    return _Part(
        content_type, params, disposition, disposition_params, chat_content, chat_params, message
    )


def _collect(root: Message, collected: _Collected) -> None:
    """Walk the MIME tree iteratively, leaves in document order, with limits."""
    stack: list[tuple[Message, int, str]] = [(root, 0, "text/plain")]
    parts_seen = 0
    while stack:
        node, depth, default_type = stack.pop()
        parts_seen += 1
        if parts_seen > MAX_PARTS:
            collected.defects.append(f"more than {MAX_PARTS} parts; rest ignored")
            return
        info = _part_info(node, collected.defects, default_type)
        # is_multipart() looks at the parsed structure only; get_payload() on a
        # leaf would decode it with whatever charset the header names.
        payload = node.get_payload() if node.is_multipart() else None
        if info.content_type == "multipart/encrypted":
            collected.encrypted = True
            continue
        if info.content_type.startswith("multipart/") and isinstance(payload, list):
            if info.content_type == "multipart/report":
                if not collected.has_report:
                    collected.report_type = info.params.get("report-type", "").strip().lower()
                collected.has_report = True
            if depth >= MAX_DEPTH:
                collected.defects.append(f"parts nested deeper than {MAX_DEPTH}; ignored")
                continue
            child_default = (
                "message/rfc822" if info.content_type == "multipart/digest" else "text/plain"
            )
            stack.extend(
                (child, depth + 1, child_default)
                for child in reversed(payload)
                if isinstance(child, Message)
            )
            continue
        if info.content_type.startswith("multipart/"):
            collected.defects.append(f"{info.content_type} without parts")
        collected.leaves.append(info)


def _payload_bytes(part: _Part, defects: list[str]) -> bytes:
    """The decoded body of a leaf part; lenient base64 and quoted-printable."""
    message = part.message
    payload = (
        message.get_payload() if message.is_multipart() else getattr(message, "_payload", None)
    )
    if isinstance(payload, list):
        # message/* parts are parsed into sub-messages; give their text back.
        return b"".join(_message_bytes(sub, defects) for sub in payload)
    if not isinstance(payload, str):
        return b""
    try:
        data = payload.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:  # text handed in as str with real non-ASCII characters
        data = payload.encode("utf-8", "surrogateescape")
    encoding = _first_header(message, "content-transfer-encoding").strip().lower()
    if encoding == "base64":
        return _decode_base64(data, defects)
    if encoding == "quoted-printable":
        return quopri.decodestring(data)
    if encoding in ("x-uuencode", "uuencode", "x-uue", "uue"):
        try:
            decoded = message.get_payload(decode=True)
        except Exception:
            defects.append("undecodable uuencoded body; raw body used")
            return data
        return decoded if isinstance(decoded, bytes) else data
    if encoding not in ("", "7bit", "8bit", "binary"):
        defects.append(f"unknown Content-Transfer-Encoding {encoding[:40]!r}; raw body used")
    return data


def _message_bytes(sub: object, defects: list[str]) -> bytes:
    """An embedded message as bytes again (the generator can choke on odd input)."""
    if not isinstance(sub, Message):
        return b""
    try:
        return sub.as_bytes(policy=email_policy.compat32)
    except Exception:
        try:
            return sub.as_string(policy=email_policy.compat32).encode("utf-8", "replace")
        except Exception:
            defects.append("embedded message could not be read")
            return b""


def _first_header(message: Message, name: str) -> str:
    for key, value in message.raw_items():
        if key.lower() == name:
            return _clean(str(value))
    return ""


_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")


def _decode_base64(data: bytes, defects: list[str]) -> bytes:
    """Base64 that tolerates junk characters and broken padding (linear)."""
    cleaned = _NOT_BASE64.sub(b"", data.split(b"=", 1)[0])
    if len(cleaned) % 4 == 1:
        cleaned = cleaned[:-1]
        defects.append("base64 body with a dangling character")
    cleaned += b"=" * (-len(cleaned) % 4)
    try:
        return binascii.a2b_base64(cleaned)
    except binascii.Error:
        defects.append("undecodable base64 body")
        return b""


def _part_text(part: _Part, defects: list[str]) -> str:
    data = _payload_bytes(part, defects)
    charset = part.params.get("charset", "utf-8").strip().lower() or "utf-8"
    try:
        codecs.lookup(charset)
    except (LookupError, ValueError):
        defects.append(f"unknown charset {charset!r}, read as UTF-8")
        charset = "utf-8"
    try:
        text = data.decode(charset)
    except (UnicodeDecodeError, LookupError, ValueError):
        defects.append(f"text not valid {charset}; undecodable bytes replaced")
        try:
            text = data.decode(charset, "replace")
        except (LookupError, ValueError):  # a bytes-to-bytes codec such as "rot13"
            text = data.decode("utf-8", "replace")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if part.content_type == "text/plain" and part.params.get("format", "").lower() == "flowed":
        text = flowed.decode(text, delsp=part.params.get("delsp", "").lower() == "yes")
    elif part.content_type == "text/plain":
        text = re.sub(r"[ \t]+\n", "\n", text)
    return text


def _flowed_top_is_stuffed(part: _Part) -> bool:
    if part.params.get("format", "").lower() != "flowed":
        return False
    raw = _payload_bytes(part, []).lstrip(b"\r\n")
    return raw.startswith(b" >")


def _attachment(part: _Part, defects: list[str]) -> Attachment:
    data = _payload_bytes(part, defects)
    filename = part.disposition_params.get("filename") or part.params.get("name") or None
    size_text = part.disposition_params.get("size", "")
    size = int(size_text) if size_text.isdigit() and len(size_text) < 19 else None
    return Attachment(
        content_type=part.content_type,
        data=data,
        filename=decode_words(filename) if filename else None,
        size=size,
    )


def _receipt(part: _Part, defects: list[str]) -> ReadReceipt | None:
    text = _payload_bytes(part, defects).decode("utf-8", "replace")
    fields: dict[str, str] = {}
    for line in re.sub(r"\r?\n[ \t]+", " ", text).splitlines():
        name, sep, value = line.partition(":")
        if sep:
            fields.setdefault(name.strip().lower(), value.strip())
    ids = parse_message_ids(fields.get("original-message-id"))
    if not ids:
        return None  # a report, but no receipt (Delta Chat's key update): kind SYSTEM
    return ReadReceipt(
        original_message_id=ids[0],
        disposition=fields.get("disposition", ""),
        final_recipient=fields.get("final-recipient", ""),
        original_recipient=fields.get("original-recipient", ""),
        reporting_ua=fields.get("reporting-ua", ""),
        additional_message_ids=parse_message_ids(fields.get("additional-message-ids")),
    )


def _date(value: str | None, defects: list[str]) -> datetime | None:
    if not value:
        defects.append("missing Date")
        return None
    try:
        return parsedate_to_datetime(value)
    except Exception:
        defects.append(f"unreadable Date {value[:80]!r}")
        return None


@dataclass
class _Body:
    """What the leaves of a message add up to."""

    text: str | None = None
    # the text's first line is a space-stuffed ">" (RFC 3676 §4.4): the sender's own
    # text, never a quote, though decoding leaves it starting with ">"
    text_stuffed_top: bool = False
    html: str | None = None
    markdown: str | None = None
    email_note: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    previews: list[Attachment] = field(default_factory=list)
    preview_positions: list[int] = field(default_factory=list)  # index of the next attachment
    receipt: ReadReceipt | None = None
    reaction: str | None = None
    profiles: list[Profile] = field(default_factory=list)
    contact_html: str | None = None
    group_info: GroupInfo | None = None
    location: Location | None = None
    poll: Poll | None = None
    poll_vote: PollVote | None = None
    poll_close: PollClose | None = None
    part_chat_contents: list[str] = field(default_factory=list)
    extension_parts: dict[str, list[Attachment]] = field(default_factory=dict)


def _read_leaves(
    leaves: list[_Part], poll_ref: str, top_content: set[str], defects: list[str]
) -> _Body:
    body = _Body()
    for part in leaves:
        kind = part.chat_content
        if kind:
            body.part_chat_contents.append(kind)
        if kind == "ignore":
            # coi-client-spec: Text Messages (hidden from COI clients, kept for the record)
            if not body.email_note and part.content_type.startswith("text/"):
                note = _part_text(part, defects)
                body.email_note = (
                    microformats.html_to_text(note) if part.content_type == "text/html" else note
                ).strip()
            continue
        if part.disposition == "reaction":
            body.reaction = _part_text(part, defects).strip()
            continue
        if part.content_type == "message/disposition-notification":
            body.receipt = _receipt(part, defects)
            continue
        if kind == "preview":
            body.previews.append(_attachment(part, defects))
            body.preview_positions.append(len(body.attachments))
            continue
        if (
            kind
            and _EXTENSION_NAME.match(kind)
            and kind not in _KNOWN_CHAT_CONTENT
            and part.content_type not in _READABLE_TEXT
        ):
            body.extension_parts.setdefault(kind, []).append(_attachment(part, defects))
            continue
        is_file = part.disposition == "attachment" or (
            bool(part.disposition_params.get("filename")) and part.disposition != "pinned"
        )
        if part.content_type == "text/plain" and not is_file:
            if body.text is None:
                body.text = _part_text(part, defects)
                body.text_stuffed_top = _flowed_top_is_stuffed(part)
            continue
        if part.content_type == "text/markdown" and not is_file:
            if body.markdown is None:
                body.markdown = _part_text(part, defects)
            continue
        if part.content_type == "text/html" and not is_file:
            html = _part_text(part, defects)
            _read_html(html, kind, part, body, poll_ref, top_content)
            continue
        body.attachments.append(_attachment(part, defects))
    return body


def _read_html(
    html: str, kind: str, part: _Part, body: _Body, poll_ref: str, top_content: set[str]
) -> None:
    if kind == "profile" or (not kind and "profile" in top_content):
        cards = microformats.cards_in(html)
        if cards:
            body.profiles.append(
                Profile(cards[0], split_categories(part.chat_params.get("categories", "")))
            )
        if "profile" in top_content:
            return
    elif kind == "contact" or (not kind and "contact" in top_content):
        body.contact_html = html
        return
    elif kind in ("group", "groupinfo", "groupprofile") or (not kind and "group" in top_content):
        body.group_info = microformats.group_in(html)
        if kind == "group" or "group" in top_content:
            return
    elif kind == "location" or "location" in top_content:
        body.location = microformats.location_in(html)
    elif kind == "poll" or "poll" in top_content:
        body.poll = polls.poll_in(html)
    elif kind == "pollvote" or "pollvote" in top_content:
        body.poll_vote = polls.vote_in(html, poll_ref)
    elif kind == "pollclose" or "pollclose" in top_content:
        body.poll_close = polls.close_in(html, poll_ref)
    if body.html is None:
        body.html = html


def _attach_previews(body: _Body) -> list[Attachment]:
    """A preview stands in for the attachment after it (before it, if last), never beside it."""
    attachments = list(body.attachments)
    orphans: list[Attachment] = []
    for preview, position in zip(body.previews, body.preview_positions, strict=True):
        candidates = [position, position - 1]
        for index in candidates:
            if 0 <= index < len(attachments) and attachments[index].preview is None:
                attachments[index] = replace(attachments[index], preview=preview)
                break
        else:
            orphans.append(preview)
    return attachments + orphans


def _chat_content_value(value: str) -> str:
    """Known Chat-Content values compare case-insensitively; extension names keep case."""
    main = split_parameters(value, lower_main=False)[0]
    return main.lower() if main.lower() in _KNOWN_CHAT_CONTENT else main


def _to_bytes(text: str) -> bytes:
    """Text input back to bytes; escaped bytes are restored, lone surrogates replaced."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


# Content-Type header lines that open a nested structure (multipart or message).
_NESTING = re.compile(rb"(?im)^(content-type[ \t]*:[ \t]*(?:\r?\n[ \t]+)?)(multipart|message)/")


def _flatten_structure(data: bytes) -> bytes:
    """Make every multipart and message part opaque, so the MIME parser stays flat."""
    return _NESTING.sub(rb"\1x-flattened-\2/", data)


def _mime_tree(data: bytes, defects: list[str]) -> Message:
    """Parse MIME, keeping the parser's work linear and its recursion bounded.

    The standard parser's cost grows with nesting depth times size and it
    recurses per level, so inputs with many nested structures are flattened.
    """
    if len(_NESTING.findall(data)) > MAX_MULTIPARTS:
        defects.append(f"more than {MAX_MULTIPARTS} nested structures; body not parsed as MIME")
        data = _flatten_structure(data)
    try:
        return email.message_from_bytes(data, policy=_PARSE_POLICY)
    except Exception as error:
        defects.append(f"MIME structure unreadable ({type(error).__name__}); read flat")
    try:
        return email.message_from_bytes(_flatten_structure(data), policy=_PARSE_POLICY)
    except Exception:
        defects.append("message unreadable")
        return Message()


def parse(raw: bytes | str | Message) -> ChatMessage:
    """Parse one message into the model; never raises."""
    try:
        return _parse(raw)
    except Exception as error:  # last resort: the model must always come back
        return ChatMessage(
            kind=MessageKind.TEXT,
            dialect=Dialect.EMAIL,
            defects=(f"parser failure: {type(error).__name__}: {error}"[:300],),
        )


def _parse(raw: bytes | str | Message) -> ChatMessage:
    defects: list[str] = []
    if isinstance(raw, Message):
        root = raw
    else:
        root = _mime_tree(_to_bytes(raw) if isinstance(raw, str) else raw, defects)
    headers = _raw_headers(root, defects)
    first: dict[str, str] = {}
    counts: dict[str, int] = {}
    chat_headers: list[tuple[str, str]] = []
    for name, value in headers:
        counts[name] = counts.get(name, 0) + 1
        if name not in first:
            first[name] = value
        if name.startswith(("chat-", "coi-")):
            chat_headers.append((name, decode_words(value)))
    for name in ("from", "date", "message-id", "subject", "to", "in-reply-to", "references"):
        if counts.get(name, 0) > 1:
            defects.append(f"duplicate {name} header; the first one is used")

    senders = parse_address_list(first.get("from", ""))
    if not senders:
        defects.append("missing or unreadable From")
    elif len(senders) > 1:
        defects.append("more than one From address; the first one is used")
    sender = senders[0] if senders else None
    if "sender" in first and first.get("chat-version"):
        defects.append("COI message with a Sender header")

    message_ids = parse_message_ids(first.get("message-id"))
    message_id = message_ids[0] if message_ids else ""
    if not message_id:
        defects.append("missing Message-ID")
    references = parse_message_ids(first.get("references"))
    reply_ids = parse_message_ids(first.get("in-reply-to"))
    in_reply_to = reply_ids[0] if reply_ids else None
    chat_version_raw = first.get("chat-version")
    chat_version = split_parameters(chat_version_raw)[0] if chat_version_raw is not None else None
    if chat_version is not None and chat_version.split(".")[0] != "1":
        defects.append(f"unknown Chat-Version {chat_version[:20]!r}; read as 1.0")
    subject = decode_words(first.get("subject", ""))
    top_content = {_chat_content_value(v) for n, v in headers if n == "chat-content"}
    delta = deltachat.read_fields(
        {
            k: decode_words(v)
            for k, v in first.items()
            if k in deltachat.DELTA_HEADERS or k == "chat-group-description"
        },
        top_content,
    )
    names = set(first)
    if chat_version is not None:
        dialect = (
            Dialect.DELTA_CHAT
            if deltachat.is_delta_chat(names) and not is_chat_id(message_id)
            else Dialect.COI
        )
    else:
        dialect = Dialect.EMAIL

    collected = _Collected()
    _collect(root, collected)
    defects.extend(collected.defects)
    poll_ref = in_reply_to or (references[-1] if references else "")
    body = _read_leaves(collected.leaves, poll_ref, top_content, defects)

    # Previews stand in for the next attachment, never beside it.
    attachments = _attach_previews(body)
    system_event = _system_event(collected, body.receipt, delta, attachments, "autocrypt" in first)
    text = body.text
    if text is None and body.html is not None:
        text = microformats.html_to_text(body.html)
    text = (text or "").rstrip("\n")
    folded = quote = ""
    if dialect is Dialect.EMAIL:
        text, folded = plain.fold(text)
    elif in_reply_to and text.startswith(">") and not body.text_stuffed_top:
        quote, text = plain.split_top_quote(text)
    if body.location is not None:
        text = _LOCATION_FALLBACK.sub("", text)
    if delta.edit_target and text.startswith("\u270f\ufe0f"):
        text = text[2:].lstrip()

    # Group: COI ids first, Delta Chat headers second.
    group: GroupRef | None = None
    group_id = find_group_id(message_id, references, None) or delta.group_id
    if group_id is not None or delta.group_name:
        name = delta.group_name if delta.group_name is not None else strip_reply_prefixes(subject)
        group = GroupRef(group_id, name)

    receipt_to: Address | None = None
    dnt = first.get("disposition-notification-to") or delta.receipt_to
    if dnt:
        receipt_to = parse_single_address(dnt)
        if receipt_to and sender and receipt_to.addr.lower() != sender.addr.lower():
            defects.append("Disposition-Notification-To differs from From")
        elif receipt_to and sender and not receipt_to.name:
            receipt_to = sender  # Chat-Disposition-Notification-To is a bare address

    pin: Pin | None = None
    top_disposition, top_disposition_params = split_parameters(first.get("content-disposition", ""))
    if top_disposition == "pinned":
        timeout_text = top_disposition_params.get("timeout")
        timeout = None
        if timeout_text:
            try:
                timeout = parsedate_to_datetime(timeout_text)
            except Exception:
                defects.append(f"unreadable pin timeout {timeout_text[:80]!r}")
        pin = Pin(timeout)

    contact: ContactStorage | None = None
    if "contact" in top_content or body.contact_html is not None:
        cards = microformats.cards_in(body.contact_html or "")
        if not cards:
            defects.append("contact storage message without h-card")
        contact = ContactStorage(
            card=cards[0] if cards else Card(),
            from_hashes=tuple(v.strip().lower() for n, v in headers if n == "coi-from-hash"),
            blocked="coi-blocked" in names,
            tokens_in=tuple(re.sub(r"\r?\n", "", v) for n, v in headers if n == "coi-tokenin"),
            tokens_out=tuple(re.sub(r"\r?\n", "", v) for n, v in headers if n == "coi-tokenout"),
        )

    extension: Extension | None = None
    all_contents = [*top_content, *body.part_chat_contents]
    # coi-client-spec: Extension Messages (client-specific names, reverse domain).
    # Other unknown values (Delta Chat's system messages, say) stay plain messages.
    unknown = [c for c in all_contents if c not in _KNOWN_CHAT_CONTENT and _EXTENSION_NAME.match(c)]
    if unknown:
        extension = Extension(unknown[0], tuple(body.extension_parts.get(unknown[0], [])))

    group_info = body.group_info
    target: str | None = None
    kind = _decide_kind(
        top_content,
        body,
        collected.has_report,
        delta,
        dialect,
        attachments,
        extension,
        sender,
        group_info,
        system_event,
    )
    if kind in (MessageKind.EDIT, MessageKind.DELETE, MessageKind.REACTION):
        target = delta.edit_target if kind is MessageKind.EDIT and delta.edit_target else None
        if kind is MessageKind.DELETE and delta.delete_targets:
            target = delta.delete_targets[0]
        target = target or in_reply_to
        if target is None:
            defects.append(f"{kind} without In-Reply-To")
    if kind is MessageKind.GROUP and group_info is not None:
        group = GroupRef(group_info.id or (group.id if group else None), group_info.name)
    elif group_info is not None and group is not None:
        # A groupinfo part names neither id nor name: those come with the message.
        group_info = replace(
            group_info, id=group_info.id or group.id, name=group_info.name or group.name
        )
    if group is not None and group_info is None and delta.group_description:
        group_info = GroupInfo(group.id, group.name, delta.group_description)
    if collected.encrypted:
        defects.append("encrypted body (multipart/encrypted) not read; decrypt first")

    mentions = find_mentions(text)
    if not mentions and body.html is not None and "mention" in body.html:
        mentions = find_html_mentions(body.html)

    return ChatMessage(
        kind=kind,
        message_id=message_id,
        sender=sender,
        recipients=parse_address_list(first.get("to", "")),
        cc=parse_address_list(first.get("cc", "")),
        reply_to=parse_address_list(first.get("reply-to", "")),
        date=_date(first.get("date"), defects),
        subject=subject,
        chat_version=chat_version,
        dialect=dialect,
        references=references,
        in_reply_to=in_reply_to,
        group=group,
        text=text,
        folded_text=folded,
        quote=quote,
        html=body.html.rstrip("\n") if body.html is not None else None,
        markdown=body.markdown.rstrip("\n") if body.markdown is not None else None,
        email_note=body.email_note,
        attachments=tuple(attachments),
        read_receipt_to=receipt_to,
        read_receipt_from_mail_programs=receipt_to is not None
        and "disposition-notification-to" in first,
        target_message_id=target,
        reaction=body.reaction,
        receipt=body.receipt,
        contact=contact,
        profiles=tuple(body.profiles),
        group_info=group_info,
        requests_profile="profilerequest" in top_content,
        requests_group_info="grouprequested" in top_content or "groupprofilerequest" in top_content,
        members_added=delta.member_added,
        members_removed=delta.member_removed,
        location=body.location,
        pin=pin,
        poll=body.poll,
        poll_vote=body.poll_vote,
        poll_close=body.poll_close,
        extension=extension,
        mentions=mentions,
        encrypted=collected.encrypted,
        system_event=system_event,
        full_message_id=delta.full_message_id
        or (message_id if delta.is_full_message and message_id else None),
        chat_headers=tuple(chat_headers),
        defects=tuple(defects[:MAX_DEFECTS]),
    )


# Delta Chat's machine-only parts (src/webxdc.rs, src/sync.rs) and report types.
_JSON_EVENTS = {"status-update.json": "webxdc-update", "multi-device-sync.json": "sync"}
_REPORT_EVENTS = {
    "status-update": "webxdc-update",
    "multi-device-sync": "sync",
    "delivery-status": "delivery-report",
}


def _system_event(
    collected: _Collected,
    receipt: ReadReceipt | None,
    delta: deltachat.DeltaFields,
    attachments: list[Attachment],
    has_autocrypt: bool,
) -> str:
    """What a message that is no user message announces; "" for user messages."""
    if collected.has_report and receipt is None:
        if collected.report_type == "disposition-notification" and has_autocrypt:
            return "key-update"  # Delta Chat: a receipt for nothing, to carry the new key
        return _REPORT_EVENTS.get(collected.report_type, "report")
    if delta.system_event:
        return delta.system_event
    events = {
        _JSON_EVENTS.get((a.filename or "").lower(), "")
        if a.content_type == "application/json"
        else ""
        for a in attachments
    }
    if attachments and "" not in events:
        return min(events)
    return ""


def _decide_kind(
    top: set[str],
    body: _Body,
    has_report: bool,
    delta: deltachat.DeltaFields,
    dialect: Dialect,
    attachments: list[Attachment],
    extension: Extension | None,
    sender: Address | None,
    group_info: GroupInfo | None,
    system_event: str,
) -> MessageKind:
    """One kind per message, most specific first."""
    if has_report:
        # RFC 6522: a report that is no disposition notification with an id is
        # nothing to show (Delta Chat's key update, sync and webxdc reports, bounces).
        return MessageKind.READ_RECEIPT if body.receipt is not None else MessageKind.SYSTEM
    if body.reaction is not None:
        return MessageKind.REACTION
    if top & {"editrequest", "edit"} or delta.edit_target:
        return MessageKind.EDIT
    if top & {"deleterequest", "delete"} or delta.delete_targets:
        return MessageKind.DELETE
    if "contact" in top:
        return MessageKind.CONTACT
    if "profile" in top:
        return MessageKind.PROFILE
    if "group" in top:
        return MessageKind.GROUP
    leaver = sender.addr.lower() if sender else None
    if "groupleft" in top or (leaver and leaver in {m.lower() for m in delta.member_removed}):
        return MessageKind.GROUP_LEFT
    if body.poll is not None:
        return MessageKind.POLL
    if body.poll_vote is not None:
        return MessageKind.POLL_VOTE
    if body.poll_close is not None:
        return MessageKind.POLL_CLOSE
    if body.location is not None:
        return MessageKind.LOCATION
    if system_event:
        return MessageKind.SYSTEM
    if extension is not None:
        return MessageKind.EXTENSION
    if attachments:
        return MessageKind.MEDIA
    return MessageKind.TEXT
