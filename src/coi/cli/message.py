"""``coi message inspect FILE.eml``: what the COI model makes of a message.

For people debugging interoperability with other chat-over-email clients.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import sys
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

from coi.chat.detect import is_chat_message_bytes
from coi.chat.groups import conversation_of
from coi.chat.model import Attachment, ChatMessage
from coi.chat.parse import parse


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``message`` command group to the main ``coi`` parser."""
    group = subparsers.add_parser(
        "message",
        help="inspect chat messages",
        description="Tools for looking at COI, Delta Chat and plain email messages.",
    )
    commands = group.add_subparsers(dest="message_command", metavar="COMMAND")
    commands.required = True
    inspect = commands.add_parser(
        "inspect",
        help="show what the COI model makes of a message file",
        description="Parse FILE (an .eml file, or - for stdin) and print its kind, chat, "
        "sender, text, attachments, COI fields and defects.",
    )
    inspect.add_argument("file", metavar="FILE", help="message file (.eml); - reads stdin")
    inspect.add_argument("--json", action="store_true", help="print JSON instead of text")
    inspect.add_argument("--me", metavar="ADDRESS", help="your address, to name 1:1 chats")
    inspect.set_defaults(handler=inspect_command)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Attachment):  # bodies are summarised, never dumped
        return {
            "content_type": value.content_type,
            "filename": value.filename,
            "size": value.size,
            "bytes": len(value.data),
            "preview": _jsonable(value.preview) if value.preview else None,
        }
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def describe(message: ChatMessage, raw: bytes, me: str | None = None) -> dict[str, Any]:
    """The inspection report as plain data (the JSON output)."""
    report = _jsonable(message)
    assert isinstance(report, dict)
    report["is_chat_message"] = is_chat_message_bytes(raw)
    report["conversation"] = conversation_of(message, me)
    return report


def _text_report(report: dict[str, Any]) -> str:
    lines = [
        f"kind:          {report['kind']}",
        f"dialect:       {report['dialect']}",
        f"chat message:  {'yes' if report['is_chat_message'] else 'no'}",
        f"conversation:  {report['conversation']}",
    ]
    group = report.get("group")
    if group:
        lines.append(f"group:         {group['name']!r} (id {group['id'] or 'none, ad hoc'})")
    sender = report.get("sender")
    lines.append(f"from:          {_address(sender) if sender else '(none)'}")
    if report["recipients"]:
        lines.append("to:            " + ", ".join(_address(a) for a in report["recipients"]))
    for label, key in (
        ("date", "date"),
        ("subject", "subject"),
        ("message-id", "message_id"),
        ("in-reply-to", "in_reply_to"),
        ("target", "target_message_id"),
        ("reaction", "reaction"),
        ("system event", "system_event"),
        ("full message", "full_message_id"),
    ):
        if report.get(key):
            lines.append(f"{label + ':':<15}{report[key]}")
    if report["references"]:
        lines.append("references:    " + " ".join(report["references"]))
    if report["text"]:
        lines.append("text:")
        lines.extend("  | " + line for line in report["text"].split("\n"))
    if report["folded_text"]:
        lines.append(f"folded:        {len(report['folded_text'].splitlines())} lines")
    for attachment in report["attachments"]:
        preview = " (+ preview)" if attachment["preview"] else ""
        lines.append(
            f"attachment:    {attachment['content_type']} {attachment['filename'] or ''} "
            f"{attachment['bytes']} bytes{preview}"
        )
    for key in (
        "receipt",
        "contact",
        "profiles",
        "group_info",
        "location",
        "pin",
        "poll",
        "poll_vote",
        "poll_close",
        "extension",
        "mentions",
        "members_added",
        "members_removed",
    ):
        if report.get(key):
            lines.append(f"{key + ':':<15}{json.dumps(_short(report[key]), ensure_ascii=False)}")
    for flag in ("requests_profile", "requests_group_info", "encrypted"):
        if report.get(flag):
            lines.append(f"{flag + ':':<15}yes")
    if report["chat_headers"]:
        lines.append("chat headers:")
        lines.extend(f"  {name}: {_clip(value)}" for name, value in report["chat_headers"])
    lines.append("defects:" + ("       none" if not report["defects"] else ""))
    lines.extend(f"  - {defect}" for defect in report["defects"])
    return "\n".join(lines)


def _address(address: dict[str, str]) -> str:
    return f"{address['name']} <{address['addr']}>" if address["name"] else address["addr"]


def _clip(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _short(value: Any) -> Any:
    """Shorten long strings (inline photos) for the text report."""
    if isinstance(value, str):
        return _clip(value, 60)
    if isinstance(value, list):
        return [_short(v) for v in value]
    if isinstance(value, dict):
        return {k: _short(v) for k, v in value.items() if v not in ("", None, [], ())}
    return value


def inspect_command(args: argparse.Namespace) -> int:
    """Handler of ``coi message inspect``."""
    try:
        raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as error:
        print(f"coi message inspect: cannot read {args.file}: {error.strerror}", file=sys.stderr)
        return 2
    message = parse(raw)
    report = describe(message, raw, getattr(args, "me", None))
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print(_text_report(report))
    return 0
