"""Live progress of a run's long steps on stderr, for a person at a terminal only.

Graph fetches of large tenants take minutes; rows show each step (profiles, certificate states
and which profile is being read, the report export job's state and polls, the download, CA rows
read and joined, devices) so the run is visibly alive. When stderr is not a terminal (cron,
systemd, CI, a log file) or with ``-q`` nothing is drawn at all; on a terminal one summary line
stays when the run ends.

The steps call the progress object as ``progress(key, count, detail="")``; any callable with
that signature works, so the core modules never import rich.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

from reconcile.terminal import safe

# Record collections and other steps, in the order they are shown.
_LABELS = {
    "profiles": "certificate profiles",
    "certificate_states": "certificate states",
    "report_rows": "report export rows",
    "managed_devices": "managed devices",
    "ca_rows": "CA rows read and joined",
}


def _describe(key: str, count: int, detail: str) -> str:
    if key == "states_done":
        return f"profiles read: {count}" + (f" (last: {safe(detail)})" if detail else "")
    if key == "export":
        return f"report export job: {safe(detail) or 'created'}, poll {count}"
    if key == "download":
        return f"report download: {_size(count)}"
    if key == "join":
        return f"joined: {count:,} {detail}".rstrip()
    text = f"{_LABELS.get(key, key)}: {count:,}"
    return f"{text} ({safe(detail)})" if detail else text


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} GiB"


class Progress:
    """Callable as ``progress(key, count, detail="")`` from any thread; no-op unless enabled."""

    def __init__(
        self,
        stream: IO[str] | None = None,
        *,
        enabled: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = _is_tty(self.stream) if enabled is None else enabled
        self.clock = clock
        self.counts: dict[str, tuple[int, str]] = {}
        self._started = clock()
        self._lock = threading.Lock()
        self._live: Any = None
        self._tasks: dict[str, Any] = {}

    def __call__(self, key: str, count: int, detail: str = "") -> None:
        if not self.enabled:
            return
        with self._lock:
            if key.endswith("_done"):
                count += self.counts.get(key, (0, ""))[0]
            self.counts[key] = (count, detail)
            display = self._display()
            description = _describe(key, count, detail)
            task = self._tasks.get(key)
            if task is None:
                self._tasks[key] = display.add_task(description, total=None)
            else:
                display.update(task, description=description)

    def _display(self) -> Any:
        if self._live is None:
            from rich.console import Console
            from rich.progress import Progress as RichProgress
            from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

            console = Console(file=self.stream, force_terminal=True, highlight=False)
            self._live = RichProgress(
                SpinnerColumn(),
                TextColumn("{task.description}", markup=False),
                TimeElapsedColumn(),
                console=console,
                transient=True,
                refresh_per_second=8,
            )
            self._live.start()
        return self._live

    def summary(self) -> str:
        """One line with the final counts, e.g. for the end of a fetch."""
        parts = [
            _describe(key, count, detail)
            for key, (count, detail) in self.counts.items()
            if key in _LABELS or key in ("states_done", "download", "join")
        ]
        return f"done in {self.clock() - self._started:.1f} s: " + "; ".join(parts)

    def close(self) -> None:
        """Remove the live rows and leave the summary line, so later output starts clean."""
        if not self.enabled:
            return
        with self._lock:
            if self._live is None:
                return
            self._live.stop()
            self._live = None
            self.stream.write(self.summary() + "\n")
            self.stream.flush()


def _is_tty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _silent(key: str, count: int, detail: str = "") -> None:
    """Progress of a step nobody watches."""


_active: Callable[..., None] = _silent


def report(key: str, count: int, detail: str = "") -> None:
    """Tell whoever shows progress (see :func:`shown`) how far a step is; cheap when nobody."""
    _active(key, count, detail)


@contextmanager
def shown(enabled: bool = True, stream: IO[str] | None = None) -> Iterator[Progress]:
    """Draw progress for the steps run inside (on a terminal, and only if ``enabled``)."""
    global _active
    progress = Progress(stream, enabled=enabled and _is_tty(stream or sys.stderr))
    previous, _active = _active, progress
    try:
        yield progress
    finally:
        _active = previous
        progress.close()
