"""Polls: the format of poll, vote and close messages, and counting votes.

The spec leaves poll messages open; docs/polls.md describes the format
implemented here.  # coi-client-spec: Poll Messages
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from html.parser import HTMLParser

from coi.chat.microformats import esc, find_items, parse_items, text_property
from coi.chat.model import ChatMessage, MessageKind, Poll, PollClose, PollOption, PollVote

MAX_POLL_OPTIONS = 100


def poll_text(poll: Poll) -> str:
    """Readable fallback for mail programs: title, options numbered, how to vote."""
    lines = [f"Poll: {poll.title}"]
    if poll.description:
        lines += ["", poll.description]
    lines.append("")
    lines += [f"{number}. {option.text}" for number, option in enumerate(poll.options, 1)]
    lines.append("")
    how = "Choose one or more options" if poll.multiple_choice else "Choose one option"
    again = "you can vote only once" if poll.vote_once else "you can change your vote later"
    lines.append(f"{how}; {again}. Reply with the option numbers to vote.")
    return "\n".join(lines)


def vote_text(vote: PollVote, poll: Poll | None = None) -> str:
    if not vote.choices:
        return "I withdraw my vote."
    labels = []
    for choice in vote.choices:
        label = f"{choice + 1}."
        if poll is not None and 0 <= choice < len(poll.options):
            label += f" {poll.options[choice].text}"
        labels.append(label)
    return "My vote: " + "; ".join(labels)


def close_text(close: PollClose, poll: Poll | None = None) -> str:
    lines = [
        "The poll is closed." if poll is None else f"The poll \u201c{poll.title}\u201d is closed."
    ]
    for index, count in enumerate(close.counts):
        label = poll.options[index].text if poll and index < len(poll.options) else ""
        lines.append(f"{index + 1}. {label}: {count}".replace(". :", ".:"))
    return "\n".join(lines)


def render_poll(poll: Poll) -> str:
    items = []
    for option in poll.options:
        cls = "dt-poll-option" if option.is_datetime else "p-poll-option"
        items.append(f'<li class="{cls}">{esc(option.text)}</li>')
    choice = "multiple" if poll.multiple_choice else "single"
    voting = "once" if poll.vote_once else "revote"
    choice_text = (
        "You can choose several options." if poll.multiple_choice else "Choose one option."
    )
    voting_text = "You can vote only once." if poll.vote_once else "You can change your vote."
    description = f'<p class="p-summary">{esc(poll.description)}</p>\n' if poll.description else ""
    return (
        '<div class="h-poll">\n'
        f'<p class="p-name">{esc(poll.title)}</p>\n{description}'
        "<ol>\n" + "\n".join(items) + "\n</ol>\n"
        f'<p><data class="p-poll-choice" value="{choice}">{choice_text}</data>\n'
        f'<data class="p-poll-voting" value="{voting}">{voting_text}</data></p>\n'
        "</div>"
    )


def render_vote(vote: PollVote, poll: Poll | None = None) -> str:
    items = []
    for choice in vote.choices:
        label = esc(poll.options[choice].text) if poll and 0 <= choice < len(poll.options) else ""
        items.append(
            f'<li><data class="p-choice" value="{choice + 1}">{choice + 1}. {label}</data></li>'
        )
    return (
        '<div class="h-poll-vote">\n'
        f'<data class="u-poll" value="mid:{esc(vote.poll_id)}">My vote:</data>\n'
        "<ul>\n" + "\n".join(items) + "\n</ul>\n</div>"
    )


def render_close(close: PollClose) -> str:
    items = [
        f'<li><data class="p-count" value="{count}">{index + 1}: {count}</data></li>'
        for index, count in enumerate(close.counts)
    ]
    return (
        '<div class="h-poll-close">\n'
        f'<data class="u-poll" value="mid:{esc(close.poll_id)}">The poll is closed.</data>\n'
        "<ol>\n" + "\n".join(items) + "\n</ol>\n</div>"
    )


class _OptionCollector(HTMLParser):
    """Poll options in document order (mf2py groups them by property name)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.options: list[PollOption] = []
        self._open: bool | None = None
        self._text: list[str] = []
        self._tag = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if "p-poll-option" in classes or "dt-poll-option" in classes:
            self._open = "dt-poll-option" in classes
            self._text = []
            self._tag = tag

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._open is not None and tag == self._tag:
            text = re.sub(r"\s+", " ", "".join(self._text)).strip()
            if len(self.options) < MAX_POLL_OPTIONS:
                self.options.append(PollOption(text, self._open))
            self._open = None


def _strip_mid(value: str) -> str:
    return value.removeprefix("mid:").strip().strip("<>")


def poll_in(html: str) -> Poll | None:
    polls = find_items(parse_items(html), "h-poll")
    if not polls:
        return None
    poll = polls[0]
    collector = _OptionCollector()
    try:
        collector.feed(html)
        collector.close()
    except Exception:
        pass
    return Poll(
        title=text_property(poll, "name"),
        options=tuple(collector.options),
        description=text_property(poll, "summary"),
        multiple_choice=text_property(poll, "poll-choice").lower() != "single",
        vote_once=text_property(poll, "poll-voting").lower() == "once",
    )


def vote_in(html: str, fallback_poll_id: str) -> PollVote | None:
    votes = find_items(parse_items(html), "h-poll-vote")
    if not votes:
        return None
    vote = votes[0]
    choices: list[int] = []
    for value in vote.get("properties", {}).get("choice", []):
        text = value if isinstance(value, str) else str(value.get("value", ""))
        digits = re.match(r"\s*(\d{1,4})", text)
        if digits and int(digits.group(1)) >= 1 and int(digits.group(1)) - 1 not in choices:
            choices.append(int(digits.group(1)) - 1)
    poll_id = _strip_mid(text_property(vote, "poll")) or fallback_poll_id
    return PollVote(poll_id, tuple(choices))


def close_in(html: str, fallback_poll_id: str) -> PollClose | None:
    closes = find_items(parse_items(html), "h-poll-close")
    if not closes:
        return None
    close = closes[0]
    counts: list[int] = []
    for value in close.get("properties", {}).get("count", []):
        text = value if isinstance(value, str) else str(value.get("value", ""))
        digits = re.match(r"\s*(\d{1,9})", text)
        counts.append(int(digits.group(1)) if digits else 0)
    poll_id = _strip_mid(text_property(close, "poll")) or fallback_poll_id
    return PollClose(poll_id, tuple(counts))


@dataclass(frozen=True, slots=True)
class PollResult:
    """Counted votes: per option count, the counted choice of each voter, closed or not."""

    counts: tuple[int, ...]
    votes: tuple[tuple[str, tuple[int, ...]], ...]
    closed: bool
    ignored: tuple[str, ...]  # message ids of votes that did not count


def tally(poll_message: ChatMessage, messages: Iterable[ChatMessage]) -> PollResult:
    """Count the votes for ``poll_message`` among ``messages`` (in arrival order).

    Invalid votes (unknown options, several options in a single-choice poll),
    repeated votes of a vote-once poll and votes after the poll creator closed
    it are ignored.  Only the creator can close a poll.
    """
    poll = poll_message.poll
    if poll is None:
        return PollResult((), (), False, ())
    creator = poll_message.sender.addr.lower() if poll_message.sender else ""
    voters: dict[str, tuple[int, ...]] = {}
    ignored: list[str] = []
    closed = False
    for message in messages:
        voter = message.sender.addr.lower() if message.sender else ""
        if message.kind is MessageKind.POLL_CLOSE and message.poll_close is not None:
            if message.poll_close.poll_id == poll_message.message_id and voter == creator:
                closed = True
            continue
        vote = message.poll_vote
        if message.kind is not MessageKind.POLL_VOTE or vote is None:
            continue
        if vote.poll_id != poll_message.message_id:
            continue
        valid = all(0 <= c < len(poll.options) for c in vote.choices) and (
            poll.multiple_choice or len(vote.choices) <= 1
        )
        if closed or not valid or (poll.vote_once and voter in voters):
            ignored.append(message.message_id)
            continue
        voters[voter] = vote.choices
    counts = [0] * len(poll.options)
    for choices in voters.values():
        for choice in choices:
            counts[choice] += 1
    return PollResult(tuple(counts), tuple(voters.items()), closed, tuple(ignored))
