"""The `coi` chat commands as a user runs them: real processes against our server (one
in-process, where a failed first sync is made)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import sys
from pathlib import Path

import pytest
from tests.conftest import PASSWORDS
from tests.integration.conftest import MailEnv

from coi.cli.main import main
from coi.client.client import Client, ClientError

ALICE, BOB = "alice@example.org", "bob@example.org"




async def coi(profile: Path, *args: str, stdin: str = "") -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "coi.cli.main", *args, "--profile", str(profile),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def add(
    env: MailEnv, profile: Path, address: str, password: str, *extra: str
) -> tuple[int, str, str]:
    return await coi(
        profile, "account", "add", address, "--imap", f"127.0.0.1:{env.imap.port}",
        "--smtp", f"127.0.0.1:{env.submission_port}", "--security", "plain",
        "--password-stdin", "--read-receipts", *extra, stdin=password + "\n",
    )  # fmt: skip


async def test_chat_from_the_shell(env: MailEnv, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    code, out, err = await add(env, a, ALICE, PASSWORDS[ALICE])
    assert code == 0, err
    assert "COI server" in out
    assert (await add(env, b, BOB, PASSWORDS[BOB]))[0] == 0
    code, out, err = await coi(a, "account", "list", "--json")
    assert json.loads(out)[0]["address"] == ALICE
    secret = a / "secrets" / ALICE
    assert secret.stat().st_mode & 0o777 == 0o600
    code, out, err = await coi(a, "send", BOB, "hello from the shell")
    assert code == 0, err
    code, out, err = await coi(b, "sync")
    assert code == 0 and "1 new" in out, err
    code, out, _ = await coi(b, "chats")
    assert "contact request" in out and ALICE in out
    code, out, _ = await coi(b, "accept", ALICE)
    assert code == 0
    code, out, _ = await coi(b, "show", ALICE, "--json")
    [msg] = json.loads(out)["messages"]
    assert msg["text"] == "hello from the shell"
    code, out, err = await coi(b, "reply", str(msg["id"]), "hello back")
    assert code == 0, err
    code, out, err = await coi(b, "read", ALICE)
    assert code == 0 and "1 read receipts sent" in out, err
    await coi(a, "sync")
    code, out, _ = await coi(a, "show", BOB)
    assert "hello from the shell" in out and "read" in out
    assert "(reply to #" in out and "hello back" in out


async def test_adding_an_account_fetches_what_is_waiting(env: MailEnv, tmp_path: Path) -> None:
    """README's order: alice writes before bob has a profile; bob's first `chats`, with
    no `sync` between, shows her message as a contact request."""
    a, b = tmp_path / "a", tmp_path / "b"
    assert (await add(env, a, ALICE, PASSWORDS[ALICE]))[0] == 0
    assert (await coi(a, "send", BOB, "are you there?\n\nI am waiting"))[0] == 0
    code, out, err = await add(env, b, BOB, PASSWORDS[BOB])
    assert code == 0, err
    assert out.strip() == f"added {BOB}: COI server, filter none; 1 message fetched"
    code, out, _ = await coi(b, "chats")
    [line] = out.splitlines()  # the chat list shows a message of many lines on one
    assert "contact request" in line and line.endswith(" are you there? I am waiting")
    assert (await coi(a, "send", BOB, "hello?"))[0] == 0
    code, out, _ = await coi(b, "chats")  # as of the last sync
    assert out.endswith(" are you there? I am waiting\n")
    code, out, _ = await coi(b, "chats", "--sync")
    assert code == 0 and out.endswith(" hello?\n")
    code, out, err = await add(env, tmp_path / "c", BOB, PASSWORDS[BOB], "--json")
    assert code == 0, err
    assert json.loads(out) == {"address": BOB, "server": "coi", "first_sync": {"new": 2}}


async def test_an_account_stays_when_its_first_sync_fails(
    env: MailEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """The login and set-up worked, the first sync did not (the connection dropped): the
    account is kept and the line says how to fetch later."""

    async def dropped(self: Client, *args: object, **kwargs: object) -> None:
        raise ClientError(f"{BOB} (127.0.0.1:{env.imap.port}): connection lost")

    monkeypatch.setattr(Client, "sync", dropped)
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORDS[BOB] + "\n"))
    argv = ["account", "add", BOB, "--imap", f"127.0.0.1:{env.imap.port}", "--smtp",
            f"127.0.0.1:{env.submission_port}", "--security", "plain", "--password-stdin",
            "--profile", str(tmp_path / "b")]  # fmt: skip
    assert await asyncio.to_thread(main, argv) == 0  # its own loop, in a thread
    assert capsys.readouterr().out == (
        f"added {BOB}: COI server, filter none; the first sync failed ({BOB}"
        f" (127.0.0.1:{env.imap.port}): connection lost): 'coi sync' tries again\n"
    )
    monkeypatch.undo()
    code, out, _ = await coi(tmp_path / "b", "account", "list")
    assert code == 0 and out.startswith(BOB)


async def test_a_password_is_not_read_from_a_pipe_unasked(tmp_path: Path) -> None:
    code, _, err = await coi(tmp_path / "p", "account", "add", ALICE, stdin="secret\n")
    assert code == 1 and err == "coi: no terminal to ask for the password: use --password-stdin\n"


async def test_wrong_password_is_one_line(env: MailEnv, tmp_path: Path) -> None:
    code, out, err = await add(env, tmp_path / "p", ALICE, "wrong")
    assert code == 1
    assert err.count("\n") == 1 and "Traceback" not in err
    assert ALICE in err
    code, out, _ = await coi(tmp_path / "p", "account", "list", "--json")
    assert json.loads(out) == []  # nothing half-added


async def test_unreachable_server_is_one_line(tmp_path: Path) -> None:
    code, _out, err = await coi(
        tmp_path / "p", "account", "add", ALICE, "--imap", "127.0.0.1:9", "--security",
        "plain", "--password-stdin", stdin="x\n",
    )  # fmt: skip
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert "127.0.0.1:9" in err


async def test_plain_to_a_remote_host_is_refused(tmp_path: Path) -> None:
    code, _out, err = await coi(
        tmp_path / "p", "account", "add", ALICE, "--imap", "192.0.2.1:143", "--security",
        "plain", "--password-stdin", stdin="x\n",
    )  # fmt: skip
    assert code == 1 and "loopback" in err


async def test_unknown_chat_and_message(tmp_path: Path) -> None:
    code, _, err = await coi(tmp_path / "p", "show", "nobody@example.org")
    assert code == 1 and "no chat" in err
    code, _, err = await coi(tmp_path / "p", "edit", "42", "x")
    assert code == 1 and "no message 42" in err
    code, out, _ = await coi(tmp_path / "p", "chats")  # a profile without an account
    assert code == 0 and out == "no account yet: add one with 'coi account add ADDRESS'\n"
    code, _, err = await coi(tmp_path / "p", "watch")
    assert code == 1 and err == "coi: no account yet: add one with 'coi account add ADDRESS'\n"


async def test_self_signed_certificate_needs_consent(env: MailEnv, tmp_path: Path) -> None:
    args = ("account", "add", ALICE, "--imap", f"127.0.0.1:{env.imap.tls_port}",
            "--smtp", f"127.0.0.1:{env.submissions_port}", "--password-stdin")  # fmt: skip
    code, _, err = await coi(tmp_path / "p", *args, stdin=PASSWORDS[ALICE] + "\n")
    assert code == 1 and err.count("\n") == 1
    assert "certificate" in err and "--accept-invalid-cert" in err
    code, _, err = await coi(
        tmp_path / "p", *args, "--accept-invalid-cert", stdin=PASSWORDS[ALICE] + "\n"
    )
    assert code == 0, err
    code, _out, err = await coi(tmp_path / "p", "send", BOB, "over TLS")
    assert code == 0, err


async def test_watch_prints_messages_as_they_arrive(env: MailEnv, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert (await add(env, a, ALICE, PASSWORDS[ALICE]))[0] == 0
    assert (await add(env, b, BOB, PASSWORDS[BOB]))[0] == 0
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "coi.cli.main", "watch", "--json", "--profile", str(a),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        await asyncio.sleep(1.0)  # connected and waiting
        assert (await coi(b, "send", ALICE, "live"))[0] == 0
        line = await asyncio.wait_for(proc.stdout.readline(), 15)
        event = json.loads(line)
        assert event["event"] == "new" and event["message"]["text"] == "live"
    finally:
        proc.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(proc.wait(), 15)
    assert code == 0
    assert proc.stderr is not None
    assert b"Traceback" not in await proc.stderr.read()


async def test_vcard_exchange_makes_the_first_message_encrypted(
    env: MailEnv, tmp_path: Path
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert (await add(env, a, ALICE, PASSWORDS[ALICE]))[0] == 0
    code, _, err = await coi(
        b, "account", "add", BOB, "--imap", f"127.0.0.1:{env.imap.port}",
        "--smtp", f"127.0.0.1:{env.submission_port}", "--security", "plain",
        "--password-stdin", "--encrypt-only", stdin=PASSWORDS[BOB] + "\n",
    )  # fmt: skip
    assert code == 0, err
    code, _, err = await coi(b, "send", ALICE, "in clear?")
    assert code == 1 and "no key known for alice@example.org" in err  # encrypt only
    code, card, _ = await coi(a, "contact", "vcard")
    assert "KEY:data:application/pgp-keys;base64\\," in card.replace("\n ", "")
    code, out, err = await coi(b, "contact", "import", "-", stdin=card)
    assert code == 0 and "alice@example.org: key " in out, err
    code, out, err = await coi(b, "send", ALICE, "secret", "--json")
    assert code == 0, err
    assert json.loads(out)["encrypted"]
    assert (await coi(a, "sync"))[0] == 0
    code, out, _ = await coi(a, "show", BOB, "--json")
    [msg] = json.loads(out)["messages"]
    assert msg["text"] == "secret" and msg["encrypted"] and msg["verified"]


async def test_key_export_and_import_between_devices(env: MailEnv, tmp_path: Path) -> None:
    a, a2 = tmp_path / "a", tmp_path / "a2"
    assert (await add(env, a, ALICE, PASSWORDS[ALICE]))[0] == 0
    assert (await add(env, a2, ALICE, PASSWORDS[ALICE]))[0] == 0
    exported = tmp_path / "alice.key"
    code, _, err = await coi(a, "key", "export", str(exported))
    assert code == 0, err
    assert exported.stat().st_mode & 0o777 == 0o600
    assert (await coi(a, "key", "export", str(exported)))[0] == 1  # never overwritten
    junk = tmp_path / "junk.key"
    junk.write_text("not a key\n")
    code, _, err = await coi(a2, "key", "import", str(junk))
    assert code == 1 and "not a key exported by 'coi key export'" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    code, _, err = await coi(a2, "contact", "import", "-", stdin="hello, no vCard here\n")
    assert code == 1 and "no vCard with a mail address" in err
    code, out, err = await coi(a2, "key", "import", str(exported))
    assert code == 0 and "now uses key" in out, err
    _, card1, _ = await coi(a, "contact", "vcard")
    _, card2, _ = await coi(a2, "contact", "vcard")
    key = [line for line in card1.replace("\n ", "").splitlines() if line.startswith("KEY")]
    assert key and key[0] in card2.replace("\n ", "")


async def test_group_commands(env: MailEnv, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert (await add(env, a, ALICE, PASSWORDS[ALICE]))[0] == 0
    assert (await add(env, b, BOB, PASSWORDS[BOB]))[0] == 0
    code, out, err = await coi(a, "group", "create", "Pair", BOB, "--json")
    assert code == 0, err
    gid = str(json.loads(out)["chat"])
    assert (await coi(a, "send", gid, "hi pair"))[0] == 0
    code, out, err = await coi(a, "group", "rename", gid, "Duo")
    assert code == 0 and 'renamed "Pair" to "Duo"' in out, err
    await coi(b, "sync")
    code, out, err = await coi(b, "group", "info", "Duo", "--json")
    assert code == 0, err
    info = json.loads(out)
    assert (info["name"], info["members"], info["left"]) == ("Duo", [ALICE], False)
    assert (await coi(a, "group", "remove", gid, BOB))[0] == 0
    await coi(b, "sync")
    assert json.loads((await coi(b, "group", "info", "Duo", "--json"))[1])["left"] is True
    code, _, err = await coi(b, "send", "Duo", "still here?")
    assert code == 1 and "no longer a member" in err
    assert (await coi(a, "group", "add", gid, BOB))[0] == 0
    await coi(b, "sync")
    assert json.loads((await coi(b, "group", "info", "Duo", "--json"))[1])["left"] is False
    code, out, err = await coi(b, "group", "leave", "Duo")
    assert code == 0 and "left the group" in out, err
    await coi(a, "sync")
    code, out, _ = await coi(a, "group", "info", gid)
    assert "Duo" in out and BOB not in out
    code, out, _ = await coi(a, "show", gid)
    assert [line.split(": ", 1)[1].split("  [")[0] for line in out.splitlines()[1:]] == [
        "hi pair",
        'renamed "Pair" to "Duo"',
        f"removed {BOB}",
        f"added {BOB}",
        "left the group",
    ]
