"""A built wheel installs and runs outside the repository: the entry point, the web app's
static files and the package data are in it (docs/deploy.md: Running as a service)."""

from __future__ import annotations

import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
def test_the_wheel_installs_and_runs_outside_the_repository(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True,
    )  # fmt: skip
    wheel = next(tmp_path.glob("coi-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    target = tmp_path / "installed"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
         str(wheel)],
        check=True, capture_output=True,
    )  # fmt: skip
    # coi only from the wheel, its dependencies from this environment (its .pth files,
    # such as an editable install of the repository, are not read from there)
    purelib = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    deps = [p for p in site.getsitepackages() if "site-packages" in p]
    (purelib / "a-coi-wheel.pth").write_text(f"{target}\n")
    (purelib / "z-deps.pth").write_text("\n".join(deps) + "\n")
    python = venv / "bin" / "python"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    check = (
        "import coi, coi.web.app as w; from pathlib import Path; "
        "print(Path(coi.__file__).parent); "
        "print(sorted(p.name for p in w.STATIC.iterdir()))"
    )
    run = subprocess.run(
        [str(python), "-c", check], cwd=outside, capture_output=True, text=True, check=True
    )
    package_dir, static = run.stdout.splitlines()
    assert Path(package_dir).is_relative_to(target), package_dir  # not the repository's src
    assert static == str(
        ["app.css", "app.js", "icon.svg", "index.html", "manifest.webmanifest", "sw.js"]
    )
    version = subprocess.run(
        [str(python), "-m", "coi.cli.main", "--version"], cwd=outside, capture_output=True,
        text=True, check=True,
    )  # fmt: skip
    assert version.stdout.startswith("coi ")
