from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from coi.chat import polls
from coi.chat.compose import compose_bytes
from coi.chat.model import Address, ChatMessage, MessageKind, Poll, PollClose, PollOption, PollVote
from coi.chat.parse import parse

ALICE = Address("alice@example.org", "Alice")
POLL = Poll(
    "Movie night?",
    (PollOption("E.T."), PollOption("Alien"), PollOption("2019-12-31", True)),
    "Friday",
    multiple_choice=False,
    vote_once=False,
)
POLL_MESSAGE = ChatMessage(
    MessageKind.POLL,
    message_id="chat$poll@example.org",
    sender=ALICE,
    date=datetime(2020, 1, 1, tzinfo=UTC),
    poll=POLL,
)


def _vote(mid: str, who: str, *choices: int) -> ChatMessage:
    return ChatMessage(
        MessageKind.POLL_VOTE,
        message_id=mid,
        sender=Address(who),
        poll_vote=PollVote("chat$poll@example.org", choices),
    )


def test_poll_message_has_readable_fallback_and_parses_back() -> None:
    raw = compose_bytes(POLL_MESSAGE)
    text = raw.decode()
    assert "1. E.T." in text and "Choose one option" in text
    back = parse(raw)
    assert back.kind is MessageKind.POLL
    assert back.poll == POLL
    assert back.text.startswith("Poll: Movie night?")


def test_vote_and_close_compose_and_parse() -> None:
    vote = replace(
        _vote("chat$v@example.org", "bob@example.org", 1),
        date=datetime(2020, 1, 1, tzinfo=UTC),
        in_reply_to="chat$poll@example.org",
    )
    back = parse(compose_bytes(vote))
    assert back.poll_vote == PollVote("chat$poll@example.org", (1,))
    assert "My vote: 2." in back.text
    close = ChatMessage(
        MessageKind.POLL_CLOSE,
        message_id="chat$c@example.org",
        sender=ALICE,
        date=datetime(2020, 1, 1, tzinfo=UTC),
        poll_close=PollClose("chat$poll@example.org", (0, 1, 0)),
    )
    back = parse(compose_bytes(close))
    assert back.kind is MessageKind.POLL_CLOSE
    assert back.poll_close == close.poll_close


def test_tally_single_choice_revote_and_close() -> None:
    result = polls.tally(
        POLL_MESSAGE,
        [
            _vote("v1", "bob@example.org", 0),
            _vote("v2", "bob@example.org", 1),  # re-vote replaces
            _vote("v3", "carol@example.org", 0, 1),  # two options in a single-choice poll
            _vote("v4", "dave@example.org", 7),  # unknown option
            ChatMessage(
                MessageKind.POLL_CLOSE,
                message_id="c0",
                sender=Address("bob@example.org"),
                poll_close=PollClose("chat$poll@example.org"),
            ),  # not the creator
            _vote("v5", "erin@example.org", 2),
            ChatMessage(
                MessageKind.POLL_CLOSE,
                message_id="c1",
                sender=ALICE,
                poll_close=PollClose("chat$poll@example.org"),
            ),
            _vote("v6", "frank@example.org", 2),  # after close
        ],
    )
    assert result.counts == (0, 1, 1)
    assert result.closed
    assert result.ignored == ("v3", "v4", "v6")


def test_tally_vote_once_keeps_the_first_vote() -> None:
    once = replace(POLL_MESSAGE, poll=replace(POLL, vote_once=True, multiple_choice=True))
    result = polls.tally(
        once, [_vote("v1", "bob@example.org", 0, 2), _vote("v2", "bob@example.org", 1)]
    )
    assert result.counts == (1, 0, 1)
    assert result.ignored == ("v2",)
