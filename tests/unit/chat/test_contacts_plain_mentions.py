from __future__ import annotations

from datetime import UTC, datetime

from coi.chat.contacts import StoredContact, address_hash, merge_contacts, normalize_address
from coi.chat.headers import group_id_from_message_id, new_message_id, strip_reply_prefixes
from coi.chat.mentions import find_html_mentions, find_mentions, render_mentions_html
from coi.chat.model import Card, ContactStorage, Mention
from coi.chat.plain import fold


def test_hash_matches_the_spec_example() -> None:
    assert address_hash("John.Doe@COI-dev.org") == (
        "74b3c446c189580045a942b90b7461128bc334b3b67e9f63c0c06189248c9bb0"
    )
    assert normalize_address('"john"@example.com') == "john@example.com"


def test_merge_keeps_tokens_in_newest_fields_and_newest_token_out_per_key() -> None:
    old = StoredContact(
        ContactStorage(Card("Old"), ("h1",), False, ("in-a", "in-x"), ("k1:old", "k2:only")),
        datetime(2019, 1, 1, tzinfo=UTC),
        5,
    )
    new = StoredContact(
        ContactStorage(Card("New"), ("h1", "h2"), True, ("in-b",), ("k1:new",)),
        datetime(2020, 1, 1, tzinfo=UTC),
        3,
    )
    merged = merge_contacts(
        [new, old], token_in_expired=lambda t: t == "in-x", token_out_key=lambda t: t.split(":")[0]
    )
    assert merged.card.name == "New"
    assert merged.blocked
    assert merged.from_hashes == ("h1", "h2")
    assert merged.tokens_in == ("in-a", "in-b")
    assert sorted(merged.tokens_out) == ["k1:new", "k2:only"]
    same_date = StoredContact(
        ContactStorage(Card("Higher UID")), datetime(2020, 1, 1, tzinfo=UTC), 9
    )
    assert merge_contacts([new, same_date]).card.name == "Higher UID"


def test_group_ids_and_subjects() -> None:
    mid = new_message_id("example.com", "4321dcba1234")
    assert group_id_from_message_id(mid) == "4321dcba1234"
    assert group_id_from_message_id("<chat$group.short.x@y>") is None
    for subject in (
        "Re: My Crew",
        "AW: Re: My Crew",
        "SV:My Crew",
        "Fwd: WG: My Crew",
        "RE: [team] My Crew",
        "My Crew",
    ):
        assert strip_reply_prefixes(subject) == "My Crew", subject


def test_mentions_in_text_and_html() -> None:
    text = 'Hi @Gabe:gabe+private@example.com and @"Gabe Lastname":g@example.com, @all!'
    mentions = find_mentions(text)
    assert mentions == (
        Mention("Gabe", "gabe+private@example.com"),
        Mention("Gabe Lastname", "g@example.com"),
        Mention("all", None),
    )
    html = render_mentions_html(text)
    assert '<a class="mention" href="mailto:gabe+private@example.com">@Gabe</a>' in html
    assert find_html_mentions(html) == mentions
    assert find_mentions("mail me at a@b.org") == ()


def test_fold_quotes_and_signature() -> None:
    visible, folded = fold("Sure!\n\nOn Monday Bob wrote:\n> question?\n> more\n\n-- \nAlice")
    assert visible == "Sure!"
    assert folded.startswith("On Monday Bob wrote:")
    assert folded.endswith("Alice")
    visible, folded = fold("> top quote\n\nanswer")
    assert (visible, folded) == ("answer", "> top quote")
    visible, folded = fold("a\n> interleaved\nb")
    assert visible == "a\n> interleaved\nb" and folded == ""


def test_notification_settings_and_the_end_of_a_mute() -> None:
    """coi-client-spec: Contact Storage Message Body (p-notification); coi's x-coi-until."""
    from coi.chat.contacts import format_notification, parse_notification
    from coi.chat.model import Notification

    spec = parse_notification("enabled=true;\n types=sound,banner;sounds=friend;filters=message")
    assert spec == Notification(True, ("sound", "banner"), ("friend",), ("message",))
    assert not spec.muted
    assert parse_notification("enabled=no").muted
    assert parse_notification("enabled=true;types=banner;filters=mention").muted  # mentions only
    muted = Notification(enabled=False, until=datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC))
    text = format_notification(muted)
    assert text == "enabled=false;x-coi-until=2030-01-02T03:04:05Z"
    assert parse_notification(text) == muted
    assert parse_notification("enabled=false;x-coi-until=soon").until is None
