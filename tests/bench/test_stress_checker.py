"""The stress client's own bookkeeping (bench/coi_bench/stress.py): a checker bug reports a
protocol error the server did not make."""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from coi_bench import stress


def session() -> stress.Session:
    world = stress.World("test")
    s = stress.Session(1, world, "127.0.0.1", 0, "u", "p", random.Random(1), mode="qresync")
    s.box = world.box("u", "INBOX")
    s.qresync = s.condstore = True
    return s


def test_vanished_of_an_unknown_uid_drops_the_unknown_slot_that_can_hold_it() -> None:
    # seen in a run: slots 7 and 9.. unknown, slot 8 is UID 107; VANISHED 108 must take
    # slot 9 (after 107), not slot 7 (which can only hold a UID between 105 and 107)
    s = session()
    s.uids = [98, 99, 100, 101, 102, 105, 0, 107, 0, 0, 0, 0]
    s.on_vanished([108])
    assert s.uids == [98, 99, 100, 101, 102, 105, 0, 107, 0, 0, 0]
    assert not s.world.errors


def test_vanished_of_unknown_uids_in_one_run_and_a_known_one() -> None:
    s = session()
    s.uids = [10, 0, 0, 20, 0, 30]
    s.on_vanished([12, 13, 20, 25])
    assert s.uids == [10, 30]


def test_vanished_of_a_uid_no_unknown_slot_can_hold_leaves_the_view() -> None:
    s = session()
    s.uids = [10, 0, 20, 30]
    s.on_vanished([25])
    assert s.uids == [10, 0, 20, 30]


def test_a_message_arriving_after_uidnext_in_a_select_is_not_counted_against_it() -> None:
    # seen with two worker processes: "* 10 EXISTS ... [UIDNEXT 57] ... * 11 EXISTS" (UID 57
    # arrived during the SELECT, RFC 3501 §7.3.1): only the 10 may be checked against 57
    s = session()
    s.selecting = True
    for line in (b"* 10 EXISTS\r\n", b"* OK [UIDNEXT 57] Predicted\r\n", b"* 11 EXISTS\r\n"):
        s.untagged(line)
    assert (s.exists_at_uidnext, s.select_exists) == (10, 11)
    s.untagged(b"* 3 EXPUNGE\r\n")  # one of the ten went meanwhile
    assert (s.exists_at_uidnext, s.select_exists) == (9, 10)
