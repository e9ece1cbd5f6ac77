"""A snapshot that exists is complete, and hostile content fails in one line, never hangs."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconcile.cli import app
from reconcile.intune.snapshot import SnapshotWriter

CLI = Path(__file__).resolve().parents[1] / "fixtures" / "cli"


@pytest.fixture
def snap(tmp_path) -> Path:
    """The CLI fixture snapshot, rewritten by the writer so metadata.json holds sha256s."""
    source = CLI / "snapshot"
    meta = json.loads((source / "metadata.json").read_text(encoding="utf-8"))
    keep = {k: meta[k] for k in ("tenant_id", "intune_source", "fetched_at")}
    target = tmp_path / "snap"
    with SnapshotWriter(target, {**keep, "sources": ["states"]}) as writer:
        for name in meta["counts"]:
            writer.open_collection(name)
            for line in (source / f"{name}.jsonl").read_text(encoding="utf-8").splitlines():
                writer.write(name, json.loads(line))
        writer.commit()
    return target


def run(tmp_path: Path, snapshot: Path):
    out = tmp_path / "out"
    done = CliRunner().invoke(
        app,
        [
            "run",
            "--ca-export", str(CLI / "issued.csv"),
            "--ca-issuer", "Contoso Issuing CA",
            "--snapshot", str(snapshot),
            "--as-of", "2026-11-20T02:00:00Z",
            "--no-history",
            "--out-dir", str(out),
            "--csv", str(tmp_path / "findings.csv"),
        ],
    )  # fmt: skip
    assert not out.exists() and not (tmp_path / "findings.csv").exists(), "a report was written"
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    return done


def test_sound_snapshot_runs(snap, tmp_path):
    meta = json.loads((snap / "metadata.json").read_text(encoding="utf-8"))
    assert set(meta["sha256"]) == {"certificate_states", "managed_devices"}
    done = CliRunner().invoke(
        app,
        [
            "run", "--ca-export", str(CLI / "issued.csv"), "--snapshot", str(snap),
            "--ca-issuer", "Contoso Issuing CA", "--no-history", "-q",
        ],
    )  # fmt: skip
    assert done.exit_code == 1, done.output


def test_last_line_cut_off_is_incomplete(snap, tmp_path):
    path = snap / "certificate_states.jsonl"
    path.write_bytes(path.read_bytes()[:-40])
    done = run(tmp_path, snap)
    assert done.exit_code == 3
    assert "certificate_states.jsonl:3: the last line is cut off" in done.stderr


def test_same_line_count_but_changed_bytes_fails_the_sha256(snap, tmp_path):
    path = snap / "certificate_states.jsonl"
    path.write_bytes(path.read_bytes().replace(b"installed", b"installFailed", 1))
    done = run(tmp_path, snap)
    assert done.exit_code == 3
    assert "sha256 differs from the one metadata.json recorded" in done.stderr


def test_listed_collection_missing_is_incomplete(snap, tmp_path):
    (snap / "managed_devices.jsonl").unlink()
    done = run(tmp_path, snap)
    assert done.exit_code == 3
    assert "managed_devices.jsonl: listed in metadata but missing" in done.stderr


def test_needed_collection_removed_from_both_is_incomplete(snap, tmp_path):
    (snap / "certificate_states.jsonl").unlink()
    meta = json.loads((snap / "metadata.json").read_text(encoding="utf-8"))
    del meta["counts"]["certificate_states"], meta["sha256"]["certificate_states"]
    (snap / "metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    done = run(tmp_path, snap)
    assert done.exit_code == 3
    assert "fetched with certificate_states but it is not listed" in done.stderr


def test_out_of_range_date_is_a_rejected_record_not_an_internal_error(snap, tmp_path):
    path = snap / "certificate_states.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    record = json.loads(lines[0])
    record["certificateExpirationDateTime"] = "9999-12-31T23:59:59-01:00"
    lines[0] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    meta = json.loads((snap / "metadata.json").read_text(encoding="utf-8"))
    del meta["sha256"]
    (snap / "metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    done = CliRunner().invoke(
        app,
        [
            "run", "--ca-export", str(CLI / "issued.csv"), "--snapshot", str(snap),
            "--ca-issuer", "Contoso Issuing CA", "--no-history", "-q", "--strict",
        ],
    )  # fmt: skip
    assert done.exit_code == 2, done.output
    assert "certificate_states.jsonl:1:" in done.stderr
    assert "'9999-12-31T23:59:59-01:00' is out of range" in done.stderr
    assert "internal error" not in done.stderr


def test_deeply_nested_metadata_is_an_input_error(snap, tmp_path):
    (snap / "metadata.json").write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    done = run(tmp_path, snap)
    assert done.exit_code == 2
    assert "metadata.json: invalid JSON: nested too deeply" in done.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="no FIFOs on Windows")
@pytest.mark.parametrize("name", ["metadata.json", "certificate_states.jsonl"])
def test_fifo_in_place_of_a_file_never_hangs(snap, tmp_path, name):
    (snap / name).unlink()
    os.mkfifo(snap / name)
    done = run(tmp_path, snap)
    assert done.exit_code == 2
    assert f"{name}: not a regular file" in done.stderr


def test_corrupt_history_database_is_one_line(tmp_path):
    db = tmp_path / "history.sqlite3"
    db.write_bytes(b"SQLite format 3\x00" + os.urandom(4096))
    shutil.copy(db, tmp_path / "copy")
    for command in (["history"], ["trend"]):
        done = CliRunner().invoke(app, [*command, "--history-db", str(db)])
        assert done.exit_code == 2, done.output
        assert len(done.stderr.strip().splitlines()) == 1
        assert "cannot use history database" in done.stderr
    done = CliRunner().invoke(
        app,
        [
            "run", "--ca-export", str(CLI / "issued.csv"), "--snapshot", str(CLI / "snapshot"),
            "--ca-issuer", "Contoso Issuing CA", "--history-db", str(db), "-q",
            "--out-dir", str(tmp_path / "out"),
        ],
    )  # fmt: skip
    assert done.exit_code == 2, done.output
    assert "cannot use history database" in done.stderr
    assert not (tmp_path / "out").exists()
    assert db.read_bytes() == (tmp_path / "copy").read_bytes()
