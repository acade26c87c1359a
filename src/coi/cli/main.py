"""The `coi` command: one sub-command module per area, each with a `register` function."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from coi import __version__

# The modules that register the sub-commands (each has a `register` function), in the
# order of `coi --help`; and the module of each server command: every other command is
# the client's. `coi COMMAND` imports only its module, so a chat command does not load
# the server, nor the server the chat client (half of a command's start-up).
_MODULES = (
    "client", "web", "serve", "user", "alias", "shard", "message", "queue", "dkim", "backup",
    "migrate", "dns",
)  # fmt: skip
_SERVER_COMMANDS = {
    "web": "web", "serve": "serve", "user": "user", "alias": "alias", "shard": "shard",
    "message": "message", "queue": "queue", "dkim": "dkim", "backup": "backup",
    "restore": "backup", "migrate": "migrate", "check-dns": "dns",
}  # fmt: skip


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or, for `command`, of its module's commands alone
    (an unknown command gets every command's, so its error lists them all)."""
    if command is not None:
        parser, sub = _parser([_SERVER_COMMANDS.get(command, "client")])
        if command in sub.choices:
            return parser
    parser, sub = _parser(_MODULES)
    client = importlib.import_module("coi.cli.client")
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


def _parser(
    modules: Sequence[str],
) -> tuple[argparse.ArgumentParser, argparse._SubParsersAction[argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog="coi",
        description="coi: a Chat Over IMAP server and client.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"coi {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", help=argparse.SUPPRESS)
    sub.required = True
    for name in modules:
        importlib.import_module(f"coi.cli.{name}").register(sub)
    return parser, sub


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    command = words[0] if words and not words[0].startswith("-") else None
    parser = _parser(())[0] if words == ["--version"] else build_parser(command)
    args = parser.parse_args(words)
    handler = args.handler
    result: int = handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
