"""Delta Chat's reports, system messages and pre-message pairs: recorded, never user text."""

from __future__ import annotations

from pathlib import Path

import pytest

from coi.chat.conversation import ConversationState, apply_messages
from coi.chat.model import MessageKind, ReadReceipt
from coi.chat.parse import parse

from .conftest import DATA

# Every Delta Chat sample: (kind, visible text, system_event).
SAMPLES = {
    "plain-one_to_one.eml": (MessageKind.TEXT, "hello bob, this is alice [720bad-b]", ""),
    "plain-group.eml": (MessageKind.TEXT, "hello group from alice [720bad-d]", ""),
    "plain-attachment.eml": (MessageKind.MEDIA, "file attachment [720bad-e]", ""),
    "e2ee-one_to_one.eml": (MessageKind.TEXT, "", ""),  # encrypted: flagged, nothing to show
    "e2ee-one_to_one.inner.eml": (MessageKind.TEXT, "hello bob, this is alice [57a617-b]", ""),
    "e2ee-group.inner.eml": (MessageKind.TEXT, "hello group from alice [57a617-d]", ""),
    "keyupdate.inner.eml": (
        MessageKind.SYSTEM,
        "This message updates the sender's encryption key and relay list.",
        "key-update",
    ),
}


def test_every_sample_is_listed() -> None:
    assert {p.name for p in (DATA / "deltachat").glob("*.eml")} == set(SAMPLES)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_delta_samples_parse_to_sensible_kinds(name: str) -> None:
    m = parse((DATA / "deltachat" / name).read_bytes())
    assert (m.kind, m.text, m.system_event) == SAMPLES[name]
    assert m.full_message_id is None
    if not m.encrypted:
        assert m.defects == ()


def _delta(headers: str, body: str = "Generated line.", content_type: str = "") -> bytes:
    lines = [
        "From: <alice@example.org>",
        "To: <bob@example.org>, <carol@example.org>",
        "Date: Sat, 28 Nov 2026 21:00:52 +0000",
        "Message-ID: <m-1@localhost>",
        "Chat-Version: 1.0",
        "Chat-Group-ID: abcdefghijkl",
        "Chat-Group-Name: Team",
        *headers.strip().splitlines(),
        content_type or 'Content-Type: text/plain; charset="utf-8"',
        "",
        *body.splitlines(),
    ]
    return ("\r\n".join(lines) + "\r\n").encode()


JSON = "Content-Type: application/json\nContent-Disposition: attachment; filename="


@pytest.mark.parametrize(
    ("headers", "kind", "event"),
    [
        ("Chat-Group-Member-Added: dave@example.org", MessageKind.SYSTEM, "member-added"),
        (
            "Chat-Group-Member-Added: dave@example.org\nSecure-Join: vg-member-added",
            MessageKind.SYSTEM,
            "member-added",
        ),
        ("Chat-Group-Member-Removed: carol@example.org", MessageKind.SYSTEM, "member-removed"),
        ("Chat-Group-Member-Removed: alice@example.org", MessageKind.GROUP_LEFT, "member-removed"),
        ("Chat-Group-Name-Changed: Old name", MessageKind.SYSTEM, "group-name-changed"),
        ("Chat-Group-Description-Changed:", MessageKind.SYSTEM, "group-description-changed"),
        (
            "Chat-Content: group-avatar-changed\nChat-Group-Avatar: 0",
            MessageKind.SYSTEM,
            "group-avatar-changed",
        ),
        (
            "Chat-Content: location-streaming-enabled",
            MessageKind.SYSTEM,
            "location-streaming-enabled",
        ),
        ("Chat-Content: ephemeral-timer-changed", MessageKind.SYSTEM, "ephemeral-timer-changed"),
        ("Chat-Content: protection-enabled", MessageKind.SYSTEM, "protection-enabled"),
        ("Chat-Content: call", MessageKind.SYSTEM, "call"),
        ("Chat-Content: call-ended", MessageKind.SYSTEM, "call-ended"),
        (
            "Secure-Join: vc-request\nSecure-Join-Invitenumber: abc",
            MessageKind.SYSTEM,
            "securejoin",
        ),
        # Ordinary messages carry these too: no event.
        (
            "Chat-Group-Avatar: base64:AAAA\nChat-Group-Description: =?utf-8?B??=",
            MessageKind.TEXT,
            "",
        ),
        ("Ephemeral-Timer: 60", MessageKind.TEXT, ""),
    ],
)
def test_delta_system_messages_are_not_user_text(
    headers: str, kind: MessageKind, event: str
) -> None:
    m = parse(_delta(headers))
    assert (m.kind, m.system_event) == (kind, event)
    assert m.text == "Generated line."  # kept for the record; system_event says not to show it


def test_members_are_still_applied_from_a_system_message() -> None:
    m = parse(_delta("Chat-Group-Member-Added: dave@example.org"))
    assert m.members_added == ("dave@example.org",)
    assert m.group is not None and m.group.id == "abcdefghijkl"


def _report(report_type: str, second: str, extra_headers: str = "") -> bytes:
    return _delta(
        extra_headers,
        body=(f"--b\nContent-Type: text/plain\n\nmachine text\n--b\n{second}\n--b--"),
        content_type=f'Content-Type: multipart/report; report-type={report_type}; boundary="b"',
    )


@pytest.mark.parametrize(
    ("report_type", "second", "event"),
    [
        (
            "status-update",
            JSON + '"status-update.json"\n\n[]',
            "webxdc-update",
        ),
        (
            "multi-device-sync",
            JSON + '"multi-device-sync.json"\n\n{"items":[]}',
            "sync",
        ),
        (
            "delivery-status",
            "Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.org",
            "delivery-report",
        ),
        (
            "disposition-notification",
            "Content-Type: message/disposition-notification\n\n"
            "Disposition: automatic-action/MDN-sent-automatically; processed",
            "report",  # without Autocrypt it is no key update, just a report without receipt
        ),
    ],
)
def test_reports_without_receipt_are_system(report_type: str, second: str, event: str) -> None:
    m = parse(_report(report_type, second))
    assert (m.kind, m.system_event) == (MessageKind.SYSTEM, event)
    assert m.receipt is None
    assert m.defects == ()


def test_status_update_part_alone_is_a_webxdc_update() -> None:
    m = parse(
        _delta(
            "",
            body=(
                "--b\nContent-Type: text/plain\n\n\n--b\nContent-Type: application/json\n"
                'Content-Disposition: attachment; filename="status-update.json"\n\n[]\n--b--'
            ),
            content_type='Content-Type: multipart/mixed; boundary="b"',
        )
    )
    assert (m.kind, m.system_event) == (MessageKind.SYSTEM, "webxdc-update")


def test_batched_read_receipt_lists_every_message() -> None:
    m = parse(
        _report(
            "disposition-notification",
            "Content-Type: message/disposition-notification\n\n"
            "Original-Recipient: rfc822;bob@example.org\n"
            "Final-Recipient: rfc822;bob@example.org\n"
            "Original-Message-ID: <a@localhost>\n"
            "Disposition: manual-action/MDN-sent-automatically; displayed\n"
            "Additional-Message-IDs: <b@localhost> <c@localhost>",
        )
    )
    assert m.kind is MessageKind.READ_RECEIPT
    assert m.receipt is not None
    assert m.receipt.additional_message_ids == ("b@localhost", "c@localhost")
    assert m.receipt.message_ids == ("a@localhost", "b@localhost", "c@localhost")
    assert ReadReceipt("x").message_ids == ("x",)


PRE = b"""From: <alice@example.org>
To: <bob@example.org>
Date: Sat, 28 Nov 2026 21:00:52 +0000
Message-ID: <pre-1@localhost>
Chat-Version: 1.0
Chat-Post-Message-ID: <full-1@localhost>
Content-Type: text/plain; charset="utf-8"

look at this video
"""

FULL = b"""From: <alice@example.org>
To: <bob@example.org>
Date: Sat, 28 Nov 2026 21:00:52 +0000
Message-ID: <full-1@localhost>
Chat-Version: 1.0
Chat-Is-Post-Message: 1
Content-Type: multipart/mixed; boundary="b"

--b
Content-Type: text/plain; charset="utf-8"


--b
Content-Type: video/mp4
Content-Disposition: attachment; filename="v.mp4"
Content-Transfer-Encoding: base64

AAAA
--b--
"""

EDIT = b"""From: <alice@example.org>
To: <bob@example.org>
Date: Sat, 28 Nov 2026 21:00:53 +0000
Message-ID: <edit-1@localhost>
Chat-Version: 1.0
Chat-Edit: <full-1@localhost>
Content-Type: text/plain; charset="utf-8"

look at this film
"""


def test_pre_message_and_full_message_are_one_message() -> None:
    pre, full = parse(PRE), parse(FULL)
    assert (pre.kind, pre.text, pre.full_message_id) == (
        MessageKind.TEXT,
        "look at this video",
        "full-1@localhost",
    )
    assert (full.kind, full.full_message_id) == (MessageKind.MEDIA, "full-1@localhost")
    assert pre.system_event == full.system_event == ""
    for order in ([pre, full], [full, pre]):
        (shown,) = apply_messages(ConversationState(), [*order, parse(EDIT)]).messages
        assert (shown.message_id, shown.kind, shown.text) == (
            "full-1@localhost",
            MessageKind.MEDIA,
            "look at this film",
        )


def test_pre_message_id_also_names_the_pair() -> None:
    state = apply_messages(ConversationState(), [parse(PRE)])
    shown = state.get("pre-1@localhost")
    assert shown is not None and shown.message_id == "full-1@localhost"


def test_older_full_message_header_names_are_read() -> None:
    pre = parse(PRE.replace(b"Chat-Post-Message-ID", b"Chat-Full-Message-Id"))
    full = parse(FULL.replace(b"Chat-Is-Post-Message", b"Chat-Is-Full-Message"))
    assert pre.full_message_id == full.full_message_id == "full-1@localhost"


def test_system_messages_are_no_bubbles() -> None:
    messages = [
        parse(_delta("Chat-Group-Member-Added: dave@example.org")),
        parse((Path(DATA) / "deltachat" / "keyupdate.inner.eml").read_bytes()),
    ]
    assert apply_messages(ConversationState(), messages).messages == ()
