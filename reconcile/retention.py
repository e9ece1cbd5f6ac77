"""Retention of report folders: a nightly job must not fill the disk over the years.

Pruning is deliberately narrow. A folder is a candidate only if it is a direct child of the
reports root, not a symlink, and holds a ``run.json`` written by reconcile and a manifest; only
the files that manifest lists (and the manifest itself) are removed, and the folder is removed
only if that leaves it empty. Anything else somebody put there survives.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from reconcile.report.runjson import MANIFEST, RUN_JSON, NotRunJson, load, read_manifest
from reconcile.timeparse import parse_utc

log = logging.getLogger("reconcile.retention")


@dataclass(frozen=True, slots=True)
class RunFolder:
    path: Path
    as_of: datetime
    files: tuple[str, ...]


def run_folder(path: Path) -> RunFolder | None:
    """The folder as a reconcile bundle, or None when reconcile did not write it."""
    if path.is_symlink() or not path.is_dir():
        return None
    try:
        meta = load(path / RUN_JSON)
    except (OSError, NotRunJson):
        return None
    entries = read_manifest(path)
    if entries is None:
        return None
    try:
        as_of = parse_utc(meta.as_of)
    except ValueError:
        return None
    return RunFolder(path, as_of, tuple(name for _digest, name in entries))


def prune(
    root: Path,
    now: datetime,
    keep_runs: int | None = None,
    keep_days: int | None = None,
    current: Path | None = None,
) -> list[Path]:
    """Remove run folders beyond the newest ``keep_runs`` or older than ``keep_days``.

    Either limit alone applies when the other is unset; with both, a folder goes when it
    breaks either. ``current`` (this run's folder) is always kept. Returns removed folders.
    """
    if keep_runs is None and keep_days is None:
        return []
    if keep_runs is not None and keep_runs < 1:
        raise ValueError("keep_runs must be at least 1")
    folders = [f for f in (run_folder(p) for p in sorted(root.iterdir())) if f is not None]
    folders.sort(key=lambda f: (f.as_of, f.path.name), reverse=True)
    keep_current = current.resolve() if current is not None else None
    cutoff = now - timedelta(days=keep_days) if keep_days is not None else None
    removed: list[Path] = []
    for rank, folder in enumerate(folders):
        if keep_current is not None and folder.path.resolve() == keep_current:
            continue
        too_many = keep_runs is not None and rank >= keep_runs
        too_old = cutoff is not None and folder.as_of < cutoff
        if too_many or too_old:
            _remove(folder)
            removed.append(folder.path)
    return removed


def _remove(folder: RunFolder) -> None:
    parents: set[Path] = set()
    for name in (*folder.files, MANIFEST):
        target = folder.path / name
        if target.is_file() and not target.is_symlink():
            target.unlink()
            parents.update(p for p in target.parents if folder.path in p.parents)
    for directory in sorted(parents, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            directory.rmdir()
    try:
        folder.path.rmdir()
        log.info("retention: removed %s", folder.path)
    except OSError:
        log.warning("retention: kept %s: it holds files reconcile did not write", folder.path)


@dataclass(frozen=True)
class Retention:
    """Which report folders beside this run's --out-dir to keep: the newest N, the last N days."""

    out_dir: Path | None = None
    keep_runs: int | None = None
    keep_days: int | None = None


def prune_for(retention: Retention, now: datetime) -> list[Path]:
    """Prune siblings of this run's --out-dir; a failure is logged, never fails the run."""
    out_dir = retention.out_dir
    if out_dir is None or (retention.keep_runs is None and retention.keep_days is None):
        return []
    try:
        removed = prune(out_dir.parent, now, retention.keep_runs, retention.keep_days, out_dir)
    except (OSError, ValueError) as exc:
        log.warning("retention: pruning %s failed: %s", out_dir.parent, exc)
        return []
    if removed:
        log.info("retention: removed %d old report folder(s)", len(removed))
    return removed
