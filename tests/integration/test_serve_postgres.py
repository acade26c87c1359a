"""`coi serve --store postgresql://...`: the server, delivery and the admin commands on a
PostgreSQL database (issue 17), against the private cluster of tests/pg.py."""

from __future__ import annotations

import imaplib
import smtplib
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
    wrong = _coi("user", "list", "--store", "mysql://x")
    assert wrong.returncode == 2 and "postgresql://" in wrong.stderr
