"""The COI filter as a pure function (coi-server-spec: Configure Message Filtering)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from coi.delivery.blocking import blocked_hashes
from coi.delivery.dsn import Failure, build_dsn, enhanced_status
from coi.delivery.local import from_addresses
from coi.delivery.routing import (
    COI_DISABLED,
    CoiSettings,
    DisabledCoiSource,
    Route,
    route,
    route_sent,
)


def on(mode: str, root: str = "COI") -> CoiSettings:
    return CoiSettings(True, mode, root)  # type: ignore[arg-type]


@pytest.mark.parametrize("is_chat", [True, False])
@pytest.mark.parametrize("blocked", [True, False])
def test_disabled_filters_nothing(is_chat: bool, blocked: bool) -> None:
    assert route(COI_DISABLED, is_chat, blocked) == Route("INBOX")
    assert DisabledCoiSource().coi_settings(7) == COI_DISABLED


@pytest.mark.parametrize(
    ("mode", "is_chat", "expected"),
    [
        ("none", True, Route("INBOX", ("$Chat",))),
        ("seen", True, Route("INBOX", ("$Chat",))),
        ("active", True, Route("COI/Chats", ("$Chat",))),
        ("none", False, Route("INBOX")),
        ("seen", False, Route("INBOX")),
        ("active", False, Route("INBOX")),
    ],
)
def test_filter_modes(mode: str, is_chat: bool, expected: Route) -> None:
    assert route(on(mode), is_chat, blocked=False) == expected


def test_custom_root_and_blocked() -> None:
    assert route(on("active", "Chat"), True, False).mailbox == "Chat/Chats"
    assert route(on("active"), True, True) == Route("Blocked", ("$Chat",), push=False)
    assert route(on("none"), False, True) == Route("Blocked", (), push=False)


def test_sent_copy() -> None:
    assert route_sent(COI_DISABLED, True, "Sent") == Route("Sent", (), False, True)
    assert route_sent(on("active"), True, "Sent") == Route("COI/Chats", ("$Chat",), False, True)
    assert route_sent(on("none"), True, "Sent") == Route("Sent", ("$Chat",), False, True)
    assert route_sent(on("active"), False, "Sent") == Route("Sent", (), False, True)


def test_blocked_hashes_need_coi_blocked() -> None:
    head = b"Subject: x\r\nCOI-From-Hash: ABC\r\nCOI-From-Hash: def\r\n"
    assert blocked_hashes(head + b"\r\nbody") == frozenset()
    assert blocked_hashes(head + b"COI-Blocked: yes\r\n\r\nbody") == {"abc", "def"}


def test_from_addresses() -> None:
    raw = b'From: "A, B" <A@Example.org>,\r\n c@d.example\r\nTo: x@y\r\n\r\nFrom: no@body\r\n'
    assert from_addresses(raw) == ["a@example.org", "c@d.example"]


def test_dsn_is_a_delivery_status_report() -> None:
    dsn = build_dsn(
        reporting_mta="mx.example.org",
        postmaster="MAILER-DAEMON@example.org",
        sender="alice@example.org",
        original=b"Subject: hi\r\nFrom: alice@example.org\r\n\r\nsecret body\r\n",
        arrival=datetime(2026, 1, 1, tzinfo=UTC),
        failures=[Failure("carol@remote.example", "5.1.1", "550 5.1.1 no such user")],
    )
    text = dsn.decode()
    assert "multipart/report; report-type=delivery-status" in text
    assert "Final-Recipient: rfc822; carol@remote.example" in text
    assert "Action: failed" in text and "Status: 5.1.1" in text
    assert "Subject: hi" in text and "secret body" not in text
    assert enhanced_status("5.7.1 denied", 550) == "5.7.1"
    assert enhanced_status("no", 421) == "4.0.0"
