"""``coi web``: the browser chat app, on your own profile or for the users of a server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from aiohttp import web

from coi.client.profile import (
    PROFILE_ENV,
    AccountSettings,
    Endpoint,
    FilterMode,
    ProfileError,
    Security,
    default_ports,
    default_profile_dir,
    parse_endpoint,
)
from coi.web.accounts import Accounts, HostedAccounts, PersonalAccounts
from coi.web.app import create_app

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "web",
        description="Serve the chat app to browsers. By default it serves your own profile "
        "(log in with an account's address and password, as added by 'coi account add'). "
        "With --hosted DIR it serves everyone whose mail address and password the IMAP "
        "server accepts, each with a profile of their own under DIR. For use beyond this "
        "machine put it behind a reverse proxy with TLS and pass --secure-cookies "
        "(docs/web.md).",
    )
    parser.add_argument(
        "--listen",
        default="127.0.0.1:8080",
        metavar="HOST:PORT",
        help="where to listen (default 127.0.0.1:8080)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help=f"the profile to serve (default: ${PROFILE_ENV} or the user's data directory)",
    )
    parser.add_argument(
        "--hosted",
        type=Path,
        metavar="DIR",
        help="serve many users: their profiles and the sessions live in DIR",
    )
    parser.add_argument("--imap", metavar="HOST:PORT", help="with --hosted: the IMAP server")
    parser.add_argument("--smtp", metavar="HOST:PORT", help="with --hosted: the SMTP server")
    parser.add_argument(
        "--security",
        choices=[s.value for s in Security],
        default=Security.SSL.value,
        help="with --hosted: ssl (default), starttls, or plain (loopback servers only)",
    )
    parser.add_argument(
        "--accept-invalid-cert",
        action="store_true",
        help="with --hosted: accept the mail server's self-signed certificate",
    )
    parser.add_argument(
        "--filter",
        choices=[f.value for f in FilterMode],
        default=FilterMode.NONE.value,
        help="with --hosted: the filter mode new accounts start with (none)",
    )
    parser.add_argument(
        "--secure-cookies",
        action="store_true",
        help="mark the session cookie Secure (set this behind a TLS reverse proxy)",
    )
    parser.add_argument(
        "--max-upload",
        type=int,
        default=25,
        metavar="MB",
        help="largest upload (files, avatars) in MB (default 25)",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    parser.set_defaults(handler=run)


def _accounts(args: argparse.Namespace) -> tuple[Accounts, Path]:
    """The login set-up and the directory for the session database."""
    if args.hosted is None:
        if args.imap or args.smtp:
            raise ProfileError("--imap and --smtp go with --hosted DIR")
        root = (args.profile or default_profile_dir()).expanduser()
        return PersonalAccounts(root), root
    if args.profile is not None:
        raise ProfileError("--profile and --hosted exclude each other")
    if not args.imap:
        raise ProfileError("--hosted needs --imap HOST:PORT (the mail server users log in to)")
    security = Security(args.security)
    imap_port, smtp_port = default_ports(security)
    imap = parse_endpoint(args.imap, imap_port)
    template = AccountSettings(
        address="",
        imap=imap,
        smtp=parse_endpoint(args.smtp or imap.host, smtp_port),
        security=security,
        accept_invalid_cert=args.accept_invalid_cert,
        filter=FilterMode(args.filter),
    )
    root = args.hosted.expanduser()
    return HostedAccounts(root, template), root


def _listen(value: str) -> Endpoint:
    """--listen HOST:PORT; port 0 takes a free one (printed at start)."""
    if value.rsplit(":", 1)[-1] == "0":
        return Endpoint(parse_endpoint(value.rsplit(":", 1)[0], 8080).host, 0)
    return parse_endpoint(value, 8080)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        listen = _listen(args.listen)
        accounts, state_dir = _accounts(args)
        if args.max_upload < 1:
            raise ProfileError("--max-upload is at least 1 (MB)")
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except ProfileError as exc:
        print(f"coi web: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"coi web: cannot use {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    app = create_app(
        accounts,
        state_dir,
        secure_cookies=args.secure_cookies,
        max_upload=args.max_upload * 1024 * 1024,
    )
    try:
        asyncio.run(_serve(app, listen.host, listen.port))
    except OSError as exc:
        print(f"coi web: cannot listen on {args.listen}: {exc.strerror}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


async def _serve(app: web.Application, host: str, port: int) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
        if port == 0 and runner.addresses:
            port = int(runner.addresses[0][1])  # the free port the system chose
        shown = f"[{host}]" if ":" in host else host
        print(f"coi web: open http://{shown}:{port}/ (Ctrl-C stops)", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
