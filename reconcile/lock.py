"""One run at a time: overlapping nightly runs would record history twice and race on reports.

The lock file is created with O_EXCL and, where the platform offers it, also held with an OS
lock (fcntl or msvcrt) for the life of the run. It names its holder (pid, host, start time) so a
refused run can say who holds it. A lock left by a crashed run is stale when its pid is no longer
alive on this host, or when it is older than ``STALE_AFTER``; a stale lock is taken over with a
warning.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

from reconcile.errors import ConfigError, LockHeldError
from reconcile.history import database_path
from reconcile.settings import Settings

log = logging.getLogger("reconcile.lock")

STALE_AFTER = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Holder:
    pid: int
    host: str
    started: datetime


def path_for(settings: Settings) -> Path:
    """``history.lock`` if set, else next to the history database, so jobs sharing a history
    share the lock."""
    if settings.lock_path is not None:
        return settings.lock_path
    history_db = database_path(settings.history_db)
    return history_db.with_name(history_db.name + ".lock")


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if sys.platform == "win32":
        import ctypes

        kernel32 = ctypes.windll.kernel32
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


def _read_holder(path: Path) -> Holder | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Holder(
            pid=int(data["pid"]),
            host=str(data["host"]),
            started=datetime.fromisoformat(str(data["started"])),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return Holder(pid=0, host="", started=datetime.fromtimestamp(0, UTC))


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


def _is_stale(holder: Holder, now: datetime, alive: Callable[[int], bool]) -> str | None:
    if holder.pid == 0:
        return "unreadable"
    if now - holder.started > STALE_AFTER:
        return f"older than {STALE_AFTER.total_seconds() / 3600:g} h"
    if holder.host == socket.gethostname() and not alive(holder.pid):
        return "its process is gone"
    return None


@contextmanager
def run_lock(
    path: Path,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    alive: Callable[[int], bool] = pid_alive,
) -> Iterator[Holder]:
    """Hold the lock for the body; raises LockHeldError naming a live holder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    me = Holder(os.getpid(), socket.gethostname(), now().replace(microsecond=0))
    handle = _acquire(path, me, now, alive)
    try:
        yield me
    finally:
        handle.close()
        if _read_holder(path) == me:
            path.unlink(missing_ok=True)


def _acquire(
    path: Path, me: Holder, now: Callable[[], datetime], alive: Callable[[int], bool]
) -> IO[str]:
    for _attempt in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder = _read_holder(path)
            if holder is None:
                continue
            reason = _is_stale(holder, now(), alive)
            if reason is None or not _probe_free(path):
                raise LockHeldError(
                    f"another run holds the lock {path}: pid {holder.pid} on {holder.host},"
                    f" started {holder.started.isoformat()}"
                ) from None
            log.warning(
                "taking over stale lock %s (pid %d on %s, started %s): %s",
                path,
                holder.pid,
                holder.host,
                holder.started.isoformat(),
                reason,
            )
            path.unlink(missing_ok=True)
            continue
        except OSError as exc:
            raise ConfigError(f"{path}: cannot create lock file: {exc.strerror}") from None
        handle = os.fdopen(fd, "w", encoding="utf-8")
        if not _os_lock(handle):
            handle.close()
            raise LockHeldError(f"another run holds the lock {path}")
        handle.write(
            json.dumps({"pid": me.pid, "host": me.host, "started": me.started.isoformat()})
        )
        handle.flush()
        return handle
    raise LockHeldError(f"another run is taking the lock {path}; try again")


def _probe_free(path: Path) -> bool:
    """A stale-looking file whose OS lock is still held belongs to a live run elsewhere."""
    try:
        with open(path, encoding="utf-8") as probe:
            return _os_lock(probe)
    except FileNotFoundError:
        return True
