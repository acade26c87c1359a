"""``coi web`` as a user starts it: a real process, its one-line errors, a clean stop."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
from tests.conftest import PASSWORDS
from tests.integration.web.conftest import WebEnv

ALICE = "alice@example.org"


async def coi_web(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "coi.cli.main", "web", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )  # fmt: skip


async def test_wrong_options_give_one_line(tmp_path: Path) -> None:
    for args, expected in [
        (("--hosted", str(tmp_path)), "coi web: --hosted needs --imap HOST:PORT"),
        (("--hosted", "x", "--profile", "y"), "coi web: --profile and --hosted exclude each other"),
        (("--imap", "127.0.0.1:1"), "coi web: --imap and --smtp go with --hosted DIR"),
        (("--listen", "nowhere:99999"), "coi web: port 99999 in 'nowhere:99999' is out of range"),
    ]:
        proc = await coi_web(*args)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        lines = err.decode().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, (args, err)
        assert lines[0].startswith(expected), lines


async def test_serves_logs_in_and_stops_cleanly(webenv: WebEnv, tmp_path: Path) -> None:
    mail = webenv.mail
    proc = await coi_web(
        "--hosted", str(tmp_path / "web"), "--listen", "127.0.0.1:0",
        "--imap", f"127.0.0.1:{mail.imap.port}", "--smtp", f"127.0.0.1:{mail.submission_port}",
        "--security", "plain",
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line.startswith("coi web: open http://127.0.0.1:") and "(Ctrl-C stops)" in line
        url = line.split()[3].rstrip("/")
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                url + "/api/login",
                json={"address": ALICE, "password": PASSWORDS[ALICE]},
                headers={"Origin": url},
            ) as response,
        ):
            assert response.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err.decode()
