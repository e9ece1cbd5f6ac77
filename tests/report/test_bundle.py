from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from reconcile.cli import output_options
from reconcile.model import Status
from reconcile.report import bundle
from reconcile.report.document import Report
from reconcile.settings import resolve
from tests.factories import intune_cert, result_with, verdict


def test_mask_argv_hides_secret_flags_and_values():
    argv = [
        "run",
        "--client-secret",
        "s3cr3t-value",
        "--webhook-url=https://hook/x",
        "--x=s3cr3t-value",
    ]
    masked = bundle.mask_argv(argv, ["s3cr3t-value"])
    assert masked == ["run", "--client-secret", "***", "--webhook-url=***", "--x=***"]


def _result():
    return result_with(
        verdict(Status.NOT_REPORTED),
        verdict(Status.DELIVERED, intune=intune_cert()),
        unknown_to_ca=(intune_cert(serial=0x9999),),
    )


def test_bundle_files_manifest_and_no_leftover_temp_files(tmp_path):
    settings = resolve({"client_secret": "s3cr3t-value"}, env={})
    out = bundle.write_bundle(
        tmp_path / "out",
        Report(_result()),
        output_options(settings),
        ["run", "--client-secret", "s3cr3t-value"],
        1,
    )
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "findings.csv",
        "findings.jsonl",
        "manifest-sha256.txt",
        "run.json",
        "summary.txt",
        "unknown-to-ca.csv",
        "unknown-to-ca.jsonl",
    ]
    run = json.loads((out / "run.json").read_text())
    assert run["argv"] == ["run", "--client-secret", "***"]
    assert run["counts"]["not_reported"] == 1
    assert run["counts"]["unknown_to_ca"] == 1
    assert run["findings"] == 1
    for path in out.iterdir():
        assert "s3cr3t-value" not in path.read_text(encoding="utf-8-sig")
    assert (out / "findings.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    if shutil.which("sha256sum") is None:
        pytest.skip("sha256sum not installed")
    check = subprocess.run(["sha256sum", "-c", "manifest-sha256.txt"], cwd=out, capture_output=True)
    assert check.returncode == 0, check.stdout


def test_a_failing_writer_publishes_nothing(tmp_path):
    settings = resolve({}, env={})

    def boom(handle):
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        bundle.write_bundle(
            tmp_path / "out",
            Report(_result()),
            output_options(settings),
            [],
            1,
            extra=[("x.html", boom)],
        )
    assert list(tmp_path.iterdir()) == []
