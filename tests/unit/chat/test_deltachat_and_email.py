"""Messages of other chat-over-email clients and of plain mail programs."""

from __future__ import annotations

from coi.chat.groups import conversation_of
from coi.chat.model import Dialect, MessageKind
from coi.chat.parse import parse

from .conftest import parsed


def test_delta_one_to_one() -> None:
    m = parsed("deltachat/plain-one_to_one.eml")
    assert m.dialect is Dialect.DELTA_CHAT
    assert m.kind is MessageKind.TEXT
    assert m.text == "hello bob, this is alice [720bad-b]"
    assert m.group is None
    assert conversation_of(m) == "contact:alice@example.org"
    assert conversation_of(m, me="alice@example.org") == "contact:bob@example.org"


def test_delta_ad_hoc_group_has_name_but_no_id() -> None:
    m = parsed("deltachat/plain-group.eml")
    assert m.group is not None
    assert (m.group.id, m.group.name) == (None, "COI group 720bad")
    assert conversation_of(m).startswith("adhoc:")


def test_delta_group_with_id_from_encrypted_inner_message() -> None:
    m = parsed("deltachat/e2ee-group.inner.eml")
    assert m.group is not None
    assert m.group.id == "likfbxSDFwNqW8VKOzjkxk39"
    assert m.read_receipt_to is not None and m.read_receipt_to.addr == "alice@example.org"
    assert conversation_of(m) == "group:likfbxSDFwNqW8VKOzjkxk39"


def test_delta_attachment() -> None:
    m = parsed("deltachat/plain-attachment.eml")
    assert m.kind is MessageKind.MEDIA
    assert m.text == "file attachment [720bad-e]"
    (attachment,) = m.attachments
    assert attachment.filename == "coi-test-720bad.bin"
    assert attachment.content_type == "application/octet-stream"
    assert len(attachment.data) > 40_000


def test_encrypted_outer_message_is_flagged() -> None:
    m = parsed("deltachat/e2ee-one_to_one.eml")
    assert m.encrypted
    assert m.attachments == ()
    assert any("encrypted" in d for d in m.defects)


DELTA_EDIT = b"""From: <alice@example.org>
To: <bob@example.org>
Date: Sat, 28 Nov 2026 21:00:52 +0000
Message-ID: <edit-1@localhost>
Chat-Version: 1.0
Chat-Edit: <orig-1@localhost>
Content-Type: text/plain; charset="utf-8"

\xe2\x9c\x8f\xef\xb8\x8f corrected text
"""

DELTA_DELETE = b"""From: <alice@example.org>
To: <bob@example.org>
Date: Sat, 28 Nov 2026 21:00:52 +0000
Message-ID: <del-1@localhost>
Chat-Version: 1.0
Chat-Delete: <orig-1@localhost>
Content-Type: text/plain; charset="utf-8"

Deleted
"""

DELTA_MEMBERS = b"""From: <alice@example.org>
To: <bob@example.org>, <carol@example.org>
Date: Sat, 28 Nov 2026 21:00:52 +0000
Message-ID: <m-1@localhost>
Chat-Version: 1.0
Chat-Group-ID: abcdefghijkl
Chat-Group-Name: Team
Chat-Group-Member-Added: carol@example.org
Content-Type: text/plain; charset="utf-8"

Member carol@example.org added.
"""

DELTA_LEFT = DELTA_MEMBERS.replace(
    b"Chat-Group-Member-Added: carol@example.org", b"Chat-Group-Member-Removed: alice@example.org"
)

REACTION = b"""From: <bob@example.org>
To: <alice@example.org>
Date: Sat, 28 Nov 2026 21:00:52 +0000
Message-ID: <r-1@localhost>
In-Reply-To: <orig-1@localhost>
Chat-Version: 1.0
Content-Type: text/plain; charset="utf-8"
Content-Disposition: reaction

\xf0\x9f\x91\x8d
"""


def test_delta_edit_delete_members_and_reaction() -> None:
    edit = parse(DELTA_EDIT)
    assert edit.kind is MessageKind.EDIT
    assert edit.target_message_id == "orig-1@localhost"
    assert edit.text == "corrected text"
    delete = parse(DELTA_DELETE)
    assert (delete.kind, delete.target_message_id) == (MessageKind.DELETE, "orig-1@localhost")
    added = parse(DELTA_MEMBERS)
    assert added.members_added == ("carol@example.org",)
    assert added.group is not None and added.group.name == "Team"
    left = parse(DELTA_LEFT)
    assert left.kind is MessageKind.GROUP_LEFT
    reaction = parse(REACTION)
    assert reaction.kind is MessageKind.REACTION
    assert reaction.reaction == "\U0001f44d"
    assert reaction.target_message_id == "orig-1@localhost"


PLAIN_REPLY = b"""From: Carol <carol@example.com>
To: me@example.com, alice@example.com
Subject: Re: AW: My Crew
Date: Mon, 4 Dec 2019 16:00:00 +0100
Message-ID: <1234@mail.example.com>
In-Reply-To: <chat$group.4321dcba1234.S2571BC@sample.com>
References: <chat$group.4321dcba1234.434571BC@sample.com>
 <chat$group.4321dcba1234.S2571BC@sample.com>
Content-Type: text/plain; charset=ISO-8859-1
Content-Transfer-Encoding: quoted-printable

Sounds good, see you at 8 =E0 la gare!

On Mon, 4 Dec 2019 Me Myself wrote:
> Hi gang, hope you're doing fine!
>
--=20
Carol, sent from her desk
"""


def test_plain_email_reply_lands_in_the_group_with_quotes_folded() -> None:
    m = parse(PLAIN_REPLY)
    assert m.kind is MessageKind.TEXT
    assert m.dialect is Dialect.EMAIL
    assert m.group is not None
    assert (m.group.id, m.group.name) == ("4321dcba1234", "My Crew")
    assert m.text == "Sounds good, see you at 8 \u00e0 la gare!"
    assert "Hi gang" in m.folded_text
    assert "sent from her desk" in m.folded_text
    assert conversation_of(m) == "group:4321dcba1234"
