"""The event bus routes each event to the listeners it concerns."""

from __future__ import annotations

import pytest

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


def test_a_failing_listener_does_not_keep_the_event_from_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = EventBus()
    got: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("a bug in one listener")

    bus.watch_mailbox(1, broken)
    bus.watch_mailbox(1, got.append)
    bus.watch_user(7, broken)
    bus.watch_all(got.append)
    added = MessagesAdded(7, 1, (5,), 9)
    bus.publish(added)
    bus.publish(ChangesMissed())
    assert got == [added, added, ChangesMissed(), ChangesMissed()]
    assert [r.getMessage() for r in caplog.records] == [
        "an event listener failed on MessagesAdded",
        "an event listener failed on MessagesAdded",
        "an event listener failed on ChangesMissed",
        "an event listener failed on ChangesMissed",
    ]
