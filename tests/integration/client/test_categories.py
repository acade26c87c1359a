"""Per-category profiles (coi-client-spec: User Profile Storage Message, Contact Storage
Message Body ``p-category``), on coi serve and on Debian's Dovecot.

Alice has a default profile and a variant for "work"; bob is stored as a work contact,
carol without a category.  Bob gets the work variant, carol the default; a changed
variant goes out again to bob only; moving bob to another category sends him the
default.  A group of both carries the default.  Alice's second device sees the variants
and the categories.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.conftest import PASSWORDS, _hash
from tests.integration.client.helpers import Devices, boxes, devices
from tests.integration.client.test_cli_chat import add, coi
from tests.integration.conftest import MailEnv
from tests.plainserver import PlainMailServer

from coi.chat.model import MessageKind
from coi.chat.parse import parse
from coi.cli.common import DEFAULT_MAILBOXES
from coi.client.client import Client

ALICE, BOB, CAROL = "alice@example.org", "bob@example.org", "carol@example.org"


def carried(client: Client, message: int) -> str | None:
    """The status in the profile part of our sent message, None without one."""
    profiles = parse(client.store.raw(message)).profiles
    return profiles[0].card.status if profiles else None


async def scenario(make: Devices, imap: tuple[str, int], password: str, folder: str) -> None:
    alice, alice2 = await make("alice", ALICE), await make("alice2", ALICE)
    bob, carol = await make("bob", BOB), await make("carol", CAROL)
    [acc], [acc2] = alice.accounts(), alice2.accounts()
    alice2.import_key(acc2, alice.export_key(acc))

    await alice.set_profile(name="Alice Angel", status="hello")
    work = await alice.set_profile(status="at work", categories=("work",))
    assert (work.name, work.status, work.categories) == ("Alice Angel", "at work", ("work",))
    await alice.save_contacts(acc, [(BOB, "Bob", None)], categories=("work",))
    await alice.save_contacts(acc, [(CAROL, "Carol", None)])

    # bob gets the work variant, carol the default; the part never names the category
    to_bob = await alice.send(BOB, "hi bob")
    to_carol = await alice.send(CAROL, "hi carol")
    assert carried(alice, to_bob.id) == "at work"
    assert carried(alice, to_carol.id) == "hello"
    assert b"categories" not in alice.store.raw(to_bob.id)
    await bob.sync()
    await carol.sync()
    assert bob.contact_profile(ALICE).status == "at work"
    assert carol.contact_profile(ALICE).status == "hello"
    again = await alice.send(BOB, "still me")
    assert carried(alice, again.id) is None  # bob has the latest version of his variant

    # a changed variant goes again to bob only
    await alice.set_profile(status="in a meeting", categories=("work",))
    to_bob = await alice.send(BOB, "busy")
    to_carol = await alice.send(CAROL, "free")
    assert carried(alice, to_bob.id) == "in a meeting"
    assert carried(alice, to_carol.id) is None
    await bob.sync()
    assert bob.contact_profile(ALICE).status == "in a meeting"

    # one storage message with the variant first and the default last
    stored = await asyncio.to_thread(boxes, imap[0], imap[1], ALICE, password, "")
    opened = [parse(alice.keyring(acc).open(m).raw) for m in stored[folder]]
    [kept] = [m for m in opened if m.kind is MessageKind.PROFILE]
    assert [(p.categories, p.card.status) for p in kept.profiles] == [
        (("work",), "in a meeting"),
        ((), "hello"),
    ]

    # the second device sees the variants and the categories
    await alice2.sync()
    assert [(v.categories, v.status) for v in alice2.profile_variants(acc2)] == [
        (("work",), "in a meeting")
    ]
    assert alice2.contact_profile().status == "hello"
    contacts2 = {c.addr: c.categories for c in alice2.contacts(acc2)}
    assert contacts2 == {BOB: ("work",), CAROL: ()}

    # bob moved to "friend" (no variant for it): he gets the default again
    await alice.save_contacts(acc, [(BOB, None, None)], categories=("friend",))
    moved = await alice.send(BOB, "weekend!")
    assert carried(alice, moved.id) == "hello"
    await bob.sync()
    assert bob.contact_profile(ALICE).status == "hello"

    # a group of a work contact and a default one carries the default, once
    await alice.save_contacts(acc, [(BOB, None, None)], categories=("work",))
    await alice.set_profile(status="hello again")
    chat = alice.create_group("Crew", [BOB, CAROL])
    first = await alice.send(str(chat.id), "hi both")
    assert carried(alice, first.id) == "hello again"
    second = await alice.send(str(chat.id), "again")
    assert carried(alice, second.id) is None
    back = await alice.send(BOB, "just you")
    assert carried(alice, back.id) == "in a meeting"  # he saw the default in the group


async def test_category_profiles_coi_serve(env: MailEnv, tmp_path: Path) -> None:
    await env.imap.store.add_user(CAROL, _hash("carol-secret"), DEFAULT_MAILBOXES)
    passwords = {**PASSWORDS, CAROL: "carol-secret"}
    make = devices(tmp_path, env.imap.port, env.submission_port, passwords)
    await scenario(make, ("127.0.0.1", env.imap.port), PASSWORDS[ALICE], "COI/Contacts")


async def test_category_profiles_dovecot(plain_mail: PlainMailServer, tmp_path: Path) -> None:
    make = devices(tmp_path, plain_mail.imap_port, plain_mail.smtp_port, plain_mail.users)
    imap = (plain_mail.imap_host, plain_mail.imap_port)
    await scenario(make, imap, plain_mail.users[ALICE], "COI.Contacts")


async def test_categories_from_the_shell(env: MailEnv, tmp_path: Path) -> None:
    """`coi contact add --category`, `coi contact edit --category`, `coi profile set
    --category` and `coi profile show`; a mistake is one line."""
    one = tmp_path / "one"
    code, _, err = await add(env, one, ALICE, PASSWORDS[ALICE])
    assert code == 0, err
    code, out, err = await coi(one, "contact", "add", BOB, "--category", "Work", "--json")
    assert code == 0, err
    assert json.loads(out)["categories"] == ["work"]
    code, out, err = await coi(one, "contact", "edit", BOB, "--category", "friend,family")
    assert code == 0, err
    assert "(friend, family)" in out
    code, _, err = await coi(one, "contact", "edit", BOB, "--category", "a;b")
    assert code != 0 and len(err.strip().splitlines()) == 1
    code, _, err = await coi(one, "profile", "set", "--name", "Alice Angel", "--status", "hi")
    assert code == 0, err
    code, _, err = await coi(
        one, "profile", "set", "--category", "friend", "--status", "party"
    )
    assert code == 0, err
    code, out, err = await coi(one, "profile", "show", "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["status"] == "hi"
    assert [(v["categories"], v["name"], v["status"]) for v in shown["variants"]] == [
        (["friend"], "Alice Angel", "party")
    ]
    code, out, err = await coi(one, "contacts", "--json")
    assert code == 0, err
    assert json.loads(out)[0]["categories"] == ["friend", "family"]
