"""The COI message model: immutable values that compose and parse produce.

One :class:`ChatMessage` describes any message a chat client meets: COI
messages of every type, Delta Chat messages and plain email.  Fields that do
not apply to a message keep their empty default, so the model reads the same
whatever dialect it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class MessageKind(StrEnum):
    """What a message is for; decides how a client shows or applies it.

    Plain email is TEXT (or MEDIA) too: where a message came from is its
    :class:`Dialect`, not its kind.
    """

    TEXT = "text"
    MEDIA = "media"  # one or more attachments (image, audio, video, file)
    EDIT = "edit"
    DELETE = "delete"
    READ_RECEIPT = "read-receipt"
    REACTION = "reaction"
    CONTACT = "contact"  # contact storage message
    PROFILE = "profile"  # user profile storage message
    GROUP = "group"  # group storage message
    GROUP_LEFT = "group-left"
    LOCATION = "location"
    POLL = "poll"
    POLL_VOTE = "poll-vote"
    POLL_CLOSE = "poll-close"
    EXTENSION = "extension"
    # Recorded but never shown as a bubble: reports that are no read receipt
    # (Delta Chat's key update, sync and webxdc reports, bounces) and Delta
    # Chat system messages; ``ChatMessage.system_event`` says what happened.
    SYSTEM = "system"


class Dialect(StrEnum):
    """Which kind of program wrote the message, as far as headers tell."""

    COI = "coi"
    DELTA_CHAT = "deltachat"
    EMAIL = "email"


@dataclass(frozen=True, slots=True)
class Address:
    """One mailbox: address plus optional display name."""

    addr: str
    name: str = ""

    def __str__(self) -> str:
        return f"{self.name} <{self.addr}>" if self.name else self.addr


@dataclass(frozen=True, slots=True)
class Attachment:
    """A binary part; ``preview`` is the smaller stand-in shown until it loads.

    # coi-client-spec: Binary Messages, Preview Message Parts
    """

    content_type: str
    data: bytes = b""
    filename: str | None = None
    size: int | None = None
    preview: Attachment | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    """Notification settings of a contact or group (``p-notification``).

    # coi-client-spec: Contact Storage Message Body
    """

    enabled: bool = True
    types: tuple[str, ...] = ()
    sounds: tuple[str, ...] = ()
    filters: tuple[str, ...] = ()
    until: datetime | None = None  # x-coi-until: when a mute ends (coi's own key)

    @property
    def muted(self) -> bool:
        """Off, or on for mentions only (``filters`` without ``message``): muted.

        # coi-client-spec: Mentions in Group Messages (a mention notifies when muted)
        """
        return not self.enabled or (bool(self.filters) and "message" not in self.filters)


@dataclass(frozen=True, slots=True)
class Card:
    """A person as described by an h-card."""

    name: str = ""
    emails: tuple[str, ...] = ()
    nickname: str = ""
    photo: str = ""
    status: str = ""
    birthday: str = ""
    key: str = ""
    categories: tuple[str, ...] = ()
    notification: Notification | None = None
    address_hash: str = ""  # p-hash: points to a contact storage message


@dataclass(frozen=True, slots=True)
class ContactStorage:
    """Contact storage message data, headers included.

    # coi-client-spec: Contact Storage Message Headers
    Tokens are opaque: kept byte for byte, never interpreted.
    """

    card: Card = field(default_factory=Card)
    from_hashes: tuple[str, ...] = ()
    blocked: bool = False
    tokens_in: tuple[str, ...] = ()
    tokens_out: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Profile:
    """One profile variant; empty ``categories`` means "everybody else".

    # coi-client-spec: User Profile Storage Message
    """

    card: Card
    categories: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class GroupRef:
    """Which group a message belongs to; ``id`` is None for ad-hoc groups."""

    id: str | None
    name: str = ""


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """Group description from an h-group (``groupinfo`` part or storage message)."""

    id: str | None = None
    name: str = ""
    description: str = ""
    photo: str = ""
    participants: tuple[Card, ...] = ()
    notification: Notification | None = None


@dataclass(frozen=True, slots=True)
class Location:
    """A position (h-geo). # coi-client-spec: Location Messages"""

    latitude: float
    longitude: float
    altitude: float | None = None


@dataclass(frozen=True, slots=True)
class Pin:
    """Pinned message marker. # coi-client-spec: Pinned Messages"""

    timeout: datetime | None = None


@dataclass(frozen=True, slots=True)
class ReadReceipt:
    """An RFC 8098 disposition notification about one or more messages.

    Delta Chat batches receipts: ``Additional-Message-IDs`` (its extension
    field) lists further messages the same notification acknowledges.
    """

    original_message_id: str
    disposition: str = "manual-action/MDN-sent-manually; displayed"
    final_recipient: str = ""
    original_recipient: str = ""
    reporting_ua: str = ""
    additional_message_ids: tuple[str, ...] = ()

    @property
    def message_ids(self) -> tuple[str, ...]:
        """Every message this receipt acknowledges, the original first."""
        return (self.original_message_id, *self.additional_message_ids)


@dataclass(frozen=True, slots=True)
class Mention:
    """``@Name:addr`` or ``@all``; ``addr`` is None for ``@all``."""

    name: str
    addr: str | None

    @property
    def is_all(self) -> bool:
        return self.addr is None


@dataclass(frozen=True, slots=True)
class PollOption:
    """One answer of a poll; ``is_datetime`` for date options (``dt-poll-option``)."""

    text: str
    is_datetime: bool = False


@dataclass(frozen=True, slots=True)
class Poll:
    """A poll (see docs/polls.md). Defaults follow the spec: multiple, re-vote."""

    title: str
    options: tuple[PollOption, ...]
    description: str = ""
    multiple_choice: bool = True
    vote_once: bool = False


@dataclass(frozen=True, slots=True)
class PollVote:
    """A vote: zero-based option indexes; empty withdraws an earlier vote."""

    poll_id: str
    choices: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class PollClose:
    """Closes a poll; ``counts`` are the final votes per option, if known."""

    poll_id: str
    counts: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Extension:
    """A client specific message (``Chat-Content: com.example.Thing``)."""

    name: str
    parts: tuple[Attachment, ...] = ()


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """Everything a client needs to know about one message."""

    kind: MessageKind
    message_id: str = ""
    sender: Address | None = None
    recipients: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    reply_to: tuple[Address, ...] = ()
    date: datetime | None = None
    subject: str = ""
    chat_version: str | None = None
    dialect: Dialect = Dialect.COI
    references: tuple[str, ...] = ()
    in_reply_to: str | None = None
    group: GroupRef | None = None
    text: str = ""
    folded_text: str = ""  # quotes and signature hidden from view
    quote: str = ""  # the answered message's text, quoted on top of a reply (Delta Chat's form)
    html: str | None = None
    markdown: str | None = None
    email_note: str = ""  # shown by mail programs only (Chat-Content: ignore)
    attachments: tuple[Attachment, ...] = ()
    read_receipt_to: Address | None = None
    # Also ask classic mail programs (Disposition-Notification-To)?  By default
    # only chat clients are asked (Chat-Disposition-Notification-To), as Delta
    # Chat does: mail programs would ask their user about every chat message.
    read_receipt_from_mail_programs: bool = False
    target_message_id: str | None = None  # edited, deleted or reacted-to message
    reaction: str | None = None
    receipt: ReadReceipt | None = None
    contact: ContactStorage | None = None
    profiles: tuple[Profile, ...] = ()
    group_info: GroupInfo | None = None
    requests_profile: bool = False
    requests_group_info: bool = False
    members_added: tuple[str, ...] = ()
    members_removed: tuple[str, ...] = ()
    location: Location | None = None
    pin: Pin | None = None
    poll: Poll | None = None
    poll_vote: PollVote | None = None
    poll_close: PollClose | None = None
    extension: Extension | None = None
    mentions: tuple[Mention, ...] = ()
    encrypted: bool = False  # PGP/MIME body this library cannot read
    # Set when the text is a machine-made line, never user text: what happened,
    # e.g. "member-added", "group-name-changed", "securejoin", "key-update".
    system_event: str = ""
    # Delta Chat splits a message with a large file into a pre-message (text) and
    # the full message (file); both halves carry the full message's id here.
    full_message_id: str | None = None
    chat_headers: tuple[tuple[str, str], ...] = ()  # every Chat-*/COI-* header seen
    defects: tuple[str, ...] = ()
