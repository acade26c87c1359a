"""Failed-login throttling: each failure from an address or for a user adds delay.

The delay doubles with every recent failure (capped), and decays after a quiet period,
so a password-guessing client slows to a crawl while a user who mistyped once barely notices.
"""

from __future__ import annotations

import time


class LoginThrottle:
    def __init__(self, base_delay: float = 0.5, max_delay: float = 30.0, window: float = 900.0):
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.window = window
        self._failures: dict[str, tuple[int, float]] = {}

    def delay(self, *keys: str) -> float:
        """Seconds to wait before answering the next attempt for these keys."""
        now = time.monotonic()
        worst = 0
        for key in keys:
            count, last = self._failures.get(key, (0, 0.0))
            if count and now - last > self.window:
                del self._failures[key]
                continue
            worst = max(worst, count)
        if worst == 0:
            return 0.0
        return float(min(self.max_delay, self.base_delay * (2 ** (worst - 1))))

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        if len(self._failures) > 100_000:  # bound memory under a flood of distinct keys
            self._failures.clear()
        for key in keys:
            count, _ = self._failures.get(key, (0, 0.0))
            self._failures[key] = (count + 1, now)

    def succeeded(self, *keys: str) -> None:
        for key in keys:
            self._failures.pop(key, None)
