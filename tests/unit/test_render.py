"""The shared response pieces of `coi.imap.server.render` are the bytes the generic
encoders give (they only skip building objects per message)."""

from __future__ import annotations

import random

from coi.imap.server.render import flag_text, internal_date_text
from coi.imap.wire.encode import flag_list, internal_date
from coi.store.model import stored_datetime, stored_flags


def test_internal_date_text_equals_the_datetime_encoding() -> None:
    rng = random.Random(3)
    zones = [0, 60, -300, 330, -720, 840, 765, -59]
    for _ in range(20000):
        ts = rng.randint(-(2**31), 2**33)
        tz = rng.choice([*zones, rng.randint(-1439, 1439)])
        assert internal_date_text(ts, tz) == internal_date(stored_datetime(ts, tz))


def test_flag_text_equals_flag_list_of_the_names() -> None:
    for bits in range(64):
        for keywords in ("", "$Label1", "Todo Work", "$Forwarded $Junk $NotJunk"):
            for recent in (False, True):
                names = stored_flags(bits, keywords).names()
                if recent:
                    names.append("\\Recent")
                assert flag_text(bits, keywords, recent) == flag_list(names)
                assert flag_text(bits, keywords, recent) == flag_list(names)  # from the cache
