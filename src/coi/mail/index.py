"""Parse a message once and keep what IMAP FETCH needs.

At APPEND/delivery the server calls :func:`index_message` and stores the
result (via :func:`dump_index`) beside the raw bytes, so that FETCH ENVELOPE,
BODY, BODYSTRUCTURE and ``BODY[section]`` never re-parse the message.

Design choices (RFC 3501 §7.4.2 leaves room):

* Type, subtype, parameter names, transfer encoding and disposition type are
  upper-cased, like the RFC 3501 examples (``"TEXT" "PLAIN" ("CHARSET" ...)``);
  parameter values are kept as in the message, in message order.  RFC 2231
  parameters (``FILENAME*``) are passed through undecoded for the client.
* Sizes are octets of the stored bytes; line counts are the number of LF
  bytes, i.e. CRLF count for CRLF-normalized storage.
* Strings are quoted when 7-bit without CR/LF, otherwise sent as literals.
* A leaf part whose body holds NUL (``binary`` content, APPENDed as literal8) is
  described as ``BASE64``, with the size and line count of that form, and ``BODY[n]``
  returns that form (RFC 3516 §6: IMAP4rev1 strings cannot carry NUL); ``BINARY[n]``
  still gives the stored octets.  The whole message is served the same way
  (:func:`served_form`): ``BODY[]``, ``RFC822``, ``BODY[TEXT]`` and ``BODY[n.MIME]`` come
  from the converted message, whose size is the RFC822.SIZE (:func:`index_for_imap`).
* Broken MIME is handled best effort: a multipart without boundary is treated
  as text/plain, a multipart without any delimiter gets one empty text/plain
  child, nesting deeper than :data:`MAX_DEPTH` or more than :data:`MAX_PARTS`
  parts turns the rest into application/octet-stream leaves.
"""

from __future__ import annotations

import marshal
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from coi.mail import headers as H
from coi.mail.cte import base64_lines, decode_body

MAX_DEPTH = 100
MAX_PARTS = 50_000
_FORMAT = 1


@dataclass(frozen=True, slots=True)
class Part:
    """One MIME entity with offsets into the raw message.

    ``path`` is the IMAP part number.  The encapsulated message of a
    message/rfc822 part shares the path of that part (its header is
    ``n.HEADER``); the top-level message has ``()``.
    """

    path: tuple[int, ...]
    header_start: int
    body_start: int
    body_end: int
    content_type: str
    params: tuple[tuple[str, str], ...]
    encoding: str
    children: tuple[Part, ...]
    nul: bool = False  # a leaf whose body holds NUL: served as base64 (RFC 3516 §6)

    @property
    def is_multipart(self) -> bool:
        return self.content_type.startswith("multipart/")

    @property
    def is_message(self) -> bool:
        """True for a message/rfc822 part whose single child is the encapsulated message."""
        return self.content_type == "message/rfc822" and len(self.children) == 1

    def param(self, name: str) -> str | None:
        """First parameter value by (lower-case) name."""
        for k, v in self.params:
            if k == name:
                return v
        return None


@dataclass(frozen=True, slots=True)
class MessageIndex:
    """Precomputed FETCH data of one message (RFC 3501 §7.4.2)."""

    envelope: bytes
    body: bytes
    bodystructure: bytes
    root: Part
    sent_date: datetime | None
    # the raw message holds NUL: BODY[...] and RFC822 serve `served_form` instead, which
    # envelope/body/bodystructure then describe; `root` keeps the raw offsets for BINARY
    served: bool = False

    def part(self, path: tuple[int, ...]) -> Part | None:
        """Resolve an IMAP section part number (RFC 3501 §6.4.5).

        A non-multipart message has part 1 = its body, so ``(1,)`` returns the
        message itself; numbers below a message/rfc822 part address the parts
        of the encapsulated message.
        """
        cur = self.root
        as_message = True  # ``cur`` is addressed as a message, not as a body part
        for n in path:
            if not as_message:
                if cur.is_message:
                    cur = cur.children[0]
                elif not cur.is_multipart:
                    return None
            if cur.is_multipart:
                if not 1 <= n <= len(cur.children):
                    return None
                cur = cur.children[n - 1]
            elif n != 1:
                return None
            as_message = False
        return cur


# --- IMAP string output (RFC 3501 §4.3, §9 "nstring") ---------------------------

_QUOTABLE_RE = re.compile(rb"[\x01-\x09\x0b\x0c\x0e-\x7f]*")


_NSTRING_CACHE: dict[bytes, bytes] = {}


def nstring(value: bytes | None) -> bytes:
    """Quoted string if possible, else a literal; NIL for None.

    Short values (types, charsets, NIL-ish fields) repeat across messages, so
    they are memoized in a small bounded cache.
    """
    if value is None:
        return b"NIL"
    hit = _NSTRING_CACHE.get(value)
    if hit is not None:
        return hit
    out = _nstring(value)
    if len(value) <= 32:
        if len(_NSTRING_CACHE) >= 4096:
            _NSTRING_CACHE.clear()
        _NSTRING_CACHE[value] = out
    return out


def _nstring(value: bytes) -> bytes:
    if b"\0" in value:
        value = value.replace(b"\0", b"")
    if _QUOTABLE_RE.fullmatch(value):
        if b"\\" in value or b'"' in value:
            value = value.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
        return b'"' + value + b'"'
    return b"{%d}\r\n" % len(value) + value


def _plist(params: H.Params) -> bytes:
    if not params:
        return b"NIL"
    items = []
    for k, v in params:
        items.append(nstring(k.upper()))
        items.append(nstring(v))
    return b"(" + b" ".join(items) + b")"


def _addr_list(value: bytes | None) -> bytes:
    addrs = H.addresses(value)
    if not addrs:
        return b"NIL"
    return (
        b"("
        + b"".join(
            b"(%s %s %s %s)" % (nstring(a[0]), nstring(a[1]), nstring(a[2]), nstring(a[3]))
            for a in addrs
        )
        + b")"
    )


def envelope(f: dict[bytes, bytes]) -> bytes:
    """ENVELOPE from the first occurrence of each field (RFC 3501 §7.4.2)."""
    frm = _addr_list(f.get(b"from"))
    sender = _addr_list(f.get(b"sender"))
    reply_to = _addr_list(f.get(b"reply-to"))
    return b"(%s %s %s %s %s %s %s %s %s %s)" % (
        nstring(f.get(b"date")),
        nstring(f.get(b"subject")),
        frm,
        frm if sender == b"NIL" else sender,
        frm if reply_to == b"NIL" else reply_to,
        _addr_list(f.get(b"to")),
        _addr_list(f.get(b"cc")),
        _addr_list(f.get(b"bcc")),
        nstring(f.get(b"in-reply-to")),
        nstring(f.get(b"message-id")),
    )


def _sent_date(value: bytes | None) -> datetime | None:
    if value is None:
        return None
    try:
        d = parsedate_to_datetime(value.decode("latin-1"))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if d.tzinfo is None:  # RFC 5322 §3.3 "-0000": time is UTC, zone unknown
        d = d.replace(tzinfo=UTC)
    return d


# --- The scanner ----------------------------------------------------------------

_WANTED = frozenset(
    (
        b"date", b"subject", b"from", b"sender", b"reply-to", b"to", b"cc", b"bcc",
        b"in-reply-to", b"message-id", b"content-type", b"content-transfer-encoding",
        b"content-id", b"content-description", b"content-md5", b"content-disposition",
        b"content-language", b"content-location",
    )
)  # fmt: skip
_BLANK_RE = re.compile(rb"\n\r?\n")
_DELIM_TAIL_RE = re.compile(rb"[ \t]*(?:\r?\n|\r?\Z)")
_DEFAULT_PARAMS: H.Params = [(b"charset", b"US-ASCII")]  # as in RFC 3501 examples


def _header_end(raw: bytes, start: int, end: int) -> int:
    """Offset just after the blank line ending the header at ``start`` (RFC 5322 §2.1)."""
    if raw.startswith(b"\r\n", start, end):
        return start + 2
    if raw.startswith(b"\n", start, end):
        return start + 1
    m = _BLANK_RE.search(raw, start, end)
    return end if m is None else m.end()


def _split(raw: bytes, start: int, end: int, boundary: bytes, room: int) -> list[tuple[int, int]]:
    """Return (start, end) of each body part between boundary delimiters (RFC 2046 §5.1.1).

    The CRLF before a delimiter line belongs to the delimiter.  A missing close
    delimiter ends the last part at ``end``.  One pass of ``bytes.find``.
    """
    delim = b"--" + boundary
    needle = b"\n" + delim
    parts: list[tuple[int, int]] = []
    part_start = -1  # start of the current part, -1 while in the preamble
    pos = start
    first = True
    while True:
        if first and raw.startswith(delim, start, end):
            line = start
            content_end = start
        else:
            i = raw.find(needle, pos, end)
            if i < 0:
                break
            line = i + 1
            content_end = i - 1 if i > start and raw[i - 1] == 0x0D else i
        first = False
        after = line + len(delim)
        close = raw.startswith(b"--", after, end)
        m = _DELIM_TAIL_RE.match(raw, after + 2 if close else after, end)
        if m is None:  # "--boundary" followed by more text: not a delimiter
            pos = after
            continue
        if part_start >= 0:
            parts.append((part_start, max(content_end, part_start)))
            if len(parts) >= room:
                return parts
        if close:
            return parts
        part_start = m.end()
        pos = m.end() - 1 if m.end() > after and raw[m.end() - 1] == 0x0A else m.end()
    if part_start >= 0:
        parts.append((part_start, end))
    return parts


class _Ctx:
    __slots__ = ("parts", "raw")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.parts = 0


@dataclass(frozen=True, slots=True)
class _Built:
    part: Part
    body: bytes
    bodystructure: bytes
    fields: dict[bytes, bytes]


def _entity(
    ctx: _Ctx,
    start: int,
    end: int,
    path: tuple[int, ...],
    digest_default: bool,
    depth: int,
) -> _Built:
    """Parse the MIME entity raw[start:end] (header, blank line, body)."""
    raw = ctx.raw
    ctx.parts += 1
    body_start = _header_end(raw, start, end)
    f = H.first_fields(raw[start:body_start], _WANTED)
    ct = H.content_type(f.get(b"content-type"))
    if ct is None:
        if digest_default:  # RFC 2046 §5.1.5
            ct = ("message", "rfc822", [])
        else:  # RFC 2045 §5.2
            ct = ("text", "plain", _DEFAULT_PARAMS)
    mtype, subtype, params = ct
    encoding = H.transfer_encoding(f.get(b"content-transfer-encoding"))
    boundary = None
    if mtype == "multipart":
        boundary = next((v for k, v in params if k == b"boundary"), None)
        if not boundary:
            mtype, subtype = "text", "plain"
    limited = depth >= MAX_DEPTH or ctx.parts >= MAX_PARTS
    if limited and (mtype == "multipart" or (mtype, subtype) == ("message", "rfc822")):
        mtype, subtype = "application", "octet-stream"

    leaf = mtype != "multipart" and (mtype, subtype) != ("message", "rfc822")
    nul = leaf and raw.find(b"\0", body_start, end) >= 0
    built_children: list[_Built] = []
    if mtype == "multipart" and boundary:
        spans = _split(raw, body_start, end, boundary, max(1, MAX_PARTS - ctx.parts))
        if not spans:  # no delimiter at all: one empty part keeps the syntax valid
            spans = [(end, end)]
        digest = subtype == "digest"
        for n, (s, e) in enumerate(spans, 1):
            built_children.append(_entity(ctx, s, e, (*path, n), digest, depth + 1))
    elif (mtype, subtype) == ("message", "rfc822"):
        built_children.append(_entity(ctx, body_start, end, path, False, depth + 1))

    part = Part(
        path=path,
        header_start=start,
        body_start=body_start,
        body_end=end,
        content_type=f"{mtype}/{subtype}",
        params=tuple(
            (k.decode("ascii", "surrogateescape"), v.decode("utf-8", "surrogateescape"))
            for k, v in params
        ),
        encoding=encoding,
        children=tuple(b.part for b in built_children),
        nul=nul,
    )
    body, bs = _describe(raw, part, params, f, built_children)
    return _Built(part, body, bs, f)


def _describe(
    raw: bytes,
    part: Part,
    params: H.Params,
    f: dict[bytes, bytes],
    children: list[_Built],
) -> tuple[bytes, bytes]:
    """BODY and BODYSTRUCTURE of one entity (RFC 3501 §7.4.2, §9 "body")."""
    mtype, _, subtype = part.content_type.partition("/")
    disp = H.disposition(f.get(b"content-disposition"))
    ext_dsp = b"NIL" if disp is None else b"(%s %s)" % (nstring(disp[0].upper()), _plist(disp[1]))
    lang = f.get(b"content-language")
    langs = [x.strip(b" \t") for x in lang.split(b",")] if lang is not None else []
    langs = [x for x in langs if x]
    ext_lang = b"(" + b" ".join(nstring(x) for x in langs) + b")" if langs else b"NIL"
    ext_loc = nstring(f.get(b"content-location"))
    sub = nstring(subtype.upper().encode("ascii"))

    if part.is_multipart:
        body = b"(" + b"".join(c.body for c in children) + b" " + sub + b")"
        bs = b"(%s %s %s %s %s %s)" % (
            b"".join(c.bodystructure for c in children),
            sub,
            _plist(params),
            ext_dsp,
            ext_lang,
            ext_loc,
        )
        return body, bs

    encoding = part.encoding.encode("latin-1").upper()  # bytes.upper: ASCII only
    size = part.body_end - part.body_start
    served = None
    if part.nul:  # RFC 3516 §6: described (and BODY[n] served) as base64
        data = raw[part.body_start : part.body_end]
        served = base64_lines(decode_body(data, part.encoding) or data)
        encoding, size = b"BASE64", len(served)
    fields = b"%s %s %s %s %s %s %d" % (
        nstring(mtype.upper().encode("ascii")),
        sub,
        _plist(params),
        nstring(f.get(b"content-id")),
        nstring(f.get(b"content-description")),
        nstring(encoding),
        size,
    )
    lines = b""  # only text and message/rfc822 have a line count: no scan of attachments
    if served is not None and mtype == "text":
        lines = b"%d" % served.count(b"\n")
    elif part.is_message or mtype == "text":
        lines = b"%d" % raw.count(b"\n", part.body_start, part.body_end)
    if part.is_message:
        m = children[0]
        env = envelope(m.fields)
        body_tail = b" %s %s %s" % (env, m.body, lines)
        bs_tail = b" %s %s %s" % (env, m.bodystructure, lines)
    elif mtype == "text":
        body_tail = bs_tail = b" " + lines
    else:
        body_tail = bs_tail = b""
    ext = b" %s %s %s %s" % (nstring(f.get(b"content-md5")), ext_dsp, ext_lang, ext_loc)
    return b"(" + fields + body_tail + b")", b"(" + fields + bs_tail + ext + b")"


def index_message(raw: bytes) -> MessageIndex:
    """Index a raw RFC 5322 message.  Never raises on any input."""
    raw = bytes(raw)
    b = _entity(_Ctx(raw), 0, len(raw), (), False, 0)
    return MessageIndex(
        envelope=envelope(b.fields),
        body=b.body,
        bodystructure=b.bodystructure,
        root=b.part,
        sent_date=_sent_date(b.fields.get(b"date")),
    )


# --- NUL: the form BODY[] and RFC822 serve (RFC 3516 §6) ---------------------------

_CTE_BASE64 = b"Content-Transfer-Encoding: base64\r\n"


def _leaves_with_nul(p: Part) -> list[Part]:
    if p.nul:
        return [p]
    return [leaf for c in p.children for leaf in _leaves_with_nul(c)]


def served_form(raw: bytes, index: MessageIndex) -> bytes | None:
    """The message as IMAP4rev1 strings may carry it, or None when `raw` holds no NUL.

    RFC 3501 §4.3 (a literal carries no NUL) and RFC 3516 §6 (BODY returns what
    BODYSTRUCTURE describes, in an encoding the base specification accepts): each leaf
    whose body holds NUL becomes base64 (its content decoded by its transfer encoding, or
    as stored when that is unknown, in 76-character lines) and its header says so; a NUL
    left elsewhere (in a header line, a preamble) cannot be re-encoded and is sent as
    0x80. BINARY[] still returns the stored octets."""
    if raw.find(b"\0") < 0:
        return None
    out: list[bytes] = []
    at = 0
    for p in _leaves_with_nul(index.root):
        header = raw[p.header_start : p.body_start]
        for name, block in H.field_blocks(header):
            if name == b"content-transfer-encoding":
                header = header.replace(block, b"", 1)
        cut = len(header) - (2 if header.endswith(b"\r\n") else 1 if header.endswith(b"\n") else 0)
        data = raw[p.body_start : p.body_end]
        out += [raw[at : p.header_start], header[:cut], _CTE_BASE64, header[cut:]]
        out.append(base64_lines(decode_body(data, p.encoding) or data))
        at = p.body_end
    out.append(raw[at:])
    return b"".join(out).replace(b"\0", b"\x80")


def index_for_imap(raw: bytes) -> tuple[MessageIndex, int]:
    """The stored index of a message and its RFC822.SIZE: for a message holding NUL, the
    size of its `served_form`, which ENVELOPE, BODY and BODYSTRUCTURE describe (computed
    once here, at APPEND or delivery; FETCH then only rebuilds the served bytes)."""
    index = index_message(raw)
    served = served_form(raw, index)
    if served is None:
        return index, len(raw)
    shown = index_message(served)
    return (
        MessageIndex(
            envelope=shown.envelope,
            body=shown.body,
            bodystructure=shown.bodystructure,
            root=index.root,
            sent_date=index.sent_date,
            served=True,
        ),
        len(served),
    )


# --- Storage --------------------------------------------------------------------

_PartTuple = tuple[Any, ...]


def _part_to_tuple(p: Part) -> _PartTuple:
    base = (
        p.path,
        p.header_start,
        p.body_start,
        p.body_end,
        p.content_type,
        p.params,
        p.encoding,
        tuple(_part_to_tuple(c) for c in p.children),
    )
    return (*base, True) if p.nul else base  # parts without NUL keep the older 8-tuple


def _part_from_tuple(t: Any) -> Part:
    path, hs, bs, be, ct, params, enc, children, *nul = t
    children = tuple(_part_from_tuple(c) for c in children)
    return Part(path, hs, bs, be, ct, params, enc, children, bool(nul and nul[0]))


def dump_index(index: MessageIndex) -> bytes:
    """Serialize with marshal: plain tuples, fast to load, no pickle code paths."""
    date = index.sent_date.isoformat() if index.sent_date is not None else None
    fields = (
        _FORMAT,
        index.envelope,
        index.body,
        index.bodystructure,
        date,
        _part_to_tuple(index.root),
    )
    # a served form is flagged by a 7th item; other messages keep the older 6-tuple
    return marshal.dumps((*fields, True) if index.served else fields)


def load_index(data: bytes) -> MessageIndex:
    """Inverse of :func:`dump_index` (trusted data from our own store)."""
    fmt, env, body, bs, date, root, *served = marshal.loads(data)
    if fmt != _FORMAT:
        raise ValueError(f"unknown index format {fmt!r}")
    return MessageIndex(
        envelope=env,
        body=body,
        bodystructure=bs,
        root=_part_from_tuple(root),
        sent_date=datetime.fromisoformat(date) if date is not None else None,
        served=bool(served and served[0]),
    )


def load_summary(data: bytes) -> tuple[bytes, bytes, bytes]:
    """Only (ENVELOPE, BODY, BODYSTRUCTURE) of a dumped index, without the part tree."""
    fmt, env, body, bs, _date, _root, *_served = marshal.loads(data)
    if fmt != _FORMAT:
        raise ValueError(f"unknown index format {fmt!r}")
    return env, body, bs


def load_envelope(data: bytes) -> tuple[bytes, datetime | None]:
    """Only (ENVELOPE, sent date) of a dumped index: what SORT needs, without the part tree."""
    fmt, env, _body, _bs, date, _root, *_served = marshal.loads(data)
    if fmt != _FORMAT:
        raise ValueError(f"unknown index format {fmt!r}")
    return env, datetime.fromisoformat(date) if date is not None else None
