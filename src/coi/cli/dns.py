"""``coi check-dns DOMAIN``: the records a mail domain needs, and what it has."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from coi.cli.common import config_or_exit
from coi.config import add_arguments


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "check-dns",
        help="check the MX, SPF, DKIM, DMARC and MTA-STS records of a domain",
        description="Look up what DOMAIN has in DNS (through the system's resolver) and say "
        "what it needs for mail served by this coi: MX to --hostname, an address for it, "
        "one SPF record, the DKIM key coi signs with (if 'coi dkim keygen' made one), "
        "DMARC; MTA-STS and TLS reporting as advice. Exit 1 when a needed record is "
        "missing or wrong.",
    )
    parser.add_argument("domain", metavar="DOMAIN")
    parser.add_argument(
        "--resolver", metavar="HOST:PORT", help="ask this DNS server instead of the system's"
    )
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    add_arguments(parser, only=("data_dir", "hostname", "dkim_selector"))
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from coi.delivery.dnscheck import check_domain, local_dkim_record, resolver

    config = config_or_exit(args)
    domain = args.domain.lower().rstrip(".")
    if config.hostname in ("", "localhost"):
        print("coi check-dns: give the server's name: --hostname mail.example.org", file=sys.stderr)
        return 2
    try:
        record = local_dkim_record(config.data_dir, config.dkim_selector, domain)
        checks = asyncio.run(
            check_domain(
                domain,
                config.hostname,
                dkim_selector=config.dkim_selector,
                dkim_record=record,
                res=resolver(args.resolver),
            )
        )
    except (OSError, ValueError) as exc:
        print(f"coi check-dns: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([
            {"status": c.status, "name": c.name, "type": c.rtype, "found": list(c.found),
             "need": c.need} for c in checks
        ], indent=1))  # fmt: skip
    else:
        for c in checks:
            found = "; ".join(c.found) or "nothing"
            line = f"{c.status:<8} {c.name} {c.rtype}: {found}"
            if c.status != "ok":
                line += f"\n         need: {c.need}"
            print(line)
    return 1 if any(c.required_failed for c in checks) else 0
