"""Retention prunes only folders reconcile wrote, and only the files their manifest lists."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconcile import retention
from reconcile.cli import output_options
from reconcile.model import InputFile, Status
from reconcile.report import bundle as writer
from reconcile.report.document import Report
from reconcile.settings import Settings, resolve
from tests.factories import ca_cert, result_with, verdict

NOW = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _records_reach_caplog(monkeypatch, caplog):
    monkeypatch.setattr(logging.getLogger("reconcile"), "propagate", True)
    caplog.set_level(logging.INFO, logger="reconcile")


def bundle(root: Path, name: str, days_ago: int, tool: str = "reconcile") -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    as_of = (NOW - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    (folder / "run.json").write_text(json.dumps({"tool": tool, "as_of": as_of}), encoding="utf-8")
    (folder / "findings.csv").write_text("status\r\n", encoding="utf-8")
    (folder / "manifest-sha256.txt").write_text(
        f"{'0' * 64}  findings.csv\n{'1' * 64}  run.json\n", encoding="utf-8"
    )
    return folder


def test_keep_runs_removes_the_oldest_reconcile_folders_only(tmp_path):
    runs = [bundle(tmp_path, f"run-{i}", days_ago=i) for i in range(5)]
    foreign = bundle(tmp_path, "someone-elses", days_ago=30, tool="other")
    plain = tmp_path / "notes"
    plain.mkdir()
    (plain / "run.json").write_text("{}", encoding="utf-8")
    stray = tmp_path / "stray.txt"
    stray.write_text("keep me", encoding="utf-8")
    removed = retention.prune(tmp_path, NOW, keep_runs=2)
    assert sorted(p.name for p in removed) == ["run-2", "run-3", "run-4"]
    assert [p.exists() for p in runs] == [True, True, False, False, False]
    assert foreign.exists() and plain.exists() and stray.exists()


def test_keep_days(tmp_path):
    for i in (0, 6, 8, 40):
        bundle(tmp_path, f"run-{i}", days_ago=i)
    removed = retention.prune(tmp_path, NOW, keep_days=7)
    assert sorted(p.name for p in removed) == ["run-40", "run-8"]


def test_files_reconcile_did_not_write_survive(tmp_path, caplog):
    old = bundle(tmp_path, "old", days_ago=10)
    (old / "auditor-notes.txt").write_text("mine", encoding="utf-8")
    bundle(tmp_path, "new", days_ago=0)
    retention.prune(tmp_path, NOW, keep_runs=1)
    assert sorted(p.name for p in old.iterdir()) == ["auditor-notes.txt"]
    assert "holds files reconcile did not write" in caplog.text


def test_manifest_naming_a_path_outside_disqualifies(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("x", encoding="utf-8")
    evil = bundle(tmp_path / "reports", "evil", days_ago=50)
    (evil / "manifest-sha256.txt").write_text(f"{'0' * 64}  ../../outside.txt\n", encoding="utf-8")
    bundle(tmp_path / "reports", "new", days_ago=0)
    assert retention.prune(tmp_path / "reports", NOW, keep_runs=1) == []
    assert outside.exists() and evil.exists()


def test_symlinked_folder_is_never_followed(tmp_path):
    target = bundle(tmp_path / "elsewhere", "precious", days_ago=90)
    root = tmp_path / "reports"
    root.mkdir()
    (root / "link").symlink_to(target, target_is_directory=True)
    bundle(root, "new", days_ago=0)
    assert retention.prune(root, NOW, keep_runs=1) == []
    assert (target / "findings.csv").exists()


def test_current_run_is_kept_and_unset_limits_prune_nothing(tmp_path):
    current = bundle(tmp_path, "current", days_ago=100)
    bundle(tmp_path, "newer", days_ago=0)
    assert retention.prune(tmp_path, NOW, keep_runs=1, current=current) == []
    assert retention.prune(tmp_path, NOW) == []
    settings = Settings(out_dir=current, keep_days=1)
    assert retention.prune_for(settings.retention(), NOW) == []
    assert retention.prune_for(Settings(out_dir=tmp_path / "x", keep_days=1).retention(), NOW) == [
        current
    ]


def test_self_contained_bundles_are_pruned_with_their_inputs(tmp_path):
    """A real bundle (inputs/ copies included) goes whole; a foreign file inside keeps it."""
    csv_file = tmp_path / "issued.csv"
    csv_file.write_text("x\n", encoding="utf-8")
    digest = hashlib.sha256(csv_file.read_bytes()).hexdigest()
    result = result_with(
        verdict(Status.NOT_REPORTED, ca=ca_cert(1)),
        inputs=(InputFile(str(csv_file), "ca-export", "certutil", digest, 1, 0),),
    )
    old = writer.write_bundle(
        tmp_path / "reports" / "old", Report(result), output_options(resolve({}, env={})), [], 1
    )
    kept = writer.write_bundle(
        tmp_path / "reports" / "kept", Report(result), output_options(resolve({}, env={})), [], 1
    )
    assert (old / "inputs" / "ca" / "1-issued.csv.gz").is_file()
    (kept / "inputs" / "notes.txt").write_text("mine", encoding="utf-8")
    removed = retention.prune(tmp_path / "reports", NOW + timedelta(days=400), keep_days=1)
    assert sorted(p.name for p in removed) == ["kept", "old"]
    assert not old.exists()
    assert sorted(p.relative_to(kept).as_posix() for p in kept.rglob("*")) == [
        "inputs",
        "inputs/notes.txt",
    ]
