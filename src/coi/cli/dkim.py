"""`coi dkim keygen DOMAIN`: make the domain's DKIM key and print the DNS record to publish."""

from __future__ import annotations

import argparse
import sys

from coi.cli.common import config_or_exit
from coi.config import add_arguments


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "dkim", help="manage DKIM signing keys", description="Manage DKIM signing keys."
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    gen = actions.add_parser(
        "keygen",
        help="create a domain's key (once) and print its DNS TXT record",
        description="Creates DATA_DIR/dkim/DOMAIN.pem (RSA 2048) unless it exists and prints "
        "the TXT record to publish. Mail relayed from that domain is then DKIM-signed.",
    )
    gen.add_argument("domain", help="mail domain, e.g. example.org")
    add_arguments(gen, only=("data_dir", "dkim_selector"))
    gen.set_defaults(handler=_keygen)


def _keygen(args: argparse.Namespace) -> int:
    from coi.delivery.dkim import dns_record, keygen  # dkimpy is slow to import

    config = config_or_exit(args)
    domain = args.domain.lower().rstrip(".")
    try:
        path, pem, created = keygen(config.data_dir, domain)
    except ValueError as exc:
        print(f"coi: {exc}", file=sys.stderr)
        return 2
    print(f"{'created' if created else 'existing'} key {path}")
    print("publish this DNS record:")
    print(dns_record(pem, config.dkim_selector, domain))
    return 0
