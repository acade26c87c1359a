"""The event bus routes each event to the listeners it concerns."""

from __future__ import annotations

from coi.store.events import ChangesMissed, Event, EventBus, MessagesAdded


def test_changes_missed_reaches_every_listener_once() -> None:
    bus = EventBus()
    box: list[Event] = []
    other_box: list[Event] = []
    user: list[Event] = []
    everything: list[Event] = []
    bus.watch_mailbox(1, box.append)
    bus.watch_mailbox(2, other_box.append)
    bus.watch_user(7, user.append)
    bus.watch_all(everything.append)
    bus.publish(ChangesMissed())
    assert box == other_box == user == everything == [ChangesMissed()]
    added = MessagesAdded(7, 1, (5,), 9)
    bus.publish(added)
    assert box[-1] == user[-1] == everything[-1] == added and other_box == [ChangesMissed()]
