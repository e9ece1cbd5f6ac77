"""A one-line fetch counter on stderr for a person at a terminal; nothing at all for cron or CI.

Graph fetches of large tenants take minutes; a counter shows the run is alive. Redirected
stderr (a log file, journald) gets no carriage-return noise.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import IO


class Progress:
    """Callable as ``progress(collection, records_so_far)``; redraws at most ``interval`` apart."""

    def __init__(
        self,
        stream: IO[str] | None = None,
        *,
        interval: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = _is_tty(self.stream)
        self.interval = interval
        self.clock = clock
        self.counts: dict[str, int] = {}
        self._drawn_at: float | None = None
        self._width = 0
        self._lock = threading.Lock()

    def __call__(self, collection: str, count: int) -> None:
        if not self.enabled:
            return
        with self._lock:
            self.counts[collection] = count
            now = self.clock()
            if self._drawn_at is not None and now - self._drawn_at < self.interval:
                return
            self._drawn_at = now
            self._draw()

    def _draw(self) -> None:
        line = "fetching: " + ", ".join(f"{name} {n:,}" for name, n in self.counts.items())
        padding = " " * max(0, self._width - len(line))
        self._width = len(line)
        self.stream.write("\r" + line + padding)
        self.stream.flush()

    def close(self) -> None:
        """Draw the final counts and end the line, so later messages start on their own line."""
        if not self.enabled or self._drawn_at is None:
            return
        with self._lock:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()


def _is_tty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
