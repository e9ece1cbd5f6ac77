"""Temporaries a killed run leaves behind, and the rule by which the next run knows them.

A run names what it creates with its pid. SIGKILL (the OOM killer, a container stopped hard)
runs no cleanup, so the next run removes what a gone process left: its pid is not running, or
is the next run's own (a container restarted with the same pid), or it is older than a day.
"""

from __future__ import annotations

import ctypes
import os
import sys

STALE_AFTER_SECONDS = 24 * 3600


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
