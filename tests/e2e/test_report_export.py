"""The report export as Graph documents it, through the real client (msal + httpx) against the
emulator: numeric CertificateStatus codes with ``_loc`` text, a refused ``select``, a tenant that
only exports per certificate profile, and the cost bounds of what lands in the snapshot."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconcile.cli import app
from reconcile.demo import DEMO_TENANT_ID
from reconcile.emulator import Fault, FaultKind, GraphEmulator
from reconcile.emulator.demo import DEMO_SNAPSHOT, demo_settings_env
from reconcile.emulator.tenant import REPORT_ALL_COLUMNS
from reconcile.errors import IncompleteDataError
from reconcile.intune import fetch as fetch_module
from reconcile.intune.fetch import fetch_snapshot
from reconcile.intune.records import (
    RAW_ROW_KEY,
    REPORT_COLUMNS,
    REPORT_MINIMAL_COLUMNS,
    ReportStatuses,
)
from reconcile.model import IntuneCertificate, IntuneSource
from reconcile.settings import Settings
from tests.e2e.test_fetch import DEMO_TENANT, EXPECTED, settings_for
from tests.e2e.test_live_run import run_args
from tests.helpers import read_snapshot

DELIVERED = ("installed", "issued", "active", "valid")


@pytest.fixture(autouse=True)
def _quick_export_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    quick = functools.partial(fetch_module.ExportPolling, first_delay=0.05, max_delay=0.1)
    monkeypatch.setattr(fetch_module, "ExportPolling", quick)


@pytest.fixture
def emu() -> Iterator[GraphEmulator]:
    with GraphEmulator(snapshot_dir=DEMO_SNAPSHOT, tenant=DEMO_TENANT, page_size=4) as e:
        yield e


def _report_certificates(path: Path, statuses: ReportStatuses) -> set[IntuneCertificate]:
    snapshot = read_snapshot(path, statuses)
    assert snapshot.rejects == ()
    return {c for c in snapshot.certificates if c.source is IntuneSource.REPORT}


EXPECTED_REPORT = {c for c in EXPECTED.certificates if c.source is IntuneSource.REPORT}


def _rows(path: Path) -> list[dict[str, object]]:
    lines = (path / "report_rows.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def _creates(emu: GraphEmulator) -> list[dict[str, object]]:
    return [json.loads(r.body or "{}") for r in emu.requests_for("export_create")]


def test_default_export_has_numeric_codes_and_loc_text(emu: GraphEmulator, tmp_path: Path) -> None:
    out = fetch_snapshot(settings_for(emu, "report").fetch_options(), tmp_path / "snap")
    (body,) = _creates(emu)
    assert body["localizationType"] == "LocalizedValuesAsAdditionalColumn"
    assert body["select"] == list(REPORT_COLUMNS) and "filter" not in body
    rows = _rows(out)
    assert {(r["CertificateStatus"], r["CertificateStatus_loc"]) for r in rows} <= {
        ("1", "Active"),
        ("2", "Revoked"),
    }
    # Compact: only the columns records.py reads (no UserId, CaConfiguration, KeyUsage...).
    assert {key for row in rows for key in row} <= {*REPORT_COLUMNS, "CertificateStatus_loc"}
    got = _report_certificates(out, ReportStatuses(DELIVERED))
    assert got == EXPECTED_REPORT
    assert any(c.delivered for c in got)


def test_codes_without_loc_go_through_the_configured_map(tmp_path: Path) -> None:
    with GraphEmulator(snapshot_dir=DEMO_SNAPSHOT, tenant=DEMO_TENANT, report_loc=False) as emu:
        out = fetch_snapshot(settings_for(emu, "report").fetch_options(), tmp_path / "snap")
    assert {r["CertificateStatus"] for r in _rows(out)} <= {"1", "2"}
    mapped = ReportStatuses(DELIVERED, {"1": "Active", "2": "Revoked"})
    assert _report_certificates(out, mapped) == EXPECTED_REPORT
    assert mapped.unknown == {}


def test_unknown_values_are_not_delivered_and_warned_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with GraphEmulator(snapshot_dir=DEMO_SNAPSHOT, tenant=DEMO_TENANT, report_loc=False) as emu:
        out = fetch_snapshot(settings_for(emu, "report").fetch_options(), tmp_path / "snap")
    codes = [str(r["CertificateStatus"]) for r in _rows(out)]
    statuses = ReportStatuses(DELIVERED)
    with caplog.at_level(logging.WARNING, logger="reconcile.intune"):
        got = _report_certificates(out, statuses)
    assert not any(c.delivered for c in got)
    warnings = [r.getMessage() for r in caplog.records if "not understood" in r.getMessage()]
    assert len(warnings) == 1
    for code in set(codes):
        assert f"'{code}' x{codes.count(code)}" in warnings[0]
    assert "intune.report_status_codes" in warnings[0]


def test_a_refused_select_is_retried_once_with_the_join_columns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    known = sorted(REPORT_ALL_COLUMNS - {"SubjectName", "ValidFrom"})
    with (
        GraphEmulator(snapshot_dir=DEMO_SNAPSHOT, tenant=DEMO_TENANT, report_columns=known) as emu,
        caplog.at_level(logging.WARNING, logger="reconcile.intune"),
    ):
        out = fetch_snapshot(settings_for(emu, "report").fetch_options(), tmp_path / "snap")
        statuses = [r.status for r in emu.requests_for("export_create")]
        bodies = _creates(emu)
    assert statuses == [400, 201]
    assert bodies[1]["select"] == list(REPORT_MINIMAL_COLUMNS)
    (warning,) = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert "dropped: UPN, PolicyId, SubjectName, ValidFrom, ValidTo" in warning
    serials = {c.serial for c in _report_certificates(out, ReportStatuses(DELIVERED))}
    assert serials == {c.serial for c in EXPECTED_REPORT}


def test_a_refused_tenant_wide_job_falls_back_to_one_job_per_profile(
    emu: GraphEmulator, tmp_path: Path
) -> None:
    emu.add_fault(Fault(FaultKind.POLICY_FILTER_REQUIRED, times=None))
    settings = settings_for(emu, "report", RECONCILE_MAX_CONCURRENCY="2")
    out = fetch_snapshot(settings.fetch_options(), tmp_path / "snap")
    creates = emu.requests_for("export_create")
    bodies = _creates(emu)
    # A 400 does not say why: the narrowed selection is tried once before the fallback, and
    # the per-profile jobs then ask for every column again.
    n = len(EXPECTED.profiles)
    assert [r.status for r in creates] == [400, 400] + [201] * n
    assert "filter" not in bodies[0] and "filter" not in bodies[1]
    assert bodies[1]["select"] == list(REPORT_MINIMAL_COLUMNS)
    assert all(b["select"] == list(REPORT_COLUMNS) for b in bodies[2:])
    assert sorted(str(b["filter"]) for b in bodies[2:]) == sorted(
        f"(PolicyId eq '{p.id}')" for p in EXPECTED.profiles
    )
    assert len(emu.requests_for("download")) == len(EXPECTED.profiles)
    # Jobs finish in any order, so record ids (row positions) differ; nothing else may.
    got = _report_certificates(out, ReportStatuses(DELIVERED))
    assert _unplaced(got) == _unplaced(EXPECTED_REPORT) and len(got) == len(EXPECTED_REPORT)


def _unplaced(certificates: set[IntuneCertificate]) -> set[IntuneCertificate]:
    return {dataclasses.replace(c, record_id="") for c in certificates}


def test_raw_rows_only_when_asked(emu: GraphEmulator, tmp_path: Path) -> None:
    settings = settings_for(emu, "report", RECONCILE_REPORT_RAW_ROWS="true")
    out = fetch_snapshot(settings.fetch_options(), tmp_path / "snap")
    rows = _rows(out)
    assert all(isinstance(r[RAW_ROW_KEY], dict) for r in rows)
    assert _report_certificates(out, ReportStatuses(DELIVERED)) == EXPECTED_REPORT


def test_snapshot_byte_cap_fails_clearly_and_leaves_nothing(
    emu: GraphEmulator, tmp_path: Path
) -> None:
    parent = tmp_path / "out"
    parent.mkdir()
    settings: Settings = settings_for(emu, "both", RECONCILE_MAX_SNAPSHOT_BYTES="4000")
    with pytest.raises(IncompleteDataError, match="exceed 4000 bytes.*max_snapshot_bytes"):
        fetch_snapshot(settings.fetch_options(), parent / "snap")
    assert list(parent.iterdir()) == []


def _report_run(*extra: str) -> list[str]:
    """`reconcile run` on the demo CA export, Intune read through the report export only."""
    return run_args(*extra, source="report")


def test_a_live_run_on_bare_codes_warns_once_and_counts_nothing_delivered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The false green this guards against: numeric codes silently read as "not delivered"
    with no word to the admin, or worse, as delivered."""
    args = _report_run()
    with GraphEmulator(snapshot_dir=DEMO_SNAPSHOT, tenant=DEMO_TENANT_ID, report_loc=False) as emu:
        for name, value in demo_settings_env(emu).items():
            monkeypatch.setenv(name, value)
        bare = CliRunner().invoke(app, [*args, "--json", str(tmp_path / "bare.jsonl")])
        monkeypatch.setenv("RECONCILE_REPORT_STATUS_CODES", "1=Active,2=Revoked")
        mapped = CliRunner().invoke(app, [*args, "--json", str(tmp_path / "mapped.jsonl")])
    assert bare.exit_code == 1, bare.output
    assert bare.stderr.count("CertificateStatus value(s) not understood") == 1
    assert "'1' x" in bare.stderr and "intune.report_status_codes" in bare.stderr
    assert mapped.exit_code == 1, mapped.output
    assert "not understood" not in mapped.stderr
    # Read through the map, the codes deliver again: fewer findings than on bare codes.
    assert _findings(tmp_path / "mapped.jsonl") < _findings(tmp_path / "bare.jsonl")


def _findings(path: Path) -> set[str]:
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return {r["ca"]["serial"] for r in records if r.get("kind") == "certificate"}


def test_a_bundle_from_a_run_with_a_code_map_verifies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """verify recomputes with the code map the run used (run.json records it); without it the
    recomputation reads the codes as not delivered and the folder would not verify."""
    out = tmp_path / "report"
    args = _report_run("--out-dir", str(out), "-q")
    with GraphEmulator(snapshot_dir=DEMO_SNAPSHOT, tenant=DEMO_TENANT_ID, report_loc=False) as emu:
        for name, value in demo_settings_env(emu).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("RECONCILE_REPORT_STATUS_CODES", "1=Active,2=Revoked")
        done = CliRunner().invoke(app, args)
    assert done.exit_code == 1, done.output
    meta = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert meta["settings"]["report_status_codes"] == ["1=Active", "2=Revoked"]
    monkeypatch.delenv("RECONCILE_REPORT_STATUS_CODES")
    verified = CliRunner().invoke(app, ["verify", str(out)])
    assert verified.exit_code == 0, verified.output
    assert "verified:" in verified.stdout
