"""What a mail domain served by coi needs in DNS, and what it has (``coi check-dns``).

Each check names the record, what was found and what is needed: MX to our host name
(RFC 5321 §5.1), an address for that name, SPF (RFC 7208 §4.5: exactly one ``v=spf1``
record), the DKIM key coi signs with (RFC 6376 §3.6.2), DMARC (RFC 7489 §6.1), and, as
recommendations, MTA-STS (RFC 8461 §3.1) and TLS reporting (RFC 8460 §3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import dns.asyncresolver
import dns.exception
import dns.resolver

OK, MISSING, WRONG, ADVICE = "ok", "missing", "wrong", "advice"


@dataclass(frozen=True, slots=True)
class Check:
    status: str  # ok, missing, wrong; advice: optional and missing
    name: str
    rtype: str
    found: tuple[str, ...]
    need: str

    @property
    def required_failed(self) -> bool:
        return self.status in (MISSING, WRONG)


def resolver(nameserver: str | None = None) -> dns.asyncresolver.Resolver:
    """The system's resolver, or ``HOST:PORT`` (tests run a resolver of their own)."""
    if nameserver is None:
        return dns.asyncresolver.Resolver()
    host, _, port = nameserver.rpartition(":")
    found = dns.asyncresolver.Resolver(configure=False)
    found.nameservers = [host.strip("[]")]
    found.port = int(port)
    found.lifetime = 5.0
    return found


async def _lookup(res: dns.asyncresolver.Resolver, name: str, rtype: str) -> list[str]:
    try:
        answer = await res.resolve(name, rtype)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    if rtype == "TXT":  # sorted: DNS gives a record set in any order
        return sorted(b"".join(r.strings).decode("utf-8", "replace") for r in answer)
    if rtype == "MX":
        return sorted(f"{r.preference} {r.exchange.to_text().rstrip('.').lower()}" for r in answer)
    return sorted(r.to_text() for r in answer)


def _key_of(record: str) -> str:
    match = re.search(r"\bp=([A-Za-z0-9+/=\s]*)", record)
    return re.sub(r"\s+", "", match.group(1)) if match else ""


async def check_domain(
    domain: str,
    hostname: str,
    *,
    dkim_selector: str,
    dkim_record: str | None,
    res: dns.asyncresolver.Resolver,
) -> list[Check]:
    """Every record the domain needs, checked; ``dkim_record`` is the TXT value of the key
    coi has for the domain (None: coi has none, so DKIM is someone else's job)."""
    domain, hostname = domain.lower().rstrip("."), hostname.lower().rstrip(".")
    checks: list[Check] = []
    try:
        mx = await _lookup(res, domain, "MX")
        hosts = [m.split()[1] for m in mx]
        need = f"MX 10 {hostname}."
        if not mx:
            checks.append(Check(MISSING, domain, "MX", (), need))
        elif hostname in hosts:
            checks.append(Check(OK, domain, "MX", tuple(mx), need))
        else:
            checks.append(Check(WRONG, domain, "MX", tuple(mx), need))
        addresses = await _lookup(res, hostname, "A") + await _lookup(res, hostname, "AAAA")
        status = OK if addresses else MISSING
        checks.append(Check(status, hostname, "A/AAAA", tuple(addresses), "this server's address"))

        spf = [t for t in await _lookup(res, domain, "TXT") if t.lower().startswith("v=spf1")]
        need = '"v=spf1 mx -all" (one record)'
        if not spf:
            checks.append(Check(MISSING, domain, "TXT SPF", (), need))
        elif len(spf) > 1:  # RFC 7208 §4.5: more than one is a permanent error
            checks.append(Check(WRONG, domain, "TXT SPF", tuple(spf), need))
        else:
            checks.append(Check(OK, domain, "TXT SPF", tuple(spf), need))

        name = f"{dkim_selector}._domainkey.{domain}"
        dkim = [t for t in await _lookup(res, name, "TXT") if "p=" in t]
        if dkim_record is None:
            status = OK if dkim else ADVICE
            need = "a DKIM key of the signer ('coi dkim keygen' if coi signs)"
        else:
            status = OK if any(_key_of(t) == _key_of(dkim_record) for t in dkim) else (
                WRONG if dkim else MISSING
            )
            need = f'"{dkim_record}"'
        checks.append(Check(status, name, "TXT DKIM", tuple(dkim), need))

        name = f"_dmarc.{domain}"
        dmarc = [t for t in await _lookup(res, name, "TXT") if t.startswith("v=DMARC1")]
        need = '"v=DMARC1; p=quarantine" (one record)'
        status = OK if len(dmarc) == 1 else (MISSING if not dmarc else WRONG)
        checks.append(Check(status, name, "TXT DMARC", tuple(dmarc), need))

        name = f"_mta-sts.{domain}"
        sts = [t for t in await _lookup(res, name, "TXT") if t.startswith("v=STSv1")]
        status = OK if len(sts) == 1 else ADVICE
        need = '"v=STSv1; id=..." and https://mta-sts.DOMAIN/.well-known/mta-sts.txt'
        checks.append(Check(status, name, "TXT MTA-STS", tuple(sts), need))

        name = f"_smtp._tls.{domain}"
        rpt = [t for t in await _lookup(res, name, "TXT") if t.startswith("v=TLSRPTv1")]
        status = OK if rpt else ADVICE
        need = '"v=TLSRPTv1; rua=mailto:tls-reports@DOMAIN"'
        checks.append(Check(status, name, "TXT TLSRPT", tuple(rpt), need))
    except dns.exception.Timeout:
        raise OSError("no answer from the DNS resolver (timed out)") from None
    except dns.exception.DNSException as exc:
        raise OSError(f"DNS lookup failed: {exc}") from None
    return checks


def local_dkim_record(data_dir: Path, selector: str, domain: str) -> str | None:
    """The TXT value of coi's own DKIM key for ``domain``, if it has one."""
    from coi.delivery.dkim import dns_record, key_path

    path = key_path(data_dir, domain)
    if not path.exists():
        return None
    line = dns_record(path.read_bytes(), selector, domain)
    return line.split(" IN TXT ", 1)[1].strip('"')
