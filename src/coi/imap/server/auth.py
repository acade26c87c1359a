"""Commands of any state and of the not-authenticated state (RFC 3501 §6.1, §6.2).

LOGIN and AUTHENTICATE share one path: plaintext only over TLS, on loopback or when
allowed; failed attempts slow down further attempts from the same address and for the
same user; a user's connection limit is checked last, after the password.
"""

from __future__ import annotations

import asyncio
import base64
import binascii

from coi import __version__, metrics
from coi.auth.passwords import hash_password
from coi.imap.server import metadata
from coi.imap.server.errors import CommandBad, CommandNo
from coi.imap.server.selected import NO_UIDS
from coi.imap.server.session import ANY, AUTH, NOT_AUTH, Route, Session, State
from coi.imap.wire import commands as cmd
from coi.imap.wire.encode import quoted

# Checked when the user does not exist, so a wrong address costs as much time as a wrong
# password and does not reveal which addresses exist.
_DUMMY_HASH = hash_password("not a password")


async def handle_capability(session: Session, command: cmd.Capability) -> str:
    session.untagged("CAPABILITY " + " ".join(session.capabilities()))
    return "CAPABILITY completed"


async def handle_noop(session: Session, command: cmd.Noop) -> str:
    return "NOOP completed"


async def handle_logout(session: Session, command: cmd.Logout) -> str:
    session.untagged("BYE Logging out")
    session.state = State.LOGOUT
    return "LOGOUT completed"


async def handle_starttls(session: Session, command: cmd.StartTLS) -> str | None:
    if session.io.secure:
        raise CommandBad("TLS is already active")
    if session.server.tls_context is None:
        raise CommandNo("TLS is not configured on this server")
    session.send_tagged(command.tag, "OK Begin TLS negotiation now")
    await session.io.start_tls()
    return None  # the tagged response went out before the handshake


async def handle_login(session: Session, command: cmd.Login) -> str:
    return await login(session, command.username, command.password)


async def handle_authenticate(session: Session, command: cmd.Authenticate) -> str:
    if command.mechanism != "PLAIN":
        raise CommandNo("Unsupported authentication mechanism; use PLAIN")
    if not session.plaintext_allowed():
        raise CommandNo("Use STARTTLS first", "PRIVACYREQUIRED")
    response = command.initial_response
    if response is None:
        session.send(b"+ \r\n")
        line = await session.io.read_line()
        if line is None:
            raise ConnectionError("connection closed during AUTHENTICATE")
        if line.strip() == b"*":
            raise CommandBad("Authentication cancelled")
        try:
            response = base64.b64decode(line.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise CommandBad("Invalid base64 in authentication response") from None
    parts = response.split(b"\0")
    if len(parts) != 3:
        raise CommandBad("Malformed PLAIN response (RFC 4616)")
    authzid, authcid, password = (p.decode("utf-8", "surrogateescape") for p in parts)
    if authzid and authzid.lower() != authcid.lower():
        raise CommandNo("Acting as another user is not allowed", "AUTHORIZATIONFAILED")
    return await login(session, authcid, password)


async def login(session: Session, username: str, password: str) -> str:
    if not session.plaintext_allowed():
        raise CommandNo("Plaintext login needs TLS; use STARTTLS first", "PRIVACYREQUIRED")
    server = session.server
    address = username.strip().lower()
    keys = ("ip:" + session.io.peer, "user:" + address)
    delay = server.throttle.delay(*keys)
    if delay:
        await asyncio.sleep(delay)
    user = await session.store.read_user(address)
    stored = user.password_hash if user is not None else _DUMMY_HASH
    ok = await server.verified.verify(password, stored, session.io.peer)
    if user is None or not ok:
        server.throttle.failed(*keys)
        metrics.login("imap", False)
        server.log.info("login failed user=%s peer=%s", address, session.io.peer)
        raise CommandNo("Invalid credentials", "AUTHENTICATIONFAILED")
    server.throttle.succeeded(*keys)
    metrics.login("imap", True)
    if not server.login_user(user.id):
        raise CommandNo("Too many connections for this user", "LIMIT")
    session.user_id = user.id
    session.address = user.address
    session.state = State.AUTHENTICATED
    server.log.info("login user=%s peer=%s", user.address, session.io.peer)
    return "[CAPABILITY " + " ".join(session.capabilities()) + "] Logged in"


async def handle_id(session: Session, command: cmd.Id) -> str:
    # RFC 2971 §3.3: the server's own identification; nothing of the client's is echoed
    fields = ("name", "coi", "version", __version__, "vendor", "coi project")
    session.untagged("ID (" + " ".join(quoted(f).decode() for f in fields) + ")")
    return "ID completed"


_SPELLING = {"IMAP4REV2": "IMAP4rev2"}


async def handle_enable(session: Session, command: cmd.Enable) -> str:
    supported = session.server.enableable
    newly = [c for c in (c.upper() for c in command.capabilities) if c in supported]
    newly = [c for c in dict.fromkeys(newly) if c not in session.enabled]
    session.enabled = session.enabled.union(newly)
    # capability names are case-insensitive; answer with the spelling CAPABILITY uses
    session.untagged("ENABLED" + "".join(" " + _SPELLING.get(c, c) for c in newly))
    if "IMAP4REV2" in newly and session.selected is not None:
        # RFC 9051 §6.3.1: clients MUST NOT ENABLE after SELECT, servers need not check;
        # the rest of this selection has no \Recent either (RFC 9051 §2.3.2)
        session.selected.rev2 = True
        session.selected.recent = NO_UIDS
    if "CONDSTORE" in newly or "QRESYNC" in newly:  # QRESYNC implies CONDSTORE (RFC 7162 §3.2.3)
        session.enable_condstore()
    if {"METADATA", "METADATA-SERVER"} & set(newly):  # unsolicited METADATA (RFC 5464 §4.4.2)
        await metadata.keep_entries(session)
    return "ENABLE completed"


async def handle_namespace(session: Session, command: cmd.Namespace) -> str:
    session.untagged('NAMESPACE (("" "/")) NIL NIL')
    return "NAMESPACE completed"


ROUTES: dict[type, Route] = {
    cmd.Capability: Route(handle_capability, ANY),
    cmd.Noop: Route(handle_noop, ANY),
    cmd.Logout: Route(handle_logout, ANY),
    cmd.Id: Route(handle_id, ANY),
    cmd.StartTLS: Route(handle_starttls, NOT_AUTH),
    cmd.Login: Route(handle_login, NOT_AUTH),
    cmd.Authenticate: Route(handle_authenticate, NOT_AUTH),
    cmd.Enable: Route(handle_enable, AUTH),
    cmd.Namespace: Route(handle_namespace, AUTH),
}
