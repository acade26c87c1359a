"""Delta Chat 2.65 through coi serve: what its chat features look like on the wire, and that
they arrive. Each step captures the raw message Delta Chat sent, as the recipient's INBOX on
coi stored it (tests/deltachat_peer.py: DcAccount.captured).

With COI_DC_RECORD=1 the captured messages and both accounts' exported keys are written to
tests/data/chat/deltachat-live/ (see its README): the fixtures the client's tests decrypt.
Delta Chat's IMAP and SMTP go through ImapTaps (plain), so every command coi answers NO or
BAD is seen: the test fails on any (and on the core's error events), listing them; the
whole IMAP transcript is left in imap-transcript.txt under tmp_path."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.conftest import PASSWORDS, _hash
from tests.deltachat_peer import DcAccount, DeltaChatPeer, ImapTap, unavailable
from tests.integration.conftest import MailEnv, start_mail, stop_mail
from tests.openpgp_decrypt import decrypt

from coi.cli.common import DEFAULT_MAILBOXES

_reason = unavailable()
pytestmark = [
    pytest.mark.skipif(
        _reason is not None and not os.environ.get("CI"),
        reason=f"Delta Chat peer: {_reason}",
    ),
    pytest.mark.timeout(110),
]

ALICE, BOB, CAROL = "alice@example.org", "bob@example.org", "carol@example.org"
# who decrypts each recording (its recipient), and a header its inner part must have
RECIPIENT = {
    "01-text": ("bob", "Chat-Version: 1.0"),
    "02-reply": ("alice", "In-Reply-To: "),
    "03-edit": ("bob", "Chat-Edit: "),
    "04-delete": ("bob", "Chat-Delete: "),
    "05-reaction": ("alice", "Content-Disposition: reaction"),
    "06-read-receipt": ("alice", "report-type=disposition-notification"),
    "07-file": ("bob", 'filename="notes.txt"'),
    "08-group-create": ("carol", "Chat-Group-Name: Test group"),
}
CAROL_PASSWORD = "carol-secret"
DATA = Path(__file__).resolve().parents[2] / "data" / "chat" / "deltachat-live"


@pytest.fixture
async def coi_mail(tmp_path: Path) -> AsyncIterator[MailEnv]:
    env = await start_mail(tmp_path / "coi")
    await env.imap.store.add_user(CAROL, _hash(CAROL_PASSWORD), DEFAULT_MAILBOXES)
    try:
        yield env
    finally:
        await stop_mail(env)


def headers(raw: bytes) -> str:
    return raw.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")


def assert_encrypted(raw: bytes) -> None:
    head = headers(raw)
    assert re.search(r"(?im)^Content-Type: multipart/encrypted", head), head
    assert b"-----BEGIN PGP MESSAGE-----" in raw
    # 2.65 protects its headers: none of Chat-* outside, Subject "[...]", To hidden
    assert not re.search(r"(?im)^Chat-", head), head


async def test_features_through_coi_serve(coi_mail: MailEnv, tmp_path: Path) -> None:
    env = coi_mail
    tls = ("127.0.0.1", env.imap.tls_port, "ssl")
    recorded: dict[str, bytes] = {}
    async with (
        ImapTap(env.imap.port) as tap,
        ImapTap(env.submission_port) as smtp_tap,
        DeltaChatPeer.start(tmp_path / "dc") as dc,
    ):
        imap = ("127.0.0.1", tap.port, "plain")
        smtp = ("127.0.0.1", smtp_tap.port, "plain")
        accounts: dict[str, DcAccount] = {}
        for address, password in (
            (ALICE, PASSWORDS[ALICE]),
            (BOB, PASSWORDS[BOB]),
            (CAROL, CAROL_PASSWORD),
        ):
            accounts[address] = await dc.add_account(address, password, imap=imap, smtp=smtp)
        alice, bob, carol = accounts[ALICE], accounts[BOB], accounts[CAROL]
        for a in accounts.values():
            for b in accounts.values():
                if a is not b:
                    await b.import_vcard(await a.make_vcard())

        # 1:1 encrypted text
        async with bob.captured(imap=tls) as raw:
            first = await alice.send_text(BOB, "Hello Bob, this is Alice.")
        recorded["01-text"] = raw[0]
        got = await bob.wait_for_message("Hello Bob, this is Alice.")
        assert got.encrypted and got.sender == ALICE

        # a reply (quote), back to alice
        async with alice.captured(imap=tls) as raw:
            reply = await bob.send_text(got.chat_id, "Hi Alice, Bob here.", quote=got.id)
        recorded["02-reply"] = raw[0]
        back = await alice.wait_for_message("Hi Alice, Bob here.")
        assert back.encrypted and back.quote == "Hello Bob, this is Alice."
        assert reply

        # an edit of alice's first message
        async with bob.captured(imap=tls) as raw:
            await alice.send_edit(first, "Hello Bob, this is Alice (edited).")
        recorded["03-edit"] = raw[0]
        edited = await bob.wait_for_message(lambda m: m.id == got.id and m.is_edited)
        assert edited.text == "Hello Bob, this is Alice (edited)."

        # delete for everyone
        doomed = await alice.send_text(BOB, "This message will be deleted.")
        victim = await bob.wait_for_message("This message will be deleted.")
        async with bob.captured(imap=tls) as raw:
            await alice.delete_for_all(doomed)
        recorded["04-delete"] = raw[0]
        ids = [m.id for m in await bob.chat_messages(victim.chat_id)]
        for _ in range(100):
            if victim.id not in ids:
                break
            await __import__("asyncio").sleep(0.1)
            ids = [m.id for m in await bob.chat_messages(victim.chat_id)]
        assert victim.id not in ids

        # a reaction from bob to alice's message
        async with alice.captured(imap=tls) as raw:
            await bob.react(got.id, "👍")
        recorded["05-reaction"] = raw[0]
        reacted = await alice.wait_for_message(lambda m: m.id == first and bool(m.reactions))
        assert reacted.reactions == {"👍": 1}

        # a read receipt (MDN): bob reads alice's message
        async with alice.captured(imap=tls) as raw:
            await bob.mark_seen(got.id)
        recorded["06-read-receipt"] = raw[0]

        # a file
        attachment = tmp_path / "notes.txt"
        attachment.write_text("Some notes from Alice.\n")
        async with bob.captured(imap=tls) as raw:
            await alice.send_file(BOB, attachment, text="Here are my notes.")
        recorded["07-file"] = raw[0]
        filed = await bob.wait_for_message("Here are my notes.")
        assert filed.file_name == "notes.txt" and filed.encrypted
        assert filed.file and Path(filed.file).read_bytes() == attachment.read_bytes()

        # a group with three members: alice creates it, bob and carol get it
        group = await alice.create_group("Test group", [BOB, CAROL])
        async with bob.captured(imap=tls) as raw:
            await alice.send_text(group, "Hello group!")
        recorded["08-group-create"] = raw[0]
        for member in (bob, carol):
            hello = await member.wait_for_message("Hello group!")
            assert hello.encrypted
            info = await member.rpc("get_basic_chat_info", hello.chat_id)
            assert info["name"] == "Test group"
            assert len(await member.rpc("get_chat_contacts", hello.chat_id)) == 3

        for raw_bytes in recorded.values():
            assert_encrypted(raw_bytes)

        keys: dict[str, list[Path]] = {}
        for who, acc in (("alice", alice), ("bob", bob), ("carol", carol)):
            keys[who] = await acc.export_keys(tmp_path / "keys" / who)
            assert keys[who], f"{who}: export_self_keys wrote nothing"

        inner: dict[str, bytes] = {}
        secret = {who: next(p for p in paths if "private" in p.name) for who, paths in keys.items()}
        for name, raw_bytes in recorded.items():
            who, header = RECIPIENT[name]
            inner[name] = decrypt(raw_bytes, [secret[who].read_bytes()])
            assert header.encode() in inner[name], (name, inner[name][:2000])

        failures = tap.tagged_failures()
        # Delta Chat switches COMPRESS=DEFLATE (RFC 4978) on (never refused: no failure
        # below), and the tap records the inflated lines that follow
        compressed = [
            line for _, side, line in tap.lines if side == "C" and b" COMPRESS " in line.upper()
        ]
        smtp_errors = [
            line for _, side, line in smtp_tap.lines if side == "S" and line[:1] in b"45"
        ]
        problems = dc.problems()
    report = "".join(
        f"C: {c.decode('utf-8', 'replace')}S: {s.decode('utf-8', 'replace')}" for c, s in failures
    ) + "\n".join(problems)
    (tmp_path / "core-vs-coi.txt").write_text(report)
    (tmp_path / "imap-transcript.txt").write_text(tap.transcript())
    # server bugs seen from Delta Chat: none of its IMAP commands refused, no core errors
    assert not failures, report
    assert compressed, "Delta Chat did not use COMPRESS=DEFLATE"
    assert not smtp_errors, smtp_errors
    assert not [line for line in problems if line.startswith("ERROR")], report

    if os.environ.get("COI_DC_RECORD"):
        DATA.mkdir(parents=True, exist_ok=True)
        for name, raw_bytes in recorded.items():
            (DATA / f"{name}.eml").write_bytes(raw_bytes)
            (DATA / f"{name}.inner.eml").write_bytes(inner[name])
        for who, paths in keys.items():
            for path in paths:
                kind = "secret" if "private" in path.name else "public"
                shutil.copy(path, DATA / f"{who}-{kind}.asc")
