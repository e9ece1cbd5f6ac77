"""Temporaries a killed run leaves behind, and the rule by which the next run knows them.

A run names what it creates with its pid. SIGKILL (the OOM killer, a container stopped hard)
runs no cleanup, so the next run removes what a gone process left: its pid is not running, or
is the next run's own (a container restarted with the same pid), or it is older than a day.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

STALE_AFTER_SECONDS = 24 * 3600
log = logging.getLogger("reconcile")
_OURS: set[Path] = set()
"""This process's scratch folders: never another run's leftovers, whatever their pid."""


def pid_alive(pid: int) -> bool:
    if sys.platform == "win32":
        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined,unused-ignore]
        handle = kernel32.OpenProcess(0x1000, False, pid)
        if not handle:
            return False
        kernel32.CloseHandle(handle)
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(pid: int, age_seconds: float) -> bool:
    """Whether something named with ``pid`` and last changed ``age_seconds`` ago is left over."""
    return pid == os.getpid() or not pid_alive(pid) or age_seconds >= STALE_AFTER_SECONDS


def remove_left(parent: Path, pattern: re.Pattern[str], keep: Collection[Path] = ()) -> list[Path]:
    """Remove the entries of ``parent`` whose name ``pattern`` matches (its ``pid`` group
    naming the run that made them) and that ``is_stale`` says were left; ``keep`` stay."""
    removed: list[Path] = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None or entry in keep:
            continue
        try:
            age = time.time() - entry.lstat().st_mtime
        except OSError:
            continue
        if not is_stale(int(match["pid"]), age):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def make_scratch(kind: str) -> Path:
    """A private folder ``reconcile-<kind>-<pid>-<random>`` in the temp folder, made after the
    ones a killed run left there are removed (``release_scratch`` removes it)."""
    parent = Path(tempfile.gettempdir())
    pattern = re.compile(rf"reconcile-{re.escape(kind)}-(?P<pid>\d+)-[A-Za-z0-9_]+")
    for entry in remove_left(parent, pattern, _OURS):
        log.info("removed %s, left by a run that was killed", entry)
    folder = Path(tempfile.mkdtemp(prefix=f"reconcile-{kind}-{os.getpid()}-", dir=parent))
    _OURS.add(folder)
    return folder


def release_scratch(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    _OURS.discard(folder)


@contextmanager
def scratch(kind: str) -> Iterator[Path]:
    """``make_scratch`` for the block."""
    folder = make_scratch(kind)
    try:
        yield folder
    finally:
        release_scratch(folder)
