"""Sans-IO IMAP wire codec: framing, command parsing and response encoding.

This package imports nothing else from ``coi`` so it can be tested and reused alone.

Typical server loop::

    framer = CommandFramer()
    framer.feed(data)
    while (ev := framer.next_event()) is not None:
        if isinstance(ev, ContinuationNeeded):
            send(b"+ Ready for literal data\r\n")  # or reply NO/BAD + abort_command()
        elif isinstance(ev, FramingError):
            ...  # tagged NO [TOOBIG] / BAD; if ev.fatal: * BYE and close
        else:
            try:
                cmd = parse_command(ev)
            except BadCharset as exc:
                ...  # exc.tag NO [BADCHARSET (UTF-8 US-ASCII)]
            except ParseError as exc:
                ...  # (exc.tag or "*") BAD exc.message

After ``Idle`` or ``Authenticate`` read raw lines with ``framer.take_line()``.

The client side reads server responses with ``responses.ResponseReader``::

    reader = ResponseReader()
    reader.feed(data)
    while (resp := reader.next_response()) is not None:
        ...  # Tagged, Continuation, Condition, FetchData, ..., or Unknown
    # ResponseParseError: exc.fatal means the stream is broken; else one response was bad
"""

from .commands import Command, parse_command
from .errors import BadCharset, ParseError, ResponseParseError
from .framing import CommandFramer, CommandReady, ContinuationNeeded, FramerEvent, FramingError
from .responses import Response, ResponseReader

__all__ = [
    "BadCharset",
    "Command",
    "CommandFramer",
    "CommandReady",
    "ContinuationNeeded",
    "FramerEvent",
    "FramingError",
    "ParseError",
    "Response",
    "ResponseParseError",
    "ResponseReader",
    "parse_command",
]
