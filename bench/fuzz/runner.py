"""``bench/fuzz/run TARGET [--seconds N] [--jobs J]``: fuzz one target, then minimise the corpus.

Each job is one libFuzzer process (atheris) on a scratch corpus (``bench/fuzz/work/TARGET/``)
that starts from the kept corpus ``tests/data/fuzz/TARGET/``; jobs share the scratch corpus
(libFuzzer reloads it). At the end ``-merge=1`` keeps the smallest set of inputs covering what
both cover beyond the seeds, and that set replaces the kept corpus; files named ``seed-*`` (real
inputs) and ``crash-*`` (inputs that once failed, kept as regression tests) are always kept.
Crashing inputs go to ``bench/fuzz/work/TARGET/crashes/``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import TARGETS

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "fuzz" / "run"
CORPUS = REPO / "tests" / "data" / "fuzz"
WORK = REPO / "bench" / "fuzz" / "work"
MAX_FILES = 200  # kept corpus per target
# atheris' instrumented code is a few times slower than plain Python: the time bound of one
# input under the fuzzer (bench.fuzz._common.TIME_LIMIT is 1 s uninstrumented)
FUZZ_TIME_LIMIT = 3.0


def _libfuzzer(target: str, args: list[str]) -> None:
    """Child mode: run libFuzzer (atheris) on ``target`` with libFuzzer's own arguments."""
    import atheris

    logging.disable(logging.WARNING)  # aiosmtpd warns of every unknown command: noise here
    with atheris.instrument_imports(include=["coi", "aiosmtpd", "email", "bench.fuzz"]):
        module = importlib.import_module(f"bench.fuzz.{target}")
    common = importlib.import_module("bench.fuzz._common")
    common.TIME_LIMIT = float(os.environ.get("COI_FUZZ_TIME_LIMIT", FUZZ_TIME_LIMIT))
    atheris.Setup([str(SCRIPT), *args], module.check)
    atheris.Fuzz()


def _child(target: str, args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, COI_FUZZ_TARGET=target)
    with log.open("wb") as out:
        return subprocess.Popen([str(SCRIPT), *args], env=env, stdout=out, stderr=out)


def _stats(log: Path) -> str:
    """libFuzzer's last status line and final counters from one job's log."""
    text = log.read_text("utf-8", "replace")
    status = [m.group(0) for m in re.finditer(r"^#\d+\s+\w+\s+cov: .*$", text, re.M)]
    execs = re.search(r"stat::number_of_executed_units: (\d+)", text)
    crashes = len(re.findall(r"^==\d+== ERROR|^ === Uncaught Python exception", text, re.M))
    last = status[-1] if status else "(no status line)"
    return f"{last}\n  execs {execs.group(1) if execs else '?'}, failures {crashes}"


def _pinned(path: Path) -> bool:
    """Kept by every merge: the seeds (real inputs) and the inputs that once failed."""
    return path.name.startswith(("seed-", "crash-"))


def _merge(target: str, corpus: Path, work: Path) -> int:
    """Replaces the kept corpus by the seeds and failures plus a minimal set of inputs that
    covers what the kept and the scratch corpus cover beyond them (libFuzzer -merge=1)."""
    with tempfile.TemporaryDirectory(prefix=f"coi-fuzz-{target}-") as tmp:
        merged = Path(tmp) / "merged"
        merged.mkdir()
        for pinned in filter(_pinned, corpus.iterdir()):
            shutil.copy(pinned, merged / pinned.name)  # counted first: others add to them
        log = work / "merge.log"
        args = ["-merge=1", "-max_len=65536", "-timeout=20"]
        args += [str(merged), str(corpus), str(work / "corpus")]
        if _child(target, args, log).wait() != 0:
            print(f"merge failed, corpus left as it was: see {log}", file=sys.stderr)
            return -1
        found = sorted(
            (p for p in merged.iterdir() if not _pinned(p)), key=lambda p: p.stat().st_size
        )
        room = MAX_FILES - sum(1 for p in merged.iterdir() if _pinned(p))
        for old in corpus.iterdir():
            if not _pinned(old):
                old.unlink()
        for new in found[: max(0, room)]:  # over the cap: the smallest
            shutil.copy(new, corpus / new.name)
    return len(list(corpus.iterdir()))


def main(argv: list[str] | None = None) -> int:
    target = os.environ.get("COI_FUZZ_TARGET")
    if target:  # run by libFuzzer, or by ourselves below
        _libfuzzer(target, sys.argv[1:] if argv is None else argv)
        return 0
    parser = argparse.ArgumentParser(prog="bench/fuzz/run", description=__doc__.split("\n")[0])
    parser.add_argument("target", choices=TARGETS)
    parser.add_argument("--seconds", type=int, default=300, help="how long (default 300)")
    parser.add_argument("--jobs", type=int, default=1, help="libFuzzer processes (default 1)")
    parser.add_argument("--no-merge", action="store_true", help="leave the kept corpus as it is")
    opts = parser.parse_args(argv)
    corpus = CORPUS / opts.target
    work = WORK / opts.target
    (work / "corpus").mkdir(parents=True, exist_ok=True)
    (work / "crashes").mkdir(exist_ok=True)
    corpus.mkdir(parents=True, exist_ok=True)
    args = [
        f"-max_total_time={opts.seconds}",
        "-max_len=65536",
        "-timeout=10",  # libFuzzer's hang limit; the target's own bound is FUZZ_TIME_LIMIT
        "-rss_limit_mb=2048",
        "-print_final_stats=1",
        "-reload=5",
        f"-artifact_prefix={work / 'crashes'}/",
        str(work / "corpus"),
        str(corpus),
    ]
    start = time.monotonic()
    logs = [work / f"job{j}.log" for j in range(opts.jobs)]
    jobs = [_child(opts.target, args, log) for log in logs]
    codes = [job.wait() for job in jobs]
    print(f"{opts.target}: {time.monotonic() - start:.0f} s, {opts.jobs} job(s)")
    for log, code in zip(logs, codes, strict=True):
        print(f" {log.name} (exit {code}): {_stats(log)}")
    crashes = sorted((work / "crashes").iterdir())
    if crashes:
        print(f" {len(crashes)} failing input(s) in {work / 'crashes'}")
    if not opts.no_merge:
        n = _merge(opts.target, corpus, work)
        print(f" kept corpus {corpus.relative_to(REPO)}: {n} files")
    return 1 if any(codes) else 0


if __name__ == "__main__":
    sys.exit(main())
