"""Write under a temporary name, then rename into place: no reader ever sees half a report."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def staged(
    path: Path, encoding: str = "utf-8", newline: str | None = None
) -> Iterator[tuple[IO[str], Path]]:
    """Open a temporary sibling of ``path``; the caller publishes it with ``publish``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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
    os.replace(tmp, path)


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
