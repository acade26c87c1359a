"""COMPRESS=DEFLATE (RFC 4978): the connection deflates both ways after the tagged OK."""

from __future__ import annotations

from coi.imap.server.errors import CommandBad, CommandNo
from coi.imap.server.session import AUTH, Route, Session
from coi.imap.wire import commands as cmd


async def handle_compress(session: Session, command: cmd.Compress) -> str | None:
    """RFC 4978 §3: valid after authentication (command-auth, §5); BAD for an unknown
    algorithm; NO [COMPRESSIONACTIVE] when DEFLATE (or TLS compression) is already on
    (the server knows the same mechanism is active, §3), naming the layer. On OK,
    compression starts right after the CRLF of the tagged response."""
    if command.algorithm != "DEFLATE":
        raise CommandBad(f"Unknown compression algorithm {command.algorithm}")
    layer = session.io.compression()
    if layer is not None:
        raise CommandNo(f"DEFLATE active via {layer}", "COMPRESSIONACTIVE")
    session.announce(allow_expunge=True)  # pending untagged updates go out before the OK
    session.send_tagged(command.tag, "OK DEFLATE active")
    session.io.start_compression()
    return None  # answered, uncompressed, before compression started


ROUTES: dict[type, Route] = {cmd.Compress: Route(handle_compress, AUTH)}
