"""CATENATE (RFC 4469): an APPEND message built from TEXT literals and IMAP URLs.

Only relative URLs that name a message or a part of one in the user's own mailboxes are
served (RFC 4469 §3): "/mailbox[;UIDVALIDITY=n]/;UID=n[/;SECTION=s][/;PARTIAL=o[.l]]"
(RFC 5092 §3), a relative path being resolved first against "imap://user@server/" or,
with a mailbox selected, "imap://user@server/mailbox" (RFC 3986 §5.2). The mailbox is
looked up among the logged-in user's mailboxes only, so a URL can never reach another
user's data. Anything else (a scheme or server, URLAUTH, a mailbox or UID that does not
exist, a UIDVALIDITY that does not match, a section the message lacks) fails the whole
APPEND with `NO [BADURL url]` (§4.1); a result over APPENDLIMIT gets `NO [TOOBIG]`
(§4.2). Nothing is stored unless every message of the command could be built (all or
nothing, RFC 3502 §6.3.11).

A URL's octets are those FETCH BODY[section] returns (§3), so a part stored with NUL
comes in the base64 form FETCH serves (RFC 3516 §6, see `coi.mail.index.served_form`)
and never as NUL; a TEXT literal cannot hold NUL unless sent as literal8 (RFC 3516 §4.4,
as for a plain APPEND).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote_to_bytes

from coi.imap.server.errors import CommandNo
from coi.imap.server.session import Session
from coi.imap.wire.commands import CatPart
from coi.mail.index import index_message, load_index, served_form
from coi.mail.sections import section_bytes

# RFC 5092 §11: imessagepart as an absolute path; keywords are case-insensitive (RFC 4469
# appendix A writes "section=" and "Section="). A mailbox is 1*bchar: ";", "?" and "#"
# only %-encoded. ";EXPIRE"/";URLAUTH" (RFC 4467) and anything else do not match.
_URL = re.compile(
    r"/(?P<mailbox>[^;?#/][^;?#]*?)"
    r"(?:;UIDVALIDITY=(?P<validity>[1-9][0-9]{0,9}))?"
    r"/;UID=(?P<uid>[1-9][0-9]{0,9})"
    r"(?:/;SECTION=(?P<section>[^/;?#]+))?"
    r"(?:/;PARTIAL=(?P<start>[0-9]{1,10})(?:\.(?P<length>[1-9][0-9]{0,9}))?)?",
    re.IGNORECASE,
)
# RFC 3501 §9 section-spec (RFC 5092 §3.4 enc-section is its %-encoded text)
_SECTION = re.compile(
    r"(?P<part>[1-9][0-9]*(?:\.[1-9][0-9]*)*)?"
    r"(?:(?(part)\.)(?P<text>HEADER\.FIELDS\.NOT|HEADER\.FIELDS|HEADER|TEXT|MIME)"
    r"(?: ?\((?P<fields>[^()]*)\))?)?",
    re.IGNORECASE,
)
_FIELD = re.compile(r"[!-9;-~]+")  # RFC 5322 ftext


_SCHEME = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*:")


def resolve(raw: bytes, selected: str | None) -> bytes:
    """The URL as an absolute path (RFC 3986 §5.2), against the base RFC 4469 §3 gives:
    "imap://user@server/" when no mailbox is selected, "imap://user@server/mailbox" when
    one is. A scheme or a server ("//") is not ours to serve (§3 note): BadUrl."""
    if _SCHEME.match(raw) or raw.startswith(b"//"):
        raise BadUrl("only relative URLs of this session are served")
    if raw.startswith(b"/"):
        path = raw
    else:
        # §5.2.3 merge: the base path up to its last "/", then the reference
        base = "/" + quote(selected, safe="/") if selected is not None else "/"
        path = base[: base.rindex("/") + 1].encode() + raw
    return _remove_dot_segments(path)


def _remove_dot_segments(path: bytes) -> bytes:
    """RFC 3986 §5.2.4, so "a/../INBOX/;UID=1" names INBOX; never above the root."""
    out: list[bytes] = []
    segments = path.split(b"/")[1:]
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == b"..":
            if out:
                out.pop()
            if last:
                out.append(b"")
        elif segment == b".":
            if last:
                out.append(b"")
        else:
            out.append(segment)
    return b"/" + b"/".join(out)


class BadUrl(Exception):
    """The URL cannot be served (RFC 4469 §4.1)."""


@dataclass(frozen=True, slots=True)
class MessageUrl:
    """A parsed RFC 5092 message or message-part URL."""

    mailbox: str
    uidvalidity: int | None
    uid: int
    part: tuple[int, ...] = ()
    text: str = ""
    fields: tuple[str, ...] = ()
    partial: tuple[int, int | None] | None = None


def _unescape(text: str) -> str:
    try:
        return unquote_to_bytes(text).decode("utf-8")
    except UnicodeDecodeError:
        raise BadUrl("not UTF-8") from None


def parse_url(raw: bytes) -> MessageUrl:
    """The URL's parts; BadUrl for anything but a relative message (part) URL."""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise BadUrl("not ASCII") from None  # RFC 5092: 8-bit octets are %-encoded
    m = _URL.fullmatch(text)  # an absolute path: see `resolve`
    if m is None:
        raise BadUrl("not a relative message URL")
    # RFC 5092 §3.2: the mailbox name is UTF-8, %-encoded; INBOX is case-insensitive
    # (RFC 3501 §5.1) also as a superior
    mailbox = _unescape(m["mailbox"])
    if mailbox[:5].upper() == "INBOX" and (len(mailbox) == 5 or mailbox[5] == "/"):
        mailbox = "INBOX" + mailbox[5:]
    validity = int(m["validity"]) if m["validity"] else None
    url = MessageUrl(mailbox, validity, int(m["uid"]))
    if m["section"]:
        section = _SECTION.fullmatch(_unescape(m["section"]))
        if section is None:
            raise BadUrl("bad section")
        part = tuple(int(n) for n in section["part"].split(".")) if section["part"] else ()
        kind = (section["text"] or "").upper()
        fields: tuple[str, ...] = ()
        if kind.startswith("HEADER.FIELDS"):
            names = (section["fields"] or "").split()
            if section["fields"] is None or not names or not all(map(_FIELD.fullmatch, names)):
                raise BadUrl("bad header list")
            fields = tuple(names)
        elif section["fields"] is not None or (kind == "MIME" and not part):
            raise BadUrl("bad section")
        url = MessageUrl(url.mailbox, url.uidvalidity, url.uid, part, kind, fields)
    if m["start"] is not None:
        length = int(m["length"]) if m["length"] else None
        url = MessageUrl(
            url.mailbox, url.uidvalidity, url.uid, url.part, url.text, url.fields,
            (int(m["start"]), length),
        )  # fmt: skip
    return url


def fetch_url(session: Session, raw: bytes) -> bytes:
    """The octets FETCH BODY[section]<partial> gives for the URL (RFC 4469 §3), looked
    up in the logged-in user's own mailboxes only."""
    selected = None
    if session.selected is not None:
        mailbox = session.store.mailbox_by_id(session.selected.mailbox_id)
        selected = mailbox.name if mailbox is not None else None
    url = parse_url(resolve(raw, selected))
    store = session.store
    mailbox = store.get_mailbox(session.user_id, url.mailbox)
    if mailbox is None or mailbox.noselect:
        raise BadUrl("no such mailbox")
    if url.uidvalidity is not None and url.uidvalidity != mailbox.uidvalidity:
        raise BadUrl("UIDVALIDITY differs")  # RFC 5092 §3.2
    row = store.rows(mailbox.id, [url.uid]).get(url.uid)
    if row is None:
        raise BadUrl("no such message")
    blob = store.blob(row.blob_id)
    if blob is None:  # expunged meanwhile
        raise BadUrl("no such message")
    raw, index = blob[0], load_index(blob[1])
    # what FETCH BODY cuts from (fetch.Message.served): a message holding NUL is served
    # in its converted form (RFC 3516 §6)
    served = served_form(raw, index) if index.served else None
    if served is not None:
        raw, index = served, index_message(served)
    data = section_bytes(raw, index, url.part, url.text, url.fields)
    if data is None:
        raise BadUrl("no such section")
    if url.partial is not None:  # RFC 5092 §3.3: <offset.length> as in FETCH
        start, length = url.partial
        data = data[start:] if length is None else data[start : start + length]
    return data


def url_code(raw: bytes) -> str:
    """`BADURL url` (RFC 4469 §5, errata 4046: the URL bare, not quoted); octets a URL
    does not hold unescaped (controls, space, 8-bit) and "]" (which would end the code)
    are %-encoded."""
    text = "".join(chr(b) if 0x20 < b < 0x7F and b != 0x5D else f"%{b:02X}" for b in raw)
    return "BADURL " + (text or "%20")


def build(session: Session, parts: Sequence[CatPart], limit: int) -> bytes:
    """The catenated message (RFC 4469 §3), or NO [BADURL] for the first URL that cannot
    be served, NO [TOOBIG] once it grows past `limit` (§4.2, APPENDLIMIT)."""
    out = bytearray()
    for part in parts:
        if part.kind == "TEXT":
            chunk = part.data
        else:
            try:
                chunk = fetch_url(session, part.data)
            except BadUrl as exc:
                code = url_code(part.data)
                raise CommandNo(f"CATENATE URL cannot be used: {exc}", code) from None
        if len(out) + len(chunk) > limit:
            raise CommandNo(f"Catenated message larger than APPENDLIMIT {limit}", "TOOBIG")
        out += chunk
    return bytes(out)
