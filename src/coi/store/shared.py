"""What every store backend derives the same way, so the backends cannot drift apart."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from coi.store.model import Mailbox, MailboxStatus


def objectid(key: bytes, prefix: str, data: bytes) -> str:
    """A server-allocated ObjectID (RFC 8474 §8.1): a letter, then 24 lower-case hex digits
    of a BLAKE2b digest keyed with the store's random secret, so ids reveal nothing (not how
    many messages or mailboxes the server holds); 96 bits, so two objects never share one;
    no upper case, so no two differ only by case."""
    return prefix + hashlib.blake2b(data, key=key, digest_size=12).hexdigest()


def mailboxid(key: bytes, uidvalidity: int) -> str:
    """MAILBOXID (RFC 8474 §4), from the UIDVALIDITY the server hands out once."""
    return objectid(key, "F", b"mailbox %d" % uidvalidity)


def emailid(key: bytes, blob_id: int) -> str:
    """EMAILID (RFC 8474 §5.1), from the id of the stored body (never reused)."""
    return objectid(key, "M", b"email %d" % blob_id)


def like_escape(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern with ``ESCAPE '\\'``."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def children_pattern(name: str) -> str:
    """The LIKE pattern of every mailbox below ``name`` (hierarchy separator "/")."""
    return like_escape(name) + "/%"


def status_of(mailbox: Mailbox, counts: Sequence[Any] | None) -> MailboxStatus:
    """STATUS from a mailbox row and its counts (messages, unseen, size, recent, deleted:
    the order both backends' queries give them); None (the mailbox row is gone since the
    caller read it) counts nothing."""
    if counts is None:
        counts = (0, 0, 0, 0, 0)
    return MailboxStatus(
        messages=counts[0],
        unseen=counts[1],
        uidnext=mailbox.uidnext,
        uidvalidity=mailbox.uidvalidity,
        highestmodseq=mailbox.highestmodseq,
        size=int(counts[2]),
        recent=counts[3],
        deleted=counts[4],  # STATUS DELETED (RFC 9051 §6.3.11)
    )
