"""`reconcile run` without a snapshot, and `reconcile demo`: the whole live path through the CLI."""

from __future__ import annotations

import csv
import functools
import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconcile.cli import app
from reconcile.demo import DEMO_AS_OF, DEMO_ISSUER, DEMO_TEMPLATES, DEMO_TENANT_ID, demo_ca_export
from reconcile.emulator import GraphEmulator, parse_fault
from reconcile.emulator.demo import DEMO_SNAPSHOT, demo_settings_env
from reconcile.intune import fetch as fetch_module

MANIFEST = json.loads((DEMO_SNAPSHOT.parent / "manifest.json").read_text(encoding="utf-8"))
FINDINGS = ("not_installed", "not_reported", "superseded")


@pytest.fixture(autouse=True)
def _quick_export_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    quick = functools.partial(fetch_module.ExportPolling, first_delay=0.05, max_delay=0.1)
    monkeypatch.setattr(fetch_module, "ExportPolling", quick)


@pytest.fixture
def emu(monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphEmulator]:
    with GraphEmulator(snapshot_dir=DEMO_SNAPSHOT, tenant=DEMO_TENANT_ID, export_polls=0) as e:
        for name, value in demo_settings_env(e).items():
            monkeypatch.setenv(name, value)
        yield e


def run_args(*extra: str, source: str = "both") -> list[str]:
    """`reconcile run` on the demo CA export against the live (emulated) demo tenant."""
    templates = [arg for t in DEMO_TEMPLATES for arg in ("--template", t)]
    return [
        "run",
        "--ca-export", str(demo_ca_export()),
        "--ca-issuer", DEMO_ISSUER,
        "--as-of", DEMO_AS_OF.isoformat(),
        "--intune-source", source,
        "--no-history",
        *templates,
        *extra,
    ]  # fmt: skip


def findings(path: Path) -> list[tuple[str, str]]:
    rows = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"), newline=""))
    return sorted((r["serial_number"], r["status"]) for r in rows)


def test_live_run_matches_a_run_on_the_snapshot_it_saved(emu: GraphEmulator, tmp_path: Path):
    live_csv, saved = tmp_path / "live.csv", tmp_path / "saved"
    live = CliRunner().invoke(app, run_args("--save-snapshot", str(saved), "--csv", str(live_csv)))
    assert live.exit_code == 1, live.output
    assert emu.client_secret not in live.output + live.stderr
    offline_csv = tmp_path / "offline.csv"
    offline = CliRunner().invoke(app, run_args("--snapshot", str(saved), "--csv", str(offline_csv)))
    assert offline.exit_code == 1
    got = findings(live_csv)
    assert got == findings(offline_csv)
    expected = sorted(
        (c["serial"].upper(), c["expected"])
        for c in MANIFEST["certificates"]
        if c["expected"] in FINDINGS
    )
    assert [(s.lstrip("0"), status) for s, status in got] == [
        (s.lstrip("0"), status) for s, status in expected
    ]


def test_a_persistent_graph_failure_exits_3_and_writes_no_report(
    emu: GraphEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("RECONCILE_GRAPH_MAX_ATTEMPTS", "2")
    emu.add_fault(parse_fault("gateway-timeout:route=profiles,times=forever"))
    out_dir, out_csv = tmp_path / "out", tmp_path / "f.csv"
    result = CliRunner().invoke(app, run_args("--out-dir", str(out_dir), "--csv", str(out_csv)))
    assert result.exit_code == 3, result.output
    assert result.stderr.strip().count("\n") == 0
    assert not out_dir.exists() and not out_csv.exists()


def test_demo_command_runs_live_and_exits_0(tmp_path: Path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--out-dir", str(out)])
    assert result.exit_code == 0, result.output
    run = json.loads((out / "run.json").read_text())
    leaves = MANIFEST["cloud_pki"]["leaves"]
    assert run["findings"] == sum(
        1 for c in (*MANIFEST["certificates"], *leaves) if c["expected"] in FINDINGS
    )
    assert run["intune_sources"] == ["states", "report"]
    assert (out / "manifest-sha256.txt").exists()
    # The demo tenant is that day's data served again: its fetch is stamped with the demo's
    # as-of, so the snapshot-age guard has nothing to say about it.
    assert not any("after as-of" in note for note in run["notes"]), run["notes"]
    assert "after as-of" not in result.stderr
    with gzip.open(out / "inputs" / "snapshot" / "metadata.json.gz") as handle:
        fetched = json.load(handle)["fetched_at"]
    assert fetched == DEMO_AS_OF.strftime("%Y-%m-%dT%H:%M:%SZ")
