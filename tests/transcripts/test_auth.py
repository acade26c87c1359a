"""STARTTLS, AUTHENTICATE and LOGIN (RFC 3501 §6.2), SASL-IR (RFC 4959), LOGINDISABLED."""

from __future__ import annotations

import base64
import logging
import ssl

import pytest
from tests.conftest import LineClient, RunningServer, run_transcript

PRE = "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE STARTTLS AUTH=PLAIN"
DISABLED = "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE STARTTLS LOGINDISABLED"


def plain(user: str, password: str, authzid: str = "") -> str:
    return base64.b64encode(f"{authzid}\0{user}\0{password}".encode()).decode()


async def test_login_plain_atoms_quoted_and_literal(imap_server: RunningServer) -> None:
    client = await LineClient.connect(imap_server)
    await run_transcript(
        client,
        """
        S: * OK [CAPABILITY {{.*}}] {{.*}}
        C: a001 LOGIN {17}
        S: + {{.*}}
        C: alice@example.org {12}
        S: + {{.*}}
        C: alice-secret
        S: a001 OK [CAPABILITY IMAP4rev1 {{.*}}] {{.*}}
        C: a002 LOGOUT
        S: * BYE {{.*}}
        S: a002 OK {{.*}}
        """,
    )
    client = await LineClient.connect(imap_server)
    await run_transcript(
        client,
        """
        S: * OK {{.*}}
        C: a001 LOGIN "bob@example.org" {10+}
        C: bob-secret
        S: a001 OK [CAPABILITY {{.*}}] {{.*}}
        """,
    )


async def test_login_failure_and_wrong_states(imap_server: RunningServer) -> None:
    client = await LineClient.connect(imap_server)
    await run_transcript(
        client,
        """
        S: * OK {{.*}}
        C: a001 LOGIN alice@example.org wrong
        S: a001 NO [AUTHENTICATIONFAILED] {{.*}}
        C: a002 LOGIN alice@example.org alice-secret
        S: a002 OK [CAPABILITY {{.*}}] {{.*}}
        C: a003 LOGIN alice@example.org alice-secret
        S: a003 BAD {{.*}}
        C: a004 AUTHENTICATE PLAIN
        S: a004 BAD {{.*}}
        C: a005 STARTTLS
        S: a005 BAD {{.*}}
        C: a006 SELECT INBOX
        S: * FLAGS {{.*}}
        S: * 0 EXISTS
        S: * 0 RECENT
        S: * OK [PERMANENTFLAGS {{.*}}] {{.*}}
        S: * OK [UIDVALIDITY {{\\d+}}] {{.*}}
        S: * OK [UIDNEXT 1] {{.*}}
        S: * OK [MAILBOXID ({{F[0-9a-f]+}})] Ok
        S: a006 OK [READ-WRITE] {{.*}}
        C: a007 LOGIN alice@example.org alice-secret
        S: a007 BAD {{.*}}
        C: a008 AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUub3JnAGFsaWNlLXNlY3JldA==
        S: a008 BAD {{.*}}
        C: a009 STARTTLS
        S: a009 BAD {{.*}}
        """,
    )


async def test_authenticate_plain_with_initial_response(imap_server: RunningServer) -> None:
    client = await LineClient.connect(imap_server)
    await run_transcript(
        client,
        f"""
        S: * OK {{{{.*}}}}
        C: a001 AUTHENTICATE PLAIN {plain("alice@example.org", "alice-secret")}
        S: a001 OK [CAPABILITY IMAP4rev1 {{{{.*}}}}] {{{{.*}}}}
        C: a002 NOOP
        S: a002 OK {{{{.*}}}}
        """,
    )


async def test_authenticate_plain_with_continuation(imap_server: RunningServer) -> None:
    client = await LineClient.connect(imap_server)
    await run_transcript(
        client,
        f"""
        S: * OK {{{{.*}}}}
        C: a001 AUTHENTICATE PLAIN
        S: + {{{{.*}}}}
        C: *
        S: a001 BAD {{{{.*}}}}
        C: a002 AUTHENTICATE plain
        S: + {{{{.*}}}}
        C: {plain("bob@example.org", "bob-secret", "bob@example.org")}
        S: a002 OK [CAPABILITY IMAP4rev1 {{{{.*}}}}] {{{{.*}}}}
        """,
    )


async def test_authenticate_unknown_mechanism_and_bad_base64(imap_server: RunningServer) -> None:
    client = await LineClient.connect(imap_server)
    await run_transcript(
        client,
        f"""
        S: * OK {{{{.*}}}}
        C: a001 AUTHENTICATE CRAM-MD5
        S: a001 NO {{{{.*}}}}
        C: a002 AUTHENTICATE PLAIN
        S: + {{{{.*}}}}
        C: !!!notbase64
        S: a002 BAD {{{{.*}}}}
        C: a003 AUTHENTICATE PLAIN {plain("alice@example.org", "alice-secret", "bob@example.org")}
        S: a003 NO [AUTHORIZATIONFAILED] {{{{.*}}}}
        C: a004 AUTHENTICATE PLAIN {plain("alice@example.org", "alice-secret")}
        S: a004 OK {{{{.*}}}}
        """,
    )


def _client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def test_starttls_then_login(imap_server: RunningServer) -> None:
    client = await LineClient.connect(imap_server)
    await run_transcript(
        client,
        f"""
        S: * OK [CAPABILITY {PRE}] {{{{.*}}}}
        C: a001 STARTTLS
        S: a001 OK {{{{.*}}}}
        """,
    )
    await client.writer.start_tls(_client_context())
    # RFC 3501 §6.2.1: capabilities change after TLS; STARTTLS is no longer offered
    await run_transcript(
        client,
        """
        C: a002 CAPABILITY
        S: * CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE AUTH=PLAIN
        S: a002 OK {{.*}}
        C: a003 STARTTLS
        S: a003 BAD {{.*}}
        C: a004 LOGIN alice@example.org alice-secret
        S: a004 OK [CAPABILITY {{.*}}] {{.*}}
        """,
    )


async def test_plaintext_sent_after_starttls_is_never_executed(
    imap_server: RunningServer,
) -> None:
    """RFC 3501 §6.2.1 (the STARTTLS command injection of CVE-2011-0411): commands that
    follow STARTTLS in plaintext, in its packet or the next, are dropped, not run under
    the protection of TLS."""
    client = await LineClient.connect(imap_server)
    await client.line()
    client.writer.write(b"a001 STARTTLS\r\na002 LOGIN alice@example.org alice-secret\r\n")
    await client.writer.drain()
    client.writer.write(b"a003 LOGIN alice@example.org alice-secret\r\n")
    await client.writer.drain()
    assert (await client.line()).startswith(b"a001 OK")
    await client.writer.start_tls(_client_context())
    await run_transcript(
        client,
        """
        C: a004 SELECT INBOX
        S: a004 BAD SELECT not allowed in the not authenticated state
        """,
    )


async def test_a_failed_starttls_handshake_closes_the_connection_quietly(
    imap_server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    """After `OK Begin TLS` a peer that sends no TLS handshake is gone: the connection
    closes, logged as the peer's doing (INFO), not as a failed command with a traceback."""
    caplog.set_level(logging.INFO, logger="coi.imap")
    client = await LineClient.connect(imap_server)
    await client.line()
    client.writer.write(b"a001 STARTTLS\r\n")
    assert (await client.line()).startswith(b"a001 OK")
    client.writer.write(b"this is not a TLS ClientHello\r\n")
    with pytest.raises((EOFError, ConnectionError)):
        await client.line(timeout=5)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("TLS handshake failed" in r.getMessage() for r in caplog.records)


async def test_logindisabled_without_tls_off_loopback(
    imap_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from coi.imap.server import connection

    class Remote:
        is_loopback = False

    monkeypatch.setattr(connection.ipaddress, "ip_address", lambda _: Remote())
    client = await LineClient.connect(imap_server)
    # RFC 3501 §6.2.3, §7.2.1: no plaintext LOGIN before TLS; LOGINDISABLED says so
    await run_transcript(
        client,
        f"""
        S: * OK [CAPABILITY {DISABLED}] {{{{.*}}}}
        C: a001 LOGIN alice@example.org alice-secret
        S: a001 NO [PRIVACYREQUIRED] {{{{.*}}}}
        C: a002 AUTHENTICATE PLAIN {plain("alice@example.org", "alice-secret")}
        S: a002 NO [PRIVACYREQUIRED] {{{{.*}}}}
        C: a003 STARTTLS
        S: a003 OK {{{{.*}}}}
        """,
    )
    await client.writer.start_tls(_client_context())
    await run_transcript(
        client,
        """
        C: a004 CAPABILITY
        S: * CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE AUTH=PLAIN
        S: a004 OK {{.*}}
        C: a005 LOGIN alice@example.org alice-secret
        S: a005 OK [CAPABILITY {{.*}}] {{.*}}
        """,
    )
