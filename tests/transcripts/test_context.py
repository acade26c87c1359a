"""CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 §4): the CONTEXT hint, PARTIAL results,
UPDATE contexts whose ADDTO/REMOVEFROM follow changes made by this session and by others
(during IDLE and at NOOP), CANCELUPDATE, NOUPDATE past the limit, and the end of updates
when the mailbox is deselected. The examples of §4, adapted to our data."""

from __future__ import annotations

from tests.conftest import LineClient, RunningServer, run_transcript
from tests.transcripts.helpers import append, crlf, logged_in


def message(n: int) -> bytes:
    return crlf(f"From: u{n}@example.org\nSubject: message {n}\n\nbody {n}\n")


async def fill(client: LineClient, count: int = 6) -> None:
    """Messages 1..count (UIDs the same), arriving a day apart; even ones $Junk, message 3
    \\Deleted, message 5 \\Flagged."""
    for n in range(1, count + 1):
        flags = ["$Junk"] if n % 2 == 0 else []
        flags += ["\\Deleted"] if n == 3 else []
        flags += ["\\Flagged"] if n == 5 else []
        date = f'"{n:02d}-Jan-2024 12:00:00 +0000"'
        await append(client, message(n), extra=f"({' '.join(flags)}) {date} ")


async def test_rfc5267_examples_context_partial_update(imap_server: RunningServer) -> None:
    """§4.2 CONTEXT, §4.3 UPDATE (tag reuse is BAD), §4.3.3 ADDTO, §4.3.4 REMOVEFROM before
    the EXPUNGE, §4.3.5 CANCELUPDATE, §4.4 PARTIAL (also beyond the end, reversed, and the
    negative ranges of RFC 9394)."""
    a = await logged_in(imap_server)
    await fill(a)
    await a.command("s SELECT INBOX")
    await run_transcript(
        a,
        """
        C: A01 SEARCH RETURN (CONTEXT COUNT) UNDELETED UNKEYWORD $Junk
        S: * ESEARCH (TAG "A01") COUNT 2
        S: A01 OK SEARCH completed
        C: A02 UID SEARCH RETURN (PARTIAL 2:3) UNDELETED
        S: * ESEARCH (TAG "A02") UID PARTIAL (2:3 2,4)
        S: A02 OK SEARCH completed
        C: A03 UID SEARCH RETURN (PARTIAL 4:2 COUNT) UNDELETED
        S: * ESEARCH (TAG "A03") UID PARTIAL (2:4 2,4:5) COUNT 5
        S: A03 OK SEARCH completed
        C: A04 UID SEARCH RETURN (PARTIAL 24000:24500) UNDELETED
        S: * ESEARCH (TAG "A04") UID PARTIAL (24000:24500 NIL)
        S: A04 OK SEARCH completed
        C: A05 SEARCH RETURN (PARTIAL -2:-1 MIN) UNDELETED
        S: * ESEARCH (TAG "A05") MIN 1 PARTIAL (-1:-2 5:6)
        S: A05 OK SEARCH completed
        C: A051 SEARCH RETURN (CONTEXT) UNDELETED
        S: * ESEARCH (TAG "A051") ALL 1:2,4:6
        S: A051 OK SEARCH completed
        C: A052 UID SEARCH RETURN (SAVE PARTIAL 1:2) UNDELETED
        S: * ESEARCH (TAG "A052") UID PARTIAL (1:2 1:2)
        S: A052 OK SEARCH completed
        C: A053 UID SEARCH $
        S: * SEARCH 1 2 4 5 6
        S: A053 OK SEARCH completed
        C: A06 SEARCH RETURN (PARTIAL 1:2 ALL) UNDELETED
        S: A06 BAD {{.*}}
        C: A07 SEARCH RETURN (PARTIAL 0:2) UNDELETED
        S: A07 BAD {{.*}}
        C: A08 SEARCH RETURN (PARTIAL -1:2) UNDELETED
        S: A08 BAD {{.*}}
        C: A09 UID SORT RETURN (PARTIAL 1:3) (REVERSE ARRIVAL) UTF-8 ALL
        S: * ESEARCH (TAG "A09") UID PARTIAL (1:3 6,5,4)
        S: A09 OK SORT completed
        C: A10 SORT (REVERSE ARRIVAL) US-ASCII RETURN (PARTIAL 4:2) ALL
        S: * ESEARCH (TAG "A10") PARTIAL (2:4 5,4,3)
        S: A10 OK SORT completed
        C: B01 UID SEARCH RETURN (UPDATE COUNT) DELETED KEYWORD $Junk
        S: * ESEARCH (TAG "B01") UID COUNT 0
        S: B01 OK SEARCH completed
        C: B01 SORT RETURN (UPDATE) (ARRIVAL) UTF-8 FLAGGED
        S: B01 BAD {{.*}}
        C: B02 STORE 2,4 +FLAGS (\\Deleted)
        S: * 2 FETCH (FLAGS (\\Deleted \\Recent $Junk))
        S: * 4 FETCH (FLAGS (\\Deleted \\Recent $Junk))
        S: * ESEARCH (TAG "B01") UID ADDTO (0 2,4)
        S: B02 OK STORE completed
        C: B03 UID EXPUNGE 4
        S: * ESEARCH (TAG "B01") UID REMOVEFROM (0 4)
        S: * 4 EXPUNGE
        S: B03 OK {{.*}}
        C: B04 CANCELUPDATE "B01"
        S: B04 OK CANCELUPDATE completed
        C: B05 STORE 5 +FLAGS.SILENT (\\Deleted)
        S: B05 OK STORE completed
        C: B06 CANCELUPDATE "B01"
        S: B06 NO {{.*}}
        C: B07 SEARCH RETURN (UPDATE) UNDELETED
        S: * ESEARCH (TAG "B07")
        S: B07 OK SEARCH completed
        C: B08 STORE 1 +FLAGS.SILENT (\\Deleted)
        S: * ESEARCH (TAG "B07") REMOVEFROM (0 1)
        S: B08 OK STORE completed
        """,
    )
    await a.close()


async def test_updates_from_another_session_during_idle_and_noop(
    imap_server: RunningServer,
) -> None:
    """Session B's APPEND, STORE and EXPUNGE change A's results: ADDTO after the EXISTS
    that numbers the new message, REMOVEFROM before the EXPUNGE; in IDLE as they happen,
    else at NOOP. A SORT context keeps its order with positions (§4.3.2)."""
    a = await logged_in(imap_server)
    b = await logged_in(imap_server)
    await fill(a)
    await a.command("s SELECT INBOX")
    await b.command("s SELECT INBOX")
    await run_transcript(
        a,
        """
        C: J1 SEARCH RETURN (UPDATE ALL) KEYWORD $Junk
        S: * ESEARCH (TAG "J1") ALL 2,4,6
        S: J1 OK SEARCH completed
        C: S1 UID SORT RETURN (UPDATE ALL) (REVERSE ARRIVAL) UTF-8 UNFLAGGED
        S: * ESEARCH (TAG "S1") UID ALL 6,4,3,2,1
        S: S1 OK SORT completed
        C: I1 IDLE
        S: + {{.*}}
        """,
    )
    # a new $Junk message arrives last by date: first in REVERSE ARRIVAL
    await append(b, message(7), extra='($Junk) "07-Jan-2024 12:00:00 +0000" ')
    await run_transcript(
        a,
        """
        S: * 7 EXISTS
        S: * {{\\d+}} RECENT
        S: * ESEARCH (TAG "J1") ADDTO (0 7)
        S: * ESEARCH (TAG "S1") UID ADDTO (1 7)
        """,
    )
    # one arriving between 3 and 4 by date goes to its place in the sort order (the
    # REMOVEFROM of several runs and the ADDTO of a removed message coming back as well)
    await append(b, message(8), extra='"03-Jan-2024 18:00:00 +0000" ')
    await run_transcript(
        a,
        """
        S: * 8 EXISTS
        S: * {{\\d+}} RECENT
        S: * ESEARCH (TAG "S1") UID ADDTO (4 8)
        """,
    )
    await b.command("b1 STORE 1 +FLAGS (\\Flagged $Junk)")
    await run_transcript(
        a,
        """
        S: * ESEARCH (TAG "S1") UID REMOVEFROM (7 1)
        S: * 1 FETCH (FLAGS (\\Flagged \\Recent $Junk) UID 1)
        S: * ESEARCH (TAG "J1") ADDTO (0 1)
        """,
    )
    await b.command("b2 STORE 2 -FLAGS ($Junk)")
    await run_transcript(
        a,
        """
        S: * ESEARCH (TAG "J1") REMOVEFROM (0 2)
        S: * 2 FETCH (FLAGS (\\Recent) UID 2)
        """,
    )
    await b.command("b3 STORE 4 +FLAGS.SILENT (\\Deleted)")
    await run_transcript(a, "S: * 4 FETCH (FLAGS (\\Deleted \\Recent $Junk) UID 4)")
    await b.command("b4 EXPUNGE")  # 3 and 4 go
    await run_transcript(
        a,
        """
        S: * ESEARCH (TAG "J1") REMOVEFROM (0 4)
        S: * ESEARCH (TAG "S1") UID REMOVEFROM (3 4 4 3)
        S: * 4 EXPUNGE
        S: * 3 EXPUNGE
        C: DONE
        S: I1 OK {{.*}}
        """,
    )
    # outside IDLE the updates wait for the next command (NOOP here)
    await b.command("b5 UID STORE 5 -FLAGS.SILENT (\\Flagged)")
    await run_transcript(
        a,
        """
        C: N1 NOOP
        S: * 3 FETCH (FLAGS (\\Recent) UID 5)
        S: * ESEARCH (TAG "S1") UID ADDTO (3 5)
        S: N1 OK {{.*}}
        C: N2 UID SEARCH RETURN (ALL) KEYWORD $Junk
        S: * ESEARCH (TAG "N2") UID ALL 1,6:7
        S: N2 OK SEARCH completed
        C: N3 UID SORT RETURN (ALL) (REVERSE ARRIVAL) UTF-8 UNFLAGGED
        S: * ESEARCH (TAG "N3") UID ALL 7,6,5,8,2
        S: N3 OK SORT completed
        """,
    )
    # deselecting ends the updates (§4.3); the tags are free again
    await a.command("u UNSELECT")
    await a.command("s2 SELECT INBOX")
    await b.command("b6 UID STORE 6 -FLAGS ($Junk)")
    await run_transcript(
        a,
        """
        C: N4 NOOP
        S: * 4 FETCH (FLAGS () UID 6)
        S: N4 OK {{.*}}
        C: J1 SEARCH RETURN (UPDATE COUNT) KEYWORD $Junk
        S: * ESEARCH (TAG "J1") COUNT 2
        S: J1 OK SEARCH completed
        """,
    )
    await a.close()
    await b.close()


async def test_noupdate_past_the_limit_and_fixed_sequence_numbers(alice: LineClient) -> None:
    """§4.3.1: past 8 live contexts the command is answered without UPDATE and with
    `* NO [NOUPDATE "tag"]`; cancelling one makes room. Sequence numbers and "$" in the
    program stand for the messages they named when the command came (§4.3)."""
    await fill(alice)
    await alice.command("s SELECT INBOX")
    for n in range(8):
        lines = await alice.command(f"U{n} SEARCH RETURN (UPDATE COUNT) FLAGGED")
        assert lines == [f'* ESEARCH (TAG "U{n}") COUNT 1\r\n'.encode(),
                         f"U{n} OK SEARCH completed\r\n".encode()]  # fmt: skip
    await run_transcript(
        alice,
        """
        C: U8 UID SORT RETURN (UPDATE COUNT) (ARRIVAL) UTF-8 KEYWORD $Junk
        S: * NO [NOUPDATE "U8"] {{.*}}
        S: * ESEARCH (TAG "U8") UID COUNT 3
        S: U8 OK SORT completed
        C: C1 CANCELUPDATE "U0" "U1" "U2" "U3" "U4" "U5" "U6"
        S: C1 OK CANCELUPDATE completed
        C: Q1 SEARCH RETURN (SAVE) 1:2
        S: Q1 OK SEARCH completed
        C: Q2 UID SEARCH RETURN (UPDATE ALL) 5:6 FLAGGED
        S: * ESEARCH (TAG "Q2") UID ALL 5
        S: Q2 OK SEARCH completed
        C: Q3 SEARCH RETURN (CONTEXT UPDATE ALL) $ KEYWORD $Junk
        S: * ESEARCH (TAG "Q3") ALL 2
        S: Q3 OK SEARCH completed
        C: Q4 UID EXPUNGE 3
        S: * 3 EXPUNGE
        S: Q4 OK {{.*}}
        C: Q5 STORE 5,1 +FLAGS.SILENT (\\Flagged $Junk)
        S: * ESEARCH (TAG "U7") ADDTO (0 1,5)
        S: * ESEARCH (TAG "Q2") UID ADDTO (0 6)
        S: * ESEARCH (TAG "Q3") ADDTO (0 1)
        S: Q5 OK STORE completed
        C: Q6 CANCELUPDATE "nope" "Q2"
        S: Q6 NO {{.*}}
        C: Q7 CANCELUPDATE
        S: Q7 BAD {{.*}}
        C: Q8 CANCELUPDATE "Q2" "Q3"
        S: Q8 OK CANCELUPDATE completed
        C: E1 SEARCH RETURN (SAVE) UID 999
        S: E1 OK SEARCH completed
        C: E2 UID SEARCH RETURN (UPDATE COUNT) OR $ 999
        S: * ESEARCH (TAG "E2") UID COUNT 0
        S: E2 OK SEARCH completed
        C: E3 STORE 1:* +FLAGS.SILENT (\\Answered)
        S: E3 OK STORE completed
        """,
    )


def _numbers(text: str) -> list[int]:
    """A sequence set in the order written (ranges ascending, RFC 5267 §3.2)."""
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition(":")
        first, last = sorted((int(lo), int(hi or lo)))
        out.extend(range(first, last + 1))
    return out


class Model:
    """What a client following RFC 5267 §4.3.2-§4.3.4 believes a context's result is."""

    def __init__(self, initial: list[int], sorted_: bool, uid: bool) -> None:
        self.result = initial
        self.sorted = sorted_
        self.uid = uid

    def apply(self, line: str) -> None:
        import re

        for kind, body in re.findall(r"(ADDTO|REMOVEFROM) \(([^)]*)\)", line):
            words = body.split()
            for pos_text, set_text in zip(words[::2], words[1::2], strict=True):
                pos, numbers = int(pos_text), _numbers(set_text)
                if kind == "REMOVEFROM":
                    if pos == 0:
                        self.result = [n for n in self.result if n not in numbers]
                    else:
                        assert self.result[pos - 1 : pos - 1 + len(numbers)] == numbers, line
                        del self.result[pos - 1 : pos - 1 + len(numbers)]
                elif pos == 0:
                    assert not self.sorted, line
                    self.result = sorted([*self.result, *numbers])
                else:
                    self.result[pos - 1 : pos - 1] = numbers

    def expunge(self, seq: int) -> None:
        if not self.uid:
            assert seq not in self.result, "REMOVEFROM must come before the EXPUNGE"
            self.result = [n - 1 if n > seq else n for n in self.result]


async def test_random_changes_keep_every_context_exact(imap_server: RunningServer) -> None:
    """Random APPEND/STORE/EXPUNGE by two sessions: a client applying the ADDTO/REMOVEFROM
    it gets (and EXPUNGE to message numbers) always holds what a new search returns."""
    import random
    import re

    rng = random.Random(5267)
    a = await logged_in(imap_server)
    b = await logged_in(imap_server)
    await fill(a, 10)
    await a.command("s SELECT INBOX")
    await b.command("s SELECT INBOX")
    programs = {
        "c1": ("UID SEARCH", "KEYWORD $Junk", False, True),
        "c2": ("SEARCH", "OR FLAGGED UNKEYWORD $Junk", False, False),
        "c3": ("UID SORT", "(REVERSE ARRIVAL) UTF-8 UNDELETED", True, True),
        "c4": ("SORT", "(SUBJECT REVERSE DATE) UTF-8 NOT FLAGGED", True, False),
        "c5": ("UID SEARCH", "1:5 UNSEEN", False, True),
    }
    models: dict[str, Model] = {}
    for tag, (verb, program, is_sort, uid) in programs.items():
        head, _, rest = program.partition(" UTF-8 ") if is_sort else ("", "", program)
        args = (
            f"RETURN (UPDATE ALL) {head} UTF-8 {rest}" if is_sort else f"RETURN (UPDATE ALL) {rest}"
        )
        lines = await a.command(f"{tag} {verb} {args}")
        found = re.search(rb" ALL ([0-9:,]+)", lines[0])
        models[tag] = Model(_numbers(found.group(1).decode()) if found else [], is_sort, uid)
    flags = ["\\Seen", "\\Flagged", "\\Deleted", "$Junk"]

    seen = {"updates": 0, "expunges": 0}

    def follow(lines: list[bytes]) -> None:
        for raw in lines:
            line = raw.decode()
            match = re.match(r'\* ESEARCH \(TAG "(c\d)"\)', line)
            if match:
                models[match.group(1)].apply(line)
                seen["updates"] += 1
            expunged = re.match(r"\* (\d+) EXPUNGE", line)
            if expunged:
                seen["expunges"] += 1
                for model in models.values():
                    model.expunge(int(expunged.group(1)))

    for step in range(60):
        actor = rng.choice([a, b, b])
        op = rng.random()
        if op < 0.25:
            extra = f"({rng.choice(flags)}) " if rng.random() < 0.6 else ""
            lines = await append(actor, message(100 + step), extra=extra)
        elif op < 0.85:
            uid, sign, flag = rng.randint(1, 110 + step), rng.choice("+-"), rng.choice(flags)
            lines = await actor.command(f"t UID STORE {uid} {sign}FLAGS.SILENT ({flag})")
        else:
            lines = await actor.command("t EXPUNGE")
        if actor is a:
            follow(lines)  # updates caused by A's own command come with its response
        follow(await a.command("n NOOP"))
        for tag, (verb, program, is_sort, _) in programs.items():
            if tag == "c5":  # its "1:5" meant the messages numbered so when it came
                continue
            head, _, rest = program.partition(" UTF-8 ") if is_sort else ("", "", program)
            args = f"RETURN (ALL) {head} UTF-8 {rest}" if is_sort else f"RETURN (ALL) {rest}"
            lines = await a.command(f"x{tag} {verb} {args}")
            found = re.search(rb" ALL ([0-9:,]+)", lines[0])
            want = _numbers(found.group(1).decode()) if found else []
            assert models[tag].result == want, (step, tag, models[tag].result, want)
    assert seen["updates"] > 20 and seen["expunges"] > 0, seen
    await a.close()
    await b.close()


async def test_message_numbers_like_imaptest_search_context_update(alice: LineClient) -> None:
    """The flow of imaptest's search-context-update script: RETURN (UPDATE) alone gives
    the TAG only; ADDTO/REMOVEFROM in message numbers; the REMOVEFROM of an expunged
    message before the EXPUNGE responses; nothing after CANCELUPDATE."""
    await fill(alice)
    await alice.command("s SELECT INBOX")
    await run_transcript(
        alice,
        """
        C: u1 SEARCH RETURN (UPDATE) BODY body SEEN
        S: * ESEARCH (TAG "u1")
        S: u1 OK SEARCH completed
        C: u2 STORE 1,2,5 +FLAGS.SILENT (\\Seen)
        S: * ESEARCH (TAG "u1") ADDTO (0 1:2,5)
        S: u2 OK STORE completed
        C: u3 STORE 1,2 -FLAGS.SILENT (\\Seen)
        S: * ESEARCH (TAG "u1") REMOVEFROM (0 1:2)
        S: u3 OK STORE completed
        C: u4 STORE 3:6 +FLAGS.SILENT (\\Deleted)
        S: u4 OK STORE completed
        C: u5 EXPUNGE
        S: * ESEARCH (TAG "u1") REMOVEFROM (0 5)
        S: * 6 EXPUNGE
        S: * 5 EXPUNGE
        S: * 4 EXPUNGE
        S: * 3 EXPUNGE
        S: u5 OK {{.*}}
        C: u6 CANCELUPDATE "u1"
        S: u6 OK CANCELUPDATE completed
        C: u7 STORE 1 +FLAGS.SILENT (\\Seen)
        S: u7 OK STORE completed
        """,
    )
