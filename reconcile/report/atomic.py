"""Write under a temporary name, then rename into place: no reader ever sees half a report.

Temporary names are hidden siblings of the target, ``.<name>.reconcile-<pid>-<random>.tmp``
(``.old`` for a bundle being replaced), so a run killed with SIGKILL leaves something the next
run recognises as its own and removes (``remove_stale``); nothing else is ever touched.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from reconcile.errors import InputError
from reconcile.leftovers import remove_left


def _prefix(path: Path) -> str:
    return f".{path.name}.reconcile-{os.getpid()}-"


def remove_stale(path: Path) -> list[Path]:
    """Remove temporaries a killed run left next to ``path`` (``leftovers.is_stale``)."""
    parent = path.parent if str(path.parent) else Path(".")
    temporaries = re.compile(
        rf"\.{re.escape(path.name)}\.reconcile-(?P<pid>\d+)-[A-Za-z0-9_]+\.(?:tmp|old)"
    )
    return remove_left(parent, temporaries)


def check_file_target(path: Path) -> None:
    """A single-file output must not name a directory; the message names the user's path."""
    if path.is_dir():
        raise InputError("is a directory; give a file name", path)


@contextmanager
def staged(
    path: Path, encoding: str = "utf-8", newline: str | None = None
) -> Iterator[tuple[IO[str], Path]]:
    """Open a temporary sibling of ``path``; the caller publishes it with ``publish``."""
    check_file_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)
    fd, tmp = tempfile.mkstemp(prefix=_prefix(path), suffix=".tmp", dir=path.parent)
    tmp_path = Path(tmp)
    try:
        with os.fdopen(fd, "w", encoding=encoding, newline=newline) as handle:
            yield handle, tmp_path
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def publish(tmp: Path, path: Path) -> None:
    """Rename into place; on failure the temporary is removed and the error names ``path``."""
    try:
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(f"cannot write: {exc.strerror}", path) from None


def write_atomic(
    path: Path,
    write: Callable[[IO[str]], object],
    encoding: str = "utf-8",
    newline: str | None = None,
) -> None:
    """Write one file atomically; used for single outputs such as --csv and --json."""
    with staged(path, encoding, newline) as (handle, tmp):
        write(handle)
    publish(tmp, path)


def staging_dir(path: Path) -> Path:
    """A hidden, empty sibling directory in which a whole folder is built before ``swap_dir``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)
    return Path(tempfile.mkdtemp(prefix=_prefix(path), suffix=".tmp", dir=path.parent))


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(first: Path, second: Path) -> bool:
    """Linux renameat2(RENAME_EXCHANGE): both names always exist, so there is no instant at
    which a reader finds no folder. False where the platform or filesystem lacks it."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    done = renameat2(
        _AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE
    )
    return bool(done == 0)


def swap_dir(staging: Path, path: Path) -> None:
    """Put the finished ``staging`` folder at ``path``; the folder it replaces is removed."""
    if not path.exists():
        os.rename(staging, path)
        return
    if _exchange(staging, path):
        shutil.rmtree(staging, ignore_errors=True)
        return
    old = Path(tempfile.mkdtemp(prefix=_prefix(path), suffix=".old", dir=path.parent))
    old.rmdir()
    os.rename(path, old)
    os.rename(staging, path)
    shutil.rmtree(old, ignore_errors=True)
