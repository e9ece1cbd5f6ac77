from __future__ import annotations

import email.utils
import re
import time
from pathlib import Path
from typing import Any

import httpx
from typer.testing import CliRunner

from reconcile.cli import app
from reconcile.doctor import Check, run_doctor
from reconcile.settings import Settings
from tests.graph.fake import CLIENT, SECRET, TENANT, FakeCloud, state


def settings(**changes: Any) -> Settings:
    return Settings(
        **{"tenant_id": TENANT, "client_id": CLIENT, "client_secret": SECRET, **changes}
    )


def healthy() -> FakeCloud:
    cloud = FakeCloud(
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
    return cloud


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def with_date(cloud: FakeCloud, offset: float) -> None:
    original = cloud._graph

    def graph(request: httpx.Request) -> httpx.Response:
        response = original(request)
        response.headers["Date"] = email.utils.formatdate(time.time() + offset, usegmt=True)
        return response

    cloud._graph = graph  # type: ignore[method-assign]


def test_all_checks_pass_on_a_healthy_tenant() -> None:
    cloud = healthy()
    with_date(cloud, 0)
    checks = by_name(
        run_doctor(settings(intune_source="both").doctor_options(), transport=cloud.transport())
    )
    # The fake tenant has no connector endpoints (404): skipped, as the optional collection is.
    assert [c.ok for c in checks.values()] == [True, None, True, True, True, True, True, None, True]
    assert "HTTP 404" in checks["certificate connectors"].detail
    assert "secret" in checks["token"].detail
    assert "iOS SCEP" in checks["managedDeviceCertificateStates"].detail
    assert "DeviceManagementManagedDevices.Read.All" in checks["managedDevices"].detail
    states = [r for r in cloud.graph_requests() if "managedDeviceCertificateStates" in r.url.path]
    assert states[0].url.params["$top"] == "1"


def test_missing_permission_is_named_with_its_fix() -> None:
    cloud = healthy()
    cloud.before.append(
        lambda r: (
            httpx.Response(
                403,
                headers={"request-id": "rid-403"},
                json={"error": {"code": "Forbidden", "message": "Application is not authorized"}},
            )
            if r.url.path.endswith("managedDevices")
            else None
        )
    )
    checks = by_name(run_doctor(settings().doctor_options(), transport=cloud.transport()))
    devices = checks["managedDevices"]
    assert devices.ok is False
    assert "rid-403" in devices.detail
    assert "DeviceManagementManagedDevices.Read.All" in devices.fix
    assert checks["deviceConfigurations"].ok is True
    assert checks["exportJobs"].ok is None  # not used by the states source


def test_failed_sign_in_skips_the_graph_checks_and_never_shows_the_secret() -> None:
    cloud = FakeCloud(
        token_error={
            "error": "invalid_client",
            "error_description": SECRET,
            "error_codes": [7000222],
        }
    )
    checks = run_doctor(settings().doctor_options(), transport=cloud.transport())
    token = by_name(checks)["token"]
    assert token.ok is False and "AADSTS7000222" in token.detail
    assert "new client secret" in token.fix
    assert all(c.ok is None for c in checks[3:])
    assert SECRET not in repr(checks)
    assert cloud.graph_requests() == []


def test_clock_skew_beyond_five_minutes_fails() -> None:
    cloud = healthy()
    with_date(cloud, -900)
    check = by_name(run_doctor(settings().doctor_options(), transport=cloud.transport()))[
        "clock skew"
    ]
    assert check.ok is False
    assert re.search(r"ahead of Graph by (899|900|901) s", check.detail)
    assert "NTP" in check.fix


def test_bad_ca_bundle_is_reported_and_stops_early(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_text("nope", encoding="utf-8")
    checks = by_name(run_doctor(settings(ca_bundle=bundle).doctor_options()))
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
