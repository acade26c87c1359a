"""The Sent copies the server filed itself, remembered briefly by Message-ID.

The server keeps a \\Seen copy of every submitted message in the sender's Sent folder, so
chat clients and webmail see what was sent. Mail clients that save their own copy
(Thunderbird by default, neomutt) then APPEND the same message to Sent moments later; a
second copy would show every sent mail twice. Such an APPEND of a Message-ID the server
filed into that mailbox within the window is answered with the server's copy instead
(docs/deploy.md: Submission). Kept in memory: after a restart a late APPEND is stored.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from email.parser import BytesHeaderParser
from email.policy import compat32

from coi.chat.headers import parse_message_ids

WINDOW_SECONDS = 600.0
MAX_ENTRIES = 10_000


def message_id(raw: bytes) -> str | None:
    """The first Message-ID of a message's header, or None."""
    end = raw.find(b"\r\n\r\n")
    head = raw if end < 0 else raw[: end + 2]
    value = BytesHeaderParser(policy=compat32).parsebytes(head).get("Message-ID")
    ids = parse_message_ids(str(value)) if value is not None else ()
    return ids[0] if ids else None


class SentCopies:
    def __init__(self) -> None:
        self._filed: OrderedDict[tuple[int, int, str], tuple[int, float]] = OrderedDict()

    def remember(self, user_id: int, mailbox_id: int, msgid: str, uid: int) -> None:
        key = (user_id, mailbox_id, msgid)
        self._filed[key] = (uid, time.monotonic())
        self._filed.move_to_end(key)
        while len(self._filed) > MAX_ENTRIES:
            self._filed.popitem(last=False)

    def find(self, user_id: int, mailbox_id: int, msgid: str) -> int | None:
        """The UID of the server's copy of ``msgid`` in that mailbox, filed recently."""
        found = self._filed.get((user_id, mailbox_id, msgid))
        if found is None or time.monotonic() - found[1] > WINDOW_SECONDS:
            return None
        return found[0]
