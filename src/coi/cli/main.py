"""The `coi` command: one sub-command module per area, each with a `register` function."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from coi import __version__
from coi.cli import (
    alias,
    backup,
    client,
    dkim,
    dns,
    message,
    migrate,
    queue,
    serve,
    shard,
    user,
    web,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coi",
        description="coi: a Chat Over IMAP server and client.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"coi {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", help=argparse.SUPPRESS)
    sub.required = True
    client.register(sub)
    web.register(sub)
    serve.register(sub)
    user.register(sub)
    alias.register(sub)
    shard.register(sub)
    message.register(sub)
    queue.register(sub)
    dkim.register(sub)
    backup.register(sub)
    migrate.register(sub)
    dns.register(sub)
    server = [(a.dest, a.help or "") for a in sub._choices_actions if a.dest != "web"]
    width = max(len(name) for name, _ in (*server, *client.CLIENT_COMMANDS))
    parser.epilog = (
        "chat commands (the client; all take --profile DIR and --json):\n"
        + "\n".join(f"  {name:<{width}}  {text}" for name, text in client.CLIENT_COMMANDS)
        + "\n\nserver commands:\n"
        + "\n".join(f"  {name:<{width}}  {text}" for name, text in server)
        + "\n\n'coi COMMAND --help' tells more."
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = args.handler
    result: int = handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
