"""`coi serve --store postgresql://directory` with users sharded over two PostgreSQL
clusters (coi.store.postgres.sharded): the demo users land on both shards; LOGIN, APPEND,
FETCH, one LMTP transaction to recipients on both shards, IDLE seeing a delivery, and
`coi shard`/`coi user` beside the running server."""

from __future__ import annotations

import asyncio
import imaplib
import json
import re
import smtplib
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from tests import pg
from tests.integration.serverproc import ServerProcess
from tests.integration.test_serve_postgres import _Client, _coi

MESSAGE = (
    b"From: Carol <carol@example.net>\r\nTo: alice@example.org, bob@example.org\r\n"
    b"Subject: to both shards\r\nMessage-ID: <shard-1@example.net>\r\n\r\none for each\r\n"
)


def _count(cluster: pg.Cluster, dsn: str, sql: str) -> int:
    """One number from the database `dsn` names, read with psql (not through coi)."""
    return int(cluster.psql(sql, urlsplit(dsn).path.lstrip("/")).strip())


def test_serve_on_a_sharded_directory(
    tmp_path: Path,
    sharded_dsns: tuple[str, str],
    postgres_cluster: pg.Cluster,
    second_postgres_cluster: pg.Cluster,
) -> None:
    directory, shard = sharded_dsns
    listed = _coi("shard", "list", "--json", "--store", directory)
    assert listed.returncode == 0, listed.stderr
    assert [(s["id"], s["users"]) for s in json.loads(listed.stdout)] == [(0, 0), (1, 0)]
    server = ServerProcess(tmp_path / "data", "--store", directory)
    server.start()  # --demo: alice on shard 0 (the directory), bob on shard 1
    clients: list[_Client] = []
    try:
        listed = _coi("shard", "list", "--json", "--store", directory)
        assert [(s["id"], s["users"]) for s in json.loads(listed.stdout)] == [(0, 1), (1, 1)]
        watcher = _Client(server.port)
        clients.append(watcher)
        watcher.command("a", f"LOGIN bob@example.org {server.password('bob@example.org')}")
        watcher.command("b", "SELECT INBOX")
        watcher.send("c IDLE")
        assert watcher.line().startswith(b"+ ")
        with smtplib.LMTP("127.0.0.1", server.lmtp_port) as lmtp:  # one transaction
            refused = lmtp.sendmail(
                "carol@example.net", ["alice@example.org", "bob@example.org"], MESSAGE
            )
            assert refused == {}
            # LMTP answers DATA once per recipient (RFC 2033 §4.2); smtplib reads the first
            assert lmtp.getreply() == (250, b"2.0.0 <bob@example.org> delivered")
        assert watcher.until(b"EXISTS") == b"* 1 EXISTS\r\n"
        watcher.send("DONE")
        watcher.until(b"c OK")
        # each copy is in its user's shard, on its own cluster
        assert _count(postgres_cluster, directory, "SELECT count(*) FROM messages") == 1
        assert _count(second_postgres_cluster, shard, "SELECT count(*) FROM messages") == 1
        with imaplib.IMAP4("127.0.0.1", server.port) as imap:
            imap.login("alice@example.org", server.password("alice@example.org"))
            typ, data = imap.append("INBOX", "(\\Seen)", None, b"Subject: own\r\n\r\nmine\r\n")
            assert typ == "OK" and b"APPENDUID" in data[0], data
            imap.select("INBOX")
            typ, fetched = imap.fetch("1:2", "(FLAGS BODY.PEEK[])")
            assert typ == "OK"
            assert fetched[0][1].endswith(MESSAGE)  # after delivery's Return-Path
            assert fetched[2][1] == b"Subject: own\r\n\r\nmine\r\n"
            typ, found = imap.search(None, "BODY", "each")
            assert typ == "OK" and found == [b"1"]
        # the admin commands, on the directory, while the server runs
        added = _coi(
            "user", "add", "carol@example.org", "--password-stdin", "--shard", "1",
            "--store", directory,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        added = _coi("user", "add", "dave@example.org", "--password-stdin", "--store", directory)
        assert added.returncode == 0, added.stderr
        listed = _coi("shard", "list", "--json", "--store", directory)
        assert [(s["id"], s["users"]) for s in json.loads(listed.stdout)] == [(0, 2), (1, 2)]
        assert _count(
            second_postgres_cluster, shard, "SELECT count(*) FROM users WHERE address LIKE 'c%'"
        ) == 1  # fmt: skip
        users = _coi("user", "list", "--store", directory)
        assert users.stdout.split() == [
            "alice@example.org",
            "bob@example.org",
            "carol@example.org",
            "dave@example.org",
        ]
        for address in ("carol@example.org", "dave@example.org"):
            with imaplib.IMAP4("127.0.0.1", server.port) as imap:
                imap.login(address, "secret-password")
                assert imap.select("INBOX")[0] == "OK"
        # a closed shard takes new users only when named
        closed = _coi("shard", "close", "0", "--store", directory)
        assert (closed.returncode, closed.stdout) == (0, "shard 0 is closed to new users\n")
        added = _coi("user", "add", "erin@example.org", "--password-stdin", "--store", directory)
        assert added.returncode == 0, added.stderr
        listed = _coi("shard", "list", "--store", directory)
        assert re.fullmatch(
            r"0  2 users  \d+\.\dM  \(the directory\)  \(closed to new users\)",
            listed.stdout.splitlines()[0],
        ), listed.stdout
        shards = json.loads(_coi("shard", "list", "--json", "--store", directory).stdout)
        assert [(s["id"], s["users"], s["closed"]) for s in shards] == [(0, 2, True), (1, 3, False)]
        assert all(s["bytes"] > 1_000_000 for s in shards)  # each database's own size
        assert _coi("shard", "close", "1", "--store", directory).returncode == 0
        full = _coi("user", "add", "frank@example.org", "--password-stdin", "--store", directory)
        assert full.returncode == 1 and full.stderr == (
            "coi: every shard is closed to new users: coi shard open N, or name one with"
            " --shard N\n"
        )
        named = _coi(
            "user", "add", "frank@example.org", "--password-stdin", "--shard", "0",
            "--store", directory,
        )  # fmt: skip
        assert named.returncode == 0, named.stderr
        for number in ("0", "1"):
            opened = _coi("shard", "open", number, "--store", directory)
            assert opened.stdout == f"shard {number} is open to new users\n"
        busy = _coi("shard", "remove", "1", "--store", directory)
        assert (busy.returncode, busy.stderr) == (
            1, "coi: shard 1 still holds 3 users and aliases: coi shard drain 1 moves them"
            " (coi shard close keeps new ones out)\n",
        )  # fmt: skip
        unknown = _coi("shard", "open", "9", "--store", directory)
        assert (unknown.returncode, unknown.stderr) == (
            1, "coi: no shard 9 (coi shard list shows them)\n"
        )  # fmt: skip
        for drain, said in (
            (["9"], "there is no shard 9 (coi shard list shows them)"),
            (["1", "--to", "1"], "shard 1 cannot be drained into itself"),
        ):
            wrong = _coi("shard", "drain", *drain, "--store", directory)
            assert (wrong.returncode, wrong.stderr) == (1, f"coi: shard {drain[0]}: {said}\n")
        # bob moves to shard 0 while his session is open: it is told, and he logs in again
        password = server.password("bob@example.org")
        with imaplib.IMAP4("127.0.0.1", server.port) as imap:
            imap.login("bob@example.org", password)
            imap.select("INBOX")
            uidvalidity = imap.response("UIDVALIDITY")[1]
        moved = _coi("shard", "move", "bob@example.org", "0", "--json", "--store", directory)
        assert moved.returncode == 0, moved.stderr
        assert json.loads(moved.stdout) == {
            "address": "bob@example.org", "source": 1, "target": 0, "mailboxes": 6,
            "messages": 1, "leftovers": [],
        }  # fmt: skip
        assert watcher.until(b"BYE") == b"* BYE Account moved; log in again\r\n"
        with imaplib.IMAP4("127.0.0.1", server.port) as imap:
            imap.login("bob@example.org", password)
            imap.select("INBOX")
            assert imap.response("UIDVALIDITY")[1] == uidvalidity
            typ, fetched = imap.uid("FETCH", "1", "BODY.PEEK[]")
            assert typ == "OK" and fetched[0][1].endswith(MESSAGE)
        with smtplib.LMTP("127.0.0.1", server.lmtp_port) as lmtp:  # delivered on shard 0 now
            assert lmtp.sendmail("carol@example.net", ["bob@example.org"], MESSAGE) == {}
        assert _count(second_postgres_cluster, shard, "SELECT count(*) FROM messages") == 0
        assert _count(postgres_cluster, directory, "SELECT count(*) FROM messages") == 4
        again = _coi("shard", "move", "bob@example.org", "0", "--store", directory)
        assert again.stdout == "bob@example.org is on shard 0\n"
        nobody = _coi("shard", "move", "nobody@example.org", "1", "--store", directory)
        assert (nobody.returncode, nobody.stderr) == (
            1, "coi: nobody@example.org: no such user (coi user list shows them)\n"
        )  # fmt: skip
        # mistakes are one line each
        wrong = _coi(
            "user", "add", "eve@example.org", "--password-stdin", "--shard", "9",
            "--store", directory,
        )  # fmt: skip
        assert wrong.returncode == 1 and "Traceback" not in wrong.stderr
        assert wrong.stderr.strip() == "coi: no shard 9 (coi shard list shows them)"
        unreachable = _coi("shard", "add", "postgresql://u:pw@127.0.0.1:1/x", "--store", directory)
        assert unreachable.returncode == 1 and "Traceback" not in unreachable.stderr
        assert len(unreachable.stderr.strip().splitlines()) == 1
        assert "cannot open the shard" in unreachable.stderr and "pw" not in unreachable.stderr
        # shard 1 emptied and taken out of the map while the server runs
        assert _coi("shard", "close", "1", "--store", directory).returncode == 0
        assert _coi("shard", "close", "0", "--store", directory).returncode == 0
        nowhere = _coi("shard", "drain", "1", "--store", directory)
        assert (nowhere.returncode, nowhere.stderr) == (
            1, "coi: shard 1: no other shard is open to new users: coi shard open N, or --to N\n"
        )  # fmt: skip
        drained = _coi("shard", "drain", "1", "--to", "0", "--store", directory)
        assert drained.returncode == 0, drained.stderr
        assert drained.stdout.splitlines() == [
            "moved carol@example.org from shard 1 to shard 0: 6 mailboxes, 0 messages",
            "moved erin@example.org from shard 1 to shard 0: 6 mailboxes, 0 messages",
            "shard 1 holds no users now (2 moved)",
        ]
        removed = _coi("shard", "remove", "1", "--store", directory)
        assert (removed.returncode, removed.stdout) == (0, "shard 1 is out of the map\n")
        assert _coi("shard", "open", "0", "--store", directory).returncode == 0
        with imaplib.IMAP4("127.0.0.1", server.port) as imap:  # served from shard 0 now
            imap.login("carol@example.org", "secret-password")
            assert imap.select("INBOX")[0] == "OK"
    finally:
        for client in clients:
            client.close()
        assert server.terminate() == 0


def test_an_unreachable_shard_stops_serve_with_one_line(
    tmp_path: Path, sharded_dsns: tuple[str, str], postgres_cluster: pg.Cluster
) -> None:
    directory, _ = sharded_dsns
    postgres_cluster.psql(
        "UPDATE shards SET dsn = 'postgresql://u:pw@127.0.0.1:1/gone' WHERE id = 1",
        urlsplit(directory).path.lstrip("/"),
    )
    listed = _coi("user", "list", "--store", directory)
    assert listed.returncode == 1 and "Traceback" not in listed.stderr
    assert "cannot open shard 1" in listed.stderr and "pw@" not in listed.stderr
    assert len(listed.stderr.strip().splitlines()) == 1
    postgres_cluster.psql(
        "INSERT INTO user_shards (address, shard_id) VALUES ('ghost@example.org', 0)",
        urlsplit(directory).path.lstrip("/"),
    )
    moved = _coi("shard", "move", "ghost@example.org", "1", "--store", directory)
    assert moved.returncode == 1 and "Traceback" not in moved.stderr and "pw@" not in moved.stderr
    assert moved.stderr.startswith("coi: ghost@example.org: the move stopped (")
    assert moved.stderr.endswith("): run it again to finish it\n")


def test_a_delivery_during_a_move_is_deferred_then_lands_on_the_new_shard(
    tmp_path: Path,
    sharded_dsns: tuple[str, str],
    postgres_cluster: pg.Cluster,
    second_postgres_cluster: pg.Cluster,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An LMTP delivery to a user whose rows a move holds waits for the move, then gets
    451 (no 250 was given, so the sending server tries again; no bounce); the next try
    is stored on the target shard, and nothing is left on the source (the Sharding
    section of docs/scale-out.md)."""
    from coi.store.postgres import moving

    directory, shard = sharded_dsns
    server = ServerProcess(tmp_path / "data", "--store", directory, drain=True)
    server.start()  # --demo: bob on shard 1
    copied, release = threading.Event(), threading.Event()
    real_copy = moving._copy

    async def copy_then_hold(*args: Any) -> Any:
        result = await real_copy(*args)
        copied.set()
        await asyncio.to_thread(release.wait, 60)  # the source's rows stay locked meanwhile
        return result

    monkeypatch.setattr(moving, "_copy", copy_then_hold)

    def deliver() -> dict[str, tuple[int, bytes]]:
        with smtplib.LMTP("127.0.0.1", server.lmtp_port) as lmtp:
            try:
                return lmtp.sendmail("carol@example.net", ["bob@example.org"], MESSAGE)
            except smtplib.SMTPDataError as refused:  # every recipient refused
                return {"bob@example.org": (refused.smtp_code, refused.smtp_error)}

    async def scenario() -> dict[str, tuple[int, bytes]]:
        move = asyncio.create_task(moving.move_user(directory, "bob@example.org", 0))
        assert await asyncio.to_thread(copied.wait, 30)
        delivery = asyncio.create_task(asyncio.to_thread(deliver))
        await asyncio.sleep(1.0)
        assert not delivery.done()  # waiting for the mailbox row the move holds
        release.set()
        result = await move
        assert (result.source, result.target, result.messages) == (1, 0, 0)
        return await asyncio.wait_for(delivery, 30)

    try:
        refused = asyncio.run(scenario())
        assert refused == {
            "bob@example.org": (451, b"4.3.0 <bob@example.org>: temporary failure, try again later")
        }
        assert deliver() == {}  # the sending server's next try
        assert _count(second_postgres_cluster, shard, "SELECT count(*) FROM messages") == 0
        assert _count(second_postgres_cluster, shard, "SELECT count(*) FROM users") == 0
        assert _count(postgres_cluster, directory, "SELECT count(*) FROM messages") == 1
        with imaplib.IMAP4("127.0.0.1", server.port) as imap:
            imap.login("bob@example.org", server.password("bob@example.org"))
            imap.select("INBOX")
            typ, fetched = imap.uid("FETCH", "1:*", "BODY.PEEK[]")
            assert typ == "OK" and fetched[0][1].endswith(MESSAGE) and len(fetched) == 2
    finally:
        release.set()
        assert server.terminate() == 0
    log = "".join(server.output)
    assert "delivery deferred user=bob@example.org: deleted or moved meanwhile" in log
    assert "Traceback" not in log  # an expected wait, not a failure
