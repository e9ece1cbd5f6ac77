"""The run lock: a live holder refuses a second run; a stale lock is taken over with a warning."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconcile import lock
from reconcile.errors import LockHeldError
from reconcile.settings import Settings

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _records_reach_caplog(monkeypatch, caplog):
    """A CLI test earlier in the session may have turned propagation off."""
    logger = logging.getLogger("reconcile")
    monkeypatch.setattr(logger, "propagate", True)
    caplog.set_level(logging.INFO, logger="reconcile")


def write_holder(path: Path, pid: int, started: datetime, host: str | None = None) -> None:
    path.write_text(
        json.dumps(
            {"pid": pid, "host": host or socket.gethostname(), "started": started.isoformat()}
        ),
        encoding="utf-8",
    )


def test_lock_file_names_holder_and_is_removed_after(tmp_path):
    path = tmp_path / "run.lock"
    with lock.run_lock(path, now=lambda: NOW) as me:
        data = json.loads(path.read_text(encoding="utf-8"))
        assert data == {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": NOW.isoformat(),
        }
        assert me.pid == os.getpid()
    assert not path.exists()


def test_lock_held_by_another_process_refuses_a_second_run(tmp_path):
    path = tmp_path / "run.lock"
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from reconcile.lock import run_lock

        with run_lock(Path({str(path)!r})):
            print("locked", flush=True)
            sys.stdin.readline()
        """
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[1],
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        with pytest.raises(LockHeldError, match=f"pid {holder.pid}"), lock.run_lock(path):
            pass
    finally:
        holder.communicate("done\n", timeout=30)
    assert holder.returncode == 0
    with lock.run_lock(path):
        pass


HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from reconcile.lock import run_lock

    with run_lock(Path(sys.argv[1])):
        print("locked", flush=True)
        sys.stdin.readline()
    """
)


def test_holder_killed_with_sigkill_frees_the_lock(tmp_path, caplog):
    """The OOM killer's way: no finally block runs, the file stays, the OS lock goes."""
    path = tmp_path / "run.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[1],
    )
    assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    with pytest.raises(LockHeldError, match=f"pid {holder.pid} on"), lock.run_lock(path):
        pass
    holder.kill()
    holder.wait(timeout=30)
    assert json.loads(path.read_text(encoding="utf-8"))["pid"] == holder.pid
    with lock.run_lock(path, now=lambda: NOW):
        assert json.loads(path.read_text(encoding="utf-8"))["pid"] == os.getpid()
    assert "taking over stale lock" in caplog.text
    assert f"pid {holder.pid}" in caplog.text and "its process is gone" in caplog.text
    assert not path.exists()


@pytest.mark.parametrize(
    ("pid", "host"), [(1, "other-host"), (1, None), (os.getpid(), "restarted-container")]
)
def test_a_record_naming_pid_1_or_another_host_does_not_block(tmp_path, caplog, pid, host):
    """In a container the tool is PID 1 and the hostname changes on restart: only the OS
    lock says whether the holder lives, and here nobody holds it."""
    path = tmp_path / "run.lock"
    write_holder(path, pid, NOW - timedelta(minutes=5), host=host)
    with lock.run_lock(path, now=lambda: NOW):
        assert json.loads(path.read_text(encoding="utf-8"))["pid"] == os.getpid()
    assert f"pid {pid} on {host or socket.gethostname()}" in caplog.text


def test_garbage_lock_file_is_taken_over(tmp_path, caplog):
    path = tmp_path / "run.lock"
    path.write_text("not json", encoding="utf-8")
    with lock.run_lock(path, now=lambda: NOW):
        pass
    assert "unreadable" in caplog.text


def test_lock_path_defaults_next_to_history(tmp_path):
    assert Settings(history_db=tmp_path / "h.sqlite3").lock_file() == tmp_path / "h.sqlite3.lock"
    assert Settings(lock_path=tmp_path / "x.lock").lock_file() == tmp_path / "x.lock"


def test_an_empty_lock_file_left_behind_is_taken_quietly(tmp_path, caplog):
    """Where an open file cannot be removed (Windows) a finished run leaves it empty."""
    path = tmp_path / "run.lock"
    path.write_text("", encoding="utf-8")
    with lock.run_lock(path, now=lambda: NOW):
        assert json.loads(path.read_text(encoding="utf-8"))["pid"] == os.getpid()
    assert "stale" not in caplog.text
