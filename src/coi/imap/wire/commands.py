"""Typed IMAP commands and the parser (RFC 3501 §6, §9 and extensions).

``parse_command`` takes exactly what ``CommandFramer`` emits and returns one
frozen dataclass per command, or raises ``ParseError`` (answer BAD) /
``BadCharset`` (answer NO [BADCHARSET]).
"""

from __future__ import annotations

import binascii
import datetime
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal

from . import mutf7
from ._reader import DQUOTE, LPAREN, MAX_NUMBER64, RPAREN, SP, Reader
from .encode import parse_internal_date
from .errors import BadCharset, ParseError
from .fetch import FetchAttr, parse_fetch_atts
from .framing import CommandReady
from .search import SearchKey, parse_search_keys, sequence_set
from .sequence import SequenceSet

__all__ = [
    "Append",
    "AppendMessage",
    "Authenticate",
    "BadCharset",
    "CancelUpdate",
    "Capability",
    "CatPart",
    "Check",
    "Close",
    "Command",
    "Compress",
    "Copy",
    "Create",
    "Delete",
    "Enable",
    "Examine",
    "Expunge",
    "Fetch",
    "GetMetadata",
    "GetQuota",
    "GetQuotaRoot",
    "Id",
    "Idle",
    "List",
    "Login",
    "Logout",
    "Lsub",
    "Move",
    "Namespace",
    "Noop",
    "NormalizedName",
    "Notify",
    "NotifyGroup",
    "ParseError",
    "QResync",
    "Rename",
    "Search",
    "Select",
    "SetMetadata",
    "SetQuota",
    "Sort",
    "StartTLS",
    "Status",
    "Store",
    "Subscribe",
    "Thread",
    "UidExpunge",
    "Unselect",
    "Unsubscribe",
    "parse_command",
]


# -- command classes ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Capability:
    tag: str
    name: ClassVar[str] = "CAPABILITY"


@dataclass(frozen=True, slots=True)
class Noop:
    tag: str
    name: ClassVar[str] = "NOOP"


@dataclass(frozen=True, slots=True)
class Logout:
    tag: str
    name: ClassVar[str] = "LOGOUT"


@dataclass(frozen=True, slots=True)
class StartTLS:
    tag: str
    name: ClassVar[str] = "STARTTLS"


@dataclass(frozen=True, slots=True)
class Check:
    tag: str
    name: ClassVar[str] = "CHECK"


@dataclass(frozen=True, slots=True)
class Close:
    tag: str
    name: ClassVar[str] = "CLOSE"


@dataclass(frozen=True, slots=True)
class Expunge:
    tag: str
    name: ClassVar[str] = "EXPUNGE"


@dataclass(frozen=True, slots=True)
class Unselect:
    """RFC 3691."""

    tag: str
    name: ClassVar[str] = "UNSELECT"


@dataclass(frozen=True, slots=True)
class Idle:
    """RFC 2177; the server then reads ``DONE`` with ``CommandFramer.take_line``."""

    tag: str
    name: ClassVar[str] = "IDLE"


@dataclass(frozen=True, slots=True)
class GetQuota:
    """RFC 9208 §4.2."""

    tag: str
    root: str
    name: ClassVar[str] = "GETQUOTA"


@dataclass(frozen=True, slots=True)
class GetQuotaRoot:
    """RFC 9208 §4.3."""

    tag: str
    mailbox: str
    name: ClassVar[str] = "GETQUOTAROOT"


@dataclass(frozen=True, slots=True)
class SetQuota:
    """RFC 9208 §4.1: (resource, limit) pairs for a quota root."""

    tag: str
    root: str
    limits: tuple[tuple[str, int], ...]
    name: ClassVar[str] = "SETQUOTA"


@dataclass(frozen=True, slots=True)
class Namespace:
    """RFC 2342."""

    tag: str
    name: ClassVar[str] = "NAMESPACE"


@dataclass(frozen=True, slots=True)
class Authenticate:
    """``initial_response`` is the decoded SASL-IR (RFC 4959); ``=`` gives b""."""

    tag: str
    mechanism: str
    initial_response: bytes | None
    name: ClassVar[str] = "AUTHENTICATE"


@dataclass(frozen=True, slots=True)
class Login:
    tag: str
    username: str
    password: str
    name: ClassVar[str] = "LOGIN"

    def __repr__(self) -> str:
        # Keep passwords out of logs.
        return f"Login(tag={self.tag!r}, username={self.username!r}, password='***')"


@dataclass(frozen=True, slots=True)
class QResync:
    """RFC 7162 §3.2.5 QRESYNC select parameter."""

    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    seq_match: tuple[SequenceSet, SequenceSet] | None = None


@dataclass(frozen=True, slots=True)
class Select:
    """SELECT, or EXAMINE when ``readonly`` (the class ``name`` stays SELECT)."""

    tag: str
    mailbox: str
    readonly: bool = False
    condstore: bool = False
    qresync: QResync | None = None
    name: ClassVar[str] = "SELECT"

    @property
    def command_name(self) -> str:
        """The verb the client used, for the tagged response text."""
        return "EXAMINE" if self.readonly else "SELECT"


Examine = Select  # EXAMINE is Select(readonly=True); alias for readability


@dataclass(frozen=True, slots=True)
class Create:
    tag: str
    mailbox: str
    special_use: tuple[str, ...] = ()
    name: ClassVar[str] = "CREATE"


@dataclass(frozen=True, slots=True)
class Delete:
    tag: str
    mailbox: str
    name: ClassVar[str] = "DELETE"


@dataclass(frozen=True, slots=True)
class Rename:
    tag: str
    old: str
    new: str
    name: ClassVar[str] = "RENAME"


@dataclass(frozen=True, slots=True)
class Subscribe:
    tag: str
    mailbox: str
    name: ClassVar[str] = "SUBSCRIBE"


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    tag: str
    mailbox: str
    name: ClassVar[str] = "UNSUBSCRIBE"


@dataclass(frozen=True, slots=True)
class List:
    """LIST incl. RFC 5258 LIST-EXTENDED.

    ``selection``/``return_opts`` are uppercased; RETURN STATUS (RFC 5819)
    appears as ``"STATUS"`` in ``return_opts`` with its items in ``status_items``.
    ``extended`` is True when any extended syntax was used.
    """

    tag: str
    reference: str
    patterns: tuple[str, ...]
    selection: tuple[str, ...] = ()
    return_opts: tuple[str, ...] = ()
    extended: bool = False
    status_items: tuple[str, ...] = ()
    name: ClassVar[str] = "LIST"


@dataclass(frozen=True, slots=True)
class Lsub:
    tag: str
    reference: str
    pattern: str
    name: ClassVar[str] = "LSUB"


@dataclass(frozen=True, slots=True)
class Status:
    tag: str
    mailbox: str
    items: tuple[str, ...]
    name: ClassVar[str] = "STATUS"


@dataclass(frozen=True, slots=True)
class CatPart:
    """One part of a CATENATE list (RFC 4469 §5): ``TEXT`` literal octets or a ``URL``."""

    kind: Literal["TEXT", "URL"]
    data: bytes  # the literal's octets, or the URL as sent


@dataclass(frozen=True, slots=True)
class AppendMessage:
    flags: tuple[str, ...]
    internal_date: datetime.datetime | None
    data: bytes
    binary: bool = False  # sent as literal8 (RFC 3516 §4.4)
    # RFC 4469: the message is built from these parts (``data`` is then empty)
    catenate: tuple[CatPart, ...] | None = None


@dataclass(frozen=True, slots=True)
class Append:
    """APPEND, with RFC 3502 MULTIAPPEND giving several messages."""

    tag: str
    mailbox: str
    messages: tuple[AppendMessage, ...]
    name: ClassVar[str] = "APPEND"


@dataclass(frozen=True, slots=True)
class Search:
    """SEARCH / UID SEARCH.

    ``return_opts`` is None for a plain SEARCH (answer ``* SEARCH``); a tuple
    means ESEARCH (RFC 4731): the empty tuple is ``RETURN ()``, which RFC 4731
    §3.1 defines as ALL.
    """

    tag: str
    uid: bool
    charset: str | None
    key: SearchKey
    return_opts: tuple[str, ...] | None = None
    name: ClassVar[str] = "SEARCH"


@dataclass(frozen=True, slots=True)
class Sort:
    """SORT / UID SORT (RFC 5256) with ESORT return options (RFC 5267).

    ``criteria`` are ``(key, reverse)`` pairs, keys uppercased (ARRIVAL, CC, DATE, FROM,
    SIZE, SUBJECT, TO, and DISPLAYFROM/DISPLAYTO of RFC 5957). ``return_opts`` is None
    for a plain SORT; a tuple (empty for ``RETURN ()``) asks for an ESEARCH response.
    """

    tag: str
    uid: bool
    criteria: tuple[tuple[str, bool], ...]
    charset: str
    key: SearchKey
    return_opts: tuple[str, ...] | None = None
    name: ClassVar[str] = "SORT"


@dataclass(frozen=True, slots=True)
class CancelUpdate:
    """CANCELUPDATE (RFC 5267 §4.3.5): the tags of searching commands with UPDATE."""

    tag: str
    tags: tuple[str, ...]
    name: ClassVar[str] = "CANCELUPDATE"


@dataclass(frozen=True, slots=True)
class Thread:
    """THREAD / UID THREAD (RFC 5256 BASE.6.4.THREAD); ``algorithm`` uppercased
    (ORDEREDSUBJECT or REFERENCES)."""

    tag: str
    uid: bool
    algorithm: str
    charset: str
    key: SearchKey
    name: ClassVar[str] = "THREAD"


@dataclass(frozen=True, slots=True)
class NotifyGroup:
    """One RFC 5465 event group: a mailbox filter and the events wanted for it.

    ``filter`` is lowercased (selected, selected-delayed, inboxes, personal, subscribed,
    subtree, mailboxes); ``events`` keep the client's names as written, uppercased
    (the server answers NO [BADEVENT] for ones it does not support); an empty
    ``events`` tuple is ``NONE``."""

    filter: str
    mailboxes: tuple[str, ...]
    events: tuple[str, ...]
    fetch_atts: tuple[FetchAttr, ...] = ()


@dataclass(frozen=True, slots=True)
class Notify:
    """NOTIFY (RFC 5465): ``groups`` is None for ``NOTIFY NONE``."""

    tag: str
    groups: tuple[NotifyGroup, ...] | None
    status: bool = False
    name: ClassVar[str] = "NOTIFY"


@dataclass(frozen=True, slots=True)
class Fetch:
    tag: str
    uid: bool
    sequence: SequenceSet
    attrs: tuple[FetchAttr, ...]
    changedsince: int | None = None
    vanished: bool = False
    name: ClassVar[str] = "FETCH"


@dataclass(frozen=True, slots=True)
class Store:
    tag: str
    uid: bool
    sequence: SequenceSet
    mode: Literal["set", "add", "remove"]
    silent: bool
    flags: tuple[str, ...]
    unchangedsince: int | None = None
    name: ClassVar[str] = "STORE"


@dataclass(frozen=True, slots=True)
class Copy:
    tag: str
    uid: bool
    sequence: SequenceSet
    mailbox: str
    name: ClassVar[str] = "COPY"


@dataclass(frozen=True, slots=True)
class Move:
    """RFC 6851."""

    tag: str
    uid: bool
    sequence: SequenceSet
    mailbox: str
    name: ClassVar[str] = "MOVE"


@dataclass(frozen=True, slots=True)
class UidExpunge:
    """RFC 4315 §2.1 UID EXPUNGE."""

    tag: str
    sequence: SequenceSet
    uid: ClassVar[bool] = True
    name: ClassVar[str] = "EXPUNGE"


@dataclass(frozen=True, slots=True)
class Enable:
    """RFC 5161; capability names uppercased."""

    tag: str
    capabilities: tuple[str, ...]
    name: ClassVar[str] = "ENABLE"


@dataclass(frozen=True, slots=True)
class Compress:
    """RFC 4978 §3: ``COMPRESS`` SP algorithm; the algorithm uppercased."""

    tag: str
    algorithm: str
    name: ClassVar[str] = "COMPRESS"


@dataclass(frozen=True, slots=True)
class Id:
    """RFC 2971; ``params`` is None for ``ID NIL``."""

    tag: str
    params: tuple[tuple[str, str | None], ...] | None
    name: ClassVar[str] = "ID"


@dataclass(frozen=True, slots=True)
class GetMetadata:
    """RFC 5464 §4.2; mailbox "" addresses server annotations. Entries as sent."""

    tag: str
    options_maxsize: int | None
    depth: str
    mailbox: str
    entries: tuple[str, ...]
    name: ClassVar[str] = "GETMETADATA"


@dataclass(frozen=True, slots=True)
class SetMetadata:
    """RFC 5464 §4.3; a None value (NIL) removes the entry."""

    tag: str
    mailbox: str
    entries: tuple[tuple[str, bytes | None], ...]
    name: ClassVar[str] = "SETMETADATA"


Command = (
    Capability
    | CancelUpdate
    | Noop
    | Logout
    | StartTLS
    | Check
    | Close
    | Expunge
    | Unselect
    | Idle
    | Namespace
    | Authenticate
    | Login
    | Select
    | Create
    | Delete
    | Rename
    | Subscribe
    | Unsubscribe
    | List
    | Lsub
    | Status
    | Append
    | Search
    | Sort
    | Thread
    | Notify
    | Fetch
    | Store
    | Copy
    | Move
    | UidExpunge
    | Enable
    | Compress
    | Id
    | GetMetadata
    | GetQuota
    | GetQuotaRoot
    | SetQuota
    | SetMetadata
)


# -- shared argument parsers -------------------------------------------------

_SYSTEM_FLAGS = {
    f.upper(): f for f in ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "\\Recent")
}
_SPECIAL_USE = {
    f.upper(): f
    for f in ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash")
}
_STATUS_ITEMS = frozenset(
    {"MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ", "SIZE"}
    | {"MAILBOXID"}  # RFC 8474 §4.3
    | {"DELETED"}  # RFC 9051 §6.3.11
)
# RFC 5258 §3 (SUBSCRIBED, REMOTE, RECURSIVEMATCH), RFC 6154 §5.1 (SPECIAL-USE)
_LIST_SELECTION = frozenset({"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"})
_B64 = re.compile(rb"[A-Za-z0-9+/]+={0,2}|=")
_CHARSETS = {"UTF-8": "utf-8", "US-ASCII": "utf-8"}  # ASCII is a subset; be lenient


def _text(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


class NormalizedName(str):
    """A UTF-8 mailbox name sent in another form than Unicode NFC, as its NFC form;
    `supplied` is the name as sent, for the OLDNAME the server returns (RFC 9051 §5.1,
    §6.3.9.7)."""

    supplied: str  # (a str subclass cannot have slots)


def _utf8_name(raw: bytes) -> str:
    """IMAP4rev2 (RFC 9051 §5.1): the name is Net-Unicode, not modified UTF-7 ("&" is
    itself). Text that is not UTF-8 names no mailbox (`InvalidName`); a denormalized
    name is taken as its NFC form, in every command alike."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return mutf7.InvalidName(raw.decode("utf-8", "surrogateescape"))
    nfc = unicodedata.normalize("NFC", text)
    if nfc == text:
        return text
    name = NormalizedName(nfc)
    name.supplied = text
    return name


def _mailbox_from(r: Reader, raw: bytes) -> str:
    """The decoded name; a syntactically valid name that is not valid modified UTF-7 is
    no syntax error (the command gets NO, a LIST pattern matches nothing): it comes back
    as a `mutf7.InvalidName`."""
    if r.utf8_names:
        name = _utf8_name(raw)
        if isinstance(name, mutf7.InvalidName):
            return name
    else:
        try:
            name = mutf7.decode(raw.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            return mutf7.InvalidName(raw.decode("utf-8", "surrogateescape"))
    # RFC 3501 §5.1: INBOX is case-insensitive, also as the superior of other names
    # (the hierarchy separator is "/")
    if name[:5].upper() == "INBOX" and (len(name) == 5 or name[5] == "/"):
        if isinstance(name, NormalizedName):
            canonical = NormalizedName("INBOX" + name[5:])
            canonical.supplied = name.supplied
            return canonical
        return "INBOX" + name[5:]
    return name


def _mailbox(r: Reader) -> str:
    # RFC 3501 §9: mailbox = "INBOX" / astring
    return _mailbox_from(r, r.astring())


def _flag(r: Reader) -> str:
    """RFC 3501 §9 flag (``\\*`` is never legal in a command)."""
    if r.accept(0x5C):
        word = r.atom("flag").decode("ascii")
        canonical = _SYSTEM_FLAGS.get("\\" + word.upper())
        return canonical if canonical is not None else "\\" + word
    if r.peek() == 0x5C:
        r.fail("invalid flag")
    return r.atom("flag").decode("ascii")


def _flag_list(r: Reader) -> tuple[str, ...]:
    r.expect(LPAREN)
    flags: list[str] = []
    if not r.accept(RPAREN):
        flags.append(_flag(r))
        while r.accept(SP):
            flags.append(_flag(r))
        r.expect(RPAREN)
    return tuple(dict.fromkeys(flags))


def _paren_atoms(r: Reader, allow_empty: bool = True) -> list[str]:
    r.expect(LPAREN)
    out: list[str] = []
    if r.accept(RPAREN):
        if not allow_empty:
            r.fail("empty list")
        return out
    out.append(r.atom_upper())
    while r.accept(SP):
        out.append(r.atom_upper())
    r.expect(RPAREN)
    return out


def _end(r: Reader, cmd: Command) -> Command:
    r.expect_end()
    return cmd


# -- per-command parsers -----------------------------------------------------


def _authenticate(r: Reader, tag: str) -> Command:
    r.sp()
    mech = r.atom_upper("mechanism")
    ir: bytes | None = None
    if r.accept(SP):
        # RFC 4959 §7: initial-response = base64 / "="
        token = r.match(_B64)
        if token is None:
            r.fail("invalid initial response")
        if token == b"=":
            ir = b""
        else:
            try:
                ir = binascii.a2b_base64(token, strict_mode=True)
            except binascii.Error:
                r.fail("invalid base64 in initial response")
    return _end(r, Authenticate(tag, mech, ir))


def _login(r: Reader, tag: str) -> Command:
    r.sp()
    user = _text(r.astring())
    r.sp()
    password = _text(r.astring())
    return _end(r, Login(tag, user, password))


def _select(r: Reader, tag: str, readonly: bool) -> Command:
    r.sp()
    mailbox = _mailbox(r)
    condstore = False
    qresync: QResync | None = None
    if r.accept(SP):
        # RFC 4466 §2.1 select-params; RFC 7162 §3.1.8, §3.2.5
        r.expect(LPAREN)
        while True:
            word = r.atom_upper("select parameter")
            if word == "CONDSTORE":
                condstore = True
            elif word == "QRESYNC" and qresync is None:
                r.sp()
                qresync = _qresync(r)
            else:
                r.fail(f"unknown select parameter {word}")
            if not r.accept(SP):
                break
        r.expect(RPAREN)
    return _end(r, Select(tag, mailbox, readonly, condstore, qresync))


def _qresync(r: Reader) -> QResync:
    # "(" uidvalidity SP mod-sequence-value [SP known-uids] [SP seq-match-data] ")"
    r.expect(LPAREN)
    uidvalidity = r.nz_number(what="uidvalidity")
    r.sp()
    modseq = r.nz_number(MAX_NUMBER64, "mod-sequence")
    known: SequenceSet | None = None
    match: tuple[SequenceSet, SequenceSet] | None = None
    if r.accept(SP):
        if r.peek() != LPAREN:
            known = _known_set(r)
            if not r.accept(SP):
                r.expect(RPAREN)
                return QResync(uidvalidity, modseq, known, None)
        r.expect(LPAREN)
        seqs = _known_set(r)
        r.sp()
        uids = _known_set(r)
        r.expect(RPAREN)
        match = (seqs, uids)
    r.expect(RPAREN)
    return QResync(uidvalidity, modseq, known, match)


def _known_set(r: Reader) -> SequenceSet:
    # RFC 7162 §7: known-uids / known-sequence-set: "*" (and "$") not allowed
    seq = sequence_set(r)
    if seq.saved or any(lo is None or hi is None for lo, hi in seq.ranges):
        r.fail("'*' and '$' are not allowed in QRESYNC sets")
    return seq


def _create(r: Reader, tag: str) -> Command:
    r.sp()
    mailbox = _mailbox(r)
    uses: list[str] = []
    if r.accept(SP):
        # RFC 4466 create-params; RFC 6154 §3: USE (\Sent ...)
        r.expect(LPAREN)
        while True:
            word = r.atom_upper("create parameter")
            if word != "USE":
                r.fail(f"unknown create parameter {word}")
            r.sp()
            r.expect(LPAREN)
            if not r.accept(RPAREN):
                while True:
                    flag = _flag(r)
                    # RFC 6154 §3: an unsupported attribute is a NO [USEATTR] from the
                    # server, not a syntax error, so unknown names are passed on as is
                    uses.append(_SPECIAL_USE.get(flag.upper(), flag))
                    if not r.accept(SP):
                        break
                r.expect(RPAREN)
            if not r.accept(SP):
                break
        r.expect(RPAREN)
    return _end(r, Create(tag, mailbox, tuple(dict.fromkeys(uses))))


def _delete(r: Reader, tag: str) -> Command:
    r.sp()
    return _end(r, Delete(tag, _mailbox(r)))


def _subscribe(r: Reader, tag: str) -> Command:
    r.sp()
    return _end(r, Subscribe(tag, _mailbox(r)))


def _unsubscribe(r: Reader, tag: str) -> Command:
    r.sp()
    return _end(r, Unsubscribe(tag, _mailbox(r)))


def _rename(r: Reader, tag: str) -> Command:
    r.sp()
    old = _mailbox(r)
    r.sp()
    return _end(r, Rename(tag, old, _mailbox(r)))


def _list_pattern(r: Reader) -> str:
    return _mailbox_from(r, r.list_mailbox())


def _list(r: Reader, tag: str) -> Command:
    r.sp()
    extended = False
    selection: list[str] = []
    if r.peek() == LPAREN:
        # RFC 5258 §6 list-select-opts
        extended = True
        selection = _paren_atoms(r)
        unknown = set(selection) - _LIST_SELECTION
        if unknown:  # RFC 5258 §3: BAD for a selection option the server does not know
            r.fail(f"unknown LIST selection option {sorted(unknown)[0]}")
        if "RECURSIVEMATCH" in selection and not set(selection) - {"RECURSIVEMATCH", "REMOTE"}:
            r.fail("RECURSIVEMATCH needs another selection option")  # RFC 5258 §3
        r.sp()
    ref = _mailbox(r)
    r.sp()
    patterns: list[str] = []
    if r.accept(LPAREN):
        extended = True
        patterns.append(_list_pattern(r))
        while r.accept(SP):
            patterns.append(_list_pattern(r))
        r.expect(RPAREN)
    else:
        patterns.append(_list_pattern(r))
    return_opts: list[str] = []
    status_items: list[str] = []
    if r.accept(SP):
        if r.atom_upper("RETURN") != "RETURN":
            r.fail("expected RETURN")
        extended = True
        r.sp()
        r.expect(LPAREN)
        if not r.accept(RPAREN):
            while True:
                opt = r.atom_upper("return option")
                return_opts.append(opt)
                if opt == "STATUS":
                    # RFC 5819 §2
                    r.sp()
                    status_items = _status_items(r)
                if not r.accept(SP):
                    break
            r.expect(RPAREN)
    return _end(
        r,
        List(
            tag,
            ref,
            tuple(patterns),
            tuple(selection),
            tuple(return_opts),
            extended,
            tuple(status_items),
        ),
    )


def _lsub(r: Reader, tag: str) -> Command:
    r.sp()
    ref = _mailbox_from(r, r.astring())
    r.sp()
    return _end(r, Lsub(tag, ref, _list_pattern(r)))


def _status_items(r: Reader) -> list[str]:
    items = _paren_atoms(r, allow_empty=False)
    for item in items:
        if item not in _STATUS_ITEMS:
            r.fail(f"unknown status item {item}")
    return list(dict.fromkeys(items))


def _status(r: Reader, tag: str) -> Command:
    r.sp()
    mailbox = _mailbox(r)
    r.sp()
    return _end(r, Status(tag, mailbox, tuple(_status_items(r))))


def _append(r: Reader, tag: str) -> Command:
    r.sp()
    mailbox = _mailbox(r)
    messages: list[AppendMessage] = []
    while r.accept(SP):
        flags: tuple[str, ...] = ()
        date: datetime.datetime | None = None
        if r.peek() == LPAREN:
            flags = _flag_list(r)
            r.sp()
        if r.peek() == DQUOTE:
            raw = r.quoted()
            try:
                date = parse_internal_date(raw.decode("ascii"))
            except (UnicodeDecodeError, ValueError):
                r.fail("invalid date-time")
            r.sp()
        if r.accept_word(b"CATENATE"):
            r.sp()
            messages.append(AppendMessage(flags, date, b"", catenate=_cat_parts(r)))
            continue
        if not r.is_literal_start():
            r.fail("expected message literal")
        binary = r.peek() == 0x7E
        data = r.literal(allow8=True)
        messages.append(AppendMessage(flags, date, data, binary))
    if not messages:
        r.fail("missing message")
    return _end(r, Append(tag, mailbox, tuple(messages)))


_RETURN_OPTS = frozenset({"MIN", "MAX", "ALL", "COUNT", "SAVE", "CONTEXT", "UPDATE"})
_PARTIAL_RANGE = re.compile(
    r"([1-9][0-9]{0,9}):([1-9][0-9]{0,9})|-([1-9][0-9]{0,9}):-([1-9][0-9]{0,9})"
)


def _return_opts(r: Reader, what: str) -> tuple[str, ...]:
    """search-return-opts (RFC 4731 §3.1, SAVE of RFC 5182, CONTEXT/UPDATE/PARTIAL of RFC
    5267 §5). PARTIAL keeps its range as one entry "PARTIAL m:n"; a range of negative
    numbers counts from the last result (RFC 9394 partial-range-last). One PARTIAL or one
    ALL at most (RFC 5267 §4.4)."""
    atoms = _paren_atoms(r)
    opts: list[str] = []
    i = 0
    while i < len(atoms):
        opt = atoms[i]
        if opt == "PARTIAL":
            if i + 1 == len(atoms):
                r.fail("PARTIAL needs a range")
            m = _PARTIAL_RANGE.fullmatch(atoms[i + 1])
            if m is None or max(int(n) for n in m.groups() if n) > 0xFFFFFFFF:
                r.fail(f"invalid PARTIAL range {atoms[i + 1]}")
            # "500:400" is "400:500" (RFC 5267 §5), "-500:-400" is "-400:-500" (RFC 9394
            # §4): kept, and echoed in the response, with the smaller magnitude first
            low, high = sorted(int(n) for n in m.groups() if n)
            opt = f"PARTIAL {low}:{high}" if m[1] else f"PARTIAL -{low}:-{high}"
            i += 1
        elif opt not in _RETURN_OPTS:
            r.fail(f"unknown {what} return option {opt}")
        opts.append(opt)
        i += 1
    if sum(1 for o in opts if o == "ALL" or o.startswith("PARTIAL ")) > 1:
        r.fail("one PARTIAL or one ALL at most")
    if opts.count("UPDATE") > 1:  # one context per command (§4.3); Dovecot says BAD too
        r.fail("UPDATE given twice")
    return tuple(dict.fromkeys(opts))


def _cancelupdate(r: Reader, tag: str) -> Command:
    # RFC 5267 §5: command-select =/ "CANCELUPDATE" 1*(SP quoted)
    tags: list[str] = []
    while r.accept(SP):
        tags.append(r.quoted().decode("utf-8", "surrogateescape"))
    if not tags:
        r.fail("CANCELUPDATE needs a tag")
    return _end(r, CancelUpdate(tag, tuple(tags)))


def _cat_parts(r: Reader) -> tuple[CatPart, ...]:
    # RFC 4469 §5: "CATENATE" SP "(" cat-part *(SP cat-part) ")";
    # cat-part = "TEXT" SP literal / "URL" SP astring. A TEXT literal8 is taken too, as
    # an APPEND message can be one with BINARY (RFC 3516 §4.4).
    r.expect(LPAREN)
    parts: list[CatPart] = []
    while True:
        word = r.atom_upper("TEXT or URL")
        r.sp()
        if word == "TEXT":
            if not r.is_literal_start():
                r.fail("TEXT needs a literal")
            parts.append(CatPart("TEXT", r.literal(allow8=True)))
        elif word == "URL":
            parts.append(CatPart("URL", r.astring()))
        else:
            r.fail(f"unknown CATENATE part {word}")
        if r.accept(RPAREN):
            return tuple(parts)
        r.sp()


def _search(r: Reader, tag: str, uid: bool) -> Command:
    r.sp()
    return_opts: tuple[str, ...] | None = None
    if r.accept_word(b"RETURN"):
        # RFC 4731 §3.1 search-return-opts; SAVE from RFC 5182
        r.sp()
        return_opts = _return_opts(r, "search")
        r.sp()
    charset: str | None = None
    if r.accept_word(b"CHARSET"):
        r.sp()
        charset = _text(r.astring()).upper()
        if charset not in _CHARSETS:
            raise BadCharset(tag, charset, "SAVE" in (return_opts or ()))
        r.sp()
    encoding = _CHARSETS[charset] if charset else "utf-8"

    def dec(b: bytes) -> str:
        try:
            return b.decode(encoding)
        except UnicodeDecodeError:
            r.fail(f"search string is not valid {charset or 'UTF-8'}")

    key = parse_search_keys(r, dec)
    return Search(tag, uid, charset, key, return_opts)


_SORT_KEYS = frozenset(
    {"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"}
)


_THREAD_ALGORITHMS = frozenset({"ORDEREDSUBJECT", "REFERENCES"})


def _thread(r: Reader, tag: str, uid: bool) -> Command:
    # RFC 5256 §5: thread = ["UID" SP] "THREAD" SP thread-alg SP search-charset SP
    # search-criteria
    r.sp()
    algorithm = r.atom_upper("threading algorithm")
    if algorithm not in _THREAD_ALGORITHMS:
        r.fail(f"unknown threading algorithm {algorithm}")
    r.sp()
    charset = _text(r.astring()).upper()
    if charset not in _CHARSETS:
        raise BadCharset(tag, charset, False)
    r.sp()
    encoding = _CHARSETS[charset]

    def dec(b: bytes) -> str:
        try:
            return b.decode(encoding)
        except UnicodeDecodeError:
            r.fail(f"search string is not valid {charset}")

    return Thread(tag, uid, algorithm, charset, parse_search_keys(r, dec))


def _sort(r: Reader, tag: str, uid: bool) -> Command:
    # RFC 5256 §4: sort = ["UID" SP] "SORT" SP sort-criteria SP search-criteria
    # RFC 5267 §5: sort =/ ["UID" SP] "SORT" SP search-return-opts SP ...
    r.sp()
    return_opts: tuple[str, ...] | None = None
    if r.accept_word(b"RETURN"):
        r.sp()
        return_opts = _return_opts(r, "sort")
        r.sp()
    words = _paren_atoms(r, allow_empty=False)
    criteria: list[tuple[str, bool]] = []
    reverse = False
    for word in words:
        if word == "REVERSE" and not reverse:
            reverse = True
            continue
        if word not in _SORT_KEYS:
            r.fail(f"unknown sort key {word}")
        criteria.append((word, reverse))
        reverse = False
    if reverse:
        r.fail("REVERSE must precede a sort key")
    r.sp()
    charset = _text(r.astring()).upper()
    if charset not in _CHARSETS:
        raise BadCharset(tag, charset, "SAVE" in (return_opts or ()))
    r.sp()
    if return_opts is None and r.accept_word(b"RETURN"):
        # Dovecot (and imaptest's sort-partial) put RETURN after the charset; no search
        # key is named RETURN, so taking it there too is unambiguous
        r.sp()
        return_opts = _return_opts(r, "sort")
        r.sp()
    encoding = _CHARSETS[charset]

    def dec(b: bytes) -> str:
        try:
            return b.decode(encoding)
        except UnicodeDecodeError:
            r.fail(f"search string is not valid {charset}")

    key = parse_search_keys(r, dec)
    return Sort(tag, uid, tuple(criteria), charset, key, return_opts)


_NOTIFY_FILTERS = frozenset(
    {"selected", "selected-delayed", "inboxes", "personal", "subscribed", "subtree", "mailboxes"}
)


def _notify(r: Reader, tag: str) -> Command:
    # RFC 5465 §8: notify = "NOTIFY" SP (notify-set / notify-none)
    r.sp()
    word = r.atom_upper("NOTIFY argument")
    if word == "NONE":
        return _end(r, Notify(tag, None))
    if word != "SET":
        r.fail("expected NOTIFY SET or NOTIFY NONE")
    r.sp()
    status = r.accept_word(b"STATUS")
    if status:
        r.sp()
    groups = [_notify_group(r)]
    while r.accept(SP):
        groups.append(_notify_group(r))
    return _end(r, Notify(tag, tuple(groups), status))


def _notify_group(r: Reader) -> NotifyGroup:
    # event-group = "(" filter-mailboxes SP events ")"
    r.expect(LPAREN)
    kind = r.atom_upper("mailbox filter").lower()
    if kind not in _NOTIFY_FILTERS:
        r.fail(f"unknown mailbox filter {kind}")
    mailboxes: list[str] = []
    if kind in ("subtree", "mailboxes"):
        r.sp()
        if r.accept(LPAREN):
            mailboxes.append(_mailbox(r))
            while r.accept(SP):
                mailboxes.append(_mailbox(r))
            r.expect(RPAREN)
        else:
            mailboxes.append(_mailbox(r))
    r.sp()
    events: list[str] = []
    fetch_atts: tuple[FetchAttr, ...] = ()
    if r.accept(LPAREN):
        while True:
            event = r.atom_upper("event")
            events.append(event)
            if event == "MESSAGENEW" and r.peek() == SP and r.peek_at(1) == LPAREN:
                r.sp()
                fetch_atts = parse_fetch_atts(r)
            if not r.accept(SP):
                break
        r.expect(RPAREN)
    elif r.atom_upper("events") != "NONE":
        r.fail("expected an event list or NONE")
    r.expect(RPAREN)
    return NotifyGroup(kind, tuple(mailboxes), tuple(dict.fromkeys(events)), fetch_atts)


def _fetch(r: Reader, tag: str, uid: bool) -> Command:
    r.sp()
    seq = sequence_set(r)
    r.sp()
    attrs = parse_fetch_atts(r)
    changedsince: int | None = None
    vanished = False
    if r.accept(SP):
        # RFC 4466 fetch-modifiers; RFC 7162 §3.1.4.1 CHANGEDSINCE, §3.2.6 VANISHED
        r.expect(LPAREN)
        while True:
            word = r.atom_upper("fetch modifier")
            if word == "CHANGEDSINCE" and changedsince is None:
                r.sp()
                changedsince = r.nz_number(MAX_NUMBER64, "mod-sequence")
            elif word == "VANISHED" and uid and not vanished:
                vanished = True
            else:
                r.fail(f"invalid fetch modifier {word}")
            if not r.accept(SP):
                break
        r.expect(RPAREN)
        if vanished and changedsince is None:
            r.fail("VANISHED requires CHANGEDSINCE")
    return _end(r, Fetch(tag, uid, seq, attrs, changedsince, vanished))


def _store(r: Reader, tag: str, uid: bool) -> Command:
    r.sp()
    seq = sequence_set(r)
    r.sp()
    unchangedsince: int | None = None
    if r.accept(LPAREN):
        # RFC 7162 §3.1.3 store-modifier
        if r.atom_upper("store modifier") != "UNCHANGEDSINCE":
            r.fail("unknown store modifier")
        r.sp()
        unchangedsince = r.number(MAX_NUMBER64, "mod-sequence")
        r.expect(RPAREN)
        r.sp()
    word = r.atom_upper("store item")
    mode: Literal["set", "add", "remove"] = "set"
    if word.startswith("+"):
        mode, word = "add", word[1:]
    elif word.startswith("-"):
        mode, word = "remove", word[1:]
    if word not in ("FLAGS", "FLAGS.SILENT"):
        r.fail(f"invalid store item {word}")
    r.sp()
    if r.peek() == LPAREN:
        flags = _flag_list(r)
    else:
        items = [_flag(r)]
        while r.accept(SP):
            items.append(_flag(r))
        flags = tuple(dict.fromkeys(items))
    return _end(r, Store(tag, uid, seq, mode, word == "FLAGS.SILENT", flags, unchangedsince))


def _copy_move(r: Reader, tag: str, uid: bool, move: bool) -> Command:
    r.sp()
    seq = sequence_set(r)
    r.sp()
    mailbox = _mailbox(r)
    return _end(r, Move(tag, uid, seq, mailbox) if move else Copy(tag, uid, seq, mailbox))


def _uid(r: Reader, tag: str) -> Command:
    r.sp()
    word = r.atom_upper("UID command")
    if word == "FETCH":
        return _fetch(r, tag, True)
    if word == "STORE":
        return _store(r, tag, True)
    if word == "COPY":
        return _copy_move(r, tag, True, False)
    if word == "MOVE":
        return _copy_move(r, tag, True, True)
    if word == "SEARCH":
        return _search(r, tag, True)
    if word == "SORT":
        return _sort(r, tag, True)
    if word == "THREAD":
        return _thread(r, tag, True)
    if word == "EXPUNGE":
        r.sp()
        return _end(r, UidExpunge(tag, sequence_set(r)))
    r.fail(f"unknown UID command {word}")


def _enable(r: Reader, tag: str) -> Command:
    caps: list[str] = []
    r.sp()
    caps.append(r.atom_upper("capability"))
    while r.accept(SP):
        caps.append(r.atom_upper("capability"))
    return _end(r, Enable(tag, tuple(caps)))


def _compress(r: Reader, tag: str) -> Command:
    # RFC 4978 §5: compress = "COMPRESS" SP algorithm; the server judges the algorithm
    r.sp()
    return _end(r, Compress(tag, r.atom_upper("compression algorithm")))


def _id(r: Reader, tag: str) -> Command:
    r.sp()
    if r.is_nil():
        return _end(r, Id(tag, None))
    r.expect(LPAREN)
    params: list[tuple[str, str | None]] = []
    if not r.accept(RPAREN):
        while True:
            key = _text(r.string())
            r.sp()
            value = r.nstring()
            params.append((key, None if value is None else _text(value)))
            if not r.accept(SP):
                break
        r.expect(RPAREN)
    return _end(r, Id(tag, tuple(params)))


def _entry(r: Reader) -> str:
    entry = _text(r.astring())
    if not entry.startswith("/") or "*" in entry or "%" in entry:
        r.fail(f"invalid metadata entry {entry!r}")
    return entry


def _getmetadata_options(r: Reader, maxsize: int | None, depth: str) -> tuple[int | None, str]:
    r.expect(LPAREN)
    while True:
        word = r.atom_upper("option")
        r.sp()
        if word == "MAXSIZE":
            maxsize = r.number(what="MAXSIZE")
        elif word == "DEPTH":
            depth = r.atom("depth").decode("ascii").lower()
            if depth not in ("0", "1", "infinity"):
                r.fail("invalid DEPTH")
        else:
            r.fail(f"unknown GETMETADATA option {word}")
        if not r.accept(SP):
            break
    r.expect(RPAREN)
    r.sp()
    return maxsize, depth


def _getmetadata(r: Reader, tag: str) -> Command:
    r.sp()
    maxsize: int | None = None
    depth = "0"
    if r.peek() == LPAREN:
        maxsize, depth = _getmetadata_options(r, maxsize, depth)
    mailbox = _mailbox(r)
    r.sp()
    if r.peek() == LPAREN and not any(r.peek_is(p) for p in (b"(/", b'("', b"({", b"(~{")):
        # RFC 5464's §4.2.1/§4.2.2 examples put the options after the mailbox name
        maxsize, depth = _getmetadata_options(r, maxsize, depth)
    entries: list[str] = []
    if r.accept(LPAREN):
        entries.append(_entry(r))
        while r.accept(SP):
            entries.append(_entry(r))
        r.expect(RPAREN)
    else:
        entries.append(_entry(r))
        while r.accept(SP):  # not in RFC 5464's ABNF, but its §4.4.1 examples send this
            entries.append(_entry(r))
    return _end(r, GetMetadata(tag, maxsize, depth, mailbox, tuple(entries)))


def _setmetadata(r: Reader, tag: str) -> Command:
    r.sp()
    mailbox = _mailbox(r)
    r.sp()
    r.expect(LPAREN)
    entries: list[tuple[str, bytes | None]] = []
    while True:
        entry = _entry(r)
        r.sp()
        # RFC 5464 §5 says nstring / literal8; the coi-server-spec examples (and Dovecot)
        # send atoms (`enabled yes`), so an astring is accepted too
        entries.append((entry, None if r.is_nil() else r.astring(allow8=True)))
        if not r.accept(SP):
            break
    r.expect(RPAREN)
    r.accept(SP)  # tolerated: the coi-server-spec examples send one after the list
    return _end(r, SetMetadata(tag, mailbox, tuple(entries)))


def _getquota(r: Reader, tag: str) -> Command:
    r.sp()
    return _end(r, GetQuota(tag, r.astring().decode("utf-8", "surrogateescape")))


def _getquotaroot(r: Reader, tag: str) -> Command:
    r.sp()
    return _end(r, GetQuotaRoot(tag, _mailbox(r)))


def _setquota(r: Reader, tag: str) -> Command:
    """setquota = "SETQUOTA" SP quota-root-name SP "(" [resource SP number64 *(SP ...)] ")"."""
    r.sp()
    root = r.astring().decode("utf-8", "surrogateescape")
    r.sp()
    r.expect(LPAREN)
    limits: list[tuple[str, int]] = []
    while not r.accept(RPAREN):
        if limits:
            r.sp()
        resource = r.atom_upper("resource name")
        r.sp()
        limits.append((resource, r.number(2**63 - 1, "resource limit")))  # number64
    return _end(r, SetQuota(tag, root, tuple(limits)))


_NoArg = (
    type[Capability]
    | type[Noop]
    | type[Logout]
    | type[StartTLS]
    | type[Check]
    | type[Close]
    | type[Expunge]
    | type[Unselect]
    | type[Idle]
    | type[Namespace]
)
_NO_ARGS: dict[str, _NoArg] = {
    "CAPABILITY": Capability,
    "NOOP": Noop,
    "LOGOUT": Logout,
    "STARTTLS": StartTLS,
    "CHECK": Check,
    "CLOSE": Close,
    "EXPUNGE": Expunge,
    "UNSELECT": Unselect,
    "IDLE": Idle,
    "NAMESPACE": Namespace,
}


_PARSERS: dict[str, Callable[[Reader, str], Command]] = {
    "AUTHENTICATE": _authenticate,
    "LOGIN": _login,
    "CREATE": _create,
    "DELETE": _delete,
    "RENAME": _rename,
    "SUBSCRIBE": _subscribe,
    "UNSUBSCRIBE": _unsubscribe,
    "LIST": _list,
    "LSUB": _lsub,
    "STATUS": _status,
    "APPEND": _append,
    "ENABLE": _enable,
    "COMPRESS": _compress,
    "ID": _id,
    "GETMETADATA": _getmetadata,
    "GETQUOTA": _getquota,
    "GETQUOTAROOT": _getquotaroot,
    "SETQUOTA": _setquota,
    "SETMETADATA": _setmetadata,
    "NOTIFY": _notify,
    "CANCELUPDATE": _cancelupdate,
}


def parse_command(ready: CommandReady, *, utf8_names: bool = False) -> Command:
    """Parse one framed command; raise ParseError (BAD) or BadCharset (NO). With
    `utf8_names` (IMAP4rev2 enabled) mailbox names are UTF-8, not modified UTF-7."""
    r = Reader(ready, utf8_names=utf8_names)
    tag = r.read_tag()
    if not r.accept(SP):
        r.fail("missing command")
    name = r.atom_upper("command")
    no_arg = _NO_ARGS.get(name)
    if no_arg is not None:
        return _end(r, no_arg(tag))
    if name == "UID":
        return _uid(r, tag)
    if name == "FETCH":
        return _fetch(r, tag, False)
    if name == "STORE":
        return _store(r, tag, False)
    if name == "SEARCH":
        return _search(r, tag, False)
    if name == "SORT":
        return _sort(r, tag, False)
    if name == "THREAD":
        return _thread(r, tag, False)
    if name in ("COPY", "MOVE"):
        return _copy_move(r, tag, False, name == "MOVE")
    if name in ("SELECT", "EXAMINE"):
        return _select(r, tag, name == "EXAMINE")
    parser = _PARSERS.get(name)
    if parser is None:
        raise ParseError(tag, "unknown command")
    return parser(r, tag)
