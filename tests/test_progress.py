"""Live progress: drawn on a terminal only (a real pseudo-terminal here), silent otherwise."""

from __future__ import annotations

import functools
import io
import os
import pty
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pytest

from reconcile import progress
from reconcile.emulator import GraphEmulator
from reconcile.emulator.demo import DEMO_SNAPSHOT, demo_settings_env
from reconcile.intune import fetch as fetch_module
from reconcile.intune.fetch import fetch_snapshot
from reconcile.progress import Progress
from reconcile.settings import resolve
from tests.test_cli import base_args

DEMO_TENANT = "c0ffee00-5a1e-4d3e-9c7a-00000000c0de"


@contextmanager
def terminal() -> Iterator[tuple[IO[str], list[bytes]]]:
    """A writable pseudo-terminal and everything written to it (drained by a thread)."""
    master, slave = pty.openpty()
    received: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            received.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    stream = os.fdopen(slave, "w", encoding="utf-8")
    try:
        yield stream, received
    finally:
        stream.close()
        reader.join(timeout=10)
        os.close(master)


def test_silent_when_stderr_is_not_a_terminal():
    stream = io.StringIO()
    with progress.shown(stream=stream):
        progress.report("certificate_states", 1000)
    assert stream.getvalue() == ""


def test_disabled_draws_nothing_even_on_a_terminal():
    with terminal() as (stream, received), progress.shown(enabled=False, stream=stream):
        progress.report("certificate_states", 1000)
    assert b"".join(received) == b""


def test_steps_are_counted_and_end_in_one_summary_line():
    now = [0.0]
    with terminal() as (stream, received):
        shown = Progress(stream, clock=lambda: now[0])
        assert shown.enabled
        shown("profiles", 3)
        shown("certificate_states", 2500)
        shown("states_done", 1, "Contoso SCEP")
        shown("states_done", 1, "Contoso PKCS")
        shown("export", 2, "inProgress")
        shown("download", 3 * 1024 * 1024)
        now[0] = 4.0
        summary = shown.summary()
        shown.close()
    assert summary == (
        "done in 4.0 s: certificate profiles: 3; certificate states: 2,500; "
        "profiles read: 2 (last: Contoso PKCS); report download: 3.0 MiB"
    )
    text = b"".join(received).decode()
    assert text.rstrip().endswith(summary)
    assert text.count("done in") == 1


def test_a_live_fetch_draws_its_steps_on_a_terminal(monkeypatch: pytest.MonkeyPatch):
    quick = functools.partial(fetch_module.ExportPolling, first_delay=0.05, max_delay=0.1)
    monkeypatch.setattr(fetch_module, "ExportPolling", quick)
    with GraphEmulator(snapshot_dir=DEMO_SNAPSHOT, tenant=DEMO_TENANT, page_size=4) as emu:
        settings = resolve({"intune_source": "both"}, demo_settings_env(emu))
        with terminal() as (stream, received), progress.shown(stream=stream) as shown:
            fetch_snapshot(
                settings.fetch_options(),
                Path(os.environ["HOME"]) / "snap",
                progress=progress.report,
            )
    keys = set(shown.counts)
    assert {"profiles", "certificate_states", "states_done", "export", "download"} <= keys
    assert {"report_rows", "managed_devices"} <= keys
    text = b"".join(received).decode()
    assert "certificate states" in text and "report export job" in text
    assert text.rstrip().splitlines()[-1].split("\x1b[2K")[-1].startswith("done in ")


def _run_cli(*extra: str, tty: bool) -> str:
    args = [sys.executable, "-m", "reconcile.cli", *base_args(*extra)]
    if not tty:
        done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 1, done.stderr
        return done.stderr
    with terminal() as (stream, received):
        done = subprocess.run(args, stdout=subprocess.PIPE, stderr=stream, timeout=120, check=False)
        assert done.returncode == 1
    return b"".join(received).decode()


def test_run_draws_progress_on_a_terminal_only():
    on_tty = _run_cli(tty=True)
    assert "done in" in on_tty and "CA rows read and joined" in on_tty
    assert "done in" not in _run_cli(tty=False)
    assert "done in" not in _run_cli("-q", tty=True)
