"""The event bus routes each event to the listeners it concerns."""

from __future__ import annotations

from coi.store.events import ChangesMissed, Event, EventBus, MessagesAdded


def test_changes_missed_reaches_the_mailbox_watchers_alone() -> None:
    bus = EventBus()
    watched: list[Event] = []
    other: list[Event] = []
    user: list[Event] = []
    everything: list[Event] = []
    bus.watch_mailbox(1, watched.append)
    bus.watch_mailbox(2, other.append)
    bus.watch_user(7, user.append)
    bus.watch_all(everything.append)
    assert bus.watched_mailboxes() == [1, 2]
    bus.publish(ChangesMissed(1))
    assert watched == [ChangesMissed(1)] and other == user == everything == []
    added = MessagesAdded(7, 1, (5,), 9)
    bus.publish(added)
    assert watched[-1] == user[-1] == everything[-1] == added and other == []
