"""Mailbox commands (RFC 3501 §6.3) with LIST-EXTENDED basics (RFC 5258), LIST-STATUS
(RFC 5819), SPECIAL-USE (RFC 6154) and UIDPLUS's APPENDUID (RFC 4315).

Mailbox names are case-sensitive, hierarchy separator "/", except INBOX, which the
parser already canonicalizes.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left
from dataclasses import replace
from functools import lru_cache

from coi.imap.server import catenate, coi, sync
from coi.imap.server.errors import CommandBad, CommandNo
from coi.imap.server.quota import refuse_over_quota
from coi.imap.server.session import AUTH, Route, Session
from coi.imap.wire import commands as cmd
from coi.imap.wire.commands import NormalizedName
from coi.imap.wire.mutf7 import InvalidName
from coi.mail.prepare import prepare_async
from coi.store.errors import MailboxInUse
from coi.store.model import Mailbox, MailboxStatus
from coi.store.sentcopies import message_id

SEPARATOR = "/"
SPECIAL_USES = ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash")


def check_net_unicode(name: str) -> None:
    """RFC 9051 §5.1: a name created through IMAP4rev2 must be Net-Unicode (RFC 5198 §2:
    NFC, which the parser already made it, no C1 controls, no unassigned code points)."""
    if any("\x80" <= ch <= "\x9f" or unicodedata.category(ch) in ("Cn", "Cs") for ch in name):
        raise CommandNo("Invalid mailbox name: not Net-Unicode", "CANNOT")


def check_name(name: str) -> None:
    if isinstance(name, InvalidName):
        raise CommandNo("Mailbox name is not valid modified UTF-7", "CANNOT")
    if not name or name.startswith(SEPARATOR) or name.endswith(SEPARATOR) or "//" in name:
        raise CommandNo("Invalid mailbox name: empty level or leading/trailing '/'", "CANNOT")
    if any(ch in name for ch in "*%") or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        raise CommandNo("Invalid mailbox name: contains a wildcard or control character", "CANNOT")
    if len(name.encode("utf-8", "surrogateescape")) > 1000:
        raise CommandNo("Mailbox name too long", "CANNOT")


async def find(session: Session, name: str) -> Mailbox:
    """The named mailbox, else NO: also for a name that is not valid modified UTF-7,
    which no mailbox can have (RFC 3501 §5.1.3)."""
    if isinstance(name, InvalidName):
        raise CommandNo("Mailbox name is not valid modified UTF-7", "NONEXISTENT")
    mailbox = await _lookup(session, name)
    if mailbox is None:
        raise CommandNo(f"Mailbox does not exist: {name}", "NONEXISTENT")
    return mailbox


async def _lookup(session: Session, name: str) -> Mailbox | None:
    """The mailbox of that name; a name an IMAP4rev2 client sent denormalized is its NFC
    form, or else the form as sent: a mailbox created by an IMAP4rev1 client (modified
    UTF-7 can carry any form) stays reachable under the name LIST shows (RFC 9051 §5.1).
    Awaited: on a networked store the session's loop serves others meanwhile."""
    mailbox = await session.store.read_mailbox(session.user_id, name)
    if mailbox is None and isinstance(name, NormalizedName):
        mailbox = await session.store.read_mailbox(session.user_id, name.supplied)
    return mailbox


async def find_target(session: Session, name: str) -> Mailbox:
    """A mailbox to put messages into: missing means TRYCREATE (RFC 3501 §6.3.11)."""
    _valid_target(name)
    return _existing_target(name, await _lookup(session, name))


async def find_target_and_usage(session: Session, name: str) -> tuple[Mailbox, tuple[int, int]]:
    """`find_target` and the user's quota usage (`usage_of`), in one read of the store."""
    _valid_target(name)
    mailbox, usage = await session.store.read_target(
        session.user_id, name, session.config.default_quota
    )
    if mailbox is None and isinstance(name, NormalizedName):  # as `_lookup`
        mailbox = await session.store.read_mailbox(session.user_id, name.supplied)
    return _existing_target(name, mailbox), usage


def _valid_target(name: str) -> None:
    if isinstance(name, InvalidName):  # it could never be created
        raise CommandNo("Mailbox name is not valid modified UTF-7", "CANNOT")


def _existing_target(name: str, mailbox: Mailbox | None) -> Mailbox:
    if mailbox is None or mailbox.noselect:
        raise CommandNo(f"Mailbox does not exist: {name}", "TRYCREATE")
    return mailbox


# -- SELECT / EXAMINE ------------------------------------------------------------------


async def handle_select(session: Session, command: cmd.Select) -> str:
    if command.qresync is not None:
        sync.check_qresync(session, command.qresync)
    if session.selected is not None:
        # RFC 7162 §3.2.11: the boundary between the old mailbox's responses and the new
        session.untagged("OK [CLOSED] Previous mailbox closed")
    session.deselect()  # a failed SELECT leaves no mailbox selected (RFC 3501 §6.3.1)
    mailbox = await find(session, command.mailbox)
    if mailbox.noselect:
        raise CommandNo(f"{command.mailbox} cannot be selected", "CANNOT")
    if command.condstore or command.qresync is not None:
        session.condstore = True  # RFC 7162 §3.1.8; HIGHESTMODSEQ follows below
    view = session.select(mailbox, command.readonly)
    # UIDNEXT as the view's state knows it, not as the mailbox row was read before: a UID
    # committed since, whose event has not come, is announced later and must not be below
    # it, and one the view holds is below it (RFC 3501 §2.3.1.1)
    uidnext = view.state.uidnext
    session.send(view.flags_line())
    session.untagged(f"{view.exists()} EXISTS")
    if not session.rev2:  # RFC 9051 Appendix E items 11, 12: neither RECENT nor UNSEEN
        session.untagged(f"{view.recent_count()} RECENT")
        first_unseen = await session.store.first_unseen(mailbox.id)
        if first_unseen is not None:
            seq = view.seq_of(first_unseen)
            if seq is not None:
                session.untagged(f"OK [UNSEEN {seq}] First unseen message")
    session.send(view.permanentflags_line(b"Limited"))
    session.untagged(f"OK [UIDVALIDITY {mailbox.uidvalidity}] UIDs valid")
    session.untagged(f"OK [UIDNEXT {uidnext}] Predicted next UID")
    session.untagged(f"OK [MAILBOXID ({session.store.mailboxid(mailbox)})] Ok")  # RFC 8474 §4.2
    # RFC 9051 §6.3.2: a LIST response with accurate attributes (OLDNAME if normalized)
    given = (command.mailbox, mailbox.name)
    if session.rev2 and not announce_normalized(session, mailbox.name, given):
        session.untagged(await read_list_line(session, mailbox.name))
    if session.condstore:  # RFC 7162 §3.1.2.1
        session.untagged(f"OK [HIGHESTMODSEQ {view.modseq}] Highest")
    qresync = command.qresync
    if qresync is not None and qresync.uidvalidity == mailbox.uidvalidity:
        await sync.qresync_select(session, view, qresync, uidnext)  # RFC 7162 §3.2.5.1
    session.saved_result = []  # RFC 5182 §2.1: SELECT and EXAMINE reset "$"
    mode = "READ-ONLY" if command.readonly else "READ-WRITE"
    return f"[{mode}] {'EXAMINE' if command.readonly else 'SELECT'} completed"


# -- CREATE / DELETE / RENAME / SUBSCRIBE ------------------------------------------------


async def handle_create(session: Session, command: cmd.Create) -> str:
    if isinstance(command.mailbox, InvalidName):
        check_name(command.mailbox)
    name = command.mailbox.rstrip(SEPARATOR)  # RFC 3501 §6.3.3: trailing separator is a hint
    if name == "INBOX":
        raise CommandNo("INBOX always exists", "ALREADYEXISTS")
    check_name(name)
    if session.rev2:
        check_net_unicode(name)
    uses = list(command.special_use)  # the parser gives known attributes their canonical case
    unknown = [u for u in uses if u not in SPECIAL_USES]
    if unknown or len(uses) > 1:  # RFC 6154 §3: NO [USEATTR]
        raise CommandNo("Unsupported special-use attribute", "USEATTR")
    changes = coi.on_create(session, name)
    mailbox = await session.store.create_mailbox(
        session.user_id, name, uses[0] if uses else "", server_metadata=changes, origin=session
    )
    await coi.complete_enable(session, changes)
    announce_normalized(session, name, (command.mailbox, name))  # RFC 9051 §6.3.4
    return f"[MAILBOXID ({session.store.mailboxid(mailbox)})] CREATE completed"  # RFC 8474 §4.1


async def handle_delete(session: Session, command: cmd.Delete) -> str:
    if command.mailbox == "INBOX":
        raise CommandNo("INBOX cannot be deleted", "CANNOT")
    mailbox = await find(session, command.mailbox)
    if session.selected is not None and session.selected.mailbox_id == mailbox.id:
        session.deselect()
    try:
        await session.store.delete_mailbox(
            session.user_id,
            mailbox.name,
            server_metadata=coi.on_delete(session, mailbox.name),
            origin=session,
        )
    except MailboxInUse:
        # RFC 3501 §6.3.4: a \Noselect name with inferiors cannot be deleted;
        # RFC 5530 §3 names the reason HASCHILDREN
        raise CommandNo(f"{command.mailbox} has inferior mailboxes", "HASCHILDREN") from None
    announce_normalized(session, mailbox.name, (command.mailbox, mailbox.name))  # §6.3.9.7
    return "DELETE completed"


async def handle_rename(session: Session, command: cmd.Rename) -> str:
    if isinstance(command.new, InvalidName):
        check_name(command.new)
    old, new = (await find(session, command.old)).name, command.new.rstrip(SEPARATOR)
    if new == "INBOX":
        raise CommandNo("Cannot rename to INBOX", "ALREADYEXISTS")
    check_name(new)
    if session.rev2:
        check_net_unicode(new)
    if new.startswith(old + SEPARATOR):
        raise CommandNo("Cannot rename a mailbox into itself", "CANNOT")
    changes = coi.on_rename(session, old, new)
    await session.store.rename_mailbox(
        session.user_id, old, new, server_metadata=changes, origin=session
    )
    await coi.complete_enable(session, changes)
    announce_normalized(session, new, (command.old, old), (command.new, new))  # RFC 9051 §6.3.6
    return "RENAME completed"


async def handle_subscribe(session: Session, command: cmd.Subscribe) -> str:
    name = (await find(session, command.mailbox)).name
    await session.store.set_subscribed(session.user_id, name, True)
    return "SUBSCRIBE completed"


async def handle_unsubscribe(session: Session, command: cmd.Unsubscribe) -> str:
    # RFC 3501 §6.3.7: unsubscribing a name that no longer exists is allowed
    await session.store.set_subscribed(session.user_id, command.mailbox, False)
    return "UNSUBSCRIBE completed"


# -- LIST / LSUB ---------------------------------------------------------------------


@lru_cache(maxsize=256)
def pattern_regex(pattern: str) -> re.Pattern[str]:
    parts = []
    for ch in pattern:
        if ch == "*":
            parts.append(".*")
        elif ch == "%":
            parts.append("[^/]*")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts), re.DOTALL)


def matches(pattern: str, name: str) -> bool:
    if name == "INBOX":  # INBOX matches case-insensitively (RFC 3501 §6.3.8)
        return bool(pattern_regex(pattern.upper()).fullmatch(name)) or bool(
            pattern_regex(pattern).fullmatch(name)
        )
    if name.startswith("INBOX/") and pattern[:5].upper() == "INBOX":
        pattern = "INBOX" + pattern[5:]  # also as the superior of a name (RFC 3501 §5.1)
    return bool(pattern_regex(pattern).fullmatch(name))


def full_pattern(reference: str, pattern: str) -> str:
    if not reference or pattern.startswith(SEPARATOR):
        return pattern
    if reference.endswith(SEPARATOR):
        return reference + pattern
    return reference + SEPARATOR + pattern if pattern else reference


def list_line(session: Session, name: str, old_name: str | None = None) -> str:
    """A LIST response with accurately computed attributes, for the unsolicited LIST of
    NOTIFY (RFC 5465 §5.4, §5.5) and of IMAP4rev2 (RFC 9051 §6.3.2 after SELECT;
    §6.3.9.7 OLDNAME after a name sent in a denormalized form)."""
    mailboxes = session.store.list_mailboxes(session.user_id)
    subscribed = session.store.subscriptions(session.user_id)
    return _list_line(session, name, mailboxes, subscribed, old_name)


async def read_list_line(session: Session, name: str) -> str:
    """`list_line` for a command handler: the store read is awaited (SELECT's LIST)."""
    mailboxes, subscribed = await session.store.read_mailboxes(session.user_id)
    return _list_line(session, name, mailboxes, subscribed)


def _list_line(
    session: Session,
    name: str,
    listed: list[Mailbox],
    subscribed: set[str],
    old_name: str | None = None,
) -> str:
    mailboxes = {m.name: m for m in listed}
    mailbox = mailboxes.get(name)
    attrs: list[str] = []
    if mailbox is None:
        attrs.append("\\NonExistent")
    else:
        if mailbox.noselect:
            attrs.append("\\Noselect")
        children = any(other.startswith(name + SEPARATOR) for other in mailboxes)
        attrs.append("\\HasChildren" if children else "\\HasNoChildren")
        if mailbox.special_use:
            attrs.append(mailbox.special_use)
    if name in subscribed:
        attrs.append("\\Subscribed")
    line = f'LIST ({" ".join(attrs)}) "{SEPARATOR}" ' + session.mailbox_name(name)
    if old_name is not None:
        line += ' ("OLDNAME" (' + session.mailbox_name(old_name) + "))"
    return line


def announce_normalized(session: Session, name: str, *given: tuple[str, str]) -> bool:
    """RFC 9051 §6.3.9.7: a LIST with OLDNAME when a name was sent denormalized and taken
    as another (its NFC form). `name` is the resulting mailbox; `given` pairs each name
    argument with the name it resolved to, the first one's form as sent is the OLDNAME
    (§6.3.6: RENAME's existing name). True if the LIST was sent."""
    if not any(isinstance(arg, NormalizedName) and arg.supplied != got for arg, got in given):
        return False
    first = given[0][0]
    old = first.supplied if isinstance(first, NormalizedName) else first
    session.untagged(list_line(session, name, old))
    return True


async def handle_list(session: Session, command: cmd.List) -> str:
    selection = {s.upper() for s in command.selection}
    returns = {r.upper() for r in command.return_opts}
    if not command.patterns or (command.patterns == ("",) and not command.extended):
        # RFC 3501 §6.3.8: the hierarchy delimiter and root of the reference
        root = command.reference.split(SEPARATOR)[0] if command.reference else ""
        session.untagged(f'LIST (\\Noselect) "{SEPARATOR}" ' + session.mailbox_name(root))
        return "LIST completed"
    if isinstance(command.reference, InvalidName):
        return "LIST completed"  # RFC 5258 §3: no name can match
    mailboxes, subscribed = await session.store.read_mailboxes(session.user_id)
    by_name = {m.name: m for m in mailboxes}
    names = set(by_name)
    if "SUBSCRIBED" in selection:
        names = set(subscribed)
    # RFC 5258 §3: a pattern that is not valid modified UTF-7 matches nothing (OK, not BAD)
    patterns = [
        full_pattern(command.reference, p)
        for p in command.patterns
        if not isinstance(p, InvalidName)
    ]
    all_names = set(by_name)
    parents = {n.rsplit(SEPARATOR, 1)[0] for n in all_names if SEPARATOR in n}
    status_items = tuple(getattr(command, "status_items", ()) or ())
    childinfo: dict[str, bool] = {}
    if "RECURSIVEMATCH" in selection:
        childinfo = _childinfo(names, by_name, selection, patterns)
        names |= set(childinfo)
    criteria = " ".join(f'"{o}"' for o in ("SUBSCRIBED", "SPECIAL-USE") if o in selection)
    for name in sorted(names, key=lambda n: (n != "INBOX", n)):
        if not any(matches(p, name) for p in patterns):
            continue
        mailbox = by_name.get(name)
        info = childinfo.get(name)
        if info is False:  # RFC 5258 §3.5 table: only the children meet the criteria
            pass
        elif "SPECIAL-USE" in selection and (mailbox is None or not mailbox.special_use):
            continue
        attrs: list[str] = []
        if mailbox is None:
            attrs.append("\\NonExistent")
        elif mailbox.noselect:
            attrs.append("\\Noselect")
        if mailbox is not None:
            attrs.append("\\HasChildren" if name in parents else "\\HasNoChildren")
            if mailbox.special_use:
                attrs.append(mailbox.special_use)
        if ("SUBSCRIBED" in returns or "SUBSCRIBED" in selection) and name in subscribed:
            attrs.append("\\Subscribed")
        line = f'LIST ({" ".join(attrs)}) "{SEPARATOR}" ' + session.mailbox_name(name)
        if info is not None:  # RFC 5258 §4 childinfo-extended-item
            line += f' ("CHILDINFO" ({criteria}))'
        session.untagged(line)
        if "STATUS" in returns and status_items and mailbox is not None and not mailbox.noselect:
            session.untagged(await read_status_line(session, mailbox, status_items))
    return "LIST completed"


def _childinfo(
    names: set[str], by_name: dict[str, Mailbox], selection: set[str], patterns: list[str]
) -> dict[str, bool]:
    """RECURSIVEMATCH (RFC 5258 §3, §3.5; RFC 9051 §6.3.9.6): the names, among those
    meeting the selection criteria and their superiors, that have a descendant meeting
    them: True for a name that meets them itself (listed anyway, CHILDINFO added), False
    for one listed only for its descendants. The latter only when one of those
    descendants is not listed itself (it does not match the pattern): redundant
    CHILDINFO is suppressed, as §3.5 says servers SHOULD."""
    meeting = sorted(
        n
        for n in names
        if "SPECIAL-USE" not in selection or ((m := by_name.get(n)) is not None and m.special_use)
    )
    superiors: set[str] = set()
    for name in meeting:
        parts = name.split(SEPARATOR)
        superiors.update(SEPARATOR.join(parts[:i]) for i in range(1, len(parts)))
    found: dict[str, bool] = {}
    met = set(meeting)
    for name in superiors:
        prefix = name + SEPARATOR
        start = bisect_left(meeting, prefix)
        below = []
        for child in meeting[start:]:
            if not child.startswith(prefix):
                break
            below.append(child)
        if not below:
            continue
        if name in met:
            found[name] = True
        elif any(not any(matches(p, c) for p in patterns) for c in below):
            found[name] = False
    return found


async def handle_lsub(session: Session, command: cmd.Lsub) -> str:
    if isinstance(command.reference, InvalidName) or isinstance(command.pattern, InvalidName):
        return "LSUB completed"
    pattern = full_pattern(command.reference, command.pattern)
    listed, subscribed = await session.store.read_mailboxes(session.user_id)
    existing = {m.name: m for m in listed}
    shown: set[str] = set()
    for name in sorted(subscribed, key=lambda n: (n != "INBOX", n)):
        if matches(pattern, name):
            mailbox = existing.get(name)
            attrs = "\\Noselect" if mailbox is None or mailbox.noselect else ""
            session.untagged(f'LSUB ({attrs}) "{SEPARATOR}" ' + session.mailbox_name(name))
            shown.add(name)
            continue
        # RFC 3501 §6.3.9: with "%", an unsubscribed superior of a subscribed name is
        # listed with \Noselect
        parts = name.split(SEPARATOR)
        for depth in range(1, len(parts)):
            superior = SEPARATOR.join(parts[:depth])
            if superior not in shown and superior not in subscribed and matches(pattern, superior):
                session.untagged(
                    f'LSUB (\\Noselect) "{SEPARATOR}" ' + session.mailbox_name(superior)
                )
                shown.add(superior)
    return "LSUB completed"


# -- STATUS ---------------------------------------------------------------------------


def status_line(session: Session, mailbox: Mailbox, items: tuple[str, ...]) -> str:
    """The STATUS response for NOTIFY's listener (a synchronous store read)."""
    mailbox = _live_floor(session, mailbox)
    return _status_line(session, mailbox, session.store.status(mailbox), items)


async def read_status_line(session: Session, mailbox: Mailbox, items: tuple[str, ...]) -> str:
    """`status_line` for a command handler (LIST-STATUS): the store read is awaited."""
    mailbox = _live_floor(session, mailbox)
    return _status_line(session, mailbox, await session.store.read_status(mailbox), items)


def _live_floor(session: Session, mailbox: Mailbox) -> Mailbox:
    """The mailbox with the \\Recent floor of this process's live state, when that is
    ahead of the stored one (RFC 3501 §2.3.2)."""
    floor = session.server.recent_floor(mailbox)
    return mailbox if floor == mailbox.recent_floor else replace(mailbox, recent_floor=floor)


def _status_line(
    session: Session, mailbox: Mailbox, status: MailboxStatus, items: tuple[str, ...]
) -> str:
    values: dict[str, int | str] = {
        "MESSAGES": status.messages,
        "RECENT": status.recent,
        "UIDNEXT": status.uidnext,
        "UIDVALIDITY": status.uidvalidity,
        "UNSEEN": status.unseen,
        "HIGHESTMODSEQ": status.highestmodseq,
        "SIZE": status.size,
        "DELETED": status.deleted,  # RFC 9051 §6.3.11
    }
    if "MAILBOXID" in items:  # RFC 8474 §4.3: "MAILBOXID" SP "(" objectid ")"
        values["MAILBOXID"] = f"({session.store.mailboxid(mailbox)})"
    body = " ".join(f"{item} {values[item]}" for item in items if item in values)
    return "STATUS " + session.mailbox_name(mailbox.name) + f" ({body})"


async def handle_status(session: Session, command: cmd.Status) -> str:
    if "HIGHESTMODSEQ" in command.items:
        session.enable_condstore()  # RFC 7162 §3.1: a CONDSTORE enabling command
    name = command.mailbox
    if isinstance(name, InvalidName):
        raise CommandNo("Mailbox name is not valid modified UTF-7", "NONEXISTENT")
    # the mailbox and its counts in one read (see `_lookup` for the second name)
    found = await session.store.read_mailbox_status(session.user_id, name)
    if found is None and isinstance(name, NormalizedName):
        found = await session.store.read_mailbox_status(session.user_id, name.supplied)
    if found is None:
        raise CommandNo(f"Mailbox does not exist: {name}", "NONEXISTENT")
    mailbox, status = found
    if mailbox.noselect:
        raise CommandNo(f"{command.mailbox} has no status", "CANNOT")
    live = _live_floor(session, mailbox)
    if live.recent_floor > mailbox.recent_floor and "RECENT" in command.items:
        status = await session.store.read_status(live)  # counted above the live floor
    session.untagged(_status_line(session, live, status, command.items))
    return "STATUS completed"


# -- APPEND --------------------------------------------------------------------------


async def handle_append(session: Session, command: cmd.Append) -> str:
    mailbox, usage = await find_target_and_usage(session, command.mailbox)
    if not command.messages:
        raise CommandBad("APPEND needs a message")
    limit = session.config.max_literal
    # RFC 4469: a CATENATE message is built first; any failure stores nothing
    datas = [
        item.data if item.catenate is None else catenate.build(session, item.catenate, limit)
        for item in command.messages
    ]
    if len(command.messages) == 1 and mailbox.special_use == "\\Sent":
        uid = _filed_by_server(session, mailbox, datas[0])
        if uid is not None:
            return f"[APPENDUID {mailbox.uidvalidity} {uid}] APPEND completed (already filed)"
    for data in datas:
        if len(data) > limit:
            raise CommandNo(f"Message larger than APPENDLIMIT {limit}", "TOOBIG")
    refuse_over_quota(usage, sum(len(data) for data in datas))
    messages = []
    for item, data in zip(command.messages, datas, strict=True):
        messages.append(await prepare_async(data, item.flags, item.internal_date))
    validity, uids = await session.store.append(mailbox.id, messages, origin=session)
    uid_text = str(uids[0]) if len(uids) == 1 else f"{uids[0]}:{uids[-1]}"
    return f"[APPENDUID {validity} {uid_text}] APPEND completed"


def _filed_by_server(session: Session, mailbox: Mailbox, raw: bytes) -> int | None:
    """The UID of the copy the server filed at submission, when a client APPENDs the same
    message to Sent (coi.store.sentcopies): the client gets that copy's APPENDUID
    (RFC 4315 §3) and Sent shows the message once."""
    msgid = message_id(raw[:65536])
    if msgid is None:
        return None
    uid = session.store.sent_copies.find(session.user_id, mailbox.id, msgid)
    if uid is None or uid not in session.store.uids(mailbox.id):
        return None  # expunged since: the client's copy is wanted
    return uid


ROUTES: dict[type, Route] = {
    cmd.Select: Route(handle_select, AUTH),
    cmd.Create: Route(handle_create, AUTH),
    cmd.Delete: Route(handle_delete, AUTH),
    cmd.Rename: Route(handle_rename, AUTH),
    cmd.Subscribe: Route(handle_subscribe, AUTH),
    cmd.Unsubscribe: Route(handle_unsubscribe, AUTH),
    cmd.List: Route(handle_list, AUTH),
    cmd.Lsub: Route(handle_lsub, AUTH),
    cmd.Status: Route(handle_status, AUTH),
    cmd.Append: Route(handle_append, AUTH),
}
