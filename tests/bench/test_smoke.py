"""Smoke run of every benchmark workload at tiny sizes against coi (and Dovecot when it is
installed and we are root), so bench/ keeps working. Not a performance test."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(180)
def test_tiny_run_prints_table_and_writes_json(tmp_path: Path) -> None:
    servers = "coi"
    if os.environ.get("COI_BENCH_DOVECOT") and shutil.which("dovecot") and os.geteuid() == 0:
        servers = "coi,dovecot"
    # this tree's coi (the server `coi serve` runs too), not whatever the venv installed
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(REPO / d) for d in ("src", "bench")))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "coi_bench",
            "--tiny",
            "--servers",
            servers,
            "--results-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=170,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = proc.stdout
    assert "| workload | unit | coi | Dovecot | ratio |" in out
    for label in (
        "delivery, 1 connection",
        "APPEND, 8 connections",
        "SELECT",
        "SEARCH TEXT",
        "many clients: p99 latency",
        "EXISTS in IDLE",
        "idle memory per connection",
        "client: delivery -> shown by watch, median",
        "client: resync of an unchanged account",
        "stress (state-checked), 4 clients: protocol errors",
        "command load (no login per cycle): operations",
        "server CPU per command: NOOP",
    ):
        assert label in out, label
    (result,) = tmp_path.glob("*-tiny.json")
    doc = json.loads(result.read_text())
    assert doc["cpu_count"] >= 1
    assert doc["versions"]["coi"]
    coi = doc["raw"]["coi"]
    # the state-checked stress finds no protocol error (issue 15; bench/README.md, Stress)
    assert coi["stress4"]["protocol_errors"] == 0, proc.stderr[-4000:]
    assert coi["load"]["cmd_append_cpu_ms"] > 0
    assert coi["big"]["count_uid_fetch_flags"] == 60
    assert coi["big"]["count_search_text_hits"] == 1
    assert coi["many"]["errors"] == 0
    assert coi["many"]["store_p99_ms"] >= coi["many"]["store_p50_ms"] > 0
    assert coi["idle"]["exists_p99_ms"] > 0
    assert coi["client"]["watch_messages"] == 5 and coi["client"]["watch_p99_ms"] > 0
    assert coi["client"]["mailbox_messages"] == 100
    assert 0 < coi["client"]["resync_bytes"] < 10_000


HOSTILE_TINY = [sys.executable, "-m", "coi_bench.hostile", "--json", "--connections", "24"]
HOSTILE_TINY += ["--seconds", "4"]


@pytest.mark.timeout(120)
def test_hostile_prelogin_load_leaves_the_logged_in_user_served() -> None:
    """bench/coi_bench/hostile.py at a tiny size: the attack runs, the server survives it,
    the logged-in user's NOOPs are answered and a newcomer still logs in."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "bench"))
    proc = subprocess.run(
        HOSTILE_TINY,
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=110,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout)
    assert result["noop_count"] > 0
    assert result["newcomer_logins"].get("logged in", 0) >= 1
    ends = result["attack_ends"]
    assert ends.get("literals: closed by server", 0) >= 1, ends
    assert ends.get("huge-nonsync: closed by server", 0) >= 1, ends


@pytest.mark.timeout(120)
def test_shard_move_timing_runs() -> None:
    """`coi_bench.shardmove` at a tiny size (it needs PostgreSQL, as the suite does)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(REPO / d) for d in ("src", "bench")))
    proc = subprocess.run(
        [sys.executable, "-m", "coi_bench.shardmove", "--messages", "30", "--size", "500",
         "--repeat", "1"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=110,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "30 messages of 500 bytes (0 MB)"
    assert [line.split(":")[0] for line in lines[1:]] == ["to shard 1", "to shard 0"]
