"""Connector health through the real Graph client against the emulator: both endpoints into
the snapshot, a stale connector behind the emulator's switch, and 403/404 as a warning that
never fails the fetch."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconcile.doctor import run_doctor
from reconcile.emulator import GraphEmulator
from reconcile.emulator.connectors import STALE_ID, ConnectorSwitch
from reconcile.emulator.demo import demo_settings_env
from reconcile.errors import IncompleteDataError
from reconcile.intune.connectors import ConnectorHealth, decode, load_connectors
from reconcile.intune.fetch import fetch_snapshot
from reconcile.settings import Settings, resolve
from tests.engine.reference_snapshot import SnapshotSource


def settings_for(emu: GraphEmulator) -> Settings:
    return resolve({"intune_source": "states"}, demo_settings_env(emu))


def fetch(tmp_path: Path, switch: ConnectorSwitch) -> Path:
    with GraphEmulator(generated=20, connectors=switch) as emu:
        return fetch_snapshot(settings_for(emu).fetch_options(), tmp_path / "snap")


def health_of(path: Path, as_of: datetime | None = None) -> ConnectorHealth | None:
    with SnapshotSource(path, frozenset({"installed"})) as snapshot:
        return load_connectors(snapshot, as_of or datetime.now(UTC), 24.0)


def test_both_endpoints_land_in_connectors_jsonl(tmp_path):
    path = fetch(tmp_path, ConnectorSwitch())
    lines = (path / "connectors.jsonl").read_text(encoding="utf-8").splitlines()
    kinds = sorted(json.loads(line)["@reconcile.connectorType"] for line in lines)
    assert kinds == ["certificateConnectorDetails", "ndesConnector"]
    metadata = json.loads((path / "metadata.json").read_text(encoding="utf-8"))
    digest = hashlib.sha256((path / "connectors.jsonl").read_bytes()).hexdigest()
    assert metadata["connectors"] == {"count": 2, "warnings": [], "sha256": digest}
    assert "connectors" not in metadata["counts"]
    health = health_of(path)
    assert health is not None and len(health.connectors) == 2 and health.stale == ()
    assert all(c.machine and c.version and c.last_seen for c in health.connectors)


def test_the_stale_switch_adds_a_silent_connector_that_warns(tmp_path):
    health = health_of(fetch(tmp_path, ConnectorSwitch(stale=True)))
    assert health is not None
    assert [c.id for c in health.stale] == [STALE_ID]
    (warning,) = health.warning_lines()
    assert "PKI-CONN-OLD" in warning and "3 days" in warning
    assert "pending and not_installed findings" in warning


@pytest.mark.parametrize("status", [403, 404])
def test_forbidden_or_missing_is_a_warning_in_metadata_never_a_failed_fetch(tmp_path, status):
    path = fetch(tmp_path, ConnectorSwitch(status=status))
    metadata = json.loads((path / "metadata.json").read_text(encoding="utf-8"))
    assert metadata["complete"] is True
    assert metadata["connectors"]["count"] == 0
    assert [f"HTTP {status}" in w for w in metadata["connectors"]["warnings"]] == [True, True]
    health = health_of(path)
    assert health is not None and health.connectors == ()
    assert len(health.warning_lines()) == 2


def test_a_snapshot_from_before_connectors_has_no_health(tmp_path):
    path = fetch(tmp_path, ConnectorSwitch())
    metadata = json.loads((path / "metadata.json").read_text(encoding="utf-8"))
    del metadata["connectors"]
    (path / "metadata.json").write_text(json.dumps(metadata), encoding="utf-8")
    assert health_of(path) is None


def test_a_truncated_connectors_file_is_incomplete_data(tmp_path):
    path = fetch(tmp_path, ConnectorSwitch())
    text = (path / "connectors.jsonl").read_text(encoding="utf-8")
    (path / "connectors.jsonl").write_text(text.splitlines()[0] + "\n", encoding="utf-8")
    with pytest.raises(IncompleteDataError, match="promises 2 connectors, the file holds 1"):
        health_of(path)


def test_a_connectors_file_cut_mid_line_is_incomplete_data(tmp_path):
    path = fetch(tmp_path, ConnectorSwitch())
    data = (path / "connectors.jsonl").read_bytes()
    (path / "connectors.jsonl").write_bytes(data[:-5])
    with pytest.raises(IncompleteDataError, match="cut off in the middle of a line"):
        health_of(path)


def test_a_missing_connectors_file_is_incomplete_data(tmp_path):
    path = fetch(tmp_path, ConnectorSwitch())
    (path / "connectors.jsonl").unlink()
    with pytest.raises(IncompleteDataError, match="listed in metadata.json but missing"):
        health_of(path)


def test_a_changed_connectors_file_fails_its_sha256(tmp_path):
    path = fetch(tmp_path, ConnectorSwitch())
    text = (path / "connectors.jsonl").read_text(encoding="utf-8")
    lines = text.splitlines()
    changed = json.loads(lines[0])
    changed["@reconcile.note"] = "edited"
    edited = [json.dumps(changed), *lines[1:]]
    (path / "connectors.jsonl").write_text("\n".join(edited) + "\n", encoding="utf-8")
    with pytest.raises(IncompleteDataError, match="sha256 differs"):
        health_of(path)


def test_connectors_are_an_input_of_the_run(tmp_path):
    path = fetch(tmp_path, ConnectorSwitch())
    health = health_of(path)
    assert health is not None and health.input_file is not None
    assert health.input_file.kind == "snapshot" and health.input_file.rows == 2
    digest = hashlib.sha256((path / "connectors.jsonl").read_bytes()).hexdigest()
    assert health.input_file.sha256 == digest


def test_staleness_is_judged_at_the_runs_as_of():
    seen = datetime(2026, 11, 20, tzinfo=UTC)
    connector = decode(
        {
            "@reconcile.connectorType": "ndesConnector",
            "id": "c1",
            "displayName": "PKI-CONN-01",
            "lastConnectionDateTime": "2026-11-20T00:00:00.1234567Z",
            "state": "active",
        }
    )
    assert connector.last_seen == seen.replace(microsecond=123456)
    fresh = ConnectorHealth((connector,), seen + timedelta(hours=23), 24.0)
    stale = ConnectorHealth((connector,), seen + timedelta(hours=25), 24.0)
    assert fresh.stale == () and stale.stale == (connector,)


def test_doctor_fails_a_stale_connector_and_passes_a_healthy_one():
    with GraphEmulator(generated=5, connectors=ConnectorSwitch(stale=True)) as emu:
        checks = run_doctor(settings_for(emu).doctor_options())
    connectors = [c for c in checks if c.name == "certificate connector"]
    assert sorted(c.ok for c in connectors) == [False, True, True]
    (bad,) = [c for c in connectors if c.ok is False]
    assert "PKI-CONN-OLD" in bad.detail and "connector service" in bad.fix


def test_a_run_on_a_snapshot_with_a_stale_connector_warns_and_still_reports(tmp_path, caplog):
    from reconcile import pipeline

    path = fetch(tmp_path, ConnectorSwitch(stale=True))
    fixture = Path(__file__).parents[1] / "fixtures" / "views" / "issued.csv"
    settings = Settings(
        ca_exports=(fixture,), snapshot=path, ca_issuer=("Contoso Issuing CA",), no_history=True
    )
    with caplog.at_level("WARNING", logger="reconcile"):
        result = pipeline.run(settings)
    assert result.views is not None and result.views.connectors is not None
    assert [c.name for c in result.views.connectors.stale] == ["PKI-CONN-OLD"]
    assert any("PKI-CONN-OLD" in r.getMessage() for r in caplog.records)
