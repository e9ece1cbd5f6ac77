"""doctor against the HTTPS emulator: every check, and what each failure names."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from reconcile.cli import app
from reconcile.doctor import Check, run_doctor
from reconcile.emulator import Fault, FaultKind, GraphEmulator, ListTenant
from reconcile.emulator.connectors import ConnectorSwitch
from reconcile.emulator.demo import demo_settings_env
from reconcile.settings import Settings, resolve
from tests.emulation import state

TENANT = "11111111-2222-3333-4444-555555555555"
CLIENT = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
SECRET = "s3cr3t~Value.With-Chars"


def healthy(clock_offset: float = 0.0) -> GraphEmulator:
    """One iOS SCEP profile beside a general configuration; no connector endpoints (404)."""
    data = ListTenant(
        profiles=[
            {"@odata.type": "#microsoft.graph.windows10GeneralConfiguration", "id": "g1"},
            {
                "@odata.type": "#microsoft.graph.iosScepCertificateProfile",
                "id": "p1",
                "displayName": "iOS SCEP",
            },
        ],
        states={"p1": [state("01")]},
    )
    return GraphEmulator(
        tenant=TENANT,
        client_id=CLIENT,
        client_secret=SECRET,
        data=data,
        export_polls=0,
        connectors=ConnectorSwitch(status=404),
        clock_offset=clock_offset,
    )


@pytest.fixture
def emu() -> Iterator[GraphEmulator]:
    with healthy() as emulator:
        yield emulator


def settings(emu: GraphEmulator, **env: str) -> Settings:
    return resolve({}, {**demo_settings_env(emu), **env})


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def test_all_checks_pass_on_a_healthy_tenant(emu: GraphEmulator) -> None:
    checks = run_doctor(settings(emu, RECONCILE_INTUNE_SOURCE="both").doctor_options())
    # No connector endpoints (404): skipped, as the optional collections are.
    assert [(c.name, c.ok) for c in checks] == [
        ("configuration", True),
        ("CA bundle", True),
        ("token", True),
        ("deviceConfigurations", True),
        ("managedDeviceCertificateStates", True),
        ("managedDevices", True),
        ("exportJobs", True),
        ("certificate connectors", None),
        ("certificate connectors", None),
        ("clock skew", True),
    ]
    named = by_name(checks)
    assert "HTTP 404" in named["certificate connectors"].detail
    assert "secret" in named["token"].detail
    assert "iOS SCEP" in named["managedDeviceCertificateStates"].detail
    assert "DeviceManagementManagedDevices.Read.All" in named["managedDevices"].detail
    states = emu.requests_for("states")
    assert states[0].params["$top"] == ["1"]


def test_missing_permission_is_named_with_its_fix(emu: GraphEmulator) -> None:
    emu.add_fault(Fault(FaultKind.FORBIDDEN, route="devices", times=None))
    checks = by_name(run_doctor(settings(emu).doctor_options()))
    devices = checks["managedDevices"]
    assert devices.ok is False
    (refused,) = emu.requests_for("devices")
    assert refused.status == 403 and refused.request_id
    assert refused.request_id in devices.detail
    assert "DeviceManagementManagedDevices.Read.All" in devices.fix
    assert checks["deviceConfigurations"].ok is True
    assert checks["exportJobs"].ok is None  # not used by the states source


def test_failed_sign_in_skips_the_graph_checks_and_never_shows_the_secret(
    emu: GraphEmulator,
) -> None:
    emu.add_fault(Fault(FaultKind.EXPIRED_SECRET, times=None))
    checks = run_doctor(settings(emu).doctor_options())
    token = by_name(checks)["token"]
    assert token.ok is False and "AADSTS7000222" in token.detail
    assert "new client secret" in token.fix
    assert all(c.ok is None for c in checks[3:])
    assert SECRET not in repr(checks)
    assert [r for r in emu.requests if r.had_bearer] == []


def test_clock_skew_beyond_five_minutes_fails() -> None:
    with healthy(clock_offset=-900) as emu:
        check = by_name(run_doctor(settings(emu).doctor_options()))["clock skew"]
    assert check.ok is False
    assert re.search(r"ahead of Graph by (899|900|901) s", check.detail)
    assert "NTP" in check.fix


def test_bad_ca_bundle_is_reported_and_stops_early(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_text("nope", encoding="utf-8")
    unread = Settings(tenant_id=TENANT, client_id=CLIENT, client_secret=SECRET, ca_bundle=bundle)
    checks = by_name(run_doctor(unread.doctor_options()))
    assert checks["CA bundle"].ok is False
    assert checks["token"].ok is None


def test_cli_doctor_exits_3_and_prints_a_table_when_config_is_missing() -> None:
    result = CliRunner().invoke(app, ["doctor", "--tenant-id", TENANT])
    assert result.exit_code == 3
    assert "FAIL" in result.stdout and "configuration" in result.stdout
    assert "no Graph credential configured" in result.stdout


def test_cli_fetch_rejects_an_http_graph_url(monkeypatch: Any, tmp_path: Path) -> None:
    monkeypatch.setenv("RECONCILE_GRAPH_URL", "http://graph.example")
    monkeypatch.setenv("RECONCILE_CLIENT_SECRET", SECRET)
    result = CliRunner().invoke(
        app, ["fetch", "--out", str(tmp_path / "s"), "--tenant-id", TENANT, "--client-id", CLIENT]
    )
    assert result.exit_code == 2
    assert "graph_url must be an https URL" in result.stderr
    assert SECRET not in result.stderr + result.stdout
