"""What every fuzz target shares: the input size bound and the per-input time bound."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

MAX_INPUT = 64 * 1024  # the fuzzer's -max_len; the time bound applies up to this size
# One input of at most MAX_INPUT octets must finish within this many CPU seconds (no
# super-linear blow-up). The runner raises it for atheris' instrumented, slower code.
TIME_LIMIT = 1.0


class TooSlow(AssertionError):
    """One input took longer than TIME_LIMIT: a hang or super-linear behaviour."""


def bounded(check: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """Wraps a target's check with the time bound."""

    @functools.wraps(check)
    def run(data: bytes) -> None:
        # CPU time, not wall time: on a busy machine a fuzzer at low priority waits for the
        # CPU; a hang that waits without computing is libFuzzer's -timeout's to catch
        start = time.process_time()
        check(data)
        elapsed = time.process_time() - start
        if len(data) <= MAX_INPUT and elapsed > TIME_LIMIT:
            raise TooSlow(f"{len(data)} octets took {elapsed:.2f} s (limit {TIME_LIMIT:g} s)")

    return run


def chunks(data: bytes, size: int) -> list[bytes]:
    """``data`` cut into pieces of ``size`` octets (the last may be shorter)."""
    size = max(1, size)
    return [data[i : i + size] for i in range(0, len(data), size)]
