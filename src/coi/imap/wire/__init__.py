"""Sans-IO IMAP wire codec: framing, command parsing and response encoding.

This package imports nothing else from ``coi`` so it can be tested and reused alone.
"""

from .commands import Command, parse_command
from .errors import BadCharset, ParseError
from .framing import CommandFramer, CommandReady, ContinuationNeeded, FramerEvent, FramingError

__all__ = [
    "BadCharset",
    "Command",
    "CommandFramer",
    "CommandReady",
    "ContinuationNeeded",
    "FramerEvent",
    "FramingError",
    "ParseError",
    "parse_command",
]
