"""run.json as one typed definition: written by the bundle, read back by verify and retention."""

from __future__ import annotations

import json

import pytest

from reconcile.cli import output_options
from reconcile.model import Status
from reconcile.report import bundle, runjson
from reconcile.report.document import Report
from reconcile.settings import resolve
from tests.factories import result_with, verdict


def _folder(tmp_path):
    settings = resolve({"report_status_codes": ("1=Active",)}, env={})
    result = result_with(verdict(Status.NOT_REPORTED))
    return bundle.write_bundle(tmp_path / "out", Report(result), output_options(settings), [], 1)


def test_what_the_bundle_writes_reads_back_as_the_same_record(tmp_path):
    out = _folder(tmp_path)
    meta = runjson.load(out / runjson.RUN_JSON, view_rows=True)
    assert meta.tool == "reconcile" and meta.exit_code == 1 and meta.findings == 1
    assert meta.settings.report_status_codes == ("1=Active",)
    assert meta.csv.encoding == "utf-8-sig"
    # Written from the record, the file is the record again, key for key.
    assert meta.dumps() == (out / runjson.RUN_JSON).read_text(encoding="utf-8")


def test_a_run_json_from_an_older_reconcile_reads_with_defaults(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(
        json.dumps({"tool": "reconcile", "as_of": "2026-11-20T02:00:00Z", "settings": {}}),
        encoding="utf-8",
    )
    meta = runjson.load(path)
    assert meta.as_of == "2026-11-20T02:00:00Z"
    assert meta.settings.report_status_codes == () and meta.settings.ca_format is None
    assert meta.bundle_inputs == "reference" and meta.bundled == ()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "not valid JSON"),
        ('{"tool": "other", "as_of": "x"}', "not written by reconcile"),
        ('["reconcile"]', "not written by reconcile"),
        ('{"tool": "reconcile"}', "malformed"),
        ('{"tool": "reconcile", "as_of": "x", "exit_code": "one"}', "malformed"),
        (b"\xff\xfe{}", "not valid JSON"),
    ],
)
def test_anything_else_is_not_a_run_json(tmp_path, text, problem):
    path = tmp_path / "run.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(runjson.NotRunJson, match=problem):
        runjson.load(path)


def test_a_folder_whose_run_json_predates_the_code_map_still_verifies(tmp_path):
    """verify reads run.json through the same record: a settings key an older reconcile did
    not write falls back to the default instead of failing the folder."""
    import shutil

    from typer.testing import CliRunner

    from reconcile.cli import app
    from tests.test_verify import CLI, reseal

    inputs = tmp_path / "inputs"
    shutil.copytree(CLI, inputs)
    out = tmp_path / "report"
    args = [
        "run",
        "--ca-export",
        str(inputs / "issued.csv"),
        "--snapshot",
        str(inputs / "snapshot"),
    ]
    args += ["--ca-issuer", "Contoso Issuing CA", "--as-of", "2026-11-20T02:00:00Z", "--no-history"]
    assert CliRunner().invoke(app, [*args, "--out-dir", str(out), "-q"]).exit_code == 1
    meta = json.loads((out / "run.json").read_text(encoding="utf-8"))
    for key in ("report_status_codes", "ca_sources", "connector_stale_hours"):
        del meta["settings"][key]
    (out / "run.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    reseal(out)
    done = CliRunner().invoke(app, ["verify", str(out)])
    assert done.exit_code == 0, done.output
    assert "verified:" in done.stdout


def test_the_views_rows_are_read_only_when_asked(tmp_path):
    path = tmp_path / "run.json"
    views = {"counts": {"expiring": 2}, "expiring": [{"serial": "01"}, {"serial": "02"}]}
    path.write_text(
        json.dumps({"tool": "reconcile", "as_of": "2026-11-20T02:00:00Z", "views": views}),
        encoding="utf-8",
    )
    assert runjson.load(path).views == {"counts": {"expiring": 2}}
    assert runjson.load(path, view_rows=True).views == views


def test_a_views_part_that_is_not_an_object_is_malformed(tmp_path):
    path = tmp_path / "run.json"
    path.write_text('{"tool": "reconcile", "as_of": "x", "views": [1]}', encoding="utf-8")
    with pytest.raises(runjson.NotRunJson, match="malformed"):
        runjson.load(path)
