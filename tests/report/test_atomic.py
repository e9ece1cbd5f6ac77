"""Publishing under kills: real child processes, killed while they write a bundle."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconcile.cli import app, output_options
from reconcile.report import atomic, bundle
from reconcile.report.document import Report
from reconcile.settings import resolve
from reconcile.verify import check_manifest
from tests.factories import result_with

ROOT = Path(__file__).resolve().parents[2]

# The child writes a bundle whose extra file blocks until the parent kills it; it says "ready"
# once the rest of the bundle is written, so the kill lands in the middle of publishing.
CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from reconcile.cli import output_options
    from reconcile.report import bundle
    from reconcile.report.document import Report
    from reconcile.settings import resolve
    from tests.factories import result_with

    def slow(handle):
        handle.write("partial")
        handle.flush()
        print("ready", flush=True)
        time.sleep(60)

    options = output_options(resolve({}, env={}))
    bundle.write_bundle(
        Path(sys.argv[1]), Report(result_with()), options, [], 0, extra=[("z.html", slow)]
    )
    """
)


def _start(target: Path) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(target)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    return child


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_kill_while_publishing_leaves_last_nights_bundle_whole(tmp_path, sig):
    target = tmp_path / "report"
    bundle.write_bundle(
        target, Report(result_with()), output_options(resolve({}, env={})), ["last-night"], 0
    )
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    child = _start(target)
    child.send_signal(sig)
    child.wait(timeout=30)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert check_manifest(target).ok
    # The next run removes what the killed one left, then publishes tonight's bundle.
    bundle.write_bundle(
        target, Report(result_with()), output_options(resolve({}, env={})), ["tonight"], 0
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]
    assert b"tonight" in (target / "run.json").read_bytes()


def test_stale_temporaries_of_a_live_process_are_kept(tmp_path):
    """Only leftovers of dead processes (or of this pid's earlier life) are removed."""
    target = tmp_path / "report.csv"
    parent_pid = os.getppid()
    live = tmp_path / f".report.csv.reconcile-{parent_pid}-abc.tmp"
    mine = tmp_path / f".report.csv.reconcile-{os.getpid()}-abc.tmp"
    other = tmp_path / ".other.csv.reconcile-999999999-abc.tmp"
    for path in (live, mine, other):
        path.write_text("x", encoding="utf-8")
    assert atomic.remove_stale(target) == [mine]
    assert live.exists() and other.exists()


def test_csv_pointing_at_a_directory_is_one_line_naming_it_and_leaves_nothing(tmp_path):
    inputs = ROOT / "tests" / "fixtures" / "cli"
    target = tmp_path / "reports"
    target.mkdir()
    done = CliRunner().invoke(
        app,
        [
            "run",
            "--ca-export", str(inputs / "issued.csv"),
            "--snapshot", str(inputs / "snapshot"),
            "--no-history",
            "--csv", str(target),
            "--out-dir", str(tmp_path / "bundle"),
        ],
    )  # fmt: skip
    assert done.exit_code == 2
    lines = done.stderr.strip().splitlines()
    assert lines == [f"reconcile: error: {target}: is a directory; give a file name"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reports"]
    assert list(target.iterdir()) == []


def test_a_folder_with_foreign_files_is_not_replaced(tmp_path):
    target = tmp_path / "report"
    target.mkdir()
    (target / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(Exception, match="not part of a reconcile report"):
        bundle.write_bundle(
            target, Report(result_with()), output_options(resolve({}, env={})), [], 0
        )
    assert [p.name for p in target.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def _cli_run(out: Path, history: Path) -> list[str]:
    inputs = ROOT / "tests" / "fixtures" / "cli"
    return [
        sys.executable, "-c", "from reconcile.cli import main; main()",
        "run",
        "--ca-export", str(inputs / "issued.csv"),
        "--snapshot", str(inputs / "snapshot"),
        "--ca-issuer", "Contoso Issuing CA",
        "--as-of", "2026-11-20T02:00:00Z",
        "--history-db", str(history),
        "--out-dir", str(out),
        "--csv", str(out.parent / "findings.csv"),
        "-q",
    ]  # fmt: skip


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_killing_the_cli_at_any_moment_never_leaves_a_mix(tmp_path, sig):
    """The real command, killed at spread-out moments of its run: the folder is last night's
    bundle or tonight's, whole; SIGTERM leaves no temporaries, and after SIGKILL the next run
    removes them."""
    out, history = tmp_path / "reports" / "nightly", tmp_path / "h.sqlite3"
    first = subprocess.run(_cli_run(out, history), cwd=ROOT, capture_output=True, text=True)
    assert first.returncode == 1, first.stderr
    for delay in (0.3, 0.6, 0.9, 1.2, 1.5, 2.0):
        child = subprocess.Popen(_cli_run(out, history), cwd=ROOT, stderr=subprocess.PIPE)
        try:
            child.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            child.send_signal(sig)
            child.wait(timeout=30)
        assert child.stderr is not None
        child.stderr.close()
        assert check_manifest(out).ok
        leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(".")]
        if sig == signal.SIGTERM:
            assert leftovers == []
    again = subprocess.run(_cli_run(out, history), cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 1, again.stderr
    assert sorted(p.name for p in out.parent.iterdir()) == ["findings.csv", "nightly"]
