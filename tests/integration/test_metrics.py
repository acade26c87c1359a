"""``coi serve --metrics``: a Prometheus endpoint that counts what the server does."""

from __future__ import annotations

import asyncio
import imaplib
import re
import smtplib
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from tests.integration.serverproc import ServerProcess

ALICE = "alice@example.org"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_count_connections_logins_commands_and_deliveries(tmp_path: Path) -> None:
    # one process (every worker counted: tests/integration/test_workers.py)
    server = ServerProcess(tmp_path, "--metrics", "127.0.0.1:0", "--workers", "1")
    try:
        server.start()
        url = next(
            m.group(1)
            for line in server.output
            if (m := re.search(r"metrics\s+(http://\S+/metrics)", line))
        )
        password = server.password(ALICE)

        def use_imap() -> None:
            imap = imaplib.IMAP4("127.0.0.1", server.port)
            try:
                imap.login(ALICE, "wrong")
            except imaplib.IMAP4.error:
                pass
            imap.login(ALICE, password)
            imap.select("INBOX")
            imap.noop()
            imap.logout()

        await asyncio.to_thread(use_imap)
        lmtp = next(
            int(m.group(1))
            for line in server.output
            if (m := re.search(r"lmtp\s+127\.0\.0\.1:(\d+)", line))
        )

        def deliver() -> None:
            with smtplib.LMTP("127.0.0.1", lmtp) as client:
                client.sendmail("bob@example.org", [ALICE], b"Subject: hi\r\n\r\nhello\r\n")

        await asyncio.to_thread(deliver)
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            samples = _samples(await response.text())
    finally:
        server.stop()
    assert samples[("coi_logins_total", (("protocol", "imap"), ("result", "failed")))] == 1
    assert samples[("coi_logins_total", (("protocol", "imap"), ("result", "ok")))] == 1
    assert samples[("coi_imap_commands_total", (("command", "SELECT"), ("result", "OK")))] == 1
    assert samples[("coi_imap_commands_total", (("command", "LOGIN"), ("result", "NO")))] == 1
    assert samples[("coi_imap_command_seconds_count", (("command", "NOOP"),))] == 1
    assert samples[("coi_deliveries_total", (("result", "delivered"), ("via", "lmtp")))] == 1
    assert samples[("coi_connections", (("protocol", "imap"),))] == 0  # logged out
    assert samples[("coi_queue_messages", ())] == 0
    assert samples[("coi_store_bytes", ())] > 0  # SQLite's files, or the database's size


async def test_metrics_are_off_by_default(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path)
    try:
        server.start()
        assert not any("/metrics" in line for line in server.output)
    finally:
        server.stop()
