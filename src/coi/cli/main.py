"""The `coi` command: one sub-command module per area, each with a `register` function."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from coi import __version__
from coi.cli import dkim, message, queue, serve, user


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coi",
        description="coi: a Chat Over IMAP server and client.",
    )
    parser.add_argument("--version", action="version", version=f"coi {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    serve.register(sub)
    user.register(sub)
    message.register(sub)
    queue.register(sub)
    dkim.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = args.handler
    result: int = handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
