"""`coi serve --store postgresql://...`: the server, delivery and the admin commands on a
PostgreSQL database (issue 17), against the private cluster of tests/pg.py."""

from __future__ import annotations

import imaplib
import smtplib
import socket
import subprocess
import sys
from pathlib import Path

from tests.integration.serverproc import ServerProcess

MESSAGE = (
    b"From: Alice <alice@example.org>\r\nTo: bob@example.org\r\nSubject: on postgres\r\n"
    b"Message-ID: <pg-1@example.org>\r\n\r\nstored in PostgreSQL\r\n"
)


def _coi(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coi.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        input="secret-password\n",
    )


def test_serve_on_postgres_login_append_fetch_and_lmtp(tmp_path: Path, postgres_dsn: str) -> None:
    server = ServerProcess(tmp_path / "data", "--store", postgres_dsn)
    server.start()
    try:
        assert any("(PostgreSQL)" in line for line in server.output)
        assert not list((tmp_path / "data").glob("coi.sqlite3*"))  # nothing kept in SQLite
        with imaplib.IMAP4("127.0.0.1", server.port) as imap:
            imap.login("alice@example.org", server.password("alice@example.org"))
            typ, data = imap.append("INBOX", "(\\Seen)", None, MESSAGE)
            assert typ == "OK" and b"APPENDUID" in data[0], data
            imap.select("INBOX")
            typ, fetched = imap.fetch("1", "(FLAGS BODY.PEEK[])")
            assert typ == "OK"
            assert fetched[0][1] == MESSAGE and b"\\Seen" in fetched[0][0]
            typ, found = imap.search(None, "BODY", "postgresql")
            assert typ == "OK" and found == [b"1"]
        with smtplib.LMTP("127.0.0.1", server.lmtp_port) as lmtp:
            refused = lmtp.sendmail("alice@example.org", ["bob@example.org"], MESSAGE)
            assert refused == {}
        with imaplib.IMAP4("127.0.0.1", server.port) as imap:
            imap.login("bob@example.org", server.password("bob@example.org"))
            typ, data = imap.select("INBOX", readonly=True)
            assert typ == "OK" and data == [b"1"]
            typ, fetched = imap.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            assert typ == "OK" and b"on postgres" in fetched[0][1]
        # the admin commands work on the same database while the server runs
        added = _coi(
            "user", "add", "carol@example.org", "--password-stdin", "--store", postgres_dsn
        )
        assert added.returncode == 0, added.stderr
        listed = _coi("user", "list", "--store", postgres_dsn)
        assert listed.stdout.split() == [
            "alice@example.org",
            "bob@example.org",
            "carol@example.org",
        ]
        with imaplib.IMAP4("127.0.0.1", server.port) as imap:
            imap.login("carol@example.org", "secret-password")
            assert imap.select("INBOX")[0] == "OK"
    finally:
        assert server.terminate() == 0


def test_unreachable_store_is_a_message(tmp_path: Path) -> None:
    listed = _coi("user", "list", "--store", "postgresql://nobody:pw@127.0.0.1:1/nothing")
    assert listed.returncode == 1 and "Traceback" not in listed.stderr
    assert "cannot open the store postgresql://nobody:***@127.0.0.1:1/nothing" in listed.stderr
    assert "is PostgreSQL running there" in listed.stderr and len(listed.stderr.splitlines()) == 1
    wrong = _coi("user", "list", "--store", "mysql://x")
    assert wrong.returncode == 2 and "postgresql://" in wrong.stderr


class _Client:
    """A line-level IMAP client (imaplib has no IDLE before Python 3.14)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.file = self.sock.makefile("rb")
        self.line()  # greeting

    def line(self) -> bytes:
        data = self.file.readline()
        if not data:
            raise EOFError("server closed the connection")
        return data

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode() + b"\r\n")

    def command(self, tag: str, text: str) -> list[bytes]:
        self.send(f"{tag} {text}")
        lines = []
        while True:
            lines.append(self.line())
            if lines[-1].startswith(tag.encode() + b" "):
                assert lines[-1].startswith(tag.encode() + b" OK"), lines
                return lines

    def until(self, needle: bytes) -> bytes:
        while True:
            line = self.line()
            if needle in line:
                return line

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def test_two_servers_on_one_database_see_each_others_changes(
    tmp_path: Path, postgres_dsn: str
) -> None:
    """Delivery through one `coi serve` is `* EXISTS` in IDLE on the other, and a flag
    change on one is a FETCH with its MODSEQ on the other (CONDSTORE, RFC 7162 §3.2.4)."""
    first = ServerProcess(tmp_path / "one", "--store", postgres_dsn)
    first.start()
    second = ServerProcess(tmp_path / "two", "--store", postgres_dsn)
    second.start()  # its --demo gave the accounts new passwords, kept in "two"
    clients: list[_Client] = []
    try:
        password = second.password("alice@example.org")
        watcher = _Client(second.port)
        clients.append(watcher)
        watcher.command("a", f"LOGIN alice@example.org {password}")
        watcher.command("b", "ENABLE CONDSTORE")
        watcher.command("c", "SELECT INBOX")
        watcher.send("d IDLE")
        assert watcher.line().startswith(b"+ ")
        with smtplib.LMTP("127.0.0.1", first.lmtp_port) as lmtp:
            assert lmtp.sendmail("bob@example.org", ["alice@example.org"], MESSAGE) == {}
        assert watcher.until(b"EXISTS") == b"* 1 EXISTS\r\n"
        actor = _Client(first.port)
        clients.append(actor)
        actor.command("a", f"LOGIN alice@example.org {password}")
        actor.command("b", "SELECT INBOX")
        stored = actor.command("c", "STORE 1 +FLAGS (\\Flagged)")
        assert any(b"\\Flagged" in line for line in stored)
        seen = watcher.until(b"FETCH")
        assert seen.startswith(b"* 1 FETCH (") and b"\\Flagged" in seen and b"MODSEQ" in seen
        watcher.send("DONE")
        watcher.until(b"d OK")
    finally:
        for client in clients:
            client.close()
        assert second.terminate() == 0
        assert first.terminate() == 0
