"""The data directory: private, and served by one coi serve at a time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.integration.serverproc import ServerProcess


def test_second_server_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = ServerProcess(data)
    first.start()
    try:
        second = subprocess.run(
            [sys.executable, "-m", "coi.cli.main", "serve", "--data-dir", str(data),
             "--imap", "127.0.0.1:0", "--imaps", "off", "--lmtp", "off",
             "--submission", "off", "--submissions", "off"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert second.returncode == 1
        assert second.stderr.count("\n") == 1 and "Traceback" not in second.stderr
        assert first.proc is not None and f"pid {first.proc.pid}" in second.stderr
        # the store and the directory are private
        assert data.stat().st_mode & 0o777 == 0o700
        for path in data.glob("*.sqlite3*"):
            assert path.stat().st_mode & 0o077 == 0, path
        assert (data / "demo-passwords.txt").stat().st_mode & 0o077 == 0
    finally:
        assert first.terminate() == 0
    # once the first is gone, the directory can be served again
    again = ServerProcess(data)
    again.start()
    assert again.terminate() == 0
