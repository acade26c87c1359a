"""Names and avatars between the coi client (alice) and a real Delta Chat (bob), on coi serve
and on Dovecot."""

from __future__ import annotations

import zlib
from pathlib import Path

from tests.deltachat_peer import DeltaChatPeer
from tests.integration.deltachat.test_with_coi_client import (  # noqa: F401 (fixtures)
    Server,
    env,
    pair,
    peer,
    pytestmark,  # Delta Chat available, timeout
    synced_until,
)

ALICE, BOB = "alice@example.org", "bob@example.org"


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A plain-colour PNG (Delta Chat recodes avatars: a 1x1 image is too small for it)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    row = b"\x00" + bytes(rgb) * width
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + b"\x08\x02\x00\x00\x00"
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(row * height)) + chunk(b"IEND", b""))  # fmt: skip


async def test_names_and_avatars_both_ways(
    env: Server,  # noqa: F811 (the fixtures imported above)
    peer: DeltaChatPeer,  # noqa: F811
    tmp_path: Path,
) -> None:
    alice, bob = await pair(env, peer, tmp_path)
    avatar = tmp_path / "alice.png"
    avatar.write_bytes(png(64, 64, (200, 30, 30)))
    await alice.set_profile(name="Alice Angel", avatar=avatar)
    await alice.send(BOB, "hello bob, this is my profile")
    got = await bob.wait_for_message("hello bob, this is my profile")
    contact = await bob.rpc("get_contact", await bob.contact_id(ALICE))
    assert contact["authName"] == "Alice Angel"
    assert contact["profileImage"], contact

    await bob.set_config("displayname", "Bob Builder")
    bob_avatar = tmp_path / "bob.png"
    bob_avatar.write_bytes(png(64, 64, (30, 30, 200)))
    await bob.set_config("selfavatar", str(bob_avatar))
    await bob.send_text(got.chat_id, "and this is mine")

    def arrived() -> bool:
        info = alice.store.db.execute(
            "SELECT name, avatar FROM profile_card WHERE addr=?", (BOB,)
        ).fetchone()
        return info is not None and info[0] == "Bob Builder" and bool(info[1])

    await synced_until(alice, arrived)
    info = alice.contact_profile(BOB)
    data = Path(info.avatar).read_bytes()
    assert data[:4] in (b"\x89PNG", b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xe1", b"\xff\xd8\xff\xdb")
    [chat] = alice.chats()
    assert chat.name == "Bob Builder"
