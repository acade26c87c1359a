"""``coi check-dns`` against a DNS server of the test's own on loopback."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from tests.dns_server import Zone, dns_server

from coi.delivery.dkim import dns_record, keygen

DOMAIN, HOST = "example.org", "mail.example.org"


async def check(data_dir: Path, resolver: str, *extra: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "coi.cli.main", "check-dns", DOMAIN, "--resolver", resolver,
        "--hostname", HOST, "--data-dir", str(data_dir), *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_a_complete_domain_passes(tmp_path: Path) -> None:
    _, pem, _ = keygen(tmp_path, DOMAIN)
    dkim = dns_record(pem, "coi", DOMAIN).split(" IN TXT ", 1)[1].strip('"')
    zone: Zone = {
        (DOMAIN, "MX"): [f"10 {HOST}."],
        (HOST, "A"): ["192.0.2.25"],
        (DOMAIN, "TXT"): ['"v=spf1 mx -all"', '"google-site-verification=x"'],
        (f"coi._domainkey.{DOMAIN}", "TXT"): [
            " ".join(f'"{dkim[i : i + 200]}"' for i in range(0, len(dkim), 200))
        ],
        (f"_dmarc.{DOMAIN}", "TXT"): ['"v=DMARC1; p=quarantine"'],
        (f"_mta-sts.{DOMAIN}", "TXT"): ['"v=STSv1; id=20261205"'],
        (f"_smtp._tls.{DOMAIN}", "TXT"): ['"v=TLSRPTv1; rua=mailto:tls@example.org"'],
    }
    async with dns_server(zone) as resolver:
        code, out, err = await check(tmp_path, resolver, "--json")
    assert code == 0, (out, err)
    assert [(c["type"], c["status"]) for c in json.loads(out)] == [
        ("MX", "ok"), ("A/AAAA", "ok"), ("TXT SPF", "ok"), ("TXT DKIM", "ok"),
        ("TXT DMARC", "ok"), ("TXT MTA-STS", "ok"), ("TXT TLSRPT", "ok"),
    ]  # fmt: skip


async def test_missing_and_wrong_records_are_named_with_what_they_need(tmp_path: Path) -> None:
    keygen(tmp_path, DOMAIN)
    zone: Zone = {
        (DOMAIN, "MX"): ["10 mx.elsewhere.example."],
        (HOST, "A"): ["192.0.2.25"],
        (DOMAIN, "TXT"): ['"v=spf1 mx -all"', '"v=spf1 a -all"'],
        (f"coi._domainkey.{DOMAIN}", "TXT"): ['"v=DKIM1; k=rsa; p=AAAA"'],
    }
    async with dns_server(zone) as resolver:
        code, out, _ = await check(tmp_path, resolver)
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == f"wrong    {DOMAIN} MX: 10 mx.elsewhere.example"
    assert lines[1] == f"         need: MX 10 {HOST}."
    assert f"wrong    {DOMAIN} TXT SPF: v=spf1 a -all; v=spf1 mx -all" in lines
    assert f"wrong    coi._domainkey.{DOMAIN} TXT DKIM: v=DKIM1; k=rsa; p=AAAA" in lines
    assert f"missing  _dmarc.{DOMAIN} TXT DMARC: nothing" in lines
    assert f"advice   _mta-sts.{DOMAIN} TXT MTA-STS: nothing" in lines


async def test_no_hostname_or_no_resolver_gives_one_line(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "coi.cli.main", "check-dns", DOMAIN, "--data-dir", str(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    assert proc.returncode == 2
    assert err.decode() == "coi check-dns: give the server's name: --hostname mail.example.org\n"
    code, _, err_text = await check(tmp_path, "127.0.0.1:9")  # nothing answers there
    assert code == 1 and err_text.startswith("coi check-dns: ") and len(err_text.splitlines()) == 1
