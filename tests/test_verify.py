"""`reconcile verify`: a good folder verifies; tampering and missing inputs are caught."""

from __future__ import annotations

import gzip
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


def write_report(tmp_path: Path, *extra: str, name: str = "report") -> Path:
    """A bundle written by a real run (with history, so history columns are filled)."""
    inputs = tmp_path / "inputs"
    if not inputs.exists():
        shutil.copytree(CLI, inputs)
    out = tmp_path / name
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
        "--history-db",
        str(tmp_path / "history.sqlite3"),
        "-q",
        *extra,
    )
    assert done.exit_code == 1, done.output
    return out


@pytest.fixture
def folder(tmp_path) -> Path:
    """A bundle that names its inputs (``--bundle-inputs reference``)."""
    return write_report(tmp_path, "--bundle-inputs", "reference")


@pytest.fixture
def bundle(tmp_path) -> Path:
    """A self-contained bundle (the default): it holds copies of its inputs."""
    return write_report(tmp_path)


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
    assert "--bundle-inputs reference" in done.stderr


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


def test_bundle_holds_its_inputs_and_verifies_moved_without_them(bundle, tmp_path, monkeypatch):
    names = (bundle / "manifest-sha256.txt").read_text(encoding="utf-8")
    assert "  inputs/ca/1-issued.csv.gz" in names
    assert "  inputs/snapshot/metadata.json.gz" in names
    shutil.rmtree(tmp_path / "inputs")
    moved = tmp_path / "elsewhere" / "moved"
    moved.parent.mkdir()
    bundle.rename(moved)
    monkeypatch.chdir(moved.parent)
    done = invoke("verify", "moved")
    assert done.exit_code == 0, done.output
    assert "verified: 15 files match" in done.stdout
    meta = json.loads((moved / "run.json").read_text(encoding="utf-8"))
    assert meta["bundle_inputs"] == "copy"
    assert {b["file"] for b in meta["bundled"]} >= {"inputs/ca/1-issued.csv.gz"}
    assert all(not b["file"].startswith("/") for b in meta["bundled"])


def test_changed_byte_of_a_bundled_input_is_exit_1(bundle):
    path = bundle / "inputs" / "ca" / "1-issued.csv.gz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    done = invoke("verify", str(bundle))
    assert done.exit_code == 1
    assert "inputs/ca/1-issued.csv.gz: sha256 differs from the manifest" in done.stderr


def test_resealed_swap_of_a_bundled_input_is_exit_1(bundle):
    """A forger who replaces the copy and rewrites the manifest still fails the sha256 of
    run.json, which the run id is built on."""
    path = bundle / "inputs" / "ca" / "1-issued.csv.gz"
    original = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(original.replace(b"PC-03", b"PC-99")))
    reseal(bundle)
    done = invoke("verify", str(bundle))
    assert done.exit_code == 1
    assert "1-issued.csv.gz: does not hold the input run.json records" in done.stderr


def test_deleted_bundled_input_is_exit_1(bundle):
    (bundle / "inputs" / "snapshot" / "metadata.json.gz").unlink()
    done = invoke("verify", str(bundle))
    assert done.exit_code == 1
    assert "inputs/snapshot/metadata.json.gz: listed in the manifest but missing" in done.stderr


def test_manifest_path_outside_the_folder_is_rejected(bundle):
    manifest = bundle / "manifest-sha256.txt"
    manifest.write_text(
        manifest.read_text(encoding="utf-8") + f"{'0' * 64}  ../escape.txt\n", encoding="utf-8"
    )
    done = invoke("verify", str(bundle))
    assert done.exit_code == 1
    assert "a path outside the folder" in done.stderr


def test_bundled_input_missing_from_the_manifest_is_exit_1(bundle):
    manifest = bundle / "manifest-sha256.txt"
    lines = manifest.read_text(encoding="utf-8").splitlines()
    manifest.write_text(
        "\n".join(line for line in lines if not line.endswith("1-issued.csv.gz")) + "\n",
        encoding="utf-8",
    )
    done = invoke("verify", str(bundle))
    assert done.exit_code == 1
    assert "inputs/ca/1-issued.csv.gz: named in run.json but not listed" in done.stderr


def test_an_edited_view_is_caught_even_with_a_resealed_manifest(folder):
    plan = folder / "revocation-plan.csv"
    plan.write_bytes(
        plan.read_bytes() + b"FF,x,superseded,superseded,4,PC-1,certutil -revoke FF 4\r\n"
    )
    reseal(folder)
    done = invoke("verify", str(folder))
    assert done.exit_code == 1
    assert "revocation-plan.csv" in done.output


def _edit_run_json(folder: Path, **changes: object) -> None:
    path = folder / "run.json"
    meta = json.loads(path.read_text(encoding="utf-8"))
    meta.update(changes)
    path.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    reseal(folder)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("counts", {"delivered": 3}),
        ("findings", 0),
        ("exit_code", 0),
        ("rejects", {"count": 2, "first": ["issued.csv:3: edited", "issued.csv:4: edited"]}),
        ("tenant_id", "11111111-1111-4111-8111-111111111111"),
    ],
)
def test_a_resealed_run_json_whose_results_were_edited_fails(folder, field, value):
    recorded = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    assert recorded[field] != value
    _edit_run_json(folder, **{field: value})
    done = invoke("verify", str(folder))
    assert done.exit_code == 1, done.output
    assert f"run.json: {field} " in done.stderr


def test_a_resealed_run_json_with_edited_input_row_counts_fails(bundle):
    recorded = json.loads((bundle / "run.json").read_text(encoding="utf-8"))
    inputs = recorded["inputs"]
    inputs[0]["rows"] += 5
    _edit_run_json(bundle, inputs=inputs)
    done = invoke("verify", str(bundle))
    assert done.exit_code == 1, done.output
    assert "run.json: inputs " in done.stderr


def test_a_resealed_summary_whose_counts_were_edited_fails(bundle):
    path = bundle / "summary.txt"
    text = path.read_text(encoding="utf-8")
    assert "findings 2" in text.splitlines()[0]
    path.write_text(text.replace("findings 2", "findings 0", 1), encoding="utf-8")
    reseal(bundle)
    done = invoke("verify", str(bundle))
    assert done.exit_code == 1, done.output
    assert "summary.txt: line 1 differs from the recomputed report" in done.stderr


def test_the_history_preamble_of_summary_is_not_held_against_it(tmp_path):
    write_report(tmp_path)
    second = write_report(tmp_path, name="second")
    assert "since" in (second / "summary.txt").read_text(encoding="utf-8").lower()
    done = invoke("verify", str(second))
    assert done.exit_code == 0, done.output


@pytest.mark.parametrize(
    ("saved", "problem"),
    [
        (b"a,b\r\nc,d\r\n", ""),
        (b"a,b\r\nc,X\r\n", "line 2 differs from the recomputed report"),
        (b"a,b\r\n", "length differs from the recomputed report"),
        (b"a,b\r\nc", "line 2 differs from the recomputed report"),
        (b"a,b\r\nc,d\r\ne,f\r\n", "length differs from the recomputed report"),
        (b"", "length differs from the recomputed report"),
    ],
)
def test_a_rewritten_file_is_compared_as_it_is_written(tmp_path, saved, problem):
    path = tmp_path / "findings.csv"
    path.write_bytes(saved)

    def write(handle):
        for row in ("a,b\r\n", "c,d\r\n"):
            handle.write(row)

    assert verify._compare(write, "utf-8", path) == problem


def test_the_comparison_encodes_as_the_bundle_did(tmp_path):
    path = tmp_path / "findings.csv"
    path.write_bytes("é\r\n".encode("utf-8-sig"))
    assert verify._compare(lambda h: h.write("é\r\n"), "utf-8-sig", path) == ""
    assert verify._compare(lambda h: h.write("é\r\n"), "utf-8", path) == (
        "line 1 differs from the recomputed report"
    )


def test_a_difference_past_the_first_buffer_names_its_line(tmp_path):
    """Many writes of the sink, so lines are counted across them."""
    rows = [f"row {n:05d},{'x' * 20}\r\n" for n in range(1, 5001)]
    path = tmp_path / "findings.csv"
    changed = [*rows[:3999], rows[3999].replace("x", "y", 1), *rows[4000:]]
    path.write_bytes("".join(changed).encode("utf-8"))

    def write(handle):
        for row in rows:
            handle.write(row)

    assert verify._compare(write, "utf-8", path) == "line 4000 differs from the recomputed report"
    path.write_bytes("".join(rows[:4000]).encode("utf-8"))
    assert verify._compare(write, "utf-8", path) == "length differs from the recomputed report"
    path.write_bytes("".join(rows).encode("utf-8")[:-7])
    assert verify._compare(write, "utf-8", path) == "line 5000 differs from the recomputed report"
