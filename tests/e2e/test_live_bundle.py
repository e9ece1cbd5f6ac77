"""The bundles users actually have verify: a live run's, a snapshot run's and the demo's,
after the folder moved and from another working directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconcile.cli import app
from reconcile.emulator import GraphEmulator
from tests.e2e.test_live_run import _quick_export_polls, emu, run_args  # noqa: F401


def verify_moved(bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    moved = tmp_path / "archive" / "2026-11-20"
    moved.parent.mkdir(parents=True)
    bundle.rename(moved)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return CliRunner().invoke(app, ["verify", str(moved)])


def test_live_run_bundle_verifies_after_moving(emu: GraphEmulator, tmp_path, monkeypatch):  # noqa: F811
    out = tmp_path / "out"
    done = CliRunner().invoke(app, run_args("--out-dir", str(out), "-q"))
    assert done.exit_code == 1, done.output
    meta = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert {b["role"] for b in meta["bundled"]} == {"ca-export", "snapshot", "snapshot-metadata"}
    assert not list(tmp_path.glob("reconcile-fetch-*"))
    checked = verify_moved(out, tmp_path, monkeypatch)
    assert checked.exit_code == 0, checked.output
    assert "verified:" in checked.stdout


def test_live_run_on_the_clock_verifies(emu: GraphEmulator, tmp_path):  # noqa: F811
    """No --as-of: the run id is stamped from the as-of the run used, not a later clock read."""
    args = run_args("--out-dir", str(tmp_path / "out"), "-q")
    at = args.index("--as-of")
    del args[at : at + 2]
    done = CliRunner().invoke(app, args)
    assert done.exit_code in (0, 1), done.output
    meta = json.loads((tmp_path / "out" / "run.json").read_text(encoding="utf-8"))
    stamp = meta["as_of"].replace("-", "").replace(":", "")
    assert meta["run_id"].startswith(stamp + "-")
    checked = CliRunner().invoke(app, ["verify", str(tmp_path / "out")])
    assert checked.exit_code == 0, checked.output


def test_live_run_with_referenced_inputs_says_which_it_needs(emu: GraphEmulator, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    done = CliRunner().invoke(app, run_args("--out-dir", str(out), "--bundle-inputs", "reference"))
    assert done.exit_code == 1, done.output
    assert not (out / "inputs").exists()
    checked = CliRunner().invoke(app, ["verify", str(out)])
    assert checked.exit_code == 2
    assert "--bundle-inputs reference" in checked.stderr
    assert "certificate_states.jsonl" in checked.stderr


def test_demo_bundle_verifies_after_moving(tmp_path, monkeypatch):
    out = tmp_path / "demo"
    done = CliRunner().invoke(app, ["demo", "--out-dir", str(out)])
    assert done.exit_code == 0, done.output
    checked = verify_moved(out, tmp_path, monkeypatch)
    assert checked.exit_code == 0, checked.output
    report = tmp_path / "archive" / "2026-11-20" / "findings.csv"
    report.write_bytes(report.read_bytes().replace(b"not_reported", b"delivered", 1))
    tampered = CliRunner().invoke(app, ["verify", str(report.parent)])
    assert tampered.exit_code == 1
    assert "findings.csv: sha256 differs from the manifest" in tampered.stderr
