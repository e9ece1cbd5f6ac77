"""`reconcile verify`: a good folder verifies; tampering and missing inputs are caught."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconcile import verify
from reconcile.cli import app
from reconcile.errors import InputError

CLI = Path(__file__).parent / "fixtures" / "cli"


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def folder(tmp_path, monkeypatch) -> Path:
    """A bundle written by a real run (with history, so history columns are filled)."""
    inputs = tmp_path / "inputs"
    shutil.copytree(CLI, inputs)
    monkeypatch.setenv("RECONCILE_HISTORY_DB", str(tmp_path / "history.sqlite3"))
    out = tmp_path / "report"
    done = invoke(
        "run",
        "--ca-export",
        str(inputs / "issued.csv"),
        "--snapshot",
        str(inputs / "snapshot"),
        "--ca-issuer",
        "Contoso Issuing CA",
        "--as-of",
        "2026-11-20T02:00:00Z",
        "--out-dir",
        str(out),
        "-q",
    )
    assert done.exit_code == 1, done.output
    return out


def reseal(folder: Path) -> None:
    """What a careful forger does: rewrite the manifest after editing a file."""
    lines = []
    for line in (folder / "manifest-sha256.txt").read_text(encoding="utf-8").splitlines():
        name = line.split("  ", 1)[1]
        lines.append(f"{hashlib.sha256((folder / name).read_bytes()).hexdigest()}  {name}")
    (folder / "manifest-sha256.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_good_folder_verifies(folder):
    first = json.loads((folder / "findings.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert first["first_seen"] == "2026-11-20T02:00:00Z"
    done = invoke("verify", str(folder))
    assert done.exit_code == 0, done.output
    # 7 report files + revoked-installed.csv, expiring.csv, revocation-plan.csv and .ps1
    assert "verified: 11 files match" in done.stdout


def test_edited_file_fails_the_manifest(folder):
    path = folder / "findings.csv"
    path.write_bytes(path.read_bytes().replace(b"not_reported", b"delivered", 1))
    done = invoke("verify", str(folder))
    assert done.exit_code == 1
    assert "findings.csv: sha256 differs from the manifest" in done.stderr


def test_resealed_tampering_fails_the_recomputation(folder):
    path = folder / "findings.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text(lines[0] + lines[1].replace("PC-03", "PC-99"), encoding="utf-8")
    reseal(folder)
    outcome = verify.verify(folder)
    assert not outcome.ok
    assert outcome.problem == "findings.jsonl: line 2 differs from the recomputed report"


def test_dropped_row_is_caught(folder):
    path = folder / "findings.csv"
    path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:-1]))
    reseal(folder)
    done = invoke("verify", str(folder))
    assert done.exit_code == 1
    assert "findings.csv: length differs" in done.stderr


def test_missing_input_is_exit_2_naming_it(folder, tmp_path):
    (tmp_path / "inputs" / "issued.csv").unlink()
    done = invoke("verify", str(folder))
    assert done.exit_code == 2
    assert "input(s) missing" in done.stderr and "issued.csv" in done.stderr


def test_changed_input_is_exit_2(folder, tmp_path):
    with (tmp_path / "inputs" / "issued.csv").open("ab") as handle:
        handle.write(b"\r\n")
    with pytest.raises(InputError, match="changed since the run"):
        verify.verify(folder)


def test_extra_file_is_noted_not_failed(folder):
    (folder / "notes.txt").write_text("auditor was here", encoding="utf-8")
    done = invoke("verify", str(folder))
    assert done.exit_code == 0
    assert "notes.txt is not covered by the manifest" in done.stderr


def test_not_a_report_folder(tmp_path):
    done = invoke("verify", str(tmp_path))
    assert done.exit_code == 2
    assert "manifest-sha256.txt is missing" in done.stderr


def test_an_edited_view_is_caught_even_with_a_resealed_manifest(folder):
    plan = folder / "revocation-plan.csv"
    plan.write_bytes(
        plan.read_bytes() + b"FF,x,superseded,superseded,4,PC-1,certutil -revoke FF 4\r\n"
    )
    reseal(folder)
    done = invoke("verify", str(folder))
    assert done.exit_code == 1
    assert "revocation-plan.csv" in done.output
