"""Deterministic test messages: short chat messages, ordinary mails, mails with attachments."""

from __future__ import annotations

import base64
import random
import textwrap
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
    "sierra",
    "tango",
    "uniform",
    "victor",
    "whiskey",
    "xray",
    "yankee",
    "zulu",
    "meeting",
    "project",
    "report",
    "budget",
    "lunch",
    "coffee",
    "tomorrow",
    "today",
    "weekend",
    "holiday",
    "invoice",
    "release",
    "server",
    "garden",
    "bicycle",
    "river",
    "mountain",
    "window",
    "letter",
    "picture",
    "music",
    "kitchen",
    "station",
    "harbour",
]
SENDERS = [f"sender{i:02d}@example.net" for i in range(50)]
RARE_WORD = "zanzibar"  # in 1 of 100 big-mailbox messages: what SEARCH TEXT looks for
SEARCH_FROM = "sender07@example.net"  # 1 of 50 senders: what SEARCH FROM looks for
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def _text(rng: random.Random, size: int) -> str:
    words: list[str] = []
    n = 0
    while n < size:
        w = rng.choice(WORDS)
        words.append(w)
        n += len(w) + 1
    return "\r\n".join(textwrap.wrap(" ".join(words), 72)) + "\r\n"


def _headers(
    rng: random.Random, i: int, sender: str, to: str, subject: str, extra: str = ""
) -> str:
    date = format_datetime(_EPOCH + timedelta(minutes=i))
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\n"
        f"Message-ID: <bench-{i}-{rng.randrange(1 << 30)}@example.net>\r\n"
        f"MIME-Version: 1.0\r\n{extra}"
    )


def chat(rng: random.Random, i: int, to: str) -> bytes:
    """A short COI-style chat message (a few hundred bytes)."""
    body = _text(rng, rng.randrange(20, 200))
    head = _headers(
        rng,
        i,
        rng.choice(SENDERS),
        to,
        "[...]",
        "Chat-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n",
    )
    return (head + "\r\n" + body).encode()


def mail(
    rng: random.Random, i: int, to: str, size: int, rare: bool = False, sender: str | None = None
) -> bytes:
    body = _text(rng, size)
    if rare:
        body = f"see you in {RARE_WORD} soon\r\n" + body
    subject = " ".join(rng.choice(WORDS) for _ in range(4))
    head = _headers(
        rng,
        i,
        sender or rng.choice(SENDERS),
        to,
        subject,
        "Content-Type: text/plain; charset=utf-8\r\n",
    )
    return (head + "\r\n" + body).encode()


def attachment(rng: random.Random, i: int, to: str, size: int) -> bytes:
    """multipart/mixed with a text part and a base64 attachment of about `size` bytes."""
    boundary = f"b{rng.randrange(1 << 40):x}"
    raw = rng.randbytes(size * 3 // 4)
    b64 = base64.encodebytes(raw).decode().replace("\n", "\r\n")
    head = _headers(
        rng,
        i,
        rng.choice(SENDERS),
        to,
        "holiday pictures",
        f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n',
    )
    return (
        f"{head}\r\n--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        f'{_text(rng, 300)}--{boundary}\r\nContent-Type: image/jpeg; name="p{i}.jpg"\r\n'
        f"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment\r\n\r\n"
        f"{b64}--{boundary}--\r\n"
    ).encode()


def delivery_mix(seed: int, n: int, to: str) -> list[bytes]:
    """Realistic mix: 80% chat messages, 18% 50 KB mails, 2% 2 MB attachments
    (at least one attachment when n >= 10)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        r = rng.random()
        if r < 0.02 or (n >= 10 and i == n // 2):
            out.append(attachment(rng, i, to, 2_000_000))
        elif r < 0.20:
            out.append(mail(rng, i, to, 50_000))
        else:
            out.append(chat(rng, i, to))
    return out


def big_mailbox_message(i: int, to: str) -> bytes:
    """Message i of the big mailbox: about 2-4 KB; 1 in 100 has RARE_WORD in its text,
    1 in 50 is from SEARCH_FROM."""
    rng = random.Random(i)
    sender = SENDERS[i % len(SENDERS)]
    return mail(rng, i, to, rng.randrange(1500, 3500), rare=(i % 100 == 37), sender=sender)
