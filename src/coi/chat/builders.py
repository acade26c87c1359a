"""Ready-made models for the common answers to a message.

Compose takes a complete :class:`ChatMessage`; these helpers fill in what the
spec asks for (fresh ``chat$`` ids, group ids, References with the first and
last id, In-Reply-To, reply-all recipients, read receipt requests) so that
client code states only what the user did.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from coi.chat import polls
from coi.chat.groups import remaining_members
from coi.chat.headers import chat_references, new_message_id
from coi.chat.model import (
    Address,
    ChatMessage,
    GroupRef,
    MessageKind,
    PollClose,
    PollVote,
    ReadReceipt,
)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _domain(address: Address) -> str:
    return address.addr.rpartition("@")[2] or "localhost"


def _same(a: Address, b: Address) -> bool:
    return a.addr.lower() == b.addr.lower()


def new_message(
    sender: Address,
    recipients: tuple[Address, ...],
    text: str,
    group: GroupRef | None = None,
    request_read_receipt: bool = True,
    read_receipt_from_mail_programs: bool = False,
) -> ChatMessage:
    """A first text message, to one person or (with ``group``) to a group.

    Read receipts are asked of chat clients only unless
    ``read_receipt_from_mail_programs`` (see ``ChatMessage``).
    """
    group_id = group.id if group else None
    return ChatMessage(
        kind=MessageKind.TEXT,
        message_id=new_message_id(_domain(sender), group_id),
        sender=sender,
        recipients=recipients,
        date=_now(),
        subject=group.name if group else "",
        chat_version="1.0",
        group=group,
        text=text,
        read_receipt_to=sender if request_read_receipt else None,
        read_receipt_from_mail_programs=request_read_receipt and read_receipt_from_mail_programs,
    )


def reply(
    original: ChatMessage,
    sender: Address,
    text: str,
    read_receipt_from_mail_programs: bool = False,
    quote: bool = False,
) -> ChatMessage:
    """Answer ``original``: reply-all in groups, same thread, same group; with ``quote``
    its text goes on top, as Delta Chat and mail programs show a reply's context.

    # coi-client-spec: Replying to a Group Message
    """
    if original.group is not None:
        everyone = (
            *([original.sender] if original.sender else []),
            *original.recipients,
            *original.cc,
        )
        recipients: list[Address] = []
        for address in everyone:
            if not _same(address, sender) and all(not _same(address, r) for r in recipients):
                recipients.append(address)
        to = tuple(recipients)
    else:
        to = (
            (original.sender,)
            if original.sender and not _same(original.sender, sender)
            else original.recipients
        )
    group_id = original.group.id if original.group else None
    return ChatMessage(
        kind=MessageKind.TEXT,
        message_id=new_message_id(_domain(sender), group_id),
        sender=sender,
        recipients=to,
        date=_now(),
        subject=original.group.name if original.group else original.subject,
        chat_version="1.0",
        references=chat_references(original.references, original.message_id),
        in_reply_to=original.message_id,
        group=original.group,
        text=text,
        quote=original.text if quote else "",
        read_receipt_to=sender,
        read_receipt_from_mail_programs=read_receipt_from_mail_programs,
    )


def _follow_up(
    original: ChatMessage, sender: Address, kind: MessageKind, previous: ChatMessage | None = None
) -> ChatMessage:
    base = reply(previous or original, sender, "")
    return replace(
        base,
        kind=kind,
        target_message_id=original.message_id,
        recipients=original.recipients
        if _same(original.sender or sender, sender)
        else base.recipients,
    )


def _own_change(
    original: ChatMessage, previous: ChatMessage | None, kind: MessageKind
) -> ChatMessage:
    """Edit or delete of ``original``; In-Reply-To names ``previous`` when given.

    # coi-client-spec: Edit and Delete Messages ("Multiple edits SHOULD reference
    # the last edited message") -- that is In-Reply-To.  Delta Chat applies
    # ``Chat-Edit``/``Chat-Delete`` only when they name the original message,
    # so ``target_message_id`` (written there) is always the original's id.
    An edit handed in as ``original`` stands for its own target.
    """
    if original.kind is MessageKind.EDIT and original.target_message_id:
        previous = previous or original
        original = replace(original, message_id=original.target_message_id)
    if previous is not None:
        named = (
            previous.target_message_id
            if previous.kind is MessageKind.EDIT and previous.target_message_id
            else previous.message_id
        )
        if named != original.message_id:
            raise ValueError("previous is neither the original nor an edit of it")
    if original.sender is None:
        raise ValueError(f"cannot {kind} a message without sender")
    return _follow_up(original, original.sender, kind, previous)


def edit(original: ChatMessage, new_text: str, previous: ChatMessage | None = None) -> ChatMessage:
    """Edit request for one's own message (# coi-client-spec: Edit and Delete Messages).

    ``previous`` is the latest edit of ``original``, if any: In-Reply-To names
    it, ``Chat-Edit`` names ``original``.
    """
    return replace(_own_change(original, previous, MessageKind.EDIT), text=new_text)


def delete(original: ChatMessage, previous: ChatMessage | None = None) -> ChatMessage:
    """Delete request for one's own message; ``previous`` as for :func:`edit`."""
    message = _own_change(original, previous, MessageKind.DELETE)
    return replace(message, text="(original message marked as deleted)")


def react(original: ChatMessage, sender: Address, reaction: str) -> ChatMessage:
    """RFC 9078 reaction; an empty ``reaction`` withdraws an earlier one."""
    message = _follow_up(original, sender, MessageKind.REACTION)
    return replace(message, reaction=reaction, read_receipt_to=None)


def read_receipt(original: ChatMessage, reader: Address, user_agent: str = "coi") -> ChatMessage:
    """MDN for ``original``, addressed to its Disposition-Notification-To.

    # coi-client-spec: Sending Read Receipts
    """
    if original.read_receipt_to is None:
        raise ValueError("the message does not ask for a read receipt")
    return ChatMessage(
        kind=MessageKind.READ_RECEIPT,
        message_id=new_message_id(_domain(reader)),
        sender=reader,
        recipients=(original.read_receipt_to,),
        date=_now(),
        subject="Chat: Read receipt",
        chat_version="1.0",
        references=chat_references(original.references, original.message_id),
        text="Your message was displayed.",
        receipt=ReadReceipt(
            original.message_id,
            final_recipient=f"rfc822;{reader.addr}",
            reporting_ua=user_agent,
        ),
    )


def vote(poll_message: ChatMessage, voter: Address, choices: tuple[int, ...]) -> ChatMessage:
    """A vote for ``poll_message`` (see docs/polls.md)."""
    ballot = PollVote(poll_message.message_id, choices)
    message = reply(poll_message, voter, polls.vote_text(ballot, poll_message.poll))
    return replace(message, kind=MessageKind.POLL_VOTE, poll_vote=ballot, read_receipt_to=None)


def close_poll(poll_message: ChatMessage, counts: tuple[int, ...]) -> ChatMessage:
    """Closing message of the poll's creator, with the final counts."""
    if poll_message.sender is None:
        raise ValueError("poll without sender")
    closing = PollClose(poll_message.message_id, counts)
    message = reply(poll_message, poll_message.sender, polls.close_text(closing, poll_message.poll))
    return replace(
        message,
        kind=MessageKind.POLL_CLOSE,
        poll_close=closing,
        recipients=poll_message.recipients,
        read_receipt_to=None,
    )


def leave_group(last_message: ChatMessage, me: Address, text: str) -> ChatMessage:
    """``groupleft`` with Reply-To set to the members who stay.

    # coi-client-spec: Leaving a Group: Group Participant Left Message
    """
    if last_message.group is None:
        raise ValueError("not a group message")
    message = reply(last_message, me, text)
    return replace(
        message,
        kind=MessageKind.GROUP_LEFT,
        reply_to=remaining_members(message, me.addr),
        read_receipt_to=None,
    )
