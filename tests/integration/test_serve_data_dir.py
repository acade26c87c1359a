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


def test_sighup_reloads_the_certificate(tmp_path: Path) -> None:
    import shutil
    import signal
    import ssl
    import time

    from coi.tls import ensure_self_signed

    old_cert, old_key = ensure_self_signed(tmp_path / "old", "old.example")
    new_cert, new_key = ensure_self_signed(tmp_path / "new", "new.example")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    shutil.copy(old_cert, cert)
    shutil.copy(old_key, key)
    server = ServerProcess(tmp_path / "data", "--imaps", "127.0.0.1:0", "--tls-cert", str(cert),
                           "--tls-key", str(key))  # fmt: skip
    server.start()
    try:
        port = int(next(
            line.split(":")[-1].split()[0] for line in server.output if "imaps" in line
        ))  # fmt: skip

        def served() -> bytes:
            return ssl.get_server_certificate(("127.0.0.1", port)).encode()

        assert served().strip() == old_cert.read_bytes().strip()
        shutil.copy(new_cert, cert)
        shutil.copy(new_key, key)
        assert server.proc is not None
        server.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while served().strip() != new_cert.read_bytes().strip():
            assert time.monotonic() < deadline, "certificate not reloaded"
            time.sleep(0.1)
        assert server.proc.poll() is None  # SIGHUP no longer kills the server
    finally:
        assert server.terminate() == 0
