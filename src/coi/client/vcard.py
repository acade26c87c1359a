"""vCards with an OpenPGP key: how chat users hand each other a contact (RFC 6350).

Delta Chat shares contacts (and its invites) as vCard 4.0 with the key in a ``KEY``
property holding a ``data:application/pgp-keys;base64\\,...`` URI (the comma escaped as a
text value's would be; both forms are read); reading and writing
that form lets a coi user and a Delta Chat user start an encrypted chat without a first
message in clear.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime

_KEY_URI = re.compile(r"^data:application/pgp-keys(?:;[^,;]*)*;base64,(?P<data>.*)$", re.I | re.S)


@dataclass(frozen=True, slots=True)
class VCardContact:
    addr: str
    name: str = ""
    key: bytes | None = None  # binary OpenPGP public key


def _escape(text: str) -> str:
    """RFC 6350 §3.4: backslash, comma, semicolon and newline escaped in text values."""
    return (
        text.replace("\\", "\\\\").replace(",", "\\,").replace(";", "\\;").replace("\n", "\\n")
    )


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) in "nN" else m.group(1), text)


def _fold(line: str) -> str:
    """RFC 6350 §3.2: lines longer than 75 octets continue after CRLF and a space."""
    out: list[str] = []
    rest, room = line, 75
    while len(rest.encode("utf-8")) > room:
        cut = room
        while len(rest[:cut].encode("utf-8")) > room:
            cut -= 1
        out.append(rest[:cut])
        rest, room = rest[cut:], 74  # continuation lines start with the space
    out.append(rest)
    return "\r\n ".join(out)


def make_vcard(addr: str, name: str, key: bytes | None) -> str:
    lines = ["BEGIN:VCARD", "VERSION:4.0", f"EMAIL:{addr}", f"FN:{_escape(name or addr)}"]
    if key:
        encoded = base64.b64encode(key).decode("ascii")
        # the comma escaped as in Delta Chat's own vCards (it reads what it writes)
        lines.append(f"KEY:data:application/pgp-keys;base64\\,{encoded}")
    lines.append("REV:" + datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"))
    lines.append("END:VCARD")
    return "".join(_fold(line) + "\r\n" for line in lines)


def parse_vcards(text: str) -> list[VCardContact]:
    """Every vCard in ``text`` that names a mail address; unknown properties ignored."""
    unfolded = re.sub(r"\r?\n[ \t]", "", text)
    contacts: list[VCardContact] = []
    card: dict[str, str] | None = None
    for line in unfolded.splitlines():
        name, sep, value = line.partition(":")
        if not sep:
            continue
        prop = name.split(";", 1)[0].split(".")[-1].upper()  # drop group and parameters
        if prop == "BEGIN" and value.strip().upper() == "VCARD":
            card = {}
        elif prop == "END" and card is not None:
            addr = card.get("EMAIL", "").strip()
            if "@" in addr:
                contacts.append(VCardContact(addr, card.get("FN", ""), _key(card.get("KEY"))))
            card = None
        elif card is not None and prop in ("EMAIL", "FN", "KEY") and prop not in card:
            card[prop] = value if prop == "KEY" else _unescape(value)
    return contacts


def _key(value: str | None) -> bytes | None:
    if not value:
        return None
    match = _KEY_URI.match(value.strip().replace("\\,", ","))  # Delta Chat escapes it
    if match is None:
        return None
    try:
        return base64.b64decode(re.sub(r"\s", "", match.group("data")), validate=True)
    except (binascii.Error, ValueError):
        return None
