import subprocess
import sys

import coi


def test_version_is_exposed() -> None:
    assert coi.__version__


def test_cli_help_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "coi.cli.main", "--help"], capture_output=True, text=True, check=True
    )
    assert "usage: coi" in out.stdout
