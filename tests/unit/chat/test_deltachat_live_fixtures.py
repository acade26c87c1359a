"""The recorded Delta Chat 2.65 messages (tests/data/chat/deltachat-live, see its README)
decrypt with the recorded keys into their stored inner parts."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.openpgp_decrypt import decrypt

DATA = Path(__file__).resolve().parents[2] / "data" / "chat" / "deltachat-live"
RECIPIENT = {
    "01-text": "bob",
    "02-reply": "alice",
    "03-edit": "bob",
    "04-delete": "bob",
    "05-reaction": "alice",
    "06-read-receipt": "alice",
    "07-file": "bob",
    "08-group-create": "carol",
}


@pytest.mark.parametrize("name", sorted(RECIPIENT))
def test_fixture_decrypts_to_its_inner_part(name: str) -> None:
    key = (DATA / f"{RECIPIENT[name]}-secret.asc").read_bytes()
    inner = decrypt((DATA / f"{name}.eml").read_bytes(), [key])
    assert inner == (DATA / f"{name}.inner.eml").read_bytes()


def test_group_message_decrypts_for_every_member_and_the_sender() -> None:
    raw = (DATA / "08-group-create.eml").read_bytes()
    for who in ("alice", "bob", "carol"):
        assert b"Chat-Group-Name: Test group" in decrypt(
            raw, [(DATA / f"{who}-secret.asc").read_bytes()]
        )


def test_wrong_key_is_refused() -> None:
    raw = (DATA / "01-text.eml").read_bytes()
    with pytest.raises(ValueError, match="none of the keys"):
        decrypt(raw, [(DATA / "carol-secret.asc").read_bytes()])
