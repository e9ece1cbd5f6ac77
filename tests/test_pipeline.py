"""pipeline.run on the bundled demo: read, join and enrich, in the order a run needs."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest

from reconcile import pipeline
from reconcile.demo import DEMO_AS_OF, DEMO_TEMPLATES, demo_ca_export
from reconcile.errors import ConfigError, InputError, UsageError
from reconcile.model import InputFile, RunResult, Status
from tests.helpers import demo_settings


@pytest.fixture(scope="module")
def everything() -> RunResult:
    return pipeline.run(demo_settings(), keep_all=True)


def test_without_all_only_findings_are_kept_and_the_rest_counted(everything: RunResult) -> None:
    findings_only = pipeline.run(demo_settings())
    assert findings_only.verdicts == everything.findings
    assert all(v.is_finding for v in findings_only.verdicts)
    assert findings_only.counts() == everything.counts()
    assert findings_only.run_id == everything.run_id


def test_every_finding_gets_a_next_step(everything: RunResult) -> None:
    assert everything.findings
    assert all(v.next_step for v in everything.findings)


def test_inputs_are_the_export_and_the_snapshot_files(everything: RunResult) -> None:
    paths = {Path(i.path).name for i in everything.inputs}
    assert demo_ca_export().name in paths
    assert "certificate_states.jsonl" in paths
    assert everything.tenant_id is not None


def test_no_ca_export_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="no CA export given"):
        pipeline.run(demo_settings(ca_exports=()))


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("CN=(", "not a valid regular expression"),
        ("CN=\\w+", "exactly one capturing group"),
        ("(a)(b)", "exactly one capturing group"),
    ],
)
def test_a_bad_device_pattern_is_a_config_error(pattern: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        pipeline.run(demo_settings(device_pattern=pattern))


def test_strict_stops_at_the_first_rejected_row(tmp_path: Path) -> None:
    export = tmp_path / "export.csv"
    lines = demo_ca_export().read_text(encoding="utf-16").splitlines()
    request_id, _serial, rest = lines[1].split(",", 2)
    bad = ",".join([request_id.replace("1041", "9999"), '"not-a-serial"', rest])
    export.write_text("\r\n".join([*lines, bad]) + "\r\n", encoding="utf-16")
    lenient = pipeline.run(demo_settings(ca_exports=(export,), max_reject_ratio=1.0))
    assert [(r.line, "not-a-serial" in r.reason) for r in lenient.rejects] == [
        (len(lines) + 1, True)
    ]
    with pytest.raises(InputError, match="rejected row \\(--strict\\)"):
        pipeline.run(demo_settings(ca_exports=(export,), strict=True, max_reject_ratio=1.0))


def test_run_id_depends_on_as_of_options_and_input_hashes_only() -> None:
    base = demo_settings()
    inputs = [InputFile("a.csv", "ca-export", "certutil", "0" * 64, rows=1, rejected=0)]
    run_id = pipeline.run_id_for(base, inputs, DEMO_AS_OF)
    assert run_id == pipeline.run_id_for(base, list(inputs), DEMO_AS_OF)
    assert run_id.startswith(DEMO_AS_OF.strftime("%Y%m%dT%H%M%SZ-"))
    other_file = [dataclasses.replace(inputs[0], sha256="1" * 64)]
    renamed = [dataclasses.replace(inputs[0], path="b.csv")]
    assert pipeline.run_id_for(base, renamed, DEMO_AS_OF) == run_id
    assert (
        len(
            {
                run_id,
                pipeline.run_id_for(base, other_file, DEMO_AS_OF),
                pipeline.run_id_for(base, inputs, DEMO_AS_OF + timedelta(seconds=1)),
                pipeline.run_id_for(demo_settings(grace_hours=12), inputs, DEMO_AS_OF),
                pipeline.run_id_for(
                    demo_settings(templates=DEMO_TEMPLATES[:1]), inputs, DEMO_AS_OF
                ),
            }
        )
        == 5
    )


def test_an_exceptions_file_accepts_a_finding_and_becomes_an_input(
    everything: RunResult, tmp_path: Path
) -> None:
    finding = everything.findings[0]
    exceptions = tmp_path / "exceptions.toml"
    exceptions.write_text(
        "[[exception]]\n"
        f'serial = "{finding.ca.serial:X}"\n'
        'reason = "lab device"\nowner = "pki-team"\nexpires = "2099-01-01"\n',
        encoding="utf-8",
    )
    result = pipeline.run(demo_settings(exceptions_file=exceptions), keep_all=True)
    accepted = [v for v in result.verdicts if v.ca.serial == finding.ca.serial]
    assert [v.status for v in accepted] == [Status.ACCEPTED]
    assert exceptions.name in {Path(i.path).name for i in result.inputs}
