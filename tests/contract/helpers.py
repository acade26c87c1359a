"""Helpers of the store contract tests: backends, messages, users."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from coi.mail.prepare import prepare
from coi.store.model import Mailbox, NewMessage, User
from coi.store.protocol import Store

WHEN = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


@dataclass
class Backend:
    """One database of one backend; `open` returns a new handle on it."""

    name: str
    connect: Callable[[], Awaitable[Store]]
    opened: list[Store] = field(default_factory=list)

    async def open(self) -> Store:
        store = await self.connect()
        self.opened.append(store)
        return store

    def close(self, store: Store) -> None:
        """Closes one handle early (a restart); the fixture closes the others."""
        self.opened.remove(store)
        store.close()


def message(
    subject: str = "hi",
    body: str = "hello",
    *,
    flags: tuple[str, ...] = (),
    extra: str = "",
    when: datetime = WHEN,
) -> NewMessage:
    """A message indexed as APPEND and delivery index it (`coi.mail.prepare`)."""
    raw = (
        f"From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '.')}@example.org>\r\n{extra}\r\n{body}\r\n"
    ).encode()
    return prepare(raw, flags, when)


async def user_with_inbox(store: Store, address: str = "a@x.org") -> tuple[User, Mailbox]:
    user = await store.add_user(address, "hash", [("Sent", "\\Sent"), ("Trash", "\\Trash")])
    inbox = store.get_mailbox(user.id, "INBOX")
    assert inbox is not None
    return user, inbox


def fresh(store: Store, mailbox: Mailbox) -> Mailbox:
    """The mailbox as stored now (counters move with every write)."""
    current = store.mailbox_by_id(mailbox.id)
    assert current is not None
    return current
