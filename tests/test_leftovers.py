"""What a killed run leaves in the temp folder is removed by the next run, and nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from reconcile import leftovers


def _gone_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    return child.pid


def test_the_rule_for_a_killed_run_s_leftovers() -> None:
    assert leftovers.is_stale(_gone_pid(), 0)
    assert leftovers.is_stale(os.getpid(), 0)  # a container restarted with the same pid
    assert not leftovers.is_stale(os.getppid(), 0)
    assert leftovers.is_stale(os.getppid(), leftovers.STALE_AFTER_SECONDS)


def test_a_fetch_folder_a_killed_run_left_goes_with_the_next_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    left = tmp_path / f"reconcile-fetch-{_gone_pid()}-k1lled"
    (left / "snapshot").mkdir(parents=True)
    (left / "snapshot" / "certificate_states.jsonl").write_text("{}\n")
    running = tmp_path / f"reconcile-fetch-{os.getppid()}-running"
    engine = tmp_path / f"reconcile-engine-{_gone_pid()}-another"
    unrelated = tmp_path / "reconcile-fetch-notes"
    for folder in (running, engine, unrelated):
        folder.mkdir()
    with leftovers.scratch("fetch") as mine:
        assert mine.name.startswith(f"reconcile-fetch-{os.getpid()}-") and mine.is_dir()
        assert not left.exists()
        assert running.exists() and engine.exists() and unrelated.exists()
        with leftovers.scratch("fetch") as second:
            assert mine.exists() and second.exists()
    assert not mine.exists() and not second.exists()


def test_a_day_old_folder_goes_whoever_holds_its_pid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    old = tmp_path / f"reconcile-fetch-{os.getppid()}-old"
    old.mkdir()
    day_ago = time.time() - leftovers.STALE_AFTER_SECONDS - 60
    os.utime(old, (day_ago, day_ago))
    with leftovers.scratch("fetch"):
        assert not old.exists()
