"""Every example message of the client spec parses into the model it describes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from coi.chat.contacts import address_hash
from coi.chat.model import Address, Dialect, Location, MessageKind, Notification

from .conftest import parsed

CET = timezone(timedelta(hours=1))


def test_01_simple_text_message() -> None:
    m = parsed("spec/01-text-messages.eml")
    assert m.kind is MessageKind.TEXT
    assert m.dialect is Dialect.COI
    assert m.sender == Address("me@example.com", "Me Myself")
    assert m.recipients == (Address("you@recipientdomain.com", "You"),)
    assert m.date == datetime(2019, 12, 4, 15, 51, 37, tzinfo=CET)
    assert m.message_id == "chat$S2571BC.2878&8@sample.com"
    assert m.references == ("chat$434571BC.89A707D2@sample.com",)
    assert m.text == "Hello World\nMy dear friend, this is a message to you!"
    assert m.read_receipt_to == Address("me@example.com", "Me Myself")
    assert m.chat_version == "1.0"
    assert m.defects == ()


def test_02_formatted_text_hides_ignore_parts() -> None:
    m = parsed("spec/02-text-messages.eml")
    assert m.kind is MessageKind.TEXT
    assert m.text == "hello COI world!"
    assert m.html == "<p>hello <b>COI</b> world!</p>"
    assert m.markdown == "hello **COI** world!"
    assert "awesome COI app" not in (m.html or "")
    assert m.email_note == (
        "This is a chat message - consider using my awesome COI app for best experience!"
    )


def test_03_single_image() -> None:
    m = parsed("spec/03-binary-messages.eml")
    assert m.kind is MessageKind.MEDIA
    (image,) = m.attachments
    assert image.content_type == "image/jpeg"
    assert image.filename == "earth.jpg"
    assert image.size == 2048
    assert image.data.startswith(b"Man is distinguished")


def test_04_audio_and_image() -> None:
    m = parsed("spec/04-binary-messages.eml")
    assert [a.content_type for a in m.attachments] == ["audio/webm", "image/jpeg"]
    assert m.attachments[1].filename == "venus.jpg"
    assert m.attachments[1].size == 4096


def test_05_preview_replaces_instead_of_adding_a_part() -> None:
    m = parsed("spec/05-preview-message-parts.eml")
    (video,) = m.attachments
    assert video.content_type == "video/webm"
    assert video.filename == "bigbuckbunny.webm"
    assert video.preview is not None and video.preview.content_type == "image/jpeg"


def test_06_to_08_edit_and_delete_chain() -> None:
    original = parsed("spec/06-edit-and-delete-messages.eml")
    edit = parsed("spec/07-edit-and-delete-messages.eml")
    delete = parsed("spec/08-edit-and-delete-messages.eml")
    assert original.kind is MessageKind.TEXT
    # The spec example says "Chat-Content: edit;" and leaves In-Reply-To's ">" off.
    assert edit.kind is MessageKind.EDIT
    assert edit.target_message_id == original.message_id
    assert edit.text == "My dear friend, this is a message to you!"
    assert delete.kind is MessageKind.DELETE
    assert delete.target_message_id == edit.message_id


def test_09_read_receipt() -> None:
    m = parsed("spec/09-sending-read-receipts.eml")
    assert m.kind is MessageKind.READ_RECEIPT
    assert m.receipt is not None
    assert m.receipt.original_message_id == "chat$199509192301.23456@sample.com"
    assert m.receipt.disposition == "manual-action/MDN-sent-manually; displayed"
    assert m.receipt.final_recipient == "rfc822;you@recipientdomain.com"
    assert m.receipt.reporting_ua == "joes-pc.cs.recipientdomain.com; Foomail 97.1"


def test_10_contact_storage() -> None:
    m = parsed("spec/10-contact-storage-message-example.eml")
    assert m.kind is MessageKind.CONTACT
    assert m.contact is not None
    card = m.contact.card
    assert card.name == "John Doe"
    assert card.nickname == "Johnny"
    assert card.emails == ("john.doe@coi-dev.org", "john.doe@example.com")
    assert card.status == "working from home..."
    assert card.categories == ("friend", "work")
    assert card.birthday == "--12-09"
    assert card.photo.startswith("data:image/png;base64,iVBOR")
    assert card.notification == Notification(
        True, ("sound", "banner"), ("friend",), ("message", "mention")
    )
    assert m.contact.from_hashes == tuple(address_hash(e) for e in card.emails)
    assert not m.contact.blocked


def test_11_profile_storage_with_three_audiences() -> None:
    m = parsed("spec/11-user-profile-storage-message.eml")
    assert m.kind is MessageKind.PROFILE
    assert [p.categories for p in m.profiles] == [("friend", "family"), ("work",), ()]
    assert m.profiles[0].card.birthday == "1998-12-24"
    assert m.profiles[1].card.emails == ("angel@work-example.com",)
    assert m.profiles[1].card.status == "working from home..."


def test_12_profile_part_inside_a_chat_message() -> None:
    m = parsed("spec/12-user-profile-information-message-part.eml")
    assert m.kind is MessageKind.TEXT
    assert m.text == "Hello my friend, this is my first COI message!"
    (profile,) = m.profiles
    assert profile.card.name == "Alice Angel"
    assert profile.card.status == "working from home..."  # x-coi-status
    assert profile.card.birthday == "--04-30"


def test_13_profile_request() -> None:
    m = parsed("spec/13-requesting-profile-information.eml")
    assert m.requests_profile
    assert m.kind is MessageKind.TEXT
    # The example's Disposition-Notification-To is not its From: reported, not fatal.
    assert m.defects == ("Disposition-Notification-To differs from From",)


def test_14_group_message() -> None:
    m = parsed("spec/14-sending-a-chat-message-to-a-group.eml")
    assert m.group is not None
    assert (m.group.id, m.group.name) == ("4321dcba1234", "My Crew")
    assert [a.addr for a in m.recipients] == ["alice@example.com", "bob@example.com"]


def test_15_group_storage() -> None:
    m = parsed("spec/15-group-storage-message.eml")
    assert m.kind is MessageKind.GROUP
    info = m.group_info
    assert info is not None
    assert (info.id, info.name) == ("1234abcd4321", "My Crew")
    assert info.description == "This is just a fun place to hang out virtually"
    assert info.notification == Notification(True, ("banner",), (), ("mention",))
    assert [p.name for p in info.participants] == ["Alice Angel", "John Doe", "Caroll"]
    assert info.participants[0].address_hash.startswith("5457683c")
    assert info.photo.startswith("data:image/png;base64,")


def test_16_groupinfo_part() -> None:
    m = parsed("spec/16-group-information-message-part.eml")
    assert m.text == "Hello folks, let's chat!"
    assert m.group_info is not None
    assert m.group_info.id == "1234abcd4321"
    assert [p.emails for p in m.group_info.participants] == [
        ("alice@example.com",),
        ("john.doe@example.com",),
        ("carrol@example.com",),
    ]


def test_17_group_left() -> None:
    m = parsed("spec/17-leaving-a-group-group-participant-left-message.eml")
    assert m.kind is MessageKind.GROUP_LEFT
    assert [a.addr for a in m.reply_to] == [
        "alice@example.com",
        "carrol@example.com",
        "dean@example.com",
    ]
    assert m.references == (
        "chat$group.1234abcd4321.238788.AB29702@example.com",
        "chat$group.1234abcd4321.123213.213223@example.com",
    )
    assert m.text == "hi guys, I think you can now roll this project on your own! Bye!"


def test_18_group_requested() -> None:
    m = parsed("spec/18-request-group-information.eml")
    assert m.requests_group_info
    assert m.group is not None and m.group.id == "5422989123KJKK"


def test_19_location() -> None:
    m = parsed("spec/19-location-messages.eml")
    assert m.kind is MessageKind.LOCATION
    assert m.location == Location(53.07516, 8.80777)
    assert m.text == "Let's meet here."


def test_20_pinned() -> None:
    m = parsed("spec/20-pinned-messages.eml")
    assert m.pin is not None
    assert m.pin.timeout == datetime(2019, 12, 5, 0, 0, tzinfo=CET)
    assert m.text == "Hello COI world, this message is pinned!"
