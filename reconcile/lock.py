"""One run at a time: overlapping nightly runs would record history twice and race on reports.

The OS lock (flock, or LockFileEx through msvcrt on Windows) on the lock file is the truth: the
kernel releases it when its holder dies, however it died (kill -9, the OOM killer, a container
that restarted with the same pid or another hostname). If it can be taken, the previous holder
is gone, whatever pid or host the file names, and a leftover record is taken over with a
warning; if it cannot, the run is refused naming the holder the file records.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from reconcile.errors import ConfigError, LockHeldError

log = logging.getLogger("reconcile.lock")


@dataclass(frozen=True, slots=True)
class Holder:
    pid: int
    host: str
    started: datetime


def _read_holder(handle: IO[str]) -> Holder | None:
    """Who the file says holds it; None when empty or unreadable (only used in messages)."""
    try:
        handle.seek(0)
        data = json.loads(handle.read() or "null")
        return Holder(
            pid=int(data["pid"]),
            host=str(data["host"]),
            started=datetime.fromisoformat(str(data["started"])),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _os_lock(handle: IO[str]) -> bool:
    """Try the OS lock; False means another live process holds it."""
    if sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return False
        raise
    return True


def _describe(holder: Holder | None) -> str:
    if holder is None:
        return "holder not recorded"
    return f"pid {holder.pid} on {holder.host}, started {holder.started.isoformat()}"


@contextmanager
def run_lock(
    path: Path, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> Iterator[Holder]:
    """Hold the lock for the body; raises LockHeldError naming the live holder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    me = Holder(os.getpid(), socket.gethostname(), now().replace(microsecond=0))
    handle = _acquire(path, me)
    try:
        yield me
    finally:
        # Emptied and removed while still held, so a run waiting on this file retries on a new
        # one; where an open file cannot be removed (Windows) it stays, empty: no stale record.
        with contextlib.suppress(OSError):
            handle.seek(0)
            handle.truncate()
            handle.flush()
        with contextlib.suppress(OSError):
            path.unlink()
        handle.close()


def _same_file(handle: IO[str], path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
    except FileNotFoundError:
        return False


def _acquire(path: Path, me: Holder) -> IO[str]:
    for _attempt in range(5):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            handle = os.fdopen(fd, "r+", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot open lock file: {exc.strerror}") from None
        try:
            locked = _os_lock(handle)
        except OSError as exc:
            handle.close()
            raise ConfigError(f"{path}: the file system refuses a lock: {exc.strerror}") from None
        if not locked:
            holder = _read_holder(handle)
            handle.close()
            raise LockHeldError(f"another run holds the lock {path}: {_describe(holder)}")
        if not _same_file(handle, path):
            handle.close()  # the previous holder removed it as we opened it: take the new one
            continue
        previous = _read_holder(handle)
        handle.seek(0)
        if previous is not None or handle.read():
            log.warning(
                "taking over stale lock %s (%s): its process is gone (the OS lock was free)",
                path,
                _describe(previous) if previous is not None else "holder record unreadable",
            )
        handle.seek(0)
        handle.truncate()
        handle.write(
            json.dumps({"pid": me.pid, "host": me.host, "started": me.started.isoformat()})
        )
        handle.flush()
        return handle
    raise LockHeldError(f"another run is taking the lock {path}; try again")
