"""`coi contacts`, `coi contact add|edit|remove`, `coi block|unblock`, `coi accept` storing
the contact: real processes against our server."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import PASSWORDS
from tests.integration.client.test_cli_chat import add, coi
from tests.integration.conftest import MailEnv

ALICE, BOB, CAROL = "alice@example.org", "bob@example.org", "carol@example.org"


async def test_contacts_from_the_shell(env: MailEnv, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert (await add(env, a, ALICE, PASSWORDS[ALICE]))[0] == 0
    assert (await add(env, b, BOB, PASSWORDS[BOB]))[0] == 0
    assert await coi(a, "contacts") == (0, "no contacts yet\n", "")
    code, out, err = await coi(a, "contact", "add", CAROL, "--name", "Carol")
    assert code == 0 and out == "stored Carol <carol@example.org>\n", err
    code, out, err = await coi(a, "contact", "edit", CAROL, "--name", "Caroline")
    assert code == 0, err
    await coi(b, "send", ALICE, "hi")
    await coi(a, "sync")
    code, out, err = await coi(a, "accept", BOB)  # the user's yes: bob is stored too
    assert code == 0, err
    code, out, _ = await coi(a, "contacts")
    assert out == "bob@example.org\nCaroline <carol@example.org>\n"
    code, out, err = await coi(a, "block", BOB)
    assert code == 0 and out == "blocked bob@example.org  [blocked]\n", err
    code, out, _ = await coi(a, "chats")
    assert out == "no chats yet\n"
    code, out, _ = await coi(a, "contacts", "--json", "--sync")
    assert [(c["address"], c["blocked"]) for c in json.loads(out)] == [
        (BOB, True),
        (CAROL, False),
    ]
    code, out, err = await coi(a, "unblock", BOB)
    assert code == 0 and out == "unblocked bob@example.org\n", err
    code, out, _ = await coi(a, "chats")
    assert BOB in out and "hi" in out
    code, out, err = await coi(a, "contact", "remove", CAROL)
    assert code == 0, err
    code, out, err = await coi(a, "contact", "remove", CAROL)
    assert code == 1 and "no contact" in err
    code, out, _ = await coi(a, "contacts")
    assert out == "bob@example.org\n"
