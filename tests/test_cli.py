"""The CLI contract: exit codes, files written, one-line errors."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconcile.cli import app

CLI = Path(__file__).parent / "fixtures" / "cli"
AS_OF = "2026-11-20T02:00:00Z"
HOSTILE = '=HYPERLINK("http://evil.example","x")'


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def base_args(*extra: str) -> list[str]:
    return [
        "run",
        "--ca-export",
        str(CLI / "issued.csv"),
        "--snapshot",
        str(CLI / "snapshot"),
        "--ca-issuer",
        "Contoso Issuing CA",
        "--as-of",
        AS_OF,
        "--no-history",
        *extra,
    ]


def test_findings_exit_1_with_summary_and_csv(tmp_path):
    out = tmp_path / "findings.csv"
    result = invoke(*base_args("--csv", str(out)))
    assert result.exit_code == 1, result.output
    assert "not_installed" in result.stdout and "not_reported" in result.stdout
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig"), newline="")))
    assert sorted(r["status"] for r in rows) == ["not_installed", "not_reported"]
    hostile = next(r for r in rows if r["status"] == "not_installed")
    assert hostile["device_name"] == "'" + HOSTILE
    assert hostile["user"] == "'@mallory"
    assert hostile["device_in_intune"] == "no"


def test_all_rows_cover_every_status_once(tmp_path):
    out = tmp_path / "all.csv"
    invoke(*base_args("--csv", str(out), "--all"))
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig"), newline="")))
    assert [r["status"] for r in rows] == [
        "delivered",
        "not_installed",
        "not_reported",
        "revoked",
        "expired",
        "within_grace",
    ]
    assert [r["source"].rsplit(":", 1)[1] for r in rows] == ["2", "3", "4", "5", "6", "7"]


def test_hostile_name_is_intact_in_jsonl(tmp_path):
    out = tmp_path / "f.jsonl"
    invoke(*base_args("--json", str(out)))
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert any(r["intune"] and r["intune"]["device_name"] == HOSTILE for r in records)


def test_no_findings_exit_0(tmp_path):
    # Years later every certificate has expired: checked, and nothing is missing.
    args = base_args("-q")
    args[args.index(AS_OF)] = "2031-01-01T00:00:00Z"
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""


def test_template_matching_nothing_exits_2_listing_the_templates(tmp_path):
    out = tmp_path / "bundle"
    result = invoke(*base_args("--template", "Nothing-Matches", "--out-dir", str(out), "-q"))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "template 'Nothing-Matches' matches no certificate" in result.stderr
    assert "they hold: Intune-SCEP (6)" in result.stderr
    assert not out.exists()


def test_out_dir_bundle_is_byte_identical_across_runs(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    invoke(*base_args("--out-dir", str(first)))
    invoke(*base_args("--out-dir", str(second)))
    names = sorted(p.relative_to(first).as_posix() for p in first.rglob("*") if p.is_file())
    assert "manifest-sha256.txt" in names and "run.json" in names
    assert "inputs/ca/1-issued.csv.gz" in names
    for name in names:
        if name == "run.json":
            a, b = json.loads((first / name).read_text()), json.loads((second / name).read_text())
            a.pop("argv"), b.pop("argv")
            assert a == b
        else:
            assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_golden_findings_csv(tmp_path, monkeypatch):
    """Byte-for-byte against a reviewed file; regenerate deliberately if the contract changes."""
    monkeypatch.chdir(CLI)
    out = tmp_path / "findings.csv"
    args = [
        "--ca-export",
        "issued.csv",
        "--snapshot",
        "snapshot",
        "--ca-issuer",
        "Contoso Issuing CA",
    ]
    invoke("run", *args, "--as-of", AS_OF, "--no-history", "--csv", str(out))
    assert out.read_bytes() == (CLI / "golden-findings.csv").read_bytes()


def test_missing_ca_export_flag_is_usage_error():
    result = invoke("run", "--snapshot", str(CLI / "snapshot"))
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert "--ca-export" in result.stderr


def test_unreadable_ca_export_names_the_file(tmp_path):
    missing = tmp_path / "nope.csv"
    result = invoke("run", "--ca-export", str(missing), "--snapshot", str(CLI / "snapshot"))
    assert result.exit_code == 2
    assert str(missing) in result.stderr
    assert "Traceback" not in result.stderr


def test_incomplete_snapshot_exits_3_and_writes_nothing(tmp_path):
    snap = tmp_path / "snap"
    shutil.copytree(CLI / "snapshot", snap)
    meta = json.loads((snap / "metadata.json").read_text())
    meta["counts"]["certificate_states"] = 5
    (snap / "metadata.json").write_text(json.dumps(meta))
    out_dir, out_csv = tmp_path / "out", tmp_path / "f.csv"
    result = invoke(
        "run",
        "--ca-export",
        str(CLI / "issued.csv"),
        "--snapshot",
        str(snap),
        "--out-dir",
        str(out_dir),
        "--csv",
        str(out_csv),
    )
    assert result.exit_code == 3
    assert "promises 5 records" in result.stderr
    assert not out_dir.exists() and not out_csv.exists()


def test_strict_turns_a_bad_row_into_exit_2(tmp_path):
    bad = tmp_path / "bad.csv"
    lines = (CLI / "issued.csv").read_text().splitlines()
    lines[3] = lines[3].replace("6100000067aa", "zz00000067aa")
    bad.write_text("\n".join(lines) + "\n")
    lenient = invoke(*base_args("--ca-export", str(bad), "-q"))
    assert "bad.csv:4" in lenient.stderr
    strict = invoke("run", "--ca-export", str(bad), "--snapshot", str(CLI / "snapshot"), "--strict")
    assert strict.exit_code == 2
    assert "bad.csv:4" in strict.stderr


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--grace-hours", "-1"], "--grace-hours must not be negative"),
        (["--ca-format", "nope"], "--ca-format must be one of"),
        (["--config", "/nonexistent/reconcile.toml"], "cannot read configuration"),
    ],
)
def test_config_errors_exit_2_in_one_line(args, fragment):
    result = invoke(*base_args(*args))
    assert result.exit_code == 2
    assert fragment in result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_each_export_gets_its_own_issuer(tmp_path):
    """Two CAs' certutil exports: the snapshot's records all name Contoso, so only the
    export attributed to Contoso matches; the other CA's serials stay unreported."""
    out = tmp_path / "all.jsonl"
    result = invoke(
        "run",
        "--ca-export",
        str(CLI / "issued.csv"),
        "--ca-export",
        str(CLI / "issued.csv"),
        "--ca-issuer",
        "Contoso Issuing CA",
        "--ca-issuer",
        "Fabrikam Issuing CA",
        "--snapshot",
        str(CLI / "snapshot"),
        "--as-of",
        AS_OF,
        "--no-history",
        "--all",
        "--json",
        str(out),
        "-q",
    )
    assert result.exit_code == 1
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    delivered = {(r["ca"]["issuer"], r["status"]) for r in rows if r["ca"]["request_id"] == "101"}
    assert delivered == {
        ("Contoso Issuing CA", "delivered"),
        ("Fabrikam Issuing CA", "not_reported"),
    }


def test_a_bug_exits_3_with_one_line_not_1(monkeypatch):
    from reconcile import pipeline

    def broken(settings, keep_all=None):
        raise ZeroDivisionError("s3cr3t-in-a-message")

    monkeypatch.setattr(pipeline, "run", broken)
    result = invoke(*base_args())
    assert result.exit_code == 3
    assert "internal error (ZeroDivisionError)" in result.stderr
    assert "s3cr3t" not in result.stderr
    assert "Traceback" not in result.stderr
