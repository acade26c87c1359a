"""The shipped systemd unit's command line starts the server and its stop signal ends it
cleanly (docs/systemd/coi.service; docs/deploy.md: Running as a service)."""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
from pathlib import Path

UNITS = Path(__file__).resolve().parents[2] / "docs" / "systemd"


def _unit(name: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in (UNITS / name).read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            values.setdefault(key.strip(), value.strip())
    return values


def test_the_units_command_line_serves_and_stops_cleanly(tmp_path: Path) -> None:
    unit = _unit("coi.service")
    assert unit["User"] == "coi" and unit["KillSignal"] == "SIGTERM"
    argv = shlex.split(unit["ExecStart"])
    assert argv[:4] == ["/opt/coi/bin/coi", "serve", "--config", "/etc/coi/coi.toml"]
    config = tmp_path / "coi.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\nimap = "127.0.0.1:0"\nimaps = "off"\n'
        'lmtp = "127.0.0.1:0"\nsubmission = "off"\nsubmissions = "off"\n'
    )
    command = [sys.executable, "-m", "coi.cli.main", *argv[1:3], str(config)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("coi ") and first.rstrip().endswith("ready"), first
        proc.send_signal(getattr(signal, unit["KillSignal"]))
        out, _ = proc.communicate(timeout=int(unit["TimeoutStopSec"]))
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "Traceback" not in out, out
    assert (tmp_path / "data").stat().st_mode & 0o077 == 0


def test_the_backup_unit_runs_coi_backup() -> None:
    unit = _unit("coi-backup.service")
    assert "coi backup /var/backups/coi/" in unit["ExecStart"]
    assert _unit("coi-backup.timer")["OnCalendar"]


def test_json_logs_are_one_object_per_line(tmp_path: Path) -> None:
    import json

    command = [
        sys.executable, "-m", "coi.cli.main", "serve", "--data-dir", str(tmp_path),
        "--imap", "127.0.0.1:0", "--imaps", "off", "--lmtp", "off", "--submission", "off",
        "--submissions", "off", "--log-format", "json",
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline().rstrip().endswith("ready")
        line = proc.stderr.readline()
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    event = json.loads(line)
    assert event["level"] == "info" and event["logger"] == "coi.serve"
    assert event["message"].startswith("started listeners=127.0.0.1:")
    assert event["time"].endswith("+00:00")
    assert all(json.loads(x) for x in rest.splitlines())
