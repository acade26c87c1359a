"""Delivery status notifications (RFC 3464) for messages the relay could not deliver."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, make_msgid

from coi.delivery.local import header_block

_STATUS = re.compile(r"^([245])\.\d{1,3}\.\d{1,3}")


@dataclass(frozen=True, slots=True)
class Failure:
    rcpt: str
    status: str  # RFC 3463 enhanced status, e.g. "5.1.1" or "4.4.7"
    diagnostic: str  # the remote reply, or our reason


def enhanced_status(text: str, code: int) -> str:
    match = _STATUS.match(text.strip())
    if match:
        return match.group(0)
    return "5.0.0" if code >= 500 else "4.0.0"


def build_dsn(
    *,
    reporting_mta: str,
    postmaster: str,
    sender: str,
    original: bytes,
    arrival: datetime,
    failures: Sequence[Failure],
) -> bytes:
    """A multipart/report; report-type=delivery-status bounce for `sender` (RFC 3464 §2)."""
    boundary = make_msgid("dsn").strip("<>").replace("@", "=")
    now = datetime.now(UTC)
    human = [
        "This is the mail system at " + reporting_mta + ".",
        "",
        "Your message could not be delivered to the following recipients:",
        "",
    ]
    for failure in failures:
        human.append(f"  <{failure.rcpt}>: {failure.diagnostic}")
    # RFC 3464 §2.2: per-message fields, then one block per recipient (§2.3)
    status = [
        f"Reporting-MTA: dns; {reporting_mta}",
        f"Arrival-Date: {format_datetime(arrival)}",
    ]
    for failure in failures:
        diagnostic = " ".join(failure.diagnostic.split())
        status += [
            "",
            f"Final-Recipient: rfc822; {failure.rcpt}",
            "Action: failed",
            f"Status: {failure.status}",
            f"Diagnostic-Code: smtp; {diagnostic}",
        ]
    headers = header_block(original).rstrip(b"\r\n").replace(b"\r\n", b"\n").split(b"\n")
    lines = [
        f"From: Mail Delivery System <{postmaster}>",
        f"To: <{sender}>",
        "Subject: Undelivered Mail Returned to Sender",
        f"Date: {format_datetime(now)}",
        f"Message-ID: {make_msgid('dsn', reporting_mta)}",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
        "",
        "This is a MIME-encapsulated delivery status notification.",
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=utf-8",
        "",
        *human,
        "",
        f"--{boundary}",
        "Content-Type: message/delivery-status",
        "",
        *status,
        "",
        f"--{boundary}",
        "Content-Type: text/rfc822-headers",
        "",
    ]
    text = "\r\n".join(lines).encode("utf-8") + b"\r\n"
    text += b"\r\n".join(headers) + b"\r\n"
    text += f"\r\n--{boundary}--\r\n".encode("ascii")
    return text
