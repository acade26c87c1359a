"""THREAD and UID THREAD (RFC 5256 BASE.6.4.THREAD): ORDEREDSUBJECT and REFERENCES.

The messages are those SEARCH finds; base subjects and sent dates come from the stored
ENVELOPE and Date, as for SORT (`coi.imap.server.sort`); Message-ID, References and
In-Reply-To from the header at the start of each stored message (read incrementally,
never the whole message).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import pairwise

from coi.imap.server import search, sort
from coi.imap.server.session import SELECTED, Route, Session
from coi.imap.wire import commands as cmd
from coi.mail import headers as H
from coi.store.model import MessageRow

_ID_FIELDS = frozenset((b"message-id", b"references", b"in-reply-to"))
_MSG_ID = re.compile(rb"<([^<>]*)>")
_REPLY = re.compile(
    r"^[ \t]*(?:\[[^\[\]]*\][ \t]*)*(?:re|fwd?)[ \t]*(?:\[[^\[\]]*\])?[ \t]*:", re.I
)
_FWD_TRAILER = re.compile(r"\(fwd\)[ \t]*$", re.I)


def normalize_id(text: bytes) -> str | None:
    """A msg-id in one normal form (RFC 5256 REFERENCES: quoting removed, so
    `<"a"@b>` is `<a@b>`); None when it is not a valid `<left@right>`."""
    inner = re.sub(rb"[ \t\r\n]+", b"", text)
    left, at, right = inner.rpartition(b"@")
    if not at or not left or not right:
        return None
    if left.startswith(b'"') and left.endswith(b'"') and len(left) >= 2:
        left = re.sub(rb"\\(.)", rb"\1", left[1:-1])
    return (left + b"@" + right).decode("utf-8", "surrogateescape")


def _ids(value: bytes | None) -> list[str]:
    if not value:
        return []
    out = []
    for m in _MSG_ID.finditer(value):
        found = normalize_id(m.group(1))
        if found is not None:
            out.append(found)
    return out


class _Message:
    """A searched message: its number in the response and what threading needs."""

    __slots__ = ("base", "date", "number", "reply", "seq")

    def __init__(self, item: sort._Sortable, number: int) -> None:
        subject = item.env.subject()
        self.seq = item.seq
        self.number = number
        self.date = (sort._date_key(item), item.seq)  # RFC 5256 §2.2: ties by sequence
        self.base = sort._fold(sort.base_subject(subject))
        squeezed = " ".join(subject.split())
        self.reply = bool(
            _REPLY.match(squeezed)
            or _FWD_TRAILER.search(squeezed)
            or (squeezed[:5].lower() == "[fwd:" and squeezed.endswith("]"))
        )


class _Node:
    """A thread container; `message` None is a dummy."""

    __slots__ = ("children", "message", "parent")

    def __init__(self, message: _Message | None = None) -> None:
        self.message = message
        self.parent: _Node | None = None
        self.children: list[_Node] = []

    def key(self) -> tuple[float, int]:
        """Sent date (then sequence number); a dummy sorts by its first child."""
        if self.message is not None:
            return self.message.date
        return self.children[0].key() if self.children else (0.0, 0)

    def subject(self) -> str:
        """The thread subject (step 5.B.i)."""
        if self.message is not None:
            return self.message.base
        first = self.children[0].message if self.children else None
        return first.base if first is not None else ""

    def adopt(self, child: _Node) -> None:
        if child.parent is not None:
            child.parent.children.remove(child)
        child.parent = self
        self.children.append(child)

    def is_ancestor_of(self, other: _Node) -> bool:
        node: _Node | None = other
        while node is not None:
            if node is self:
                return True
            node = node.parent
        return False


def _sort_tree(nodes: list[_Node]) -> None:
    """Step 6: every set of siblings by sent date, the deepest first."""
    for node in nodes:
        _sort_tree(node.children)
    nodes.sort(key=_Node.key)


def ordered_subject(messages: list[_Message]) -> list[_Node]:
    """ORDEREDSUBJECT: by base subject then sent date; the first message of each subject
    is a thread, the others its children; threads by the sent date of their first."""
    threads: dict[str, _Node] = {}
    for message in sorted(messages, key=lambda m: (m.base, m.date)):
        head = threads.get(message.base)
        if head is None:
            threads[message.base] = _Node(message)
        else:
            head.adopt(_Node(message))
    return sorted(threads.values(), key=_Node.key)


def references(
    messages: list[_Message], headers: Callable[[_Message], dict[bytes, bytes]]
) -> list[_Node]:
    """REFERENCES: steps (1) to (6) of RFC 5256."""
    table: dict[str, _Node] = {}
    nodes: list[_Node] = []

    def container(msg_id: str) -> _Node:
        node = table.get(msg_id)
        if node is None:
            node = table[msg_id] = _Node()
            nodes.append(node)
        return node

    for message in sorted(messages, key=lambda m: m.seq):
        fields = headers(message)
        own = _ids(fields.get(b"message-id"))
        node = table.get(own[0]) if own else None
        if node is not None and node.message is None:  # referenced before: fill the dummy
            node.message = message
        else:  # no Message-ID, or a duplicate: a unique one of its own (step 1.A)
            node = _Node(message)
            nodes.append(node)
            if own and own[0] not in table:
                table[own[0]] = node
        refs = _ids(fields.get(b"references")) or _ids(fields.get(b"in-reply-to"))[:1]
        # (1.A) link the references in order, never changing an existing parent or
        # making a loop
        for parent_id, child_id in pairwise(refs):
            parent, child = container(parent_id), container(child_id)
            if child.parent is None and not child.is_ancestor_of(parent):
                parent.adopt(child)
        # (1.B) the last reference is the parent of this message
        if node.parent is not None:
            node.parent.children.remove(node)
            node.parent = None
        if refs:
            parent = container(refs[-1])
            if not node.is_ancestor_of(parent):
                parent.adopt(node)
    # (2) messages without parents, under the root; (3) dummies pruned
    root = _prune([n for n in nodes if n.parent is None], at_root=True)
    # (4) the threads by sent date (a dummy by its first child)
    for node in root:
        if node.message is None:
            node.children.sort(key=_Node.key)
    root.sort(key=_Node.key)
    # (5) threads with the same base subject gathered
    subjects: dict[str, _Node] = {}
    for node in root:
        subject = node.subject()
        if not subject:
            continue
        known = subjects.get(subject)
        # (5.B.iv) a real message gives way to a dummy, a reply to a non-reply
        if known is None or (
            known.message is not None
            and (node.message is None or (known.message.reply and not node.message.reply))
        ):
            subjects[subject] = node
    slots: list[_Node | None] = list(root)
    at = {id(node): i for i, node in enumerate(root)}
    for node in root:
        if slots[at[id(node)]] is not node:  # merged into another thread meanwhile
            continue
        subject = node.subject()
        known = subjects.get(subject) if subject else None
        if known is None or known is node:
            continue
        slots[at[id(node)]] = None
        if known.message is None and node.message is None:
            for child in list(node.children):
                known.adopt(child)
        elif known.message is None or (
            node.message is not None and node.message.reply and not known.message.reply
        ):
            known.adopt(node)
        else:  # a new dummy takes the subject's place, with both as its children
            dummy = _Node()
            slots[at[id(known)]] = dummy
            at[id(dummy)] = at[id(known)]
            dummy.adopt(known)
            dummy.adopt(node)
            subjects[subject] = dummy
    final = [node for node in slots if node is not None]
    # (6) all siblings by sent date
    _sort_tree(final)
    return final


def _prune(nodes: list[_Node], at_root: bool) -> list[_Node]:
    """Step 3: dummies without children go; a dummy's children take its place, except
    that several children do not become threads of their own at the root."""
    out: list[_Node] = []
    for node in nodes:
        node.children = _prune(node.children, at_root=False)
        for child in node.children:
            child.parent = node
        if node.message is None:
            if not node.children:
                continue
            if not at_root or len(node.children) == 1:
                for child in node.children:
                    child.parent = node.parent
                out.extend(node.children)
                continue
        out.append(node)
    return out


def _members(node: _Node) -> str:
    """Thread members (RFC 5256 THREAD response): numbers from parent to child while
    there is one child, then each sub-thread in parentheses."""
    parts: list[str] = []
    while True:
        if node.message is not None:
            parts.append(str(node.message.number))
        if len(node.children) == 1 and node.message is not None:
            node = node.children[0]
            continue
        if node.children:
            parts.append("".join(f"({_members(c)})" for c in node.children))
        return " ".join(parts)


def thread_text(threads: list[_Node]) -> str:
    return "THREAD" + ("" if not threads else " " + "".join(f"({_members(t)})" for t in threads))


async def handle_thread(session: Session, command: cmd.Thread) -> str:
    view = session.require_selected()
    if search.uses_modseq(command.key):
        session.enable_condstore()  # RFC 7162 §3.1
    rows: list[MessageRow] = await search.search_rows(session, command.key)
    store = session.store
    metas = store.metas([row.blob_id for row in rows])
    messages: list[_Message] = []
    blob_of: dict[int, int] = {}
    for row in rows:
        seq = view.seq_of(row.uid) or 0
        item = sort._Sortable(seq, row, metas.get(row.blob_id))
        message = _Message(item, row.uid if command.uid else seq)
        blob_of[id(message)] = row.blob_id
        messages.append(message)
    if command.algorithm == "ORDEREDSUBJECT":
        threads = ordered_subject(messages)
    else:
        headers = store.header_prefixes(list(blob_of.values()))

        def fields(message: _Message) -> dict[bytes, bytes]:
            return H.first_fields(headers.get(blob_of[id(message)], b""), _ID_FIELDS)

        threads = references(messages, fields)
    session.untagged(thread_text(threads))
    return "THREAD completed"


ROUTES: dict[type, Route] = {cmd.Thread: Route(handle_thread, SELECTED)}
