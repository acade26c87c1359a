"""Every fuzz target's check over every kept corpus input (tests/data/fuzz/TARGET/): the inputs
the fuzzer found (bench/fuzz/run), crashes it once found included, stay fine. Needs no atheris."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from bench.fuzz import TARGETS
from bench.fuzz._common import MAX_INPUT

CORPUS = Path(__file__).resolve().parents[1] / "data" / "fuzz"


def _inputs() -> list[tuple[str, Path]]:
    return [(t, p) for t in TARGETS for p in sorted((CORPUS / t).iterdir()) if p.is_file()]


@pytest.mark.parametrize("target", TARGETS)
def test_corpus_is_kept_small(target: str) -> None:
    files = [p for p in (CORPUS / target).iterdir() if p.is_file()]
    assert 0 < len(files) <= 200
    assert all(p.stat().st_size <= MAX_INPUT for p in files)


@pytest.mark.parametrize(("target", "path"), _inputs(), ids=lambda x: getattr(x, "name", x))
def test_corpus_input(target: str, path: Path) -> None:
    check = importlib.import_module(f"bench.fuzz.{target}").check
    check(path.read_bytes())
