"""Header level helpers: message ids, references, parameters, addresses, policy.

# coi-client-spec: COI-specific Message Header Fields
"""

from __future__ import annotations

import re
import secrets
from email.header import Header, decode_header, make_header
from email.headerregistry import AddressHeader, HeaderRegistry, UnstructuredHeader
from email.policy import EmailPolicy
from email.utils import formataddr, getaddresses, parseaddr
from typing import Any

from coi.chat.model import Address

CHAT_VERSION = "1.0"
GROUP_ID_PATTERN = re.compile(r"[0-9A-Za-z_-]{12,}")
_GROUP_ID_FULL = re.compile(r"^[0-9A-Za-z_-]{12,}$")
_ID_IN_BRACKETS = re.compile(r"<([^<>]*)>")
# Headers longer than this are cut before semantic parsing (defect recorded):
# keeps address and word decoding cheap on hostile input.
MAX_HEADER_CHARS = 64 * 1024

# Subject prefixes added by replying or forwarding mail programs.
# coi-client-spec: Processing Group Name Changes
_REPLY_PREFIX = re.compile(
    r"^\s*(?:(?:re|aw|sv|vs|fw|fwd|wg|tr|rv|ref|antw|odp|vl|r)\s*(?:\[\d+\])?\s*[:：]\s*"
    r"|\[[^\]]{0,40}\]\s*)+",
    re.IGNORECASE,
)

_COI_HEADER_NAMES = (
    "chat-version",
    "chat-content",
    "chat-group-id",
    "chat-group-name",
    "chat-disposition-notification-to",
    "coi-from-hash",
    "coi-blocked",
    "coi-tokenin",
    "coi-tokenout",
)


def _coi_registry() -> HeaderRegistry:
    """Header registry that keeps COI headers as plain unstructured text."""
    registry = HeaderRegistry()
    for name in _COI_HEADER_NAMES:
        registry.map_to_type(name, UnstructuredHeader)  # type: ignore[arg-type]
    registry.map_to_type("disposition-notification-to", AddressHeader)  # type: ignore[arg-type]
    return registry


_ADDRESS_HEADERS = frozenset(
    {"from", "to", "cc", "bcc", "reply-to", "sender", "disposition-notification-to"}
)


def format_address(display_name: str, addr_spec: str) -> str:
    """One mailbox in ASCII: the name quoted or RFC 2047 encoded as a whole."""
    if not display_name:
        return addr_spec
    if display_name.isascii():
        return formataddr((display_name, addr_spec))
    encoded = Header(display_name, "utf-8", maxlinelen=0).encode(linesep=" ")
    return f"{encoded} <{addr_spec}>"


# Opaque values the server matches byte for byte: written as given, never folded.
_VERBATIM_HEADERS = frozenset({"coi-from-hash", "coi-tokenin", "coi-tokenout", "coi-blocked"})


class CoiPolicy(EmailPolicy):
    """SMTP policy that folds address lists itself.

    Python's own folder may put the "," between two mailboxes inside an encoded
    word when display names are not ASCII, which turns two recipients into one
    garbled address for every reader.  Here each mailbox is encoded on its own
    and lines are only broken between mailboxes.  Non-ASCII unstructured text
    (Subject, Chat-Group-Name) is encoded by email.header, which keeps every
    space.  COI hash and token headers are written verbatim.
    """

    def fold(self, name: str, value: Any) -> str:
        if name.lower() in _VERBATIM_HEADERS:
            return f"{name}: {value}{self.linesep}"
        if isinstance(value, UnstructuredHeader) and not str(value).isascii():
            # Python's folder may put a space of the text between two encoded words,
            # where readers drop it (RFC 2047 §6.2): email.header keeps it inside one
            encoded = Header(str(value), "utf-8", header_name=name).encode(linesep=self.linesep)
            return f"{name}: {encoded}{self.linesep}"
        addresses = getattr(value, "addresses", None)
        if name.lower() in _ADDRESS_HEADERS and addresses is not None:
            mailboxes = [format_address(a.display_name, a.addr_spec) for a in addresses]
            lines: list[str] = [f"{name}:"]
            for index, mailbox in enumerate(mailboxes):
                piece = " " + mailbox + ("," if index < len(mailboxes) - 1 else "")
                if len(lines[-1]) + len(piece) > 78 and lines[-1] != f"{name}:":
                    lines.append(piece)
                else:
                    lines[-1] += piece
            return self.linesep.join(lines) + self.linesep
        return str(super().fold(name, value))

    def fold_binary(self, name: str, value: Any) -> bytes:
        verbatim = name.lower() in _VERBATIM_HEADERS
        if (
            verbatim
            or (name.lower() in _ADDRESS_HEADERS and hasattr(value, "addresses"))
            or (isinstance(value, UnstructuredHeader) and not str(value).isascii())
        ):
            return self.fold(name, value).encode("ascii", "surrogateescape")
        return bytes(super().fold_binary(name, value))


# Policy for composing: SMTP line endings, 78 character lines, COI headers as
# unstructured text, address lists folded safely.
COI_POLICY = CoiPolicy(linesep="\r\n", header_factory=_coi_registry(), max_line_length=78)


def new_unique(length: int = 16) -> str:
    """A random domain-unique value for message ids."""
    return secrets.token_hex(length // 2)


def new_group_id() -> str:
    """A fresh group id matching ``[0-9A-Za-z_-]{12,}``."""
    return secrets.token_urlsafe(12)


def new_message_id(domain: str, group_id: str | None = None) -> str:
    """A COI message id (without brackets).

    # coi-client-spec: COI-specific Message Header Fields, Group Messages
    """
    if group_id is not None:
        if not _GROUP_ID_FULL.match(group_id):
            raise ValueError(f"invalid group id {group_id!r}")
        return f"chat$group.{group_id}.{new_unique()}@{domain}"
    return f"chat${new_unique()}@{domain}"


def group_id_from_message_id(message_id: str) -> str | None:
    """The group id embedded in ``chat$group.<id>.<unique>@domain``, if any."""
    bare = message_id.strip().strip("<>").strip()
    if not bare.lower().startswith("chat$group."):
        return None
    rest = bare[len("chat$group.") :]
    candidate = rest.split(".", 1)[0]
    if "." not in rest or not _GROUP_ID_FULL.match(candidate):
        return None
    return candidate


def parse_message_ids(value: str | None) -> tuple[str, ...]:
    """Message ids of a References/In-Reply-To/Message-ID value, brackets removed."""
    if not value:
        return ()
    found = [m.strip() for m in _ID_IN_BRACKETS.findall(value) if m.strip()]
    if found:
        return tuple(found)
    # Broken senders leave the brackets off (or the closing one, as in a spec example).
    return tuple(token.strip("<>") for token in value.split() if token.strip("<>"))


def chat_references(parent_references: tuple[str, ...], parent_id: str | None) -> tuple[str, ...]:
    """References for a reply: the first and the last message id only.

    # coi-client-spec: COI-specific Message Header Fields (References)
    """
    chain = [*parent_references, *([parent_id] if parent_id else [])]
    if not chain:
        return ()
    if len(chain) == 1 or chain[0] == chain[-1]:
        return (chain[0],)
    return (chain[0], chain[-1])


def format_ids(ids: tuple[str, ...]) -> str:
    return " ".join(f"<{i}>" for i in ids)


def strip_reply_prefixes(subject: str) -> str:
    """Group name from a Subject: drop "Re:", "AW:", "Fwd:", "[list]" and the like."""
    stripped = _REPLY_PREFIX.sub("", subject, count=1)
    if stripped.lower().startswith("chat:"):
        stripped = stripped[5:]
    return stripped.strip()


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words leniently; undecodable input is kept as is."""
    if "=?" not in value:
        return _unfold(value)
    try:
        return _unfold(str(make_header(decode_header(value))))
    except Exception:
        return _unfold(value)


def _unfold(value: str) -> str:
    return re.sub(r"\r?\n[ \t]*", " ", value).strip()


_EMPTY_ELEMENTS = re.compile(r",(?:\s*,)+")


def parse_address_list(value: str) -> tuple[Address, ...]:
    """All mailboxes of an address header; groups are flattened, junk skipped.

    Accepts the ``;`` separated lists of the spec examples too.
    """
    if not value:
        return ()
    # empty list elements (obs-addr-list, RFC 5322 §4.4): Python's stricter getaddresses
    # (Debian's 3.11.2, CPython >= 3.12.4) rejects the whole list for a trailing comma
    value = _EMPTY_ELEMENTS.sub(",", value.replace(";", ",")).strip().strip(",")
    addresses: list[Address] = []
    try:
        pairs = getaddresses([value])
    except Exception:
        pairs = []
    for name, addr in pairs:
        addr = addr.strip()
        if "@" not in addr:
            continue
        addresses.append(Address(addr=addr, name=decode_words(name)))
    return tuple(addresses)


def parse_single_address(value: str) -> Address | None:
    try:
        name, addr = parseaddr(value)
    except Exception:
        return None
    if "@" not in addr:
        found = parse_address_list(value)
        return found[0] if found else None
    return Address(addr=addr.strip(), name=decode_words(name))


def split_parameters(value: str, lower_main: bool = True) -> tuple[str, dict[str, str]]:
    """Split ``main; a=1; b="x; y"`` leniently into the main value and parameters.

    Parameter values may be unquoted and contain spaces and commas (as in
    ``timeout=Tue, 5 Dec 2019 0:00:00 +0100`` and ``categories=friend, family``).
    RFC 2231 continuations and charset encodings are joined and decoded.
    Names are lowercased.
    """
    pieces: list[str] = []
    current: list[str] = []
    quoted = False
    escaped = False
    for char in value:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
            current.append(char)
        elif char == ";" and not quoted:
            pieces.append("".join(current))
            current = []
        else:
            current.append(char)
    pieces.append("".join(current))
    main = _unfold(pieces[0])
    main = main.lower() if lower_main else main
    raw: dict[str, str] = {}
    for piece in pieces[1:]:
        name, sep, val = piece.partition("=")
        name = _unfold(name).lower()
        if not sep or not name:
            continue
        val = _unfold(val)
        if len(val) >= 2 and val.startswith('"') and val.endswith('"'):
            val = val[1:-1]
        raw.setdefault(name, val)
    return main, _join_rfc2231(raw)


def _join_rfc2231(raw: dict[str, str]) -> dict[str, str]:
    """Apply RFC 2231 continuations (name*0, name*1*) and charset decoding."""
    result: dict[str, str] = {}
    continued: dict[str, list[tuple[int, str, bool]]] = {}
    for name, val in raw.items():
        match = re.fullmatch(r"([^*]+)\*(\d+)?(\*)?", name)
        if not match:
            result[name] = val
            continue
        base, index, encoded = match.group(1), match.group(2), match.group(3)
        if index is None:
            encoded = "*"
            index = "0"
        continued.setdefault(base, []).append((int(index), val, bool(encoded)))
    for base, segments in continued.items():
        segments.sort()
        charset = "utf-8"
        chunks: list[bytes] = []
        for position, (_, val, encoded) in enumerate(segments):
            if encoded:
                if position == 0 and val.count("'") >= 2:
                    charset, _, val = val.split("'", 2)
                    charset = charset or "utf-8"
                chunks.append(_percent_decode(val))
            else:
                chunks.append(val.encode("utf-8", "surrogateescape"))
        try:
            result[base] = b"".join(chunks).decode(charset, "replace")
        except (LookupError, ValueError):  # unknown or not a text codec, NUL in the name
            result[base] = b"".join(chunks).decode("utf-8", "replace")
    return result


def _percent_decode(val: str) -> bytes:
    out = bytearray()
    i = 0
    while i < len(val):
        if (
            val[i] == "%"
            and i + 2 < len(val) + 0
            and re.fullmatch(r"[0-9A-Fa-f]{2}", val[i + 1 : i + 3])
        ):
            out.append(int(val[i + 1 : i + 3], 16))
            i += 3
        else:
            out.extend(val[i].encode("utf-8", "surrogateescape"))
            i += 1
    return bytes(out)
