"""Every sign-in method, doctor and the CLI against the emulator over real HTTPS.

The emulator's certificate is self-signed and trusted only through RECONCILE_CA_BUNDLE, so these
tests also prove that msal's token traffic uses reconcile's own TLS trust, not requests'.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from reconcile.cli import app
from reconcile.doctor import run_doctor
from reconcile.emulator import Fault, FaultKind, GraphEmulator
from reconcile.emulator.demo import DEMO_SNAPSHOT, demo_settings_env
from reconcile.errors import AuthError, ConfigError, UpstreamError
from reconcile.intune import fetch as fetch_module
from reconcile.intune.fetch import fetch_snapshot
from reconcile.intune.records import REPORT_COLUMNS
from reconcile.model import IntuneSource
from reconcile.settings import Settings, resolve
from tests.helpers import read_snapshot

DELIVERED = frozenset({"installed", "active"})


def _certificate(kind: str = "rsa") -> tuple[bytes, bytes]:
    key: Any = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if kind == "rsa"
        else ec.generate_private_key(ec.SECP256R1())
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "reconcile-emulator-app")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"cert-pw"),
    )
    return cert_pem, key_pem


CERT_PEM, KEY_PEM = _certificate()


@pytest.fixture(autouse=True)
def _quick_export_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    quick = functools.partial(fetch_module.ExportPolling, first_delay=0.05, max_delay=0.1)
    monkeypatch.setattr(fetch_module, "ExportPolling", quick)


@pytest.fixture(scope="module")
def emu() -> Iterator[GraphEmulator]:
    with GraphEmulator(
        snapshot_dir=DEMO_SNAPSHOT,
        client_certificate=CERT_PEM,
        device_code_interval=0,
        export_polls=1,
    ) as emulator:
        yield emulator


def settings_for(emu: GraphEmulator, **env: str) -> Settings:
    values = {**demo_settings_env(emu), **env}
    return resolve({}, {k: v for k, v in values.items() if v})


def test_certificate_sign_in_fetches_states(emu: GraphEmulator, tmp_path: Path) -> None:
    pem = tmp_path / "app.pem"
    pem.write_bytes(CERT_PEM + KEY_PEM)
    settings = settings_for(
        emu,
        RECONCILE_AUTH="certificate",
        RECONCILE_CLIENT_SECRET="",
        RECONCILE_CERTIFICATE=str(pem),
        RECONCILE_CERTIFICATE_PASSWORD="cert-pw",
    )
    snapshot = read_snapshot(fetch_snapshot(settings.fetch_options(), tmp_path / "snap"), DELIVERED)
    expected = read_snapshot(DEMO_SNAPSHOT, DELIVERED)
    states = {c for c in expected.certificates if c.source is IntuneSource.STATES}
    assert states and set(snapshot.certificates) == states
    assert snapshot.metadata["auth_method"] == "certificate"


def test_an_unregistered_certificate_is_aadsts700027(emu: GraphEmulator, tmp_path: Path) -> None:
    other_cert, other_key = _certificate()
    pem = tmp_path / "other.pem"
    pem.write_bytes(other_cert + other_key)
    settings = settings_for(
        emu,
        RECONCILE_AUTH="certificate",
        RECONCILE_CERTIFICATE=str(pem),
        RECONCILE_CERTIFICATE_PASSWORD="cert-pw",
    )
    with pytest.raises(AuthError, match="AADSTS700027") as info:
        fetch_snapshot(settings.fetch_options(), tmp_path / "snap")
    assert info.value.exit_code == 3
    assert not (tmp_path / "snap").exists()


def test_an_ec_key_is_refused_before_any_request(emu: GraphEmulator, tmp_path: Path) -> None:
    cert, key = _certificate("ec")
    pem = tmp_path / "ec.pem"
    pem.write_bytes(cert + key)
    settings = settings_for(
        emu,
        RECONCILE_AUTH="certificate",
        RECONCILE_CERTIFICATE=str(pem),
        RECONCILE_CERTIFICATE_PASSWORD="cert-pw",
    )
    emu.clear_requests()
    with pytest.raises(ConfigError, match="RSA key"):
        fetch_snapshot(settings.fetch_options(), tmp_path / "snap")
    assert emu.requests == []


def test_device_code_sign_in_prompts_once_and_reuses_the_cache(
    emu: GraphEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache.json"
    settings = settings_for(emu, RECONCILE_AUTH="device-code", RECONCILE_TOKEN_CACHE=str(cache))
    fetch_snapshot(settings.fetch_options(), tmp_path / "one")
    assert "enter the code" in capsys.readouterr().err
    assert oct(cache.stat().st_mode & 0o777) == "0o600"
    emu.clear_requests()
    fetch_snapshot(settings.fetch_options(), tmp_path / "two")
    assert capsys.readouterr().err == ""
    assert emu.requests_for("devicecode") == []


def test_managed_identity_via_app_service_endpoint(
    emu: GraphEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDENTITY_ENDPOINT", emu.managed_identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", emu.identity_header)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    settings = settings_for(
        emu,
        RECONCILE_AUTH="managed-identity",
        RECONCILE_CLIENT_SECRET="",
        RECONCILE_TENANT_ID="",
        RECONCILE_CLIENT_ID="",
    )
    snapshot = read_snapshot(fetch_snapshot(settings.fetch_options(), tmp_path / "snap"), DELIVERED)
    assert snapshot.metadata["auth_method"] == "managed-identity"
    (msi,) = emu.requests_for("msi")
    assert msi.params["resource"] == [emu.graph_url]


def test_without_the_ca_bundle_tls_is_refused_with_a_fix(
    emu: GraphEmulator, tmp_path: Path
) -> None:
    settings = settings_for(emu, RECONCILE_CA_BUNDLE="")
    with pytest.raises(UpstreamError, match="RECONCILE_CA_BUNDLE"):
        fetch_snapshot(settings.fetch_options(), tmp_path / "snap")


def test_doctor_against_the_emulator_is_all_green(emu: GraphEmulator) -> None:
    checks = run_doctor(settings_for(emu).doctor_options())
    assert {c.name: c.ok for c in checks} == {
        "configuration": True,
        "CA bundle": True,
        "token": True,
        "deviceConfigurations": True,
        "managedDeviceCertificateStates": True,
        "managedDevices": True,
        "exportJobs": None,
        "certificate connector": True,
        "clock skew": True,
    }
    connectors = [c.detail for c in checks if c.name == "certificate connector"]
    assert len(connectors) == 2 and all("last connected" in d for d in connectors)


@pytest.fixture
def emu_env(emu: GraphEmulator, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    env = demo_settings_env(emu)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def test_cli_fetch_and_doctor(emu_env: dict[str, Any], tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["fetch", "--out", str(tmp_path / "snap")])
    assert result.exit_code == 0, result.stderr
    assert "certificate_states" in result.stdout
    assert (tmp_path / "snap" / "metadata.json").is_file()
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 0, result.stdout
    assert "FAIL" not in result.stdout
    result = runner.invoke(app, ["doctor", "--intune-source", "both"])
    assert result.exit_code == 0, result.stdout
    assert "FAIL" not in result.stdout and "Invalid report name" not in result.stdout
    secret = os.environ["RECONCILE_CLIENT_SECRET"]
    assert secret not in result.stdout + result.stderr


def test_cli_fetch_with_a_wrong_secret_exits_3_with_one_line(
    emu_env: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECONCILE_CLIENT_SECRET", "wrong-secret-value")
    result = CliRunner().invoke(app, ["fetch", "--out", str(tmp_path / "snap")])
    assert result.exit_code == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "AADSTS7000215" in lines[0] and "fix:" in lines[0]
    assert "wrong-secret-value" not in result.stderr + result.stdout


def test_cli_fetch_refuses_a_next_link_with_a_control_character_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fault = Fault(FaultKind.NEXT_LINK_CONTROL, route="devices")
    with GraphEmulator(
        snapshot_dir=DEMO_SNAPSHOT, page_size=4, max_page_size=4, faults=[fault]
    ) as small_pages:
        for name, value in demo_settings_env(small_pages).items():
            monkeypatch.setenv(name, value)
        result = CliRunner().invoke(app, ["fetch", "--out", str(tmp_path / "snap")])
    assert fault.hits == 1
    assert result.exit_code == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "@odata.nextLink holds a control character" in lines[0]
    assert "internal error" not in lines[0].lower() and "\t" not in result.stderr
    assert not (tmp_path / "snap").exists()


@pytest.mark.parametrize("source", ["report", "both"])
def test_doctor_probes_the_export_the_run_creates(emu: GraphEmulator, source: str) -> None:
    emu.clear_requests()
    checks = {
        c.name: c
        for c in run_doctor(settings_for(emu, RECONCILE_INTUNE_SOURCE=source).doctor_options())
    }
    assert all(c.ok is not False for c in checks.values()), checks
    export = checks["exportJobs"]
    assert export.ok is True and "tenant-wide" in export.detail
    assert "DeviceManagementConfiguration.ReadWrite.All" in export.detail
    (create,) = emu.requests_for("export_create")
    body = json.loads(create.body or "{}")
    assert body["localizationType"] == "LocalizedValuesAsAdditionalColumn"
    assert body["select"] == list(REPORT_COLUMNS)
    assert emu.requests_for("download") == []


def _report_settings(emu: GraphEmulator) -> Settings:
    return settings_for(emu, RECONCILE_INTUNE_SOURCE="report")


def test_doctor_follows_the_per_profile_fallback(emu: GraphEmulator) -> None:
    emu.faults.clear()
    fault = emu.add_fault(Fault(FaultKind.POLICY_FILTER_REQUIRED, times=None))
    try:
        checks = {c.name: c for c in run_doctor(_report_settings(emu).doctor_options())}
    finally:
        emu.faults.remove(fault)
    export = checks["exportJobs"]
    assert export.ok is True and "per certificate profile" in export.detail


def test_doctor_gives_permission_advice_only_for_401_and_403(emu: GraphEmulator) -> None:
    emu.faults.clear()
    fault = emu.add_fault(Fault(FaultKind.SERVER_ERROR, route="export_create", times=None))
    try:
        checks = {c.name: c for c in run_doctor(_report_settings(emu).doctor_options())}
    finally:
        emu.faults.remove(fault)
    export = checks["exportJobs"]
    assert export.ok is False and "HTTP 500" in export.detail
    assert "grant" not in export.fix and "ReadWrite" not in export.fix
