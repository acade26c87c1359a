"""A state-checking IMAP stress client (issue 15), in the manner of Dovecot's imaptest.

N sessions log in as a set of users (several sessions per user, so they share mailboxes),
select a mailbox and run random commands in fixed proportions (`MIX`) until a deadline. With
`check=True` every response is checked against the state the session must have built from
what the server told it (its "view": sequence number -> UID, flags, MODSEQ, the FLAGS list)
and against what all sessions have seen of the same mailbox (UID -> message, the flags at
each MODSEQ, which session got \\Recent, what was expunged and when). A violation is a
"protocol error", reported with the transcript lines around it.

Checks (each names its `kind` in the report):
- fetch-past-exists, expunge-past-exists, exists-shrank: sequence numbers as EXISTS/EXPUNGE say
- uid-changed, uid-order, fetch-expunged, fetch-expunged-before-select: UIDs per sequence
  number stay put and ascend; no FETCH of a message after its EXPUNGE, nor in a SELECT made
  after it was expunged
- modseq-backwards, modseq-same-flags-differ, modseq-missing: flags are monotonic per MODSEQ
  (per session; across sessions one MODSEQ means one set of flags); with CONDSTORE enabled a
  FETCH of FLAGS carries MODSEQ (RFC 7162 §3.1)
- keyword-not-announced: a keyword in FETCH FLAGS is in the last `* FLAGS` (RFC 3501 §7.2.6)
- recent-twice: \\Recent shown to one read-write session only (RFC 3501 §2.3.2)
- uidnext-behind, highestmodseq-behind, appenduid-not-new, uidvalidity-changed: UIDNEXT and
  HIGHESTMODSEQ (SELECT, STATUS) never behind what was already seen; APPENDUID/COPYUID UIDs new
- message-mismatch, size-mismatch, body-mismatch: a UID always names the message APPENDUID or
  COPYUID said, with the size and the bytes that were appended
- store-result: a (non-silent) STORE's FETCH shows the change when no other session changed
  the same flags the other way meanwhile
- move-no-expunge: MOVE expunges the moved messages before its tagged OK (RFC 6851 §3.3)
- expunge-with-qresync: after ENABLE QRESYNC, VANISHED instead of EXPUNGE (RFC 7162 §3.2.10)
- search-unknown: SEARCH answers only with messages the session knows
- bad, serverbug, disconnect, timeout: BAD to a valid command, NO [SERVERBUG], the connection
  lost, no answer within COMMAND_TIMEOUT

`check=False` (the `load` workload) keeps only the bookkeeping the commands need."""

from __future__ import annotations

import asyncio
import itertools
import random
import re
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from coi_bench import mailgen
from coi_bench.imapparse import ParseError, Str, make_set, parse_fetch, parse_list, parse_set

LIMIT = 64 * 1024 * 1024
COMMAND_TIMEOUT = 60.0
RING = 40  # transcript lines kept per session
AFTER = 6  # transcript lines collected after a violation
MAX_REPORTS = 200  # violations reported with their transcript (all are counted)
LINE_CUT = 400  # transcript line length kept
_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")
_CODE = re.compile(rb"\[([A-Z-]+)(?: ([^\]]*))?\]")
_MID = re.compile(rb"(?im)^message-id:\s*(<[^>\r\n]*>)")
_UID_RE = re.compile(rb"[ (]UID (\d+)")
KEYWORDS = [
    "$Label1",
    "$Label2",
    "$Label3",
    "$Label4",
    "$Label5",
    "$Forwarded",
    "$MDNSent",
    "$Junk",
    "$NotJunk",
    "Work",
    "Personal",
    "Todo",
]
SYSTEM = ["\\Seen", "\\Flagged", "\\Answered", "\\Draft"]
OTHER = "Other"

# command kind -> weight; roughly imaptest's default per-cycle mix without LOGIN/LOGOUT
# (FETCH and FETCH2 every cycle, STORE half, DELETE+EXPUNGE, APPEND, COPY 5 %, STATUS),
# plus the extensions a modern client uses (CONDSTORE/QRESYNC sync, MOVE, IDLE)
MIX: dict[str, float] = {
    "fetch_flags": 14,  # FETCH a:b (UID FLAGS)
    "fetch_envelope": 8,  # FETCH a:b (UID RFC822.SIZE ENVELOPE BODYSTRUCTURE INTERNALDATE)
    "fetch_headers": 6,  # FETCH n (BODY.PEEK[HEADER.FIELDS (...)])
    "fetch_body": 6,  # UID FETCH u (RFC822.SIZE BODY.PEEK[]) -- checked against the APPEND
    "fetch_part": 4,  # FETCH n (BODY[1]) or BODY[TEXT]: sets \Seen
    "store": 12,  # [UID] STORE ±FLAGS[.SILENT] [(UNCHANGEDSINCE m)] (keywords, system flags)
    "delete": 6,  # STORE +FLAGS.SILENT (\Deleted)
    "expunge": 4,  # EXPUNGE
    "uid_expunge": 3,  # UID EXPUNGE set
    "append": 8,  # APPEND with flags and keywords
    "copy": 2,  # [UID] COPY to the other mailbox
    "move": 2,  # [UID] MOVE to the other mailbox
    "search": 4,  # SEARCH UNSEEN / KEYWORD / FROM / UID SEARCH ...
    "noop": 5,
    "idle": 1,  # IDLE 0.1-0.6 s
    "sync": 3,  # UID FETCH 1:* (FLAGS) [(CHANGEDSINCE m)]
    "select": 3,  # SELECT / EXAMINE, with (CONDSTORE) or (QRESYNC (...))
    "status": 3,  # STATUS of the other mailbox
}
LOW, HIGH = 15, 60  # mailbox size kept between these by biasing APPEND and DELETE


class Fatal(Exception):
    """The session cannot go on (connection lost, timeout)."""


@dataclass
class Box:
    """What all sessions together have seen of one mailbox."""

    key: tuple[str, str]  # (user, mailbox)
    uidvalidity: int = 0
    uid_mid: dict[int, str] = field(default_factory=dict)
    max_uid: int = 0
    max_modseq: int = 0
    expunged: dict[int, int] = field(default_factory=dict)  # uid -> epoch first reported
    recent_owner: dict[int, int] = field(default_factory=dict)  # uid -> session id
    at_modseq: dict[tuple[int, int], tuple[frozenset[str], str]] = field(default_factory=dict)
    # per session: the epochs of its last STORE that added / removed flags (start, end)
    adding: dict[int, tuple[int, int]] = field(default_factory=dict)
    removing: dict[int, tuple[int, int]] = field(default_factory=dict)


@dataclass
class Report:
    kind: str
    session: int
    user: str
    text: str
    lines: list[str]
    after: int = AFTER


class World:
    """The shared model of one server's mailboxes, and the violation log."""

    def __init__(self, server_name: str) -> None:
        self.server = server_name
        self.boxes: dict[tuple[str, str], Box] = {}
        self.messages: dict[str, bytes] = {}  # Message-ID -> the bytes appended
        self._epoch = itertools.count(1)
        self._mid = itertools.count(1)
        self.line_no = itertools.count(1)
        self.errors: Counter[str] = Counter()
        self.reports: list[Report] = []
        self.transcript: TextIO | None = None  # every line of every session, when set
        self.last_line = 0

    def epoch(self) -> int:
        return next(self._epoch)

    def box(self, user: str, mailbox: str) -> Box:
        key = (user, "INBOX" if mailbox.upper() == "INBOX" else mailbox)
        got = self.boxes.get(key)
        if got is None:
            got = self.boxes[key] = Box(key)
        return got

    def new_message(self, rnd: random.Random, to: str) -> tuple[str, bytes]:
        n = next(self._mid)
        mid = f"<stress-{n}-{rnd.randrange(1 << 30)}@bench.invalid>"
        r = rnd.random()
        if r < 0.5:
            data = mailgen.chat(rnd, n, to)
        elif r < 0.85:
            data = mailgen.mail(rnd, n, to, rnd.randrange(500, 6000))
        else:
            data = mailgen.attachment(rnd, n, to, rnd.randrange(2000, 20000))
        data = _MID.sub(b"Message-ID: " + mid.encode(), data, count=1)
        self.messages[mid] = data
        return mid, data


def _flagset(items: object) -> frozenset[str]:
    if not isinstance(items, list):
        raise ParseError(f"FLAGS is not a list: {items!r}")
    return frozenset(f.decode() for f in items if isinstance(f, bytes))


def _norm(flags: frozenset[str]) -> frozenset[str]:
    """Flags compared case-insensitively, \\Recent left out (it is per session)."""
    return frozenset(f.lower() for f in flags if f.lower() != "\\recent")


class Session:
    def __init__(
        self,
        sid: int,
        world: World,
        host: str,
        port: int,
        user: str,
        password: str,
        rnd: random.Random,
        check: bool = True,
        mode: str = "plain",
        mix: dict[str, float] | None = None,
    ) -> None:
        self.sid = sid
        self.world = world
        self.host, self.port = host, port
        self.user, self.password = user, password
        self.rnd = rnd
        self.check = check
        self.mode = mode  # plain, condstore or qresync
        self.mix = mix or MIX
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.ring: deque[str] = deque(maxlen=RING)
        self.open_reports: list[Report] = []
        self._tag = 0
        self.condstore = False
        self.qresync = False
        # the view of the selected mailbox
        self.box: Box | None = None
        self.mailbox = ""
        self.readonly = False
        self.uids: list[int] = []  # 0: not known yet
        self.flags: dict[int, frozenset[str] | None] = {}
        self.modseq: dict[int, int] = {}
        self.known_flags: set[str] = set()
        self.gone: set[int] = set()
        self.select_epoch = 0
        self.selecting = False
        self.highest: dict[str, tuple[int, int]] = {}  # mailbox -> (uidvalidity, highestmodseq)
        # per command
        self.fetched: dict[int, frozenset[str]] = {}  # uid -> FLAGS in this command's FETCHes
        self.codes: list[tuple[str, bytes]] = []  # response codes of untagged OKs
        self.search: list[int] | None = None
        self.select_info: dict[str, int] = {}
        self.select_flags: set[str] | None = None
        self.select_exists: int | None = None
        # messages the view had when [UIDNEXT] came: one arriving later in the SELECT (an
        # EXISTS after it, RFC 3501 §7.3.1) may have that UID
        self.exists_at_uidnext: int | None = None
        self.selecting_closed = False
        self.in_fetch = False
        self.uid_search = False
        self.status_vals: dict[str, int] = {}
        # results
        self.ops: Counter[str] = Counter()
        self.no: Counter[str] = Counter()
        self.latency: dict[str, list[float]] = {}
        self.done_deadline = 0.0

    # -- transcript and violations ------------------------------------------------------

    def note(self, prefix: str, data: bytes) -> None:
        if not self.check:
            return
        text = data[:LINE_CUT].decode("utf-8", "replace").rstrip("\r\n")
        if len(data) > LINE_CUT:
            text += f" ...({len(data)} octets)"
        self.world.last_line = next(self.world.line_no)
        line = f"{self.world.last_line:>7} s{self.sid:03d} {prefix} {text}"
        self.ring.append(line)
        if self.world.transcript is not None:
            self.world.transcript.write(line + "\n")
        if self.open_reports:
            for r in self.open_reports:
                r.lines.append(line)
                r.after -= 1
            self.open_reports = [r for r in self.open_reports if r.after > 0]

    def violation(self, kind: str, text: str) -> None:
        self.world.errors[kind] += 1
        if len(self.world.reports) >= MAX_REPORTS:
            return
        where = f"{self.user} {self.mailbox or '-'} ({self.mode}{', ro' if self.readonly else ''})"
        r = Report(kind, self.sid, self.user, f"{text} [{where}]", list(self.ring))
        r.lines.append("        ^^^ violation: " + text)
        self.world.reports.append(r)
        self.open_reports.append(r)

    # -- wire -----------------------------------------------------------------------------

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=LIMIT)
        greeting = await self.reader.readline()
        self.note("S:", greeting)
        if not greeting.startswith(b"* OK"):
            raise Fatal(f"greeting {greeting!r}")

    def send(self, data: bytes, shown: bytes | None = None) -> None:
        assert self.writer is not None
        self.note("C:", shown if shown is not None else data)
        self.writer.write(data)

    async def read_response(self) -> bytes:
        assert self.reader is not None
        line = await self.reader.readline()
        if not line:
            raise Fatal("server closed the connection")
        if line.endswith(b"}\r\n"):
            parts = [line]
            while True:
                m = _LITERAL.search(line)
                if m is None:
                    break
                parts.append(await self.reader.readexactly(int(m.group(1))))
                line = await self.reader.readline()
                parts.append(line)
            line = b"".join(parts)
        self.note("S:", line)
        return line

    def next_tag(self) -> bytes:
        self._tag += 1
        return b"s%d.%d" % (self.sid, self._tag)

    async def command(self, kind: str, text: bytes, literal: bytes | None = None) -> bytes:
        """Sends a command, handles its untagged responses; returns the tagged status line."""
        tag = self.next_tag()
        self.fetched = {}
        self.in_fetch = b"FETCH " in text[:12].upper()  # solicited FLAGS: MODSEQ not required
        self.codes = []
        self.search = None
        if literal is None:
            self.send(tag + b" " + text + b"\r\n")
        else:
            self.send(
                tag + b" " + text + b"\r\n" + literal + b"\r\n",
                tag + b" " + text + b" <%d octets>" % len(literal),
            )
        t0 = time.perf_counter()
        try:
            tagged = await asyncio.wait_for(self.read_until(tag), COMMAND_TIMEOUT)
        except TimeoutError:
            self.violation("timeout", f"no answer to {text[:80]!r} in {COMMAND_TIMEOUT:g} s")
            raise Fatal("timeout") from None
        self.latency.setdefault(kind, []).append(time.perf_counter() - t0)
        self.ops[kind] += 1
        status = tagged.split(b" ", 2)[1].upper() if tagged.count(b" ") >= 1 else b""
        if status == b"BAD":
            self.violation("bad", f"BAD to {text[:120]!r}")
        elif status == b"NO":
            self.no[kind] += 1
            if b"[SERVERBUG]" in tagged.upper():
                self.violation("serverbug", f"NO [SERVERBUG] to {text[:120]!r}")
        return tagged

    async def read_until(self, tag: bytes) -> bytes:
        prefix = tag + b" "
        while True:
            line = await self.read_response()
            if line.startswith(prefix):
                return line
            if line.startswith(b"* "):
                try:
                    self.untagged(line)
                except (ParseError, ValueError, IndexError) as exc:
                    self.violation("unparsable", f"cannot parse: {exc}")
            elif line.startswith(b"+"):
                continue
            else:
                self.violation("unparsable", "neither tagged nor untagged")

    # -- untagged responses ---------------------------------------------------------------

    def untagged(self, line: bytes) -> None:
        parts = line.split(b" ", 3)
        word = parts[1].upper()
        if word.isdigit():
            n = int(word)
            what = parts[2].rstrip(b"\r\n").upper()
            if what == b"FETCH":
                self.on_fetch(n, line, line.index(b"(", len(parts[0]) + len(parts[1]) + 2))
            elif what == b"EXISTS":
                self.on_exists(n)
            elif what == b"EXPUNGE":
                self.on_expunge(n)
            return
        if word == b"FLAGS":
            flags = _flagset(parse_list(line, line.index(b"("))[0])
            if self.selecting:
                self.select_flags = set(flags)
            self.known_flags = {f.lower() for f in flags}
        elif word in (b"OK", b"NO", b"BAD"):
            m = _CODE.search(line)
            if m is not None:
                self.codes.append((m.group(1).decode(), m.group(2) or b""))
                if m.group(1) == b"UIDNEXT" and self.selecting:
                    self.exists_at_uidnext = self.select_exists
                if m.group(1) == b"CLOSED" and self.selecting:
                    self.selecting_closed = True
            if word == b"BAD":
                self.violation("bad", "untagged BAD")
        elif word == b"VANISHED":
            rest = parts[2].rstrip(b"\r\n") if len(parts) > 2 else b""
            if rest.upper() == b"(EARLIER)":
                return  # QRESYNC SELECT / FETCH (VANISHED): no sequence numbers change
            tail = line.split(b" ", 2)[2].strip()
            self.on_vanished(parse_set(tail))
        elif word in (b"SEARCH",):
            body = line[len(b"* SEARCH") :].strip()
            if body.endswith(b")"):  # (MODSEQ n)
                body = body[: body.rfind(b"(")]
            self.search = [int(x) for x in body.split()]
            if self.check and not self.selecting:
                self.check_search(self.search)
        elif word == b"STATUS":
            self.on_status(line)
        elif word == b"BYE":
            pass

    def on_exists(self, n: int) -> None:
        if self.selecting:
            self.select_exists = n
            return
        if n < len(self.uids):
            self.violation("exists-shrank", f"EXISTS {n} after {len(self.uids)} messages")
            del self.uids[n:]
        self.uids.extend([0] * (n - len(self.uids)))

    def _remove_seq(self, seq: int) -> None:
        uid = self.uids.pop(seq - 1)
        if uid and self.box is not None:
            self.gone.add(uid)
            self.flags.pop(uid, None)
            self.modseq.pop(uid, None)
            self.box.expunged.setdefault(uid, self.world.epoch())

    def on_expunge(self, seq: int) -> None:
        if self.selecting:
            # RFC 3501 §7.4.1 allows EXPUNGE during SELECT (it is no FETCH, STORE or SEARCH):
            # after the new mailbox's EXISTS it shrinks that count
            if self.select_exists is not None and self.select_exists > 0:
                self.select_exists -= 1
            if self.exists_at_uidnext:  # fewer old messages (or a new one: fewer checked)
                self.exists_at_uidnext -= 1
            return
        if self.qresync and self.check:
            self.violation("expunge-with-qresync", "EXPUNGE sent after ENABLE QRESYNC")
        if not 1 <= seq <= len(self.uids):
            self.violation("expunge-past-exists", f"EXPUNGE {seq} with {len(self.uids)} messages")
            return
        self._remove_seq(seq)

    def on_vanished(self, uids: list[int]) -> None:
        if self.selecting:
            # as EXPUNGE above: a VANISHED (not EARLIER) after the EXISTS removes messages
            # the SELECT counted (RFC 7162 §3.2.10: only UIDs of messages the view had)
            if self.select_exists is not None:
                self.select_exists = max(0, self.select_exists - len(uids))
            if self.exists_at_uidnext is not None:
                self.exists_at_uidnext = max(0, self.exists_at_uidnext - len(uids))
            return
        pos = {u: i for i, u in enumerate(self.uids) if u}
        drop: list[int] = []
        for u in uids:
            if u in pos:
                drop.append(pos[u])
                continue
            # not known: it may be one of the messages whose UID this session has not
            # learned yet; drop one unknown slot between the known neighbours
            i = self._unknown_slot_for(u, set(drop))
            if i is not None:
                drop.append(i)
            elif self.box is not None:
                self.box.expunged.setdefault(u, self.world.epoch())
        for i in sorted(drop, reverse=True):
            self._remove_seq(i + 1)

    def _unknown_slot_for(self, uid: int, taken: set[int]) -> int | None:
        """A slot whose UID is not known yet that can hold `uid`: one in the run of unknown
        slots after the last known UID below it and before the first known UID above it
        (UIDs ascend with sequence numbers, RFC 3501 §2.3.1.1). Any slot of that run will
        do: dropping one of several unknown slots in a row leaves the same view. A run
        before a known UID below `uid` cannot hold it."""
        candidate: int | None = None
        for i, u in enumerate(self.uids):
            if u:
                if u > uid:
                    return candidate
                candidate = None  # uid comes after this known UID
            elif candidate is None and i not in taken:
                candidate = i
        return candidate

    def on_status(self, line: bytes) -> None:
        start = line.rindex(b"(")
        items, _ = parse_list(line, start)
        vals = {
            items[i].decode().upper(): int(items[i + 1])  # type: ignore[union-attr,call-overload]
            for i in range(0, len(items) - 1, 2)
        }
        self.status_vals = vals

    def on_fetch(self, seq: int, line: bytes, pos: int) -> None:
        if self.selecting:
            return
        if not 1 <= seq <= len(self.uids):
            self.violation("fetch-past-exists", f"FETCH {seq} with {len(self.uids)} messages")
            return
        if not self.check:
            m = _UID_RE.search(line, pos)
            if m is not None:
                self.uids[seq - 1] = int(m.group(1))
            return
        items = parse_fetch(line, pos)
        box = self.box
        assert box is not None
        uid = self.uids[seq - 1]
        got_uid = items.get(b"UID")
        if got_uid is not None:
            u = int(got_uid)  # type: ignore[call-overload]
            if u in self.gone:
                self.violation("fetch-expunged", f"FETCH of UID {u}, expunged in this session")
            gone_at = box.expunged.get(u)
            if gone_at is not None and gone_at < self.select_epoch:
                self.violation(
                    "fetch-expunged-before-select",
                    f"FETCH of UID {u}, expunged before this mailbox was selected",
                )
            if uid and uid != u:
                self.violation("uid-changed", f"sequence {seq} was UID {uid}, now UID {u}")
            elif not uid:
                before = self.uids[seq - 2] if seq >= 2 else 0
                after = self.uids[seq] if seq < len(self.uids) else 0
                if (before and before >= u) or (after and after <= u):
                    self.violation(
                        "uid-order", f"UID {u} at {seq} between UIDs {before} and {after}"
                    )
                self.uids[seq - 1] = u
            uid = u
            box.max_uid = max(box.max_uid, u)
        flags_item = items.get(b"FLAGS")
        modseq_item = items.get(b"MODSEQ")
        flags = _flagset(flags_item) if flags_item is not None else None
        if flags is not None and self.condstore and modseq_item is None and not self.in_fetch:
            self.violation("modseq-missing", "FETCH FLAGS without MODSEQ after CONDSTORE")
        if flags is not None:
            for f in flags:
                if not f.startswith("\\") and f.lower() not in self.known_flags:
                    self.violation(
                        "keyword-not-announced", f"keyword {f} in FETCH, not in the last FLAGS"
                    )
            if "\\recent" in {f.lower() for f in flags} and uid and not self.readonly:
                owner = box.recent_owner.setdefault(uid, self.sid)
                if owner != self.sid:
                    self.violation(
                        "recent-twice", f"\\Recent on UID {uid}, already given to session {owner}"
                    )
            if uid:
                self.fetched[uid] = flags
        if uid and modseq_item is not None:
            if not isinstance(modseq_item, list) or len(modseq_item) != 1:
                raise ParseError(f"MODSEQ {modseq_item!r}")
            ms = int(modseq_item[0])  # type: ignore[call-overload]
            box.max_modseq = max(box.max_modseq, ms)
            prev = self.modseq.get(uid)
            prev_flags = self.flags.get(uid)
            if prev is not None and ms < prev:
                self.violation(
                    "modseq-backwards", f"UID {uid} MODSEQ {ms} after MODSEQ {prev} in this session"
                )
            elif (
                prev == ms
                and flags is not None
                and prev_flags is not None
                and _norm(flags) != _norm(prev_flags)
            ):
                self.violation(
                    "modseq-same-flags-differ",
                    f"UID {uid} MODSEQ {ms} with flags {sorted(flags)}, "
                    f"earlier {sorted(prev_flags)}",
                )
            if flags is not None:
                key = (uid, ms)
                seen = box.at_modseq.get(key)
                if seen is None:
                    box.at_modseq[key] = (
                        _norm(flags),
                        f"s{self.sid:03d} line {self.world.last_line}",
                    )
                elif seen[0] != _norm(flags):
                    self.violation(
                        "modseq-same-flags-differ",
                        f"UID {uid} MODSEQ {ms}: flags {sorted(_norm(flags))}, "
                        f"session {seen[1]} saw {sorted(seen[0])} at this MODSEQ",
                    )
            if prev is None or ms >= prev:
                self.modseq[uid] = ms
                self.flags[uid] = flags
        elif uid and flags is not None:
            self.flags[uid] = flags
        if not uid:
            return
        # the message itself
        mid: str | None = None
        env = items.get(b"ENVELOPE")
        if isinstance(env, list) and len(env) >= 10 and isinstance(env[9], Str):
            mid = env[9].decode()
        body = items.get(b"BODY[]")
        for key, val in items.items():
            if key.startswith(b"BODY[HEADER.FIELDS") and isinstance(val, bytes):
                m = _MID.search(val)
                if m is not None:
                    mid = m.group(1).decode()
        if isinstance(body, bytes):
            m = _MID.search(body)
            if m is not None:
                mid = m.group(1).decode()
        known = box.uid_mid.get(uid)
        if mid is not None:
            if known is None:
                box.uid_mid[uid] = mid
                known = mid
            elif known != mid:
                self.violation("message-mismatch", f"UID {uid} is {mid}, was {known}")
        if known is None or known not in self.world.messages:
            return
        data = self.world.messages[known]
        size = items.get(b"RFC822.SIZE")
        if size == b"0" or body == b"NIL":
            return  # expunged meanwhile by another session: RFC 2180 §4.1.3 allows empty data
        if size is not None and int(size) != len(data):  # type: ignore[call-overload]
            self.violation("size-mismatch", f"UID {uid} RFC822.SIZE {size!r}, appended {len(data)}")
        if isinstance(body, Str) and body != data:
            self.violation("body-mismatch", f"UID {uid} BODY[] differs from what was appended")

    # -- the view ---------------------------------------------------------------------------

    def count(self) -> int:
        return len(self.uids)

    def known_uids(self) -> list[int]:
        return [u for u in self.uids if u]

    def pick_seqs(self, most: int) -> tuple[int, int]:
        n = self.count()
        lo = self.rnd.randrange(1, n + 1)
        return lo, min(n, lo + self.rnd.randrange(most))

    def pick_uids(self, most: int) -> list[int]:
        known = self.known_uids()
        if not known:
            return []
        k = min(len(known), 1 + self.rnd.randrange(most))
        start = self.rnd.randrange(len(known) - k + 1)
        return known[start : start + k]

    # -- commands ---------------------------------------------------------------------------

    async def login(self) -> None:
        await self.connect()
        tagged = await self.command(
            "login", b"LOGIN %s %s" % (quote(self.user), quote(self.password))
        )
        if b" OK" not in tagged[:20]:
            raise Fatal(f"LOGIN failed: {tagged!r}")
        self.ops.clear()
        self.latency.clear()
        if self.mode == "qresync":
            await self.command("enable", b"ENABLE QRESYNC")
            self.condstore = self.qresync = True
        elif self.mode == "condstore" and self.rnd.random() < 0.5:
            await self.command("enable", b"ENABLE CONDSTORE")
            self.condstore = True

    async def select(self, mailbox: str, readonly: bool = False) -> None:
        box = self.world.box(self.user, mailbox)
        verb = b"EXAMINE" if readonly else b"SELECT"
        args = b""
        if self.mode == "condstore" and not self.condstore:
            args = b" (CONDSTORE)"
        elif self.qresync and mailbox in self.highest and self.rnd.random() < 0.7:
            v, ms = self.highest[mailbox]
            args = b" (QRESYNC (%d %d))" % (v, ms)
        max_uid, max_modseq = box.max_uid, box.max_modseq
        epoch = self.world.epoch()
        self.selecting = True
        self.selecting_closed = False
        self.select_exists = None
        self.exists_at_uidnext = None
        self.select_flags = None
        try:
            tagged = await self.command("select", verb + b" " + quote(mailbox) + args)
        finally:
            self.selecting = False
        self.box = None
        self.uids = []
        self.flags.clear()
        self.modseq.clear()
        self.gone = set()
        self.mailbox = ""
        if b" OK" not in tagged[:30]:
            return
        if args == b" (CONDSTORE)":
            self.condstore = True
        self.box, self.mailbox, self.readonly = box, mailbox, readonly
        self.select_epoch = epoch
        self.uids = [0] * (self.select_exists or 0)
        if self.select_exists is None:
            self.violation("select-no-exists", "SELECT without EXISTS")
        codes = dict(self.codes)
        uidnext = int(codes.get("UIDNEXT", b"0") or 0)
        validity = int(codes.get("UIDVALIDITY", b"0") or 0)
        highest = int(codes.get("HIGHESTMODSEQ", b"0") or 0)
        if self.check:
            if box.uidvalidity and validity != box.uidvalidity:
                self.violation(
                    "uidvalidity-changed", f"UIDVALIDITY {validity}, was {box.uidvalidity}"
                )
            if uidnext and uidnext <= max_uid:
                self.violation("uidnext-behind", f"UIDNEXT {uidnext}, UID {max_uid} seen before")
            if self.condstore and highest and highest < max_modseq:
                self.violation(
                    "highestmodseq-behind", f"HIGHESTMODSEQ {highest}, MODSEQ {max_modseq} seen"
                )
        box.uidvalidity = validity or box.uidvalidity
        if validity and highest:
            self.highest[mailbox] = (validity, highest)
        # what a client does next: learn the UIDs and flags of the whole mailbox
        if self.uids:
            items = b"UID FLAGS MODSEQ" if self.condstore else b"UID FLAGS"
            await self.command("fetch_flags", b"FETCH 1:* (%s)" % items)
            if self.check and uidnext:
                old = self.exists_at_uidnext
                if old is None:
                    old = self.select_exists
                for u in self.uids[: old or 0]:
                    if u >= uidnext:
                        self.violation(
                            "uidnext-behind", f"UID {u} at SELECT with UIDNEXT {uidnext}"
                        )
                        break

    async def learn_new(self) -> None:
        """New messages (EXISTS) get their UIDs and flags fetched, as a client would."""
        if 0 in self.uids:
            first = self.uids.index(0) + 1
            items = b"UID FLAGS MODSEQ" if self.condstore else b"UID FLAGS"
            await self.command("fetch_flags", b"FETCH %d:* (%s)" % (first, items))

    async def step(self) -> None:
        if self.box is None:
            await self.select("INBOX")
            return
        if 0 in self.uids:
            await self.learn_new()
            return
        mix = dict(self.mix)
        n = self.count()
        if n == 0:
            for k in ("fetch_flags", "fetch_envelope", "fetch_headers", "fetch_body"):
                mix.pop(k, None)
            for k in ("fetch_part", "store", "delete", "uid_expunge", "copy", "move", "sync"):
                mix.pop(k, None)
        if self.readonly:
            for k in ("store", "delete", "expunge", "uid_expunge", "move", "fetch_part"):
                mix.pop(k, None)
        if "append" in mix and "delete" in mix and len(self.mix) > 2:
            if n > HIGH:
                mix["append"] = 0.5
                mix["delete"] *= 3
                mix["expunge"] = mix.get("expunge", 0) * 3
            elif n < LOW:
                mix["append"] *= 3
                mix["delete"] = 0.5
        if not mix and self.mix.keys() == {"move"}:
            # the MOVE phase of `load` emptied this mailbox: move the messages back
            await self.select(self.other())
            return
        if not mix:
            mix = {"noop": 1.0}
        kind = self.rnd.choices(list(mix), weights=list(mix.values()))[0]
        await getattr(self, "do_" + kind)()

    async def do_noop(self) -> None:
        await self.command("noop", b"NOOP")

    async def do_fetch_flags(self) -> None:
        lo, hi = self.pick_seqs(20)
        items = b"UID FLAGS MODSEQ" if self.condstore and self.rnd.random() < 0.5 else b"UID FLAGS"
        await self.command("fetch_flags", b"FETCH %d:%d (%s)" % (lo, hi, items))

    async def do_fetch_envelope(self) -> None:
        lo, hi = self.pick_seqs(5)
        await self.command(
            "fetch_envelope",
            b"FETCH %d:%d (UID RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE)" % (lo, hi),
        )

    async def do_fetch_headers(self) -> None:
        lo, hi = self.pick_seqs(3)
        await self.command(
            "fetch_headers",
            b"FETCH %d:%d (UID BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE MESSAGE-ID)])"
            % (lo, hi),
        )

    async def do_fetch_body(self) -> None:
        uids = self.pick_uids(1)
        if uids:
            await self.command("fetch_body", b"UID FETCH %d (RFC822.SIZE BODY.PEEK[])" % uids[0])

    async def do_fetch_part(self) -> None:
        lo, _ = self.pick_seqs(1)
        part = self.rnd.choice([b"BODY[1]", b"BODY[TEXT]", b"BODY[1.MIME]", b"BINARY.PEEK[1]"])
        if part.startswith(b"BINARY"):
            part = b"BODY.PEEK[1]<0.100>"
        box = self.box
        sets_seen = not part.startswith(b"BODY.PEEK") and box is not None
        if sets_seen and box is not None:
            start = self.world.epoch()
            box.adding[self.sid] = (start, 0)
        await self.command("fetch_part", b"FETCH %d (UID %s)" % (lo, part))
        if sets_seen and box is not None:
            box.adding[self.sid] = (start, self.world.epoch())

    async def do_store(self) -> None:
        await self.store(self.rnd.choice("+-+-+=" if self.rnd.random() < 0.9 else "="))

    async def do_delete(self) -> None:
        await self.store("+", ["\\Deleted"], silent=True)

    async def store(
        self, op: str, flags: list[str] | None = None, silent: bool | None = None
    ) -> None:
        box = self.box
        assert box is not None
        if flags is None:
            k = 1 + int(self.rnd.random() < 0.3)
            flags = self.rnd.sample(KEYWORDS + SYSTEM + ["\\Deleted"], k)
            if self.rnd.random() < 0.02:
                flags.append(f"kw{self.rnd.randrange(40)}")
        if silent is None:
            silent = self.rnd.random() < 0.25
        use_uid = self.rnd.random() < 0.5
        if use_uid:
            target = self.pick_uids(5)
            if not target:
                return
            what = make_set(target).encode()
        else:
            lo, hi = self.pick_seqs(5)
            target = [u for u in self.uids[lo - 1 : hi] if u]
            what = b"%d:%d" % (lo, hi)
        mod = b""
        if self.condstore and self.rnd.random() < 0.3 and target:
            known = [self.modseq.get(u, 0) for u in target]
            base = max(known) if self.rnd.random() < 0.7 else min(known)
            mod = b" (UNCHANGEDSINCE %d)" % base
        verb = (b"UID STORE " if use_uid else b"STORE ") + what + mod
        item = {"+": b"+FLAGS", "-": b"-FLAGS", "=": b"FLAGS"}[op] + (b".SILENT" if silent else b"")
        cmd = verb + b" " + item + b" (" + " ".join(flags).encode() + b")"
        start = self.world.epoch()
        if op in "+=":
            box.adding[self.sid] = (start, 0)
        if op in "-=":
            box.removing[self.sid] = (start, 0)
        tagged = await self.command("store", cmd)
        end = self.world.epoch()
        if op in "+=":
            box.adding[self.sid] = (start, end)
        if op in "-=":
            box.removing[self.sid] = (start, end)
        if (
            not self.check
            or silent
            or op == "="
            or b" OK" not in tagged[:30]
            or self.box is not box
        ):
            return
        modified: set[int] = set()
        m = _CODE.search(tagged)
        if m is not None and m.group(1) == b"MODIFIED":
            modified = set(parse_set(m.group(2) or b""))
            if not use_uid:
                modified = {self.uids[s - 1] for s in modified if 0 < s <= len(self.uids)}
        # another session's STORE the other way, overlapping this one, may have won
        others = box.removing if op == "+" else box.adding
        if any(sid != self.sid and (e == 0 or e > start) for sid, (s, e) in others.items()):
            return
        want = {f.lower() for f in flags}
        for uid in target:
            got = self.fetched.get(uid)
            if got is None or uid in modified:
                continue
            have = {f.lower() for f in got}
            if op == "+" and not want <= have:
                self.violation("store-result", f"UID {uid} after +FLAGS {flags}: {sorted(got)}")
            if op == "-" and want & have:
                self.violation("store-result", f"UID {uid} after -FLAGS {flags}: {sorted(got)}")

    async def do_expunge(self) -> None:
        await self.command("expunge", b"EXPUNGE")

    async def do_uid_expunge(self) -> None:
        uids = self.pick_uids(5)
        if uids:
            await self.command("uid_expunge", b"UID EXPUNGE " + make_set(uids).encode())

    async def do_append(self) -> None:
        mailbox = self.mailbox if self.rnd.random() < 0.8 else self.other()
        await self.append(mailbox)

    async def append(self, mailbox: str) -> None:
        box = self.world.box(self.user, mailbox)
        mid, data = self.world.new_message(self.rnd, self.user)
        flags = [f for f in ("\\Seen", "$Label1", "\\Flagged") if self.rnd.random() < 0.2]
        fl = b" (" + " ".join(flags).encode() + b")" if flags else b""
        before = box.max_uid
        tagged = await self.command(
            "append", b"APPEND " + quote(mailbox) + fl + b" {%d+}" % len(data), data
        )
        m = _CODE.search(tagged)
        if m is None or m.group(1) != b"APPENDUID":
            return
        v, u = (int(x) for x in (m.group(2) or b"").split())
        self.assigned(box, v, [(u, mid)], before, "APPENDUID")

    def assigned(
        self, box: Box, validity: int, pairs: list[tuple[int, str | None]], before: int, what: str
    ) -> None:
        if box.uidvalidity and validity != box.uidvalidity and self.check:
            self.violation(
                "uidvalidity-changed", f"{what} UIDVALIDITY {validity}, was {box.uidvalidity}"
            )
        box.uidvalidity = validity
        for u, mid in pairs:
            if u <= before and self.check:
                self.violation("appenduid-not-new", f"{what} UID {u}, UID {before} seen before")
            box.max_uid = max(box.max_uid, u)
            if mid is None:
                continue
            known = box.uid_mid.get(u)
            if known is None:
                box.uid_mid[u] = mid
            elif known != mid and self.check:
                self.violation("message-mismatch", f"{what}: UID {u} is {mid}, was seen as {known}")

    def other(self) -> str:
        return OTHER if self.mailbox == "INBOX" else "INBOX"

    async def do_copy(self) -> None:
        await self.copy_move(b"COPY")

    async def do_move(self) -> None:
        await self.copy_move(b"MOVE")

    async def copy_move(self, verb: bytes) -> None:
        src = self.box
        assert src is not None
        dest_name = self.other()
        dest = self.world.box(self.user, dest_name)
        uids = self.pick_uids(3)
        if not uids:
            return
        before = dest.max_uid
        if self.rnd.random() < 0.5:
            cmd = b"UID " + verb + b" " + make_set(uids).encode()
        else:
            seqs = [self.uids.index(u) + 1 for u in uids]
            cmd = verb + b" " + make_set(seqs).encode()
        tagged = await self.command(verb.decode().lower(), cmd + b" " + quote(dest_name))
        if b" OK" not in tagged[:30]:
            return
        m = _CODE.search(tagged)
        code = (m.group(1).decode(), m.group(2) or b"") if m is not None else None
        if code is None or code[0] != "COPYUID":
            code = next((c for c in self.codes if c[0] == "COPYUID"), None)
        if code is None:
            return
        try:
            v, s, d = code[1].split()
        except ValueError:
            self.violation("unparsable", f"COPYUID {code[1]!r}")
            return
        pairs = list(zip(parse_set(s), parse_set(d), strict=False))
        self.assigned(
            dest, int(v), [(du, src.uid_mid.get(su)) for su, du in pairs], before, "COPYUID"
        )
        if verb == b"MOVE" and self.check and self.box is src:
            for su, _ in pairs:
                if su in self.uids:
                    self.violation("move-no-expunge", f"UID {su} moved but not expunged before OK")

    async def do_search(self) -> None:
        r = self.rnd.random()
        if r < 0.3:
            cmd = b"SEARCH UNSEEN"
        elif r < 0.5:
            cmd = b"UID SEARCH KEYWORD " + self.rnd.choice(KEYWORDS).encode()
        elif r < 0.65:
            cmd = b"SEARCH FROM " + quote(self.rnd.choice(mailgen.SENDERS))
        elif r < 0.8:
            cmd = b"UID SEARCH DELETED"
        elif self.condstore:
            cmd = b"SEARCH MODSEQ %d" % max(1, (self.box.max_modseq if self.box else 1) - 20)
        else:
            cmd = b"SEARCH FLAGGED SINCE 1-Jan-2020"
        self.uid_search = cmd.startswith(b"UID")
        await self.command("search", cmd)

    def check_search(self, found: list[int]) -> None:
        """Only messages the session knows, as it knows them when the response comes."""
        if self.uid_search:
            have = set(self.uids)
            for u in found:
                if u not in have and 0 not in have:
                    self.violation("search-unknown", f"UID SEARCH gave UID {u}, not in the view")
                    break
        else:
            for n in found:
                if not 1 <= n <= len(self.uids):
                    self.violation(
                        "search-unknown", f"SEARCH gave {n} with {len(self.uids)} messages"
                    )
                    break

    async def do_idle(self) -> None:
        tag = self.next_tag()
        self.send(tag + b" IDLE\r\n")
        t0 = time.perf_counter()
        while True:
            line = await asyncio.wait_for(self.read_response(), COMMAND_TIMEOUT)
            if line.startswith(b"+"):
                break
            if line.startswith(tag + b" "):
                self.violation("bad", f"IDLE refused: {line!r}")
                return
            self.untagged(line)
        loop = asyncio.get_running_loop()
        loop.call_later(self.rnd.uniform(0.1, 0.6), lambda: self.send(b"DONE\r\n"))
        try:
            await asyncio.wait_for(self.read_until(tag), COMMAND_TIMEOUT)
        except TimeoutError:
            self.violation("timeout", "no end to IDLE")
            raise Fatal("timeout") from None
        self.ops["idle"] += 1
        self.latency.setdefault("idle", []).append(time.perf_counter() - t0)

    async def do_sync(self) -> None:
        if self.condstore and self.box is not None and self.rnd.random() < 0.7:
            since = max(1, self.box.max_modseq - self.rnd.randrange(1, 40))
            cmd = b"UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % since
            if self.qresync and self.rnd.random() < 0.3:
                cmd = b"UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % since
        else:
            cmd = b"UID FETCH 1:* (FLAGS)"
        await self.command("sync", cmd)

    async def do_select(self) -> None:
        mailbox = "INBOX" if self.rnd.random() < 0.75 else OTHER
        await self.select(mailbox, readonly=self.rnd.random() < 0.15)

    async def do_status(self) -> None:
        name = self.other()
        box = self.world.box(self.user, name)
        max_uid, max_modseq = box.max_uid, box.max_modseq
        items = b"MESSAGES UIDNEXT UIDVALIDITY UNSEEN" + (
            b" HIGHESTMODSEQ" if self.condstore else b""
        )
        self.status_vals = {}
        tagged = await self.command("status", b"STATUS " + quote(name) + b" (" + items + b")")
        if not self.check or b" OK" not in tagged[:30]:
            return
        vals = self.status_vals
        if vals.get("UIDNEXT", max_uid + 1) <= max_uid:
            self.violation(
                "uidnext-behind", f"STATUS UIDNEXT {vals['UIDNEXT']}, UID {max_uid} seen"
            )
        if vals.get("HIGHESTMODSEQ", max_modseq) < max_modseq:
            self.violation(
                "highestmodseq-behind",
                f"STATUS HIGHESTMODSEQ {vals['HIGHESTMODSEQ']}, saw {max_modseq}",
            )

    async def logout(self) -> None:
        try:
            if self.writer is not None:
                self.send(b"z LOGOUT\r\n")
                await asyncio.wait_for(self.read_until(b"z"), 5)
        except (TimeoutError, Fatal, ConnectionError, OSError):
            pass
        self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def quote(s: str) -> bytes:
    return b'"' + s.replace("\\", "\\\\").replace('"', '\\"').encode() + b'"'


@dataclass
class RunResult:
    ops: Counter[str]
    no: Counter[str]
    seconds: float
    latency: dict[str, list[float]]
    disconnects: int


async def prepare(
    world: World, host: str, port: int, users: list[tuple[str, str]], per_box: int, seed: int
) -> None:
    """Each user gets the Other mailbox and `per_box` messages in INBOX (untimed)."""

    async def one(k: int, user: str, password: str) -> None:
        s = Session(10_000 + k, world, host, port, user, password, random.Random(seed + k))
        await s.login()
        await s.command("create", b"CREATE " + quote(OTHER))  # NO when it exists
        for _ in range(per_box):
            await s.append("INBOX")
        await s.logout()

    await asyncio.gather(*(one(k, u, p) for k, (u, p) in enumerate(users)))


async def run(
    world: World,
    host: str,
    port: int,
    users: list[tuple[str, str]],
    clients: int,
    seconds: float,
    seed: int,
    check: bool = True,
    mix: dict[str, float] | None = None,
    on_ready: Callable[[], None] | None = None,
    login_concurrency: int = 16,
    on_done: Callable[[], None] | None = None,
) -> RunResult:
    """`clients` sessions over `users` (round robin), each selected on INBOX, for `seconds`."""
    modes = ["plain", "condstore", "qresync"]
    sessions = [
        Session(
            k,
            world,
            host,
            port,
            *users[k % len(users)],
            random.Random(seed * 100_003 + k),
            check=check,
            mode=modes[k % 3],
            mix=mix,
        )
        for k in range(clients)
    ]
    sem = asyncio.Semaphore(login_concurrency)

    async def setup(s: Session) -> None:
        async with sem:
            await s.login()
            await s.select("INBOX")
            s.ops.clear()
            s.latency.clear()

    await asyncio.gather(*(setup(s) for s in sessions))
    disconnects = 0
    if on_ready is not None:
        on_ready()
    t0 = time.perf_counter()
    deadline = t0 + seconds

    async def loop(s: Session) -> None:
        nonlocal disconnects
        try:
            while time.perf_counter() < deadline:
                await s.step()
        except (Fatal, ConnectionError, OSError) as exc:
            s.violation("disconnect", f"session ended: {exc!r}")
            disconnects += 1
            s.close()

    await asyncio.gather(*(loop(s) for s in sessions))
    elapsed = time.perf_counter() - t0
    if on_done is not None:
        on_done()
    await asyncio.gather(*(s.logout() for s in sessions))
    ops: Counter[str] = Counter()
    no: Counter[str] = Counter()
    latency: dict[str, list[float]] = {}
    for s in sessions:
        ops.update(s.ops)
        no.update(s.no)
        for k, v in s.latency.items():
            latency.setdefault(k, []).extend(v)
    return RunResult(ops, no, elapsed, latency, disconnects)


def format_reports(world: World, most: int = 10) -> str:
    """The first report of each kind, then the others, `most` in all."""
    out: list[str] = []
    firsts = {r.kind: r for r in reversed(world.reports)}
    chosen = list(firsts.values())[::-1] + [r for r in world.reports if r not in firsts.values()]
    for r in chosen[:most]:
        out.append(f"--- {world.server}: {r.kind}: {r.text}")
        out.extend(r.lines)
    return "\n".join(out)


# -- the command line: both servers, alternating rounds -------------------------------------


def stress_users(n: int) -> dict[str, str]:
    return {f"stress{i:02d}@example.org": f"pw-stress-{i}" for i in range(n)}


def users_for_clients(
    all_users: dict[str, str], clients: int, per_user: int
) -> list[tuple[str, str]]:
    """clients // per_user users (at least one), so that per_user sessions share a mailbox."""
    items = [(u, p) for u, p in all_users.items() if u.startswith("stress")]
    return items[: max(1, min(len(items), clients // max(1, per_user)))]


def summary_line(name: str, clients: int, res: RunResult, world: World) -> str:
    total = sum(res.ops.values())
    return (
        f"{name:8} {clients:4} clients {res.seconds:5.1f} s {total:7d} ops "
        f"{total / res.seconds:8.1f} ops/s  protocol errors {sum(world.errors.values()):5d} "
        f"disconnects {res.disconnects}"
    )


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json
    import sys

    from coi_bench import servers, workloads

    p = argparse.ArgumentParser(
        prog="python -m coi_bench.stress",
        description="State-checking IMAP stress test: coi and Dovecot, alternating rounds.",
    )
    p.add_argument("--clients", default="10,50", help="comma-separated session counts")
    p.add_argument("--seconds", type=float, default=30.0, help="seconds per round")
    p.add_argument("--rounds", type=int, default=1, help="rounds per server and client count")
    p.add_argument("--servers", default="coi,dovecot")
    p.add_argument("--per-user", type=int, default=5, help="sessions sharing one user (mailbox)")
    p.add_argument("--messages", type=int, default=30, help="messages put in each INBOX first")
    p.add_argument("--no-check", action="store_true", help="no checking: pure command load")
    p.add_argument("--reports", type=int, default=5, help="violations printed with transcript")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--coi-fsync", choices=["always", "optimized"], default="always")
    p.add_argument(
        "--coi-store",
        choices=["sqlite", "postgresql"],
        default="sqlite",
        help="postgresql: coi on a PostgreSQL cluster of its own",
    )
    p.add_argument("--coi-workers", type=int, help="coi serve --workers N (PostgreSQL)")
    p.add_argument("--json", type=str, help="write the figures and reports here")
    p.add_argument("--transcript", type=str, help="write every session's lines to this file")
    args = p.parse_args(argv)
    counts = [int(x) for x in args.clients.split(",")]
    users = stress_users(max(1, max(counts) // max(1, args.per_user)))
    workloads.raise_nofile()
    started: list[servers.Server] = []
    out: dict[str, object] = {"rounds": []}
    try:
        names = args.servers.split(",")
        if "coi" in names:
            extra = ["--fsync", args.coi_fsync] if args.coi_fsync != "always" else []
            if args.coi_workers is not None:
                extra += ["--workers", str(args.coi_workers)]
            started.append(
                servers.start_coi(users, max(counts) + 50, extra=extra, store=args.coi_store)
            )
        if "dovecot" in names:
            started.append(servers.start_dovecot(users, max(counts) + 50, "SHA512-CRYPT"))
        worlds = {s.name: World(s.name) for s in started}
        if args.transcript:
            for w in worlds.values():
                w.transcript = open(f"{args.transcript}.{w.server}", "w")  # noqa: SIM115
        prepared: dict[str, set[str]] = {s.name: set() for s in started}

        async def go() -> None:
            order = 0
            for clients in counts:
                chosen = users_for_clients(users, clients, args.per_user)
                for r in range(args.rounds):
                    for s in started if order % 2 == 0 else list(reversed(started)):
                        world = worlds[s.name]
                        todo = [u for u in chosen if u[0] not in prepared[s.name]]
                        if todo:
                            await prepare(
                                world, s.host, s.imap_port, todo, args.messages, args.seed
                            )
                            prepared[s.name].update(u for u, _ in todo)
                        before = sum(world.errors.values())
                        kinds_before = Counter(world.errors)
                        reports_before = len(world.reports)
                        res = await run(
                            world,
                            s.host,
                            s.imap_port,
                            chosen,
                            clients,
                            args.seconds,
                            args.seed + 31 * r + clients,
                            check=not args.no_check,
                        )
                        print(
                            summary_line(s.name, clients, res, world).replace(
                                f"protocol errors {sum(world.errors.values()):5d}",
                                f"protocol errors {sum(world.errors.values()) - before:5d}",
                            ),
                            flush=True,
                        )
                        kinds = Counter(world.errors)
                        kinds.subtract(kinds_before)
                        new = {k: v for k, v in kinds.items() if v}
                        if new:
                            print(f"         errors by kind: {new}", flush=True)
                        out["rounds"].append(
                            {  # type: ignore[union-attr]
                                "server": s.name,
                                "clients": clients,
                                "round": r + 1,
                                "seconds": res.seconds,
                                "ops": dict(res.ops),
                                "no": dict(res.no),
                                "ops_per_s": sum(res.ops.values()) / res.seconds,
                                "errors": new,
                                "disconnects": res.disconnects,
                                "reports": [
                                    {"kind": x.kind, "text": x.text, "lines": x.lines}
                                    for x in world.reports[reports_before:]
                                ],
                            }
                        )
                    order += 1

        asyncio.run(go())
    finally:
        for s in started:
            s.stop()
    for name, world in worlds.items():
        if world.reports:
            print(f"\n=== {name}: first {args.reports} of {sum(world.errors.values())} violations")
            print(format_reports(world, args.reports))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
