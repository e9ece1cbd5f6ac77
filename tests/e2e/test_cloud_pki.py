"""Microsoft Cloud PKI end to end through the CLI, real msal + httpx against the HTTPS emulator:
live runs alone and mixed with an AD CS export, a partial read, explain, verify and doctor."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconcile.cli import app
from reconcile.doctor import run_doctor
from reconcile.emulator import GraphEmulator, parse_fault
from reconcile.emulator.cloudpki import CloudPki
from reconcile.emulator.demo import demo_settings_env
from reconcile.settings import resolve
from tests.cloudpki import AS_OF, CA_ID, FIXTURES, SNAPSHOT, lines, serial, serve, settings_for


@pytest.fixture
def emu(monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphEmulator]:
    with serve(monkeypatch) as e:
        yield e


def run_args(*extra: str) -> list[str]:
    return ["run", "--ca-source", "cloud-pki", "--as-of", AS_OF, "--no-history", *extra]


def rows(path: Path) -> dict[str, dict[str, str]]:
    reader = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"), newline=""))
    return {r["serial_number"]: r for r in reader}


def test_a_live_cloud_pki_run_classifies_every_status(emu: GraphEmulator, tmp_path: Path) -> None:
    out = tmp_path / "all.csv"
    result = CliRunner().invoke(app, run_args("--all", "--csv", str(out)))
    assert result.exit_code == 1, result.output
    got = rows(out)
    expected = ["delivered", "not_installed", "not_reported", "revoked", "revoked",
                "not_reported", "expired", "delivered", "superseded"]  # fmt: skip
    assert [got[serial(n)]["status"] for n in range(1, 10)] == expected
    gone = got[serial(3)]
    assert gone["device_in_intune"] == "no"
    assert gone["device_id"] == "99999999-aaaa-4000-8000-000000000099"
    assert got[serial(2)]["device_in_intune"] == "yes"
    assert got[serial(2)]["device_id"] == "22222222-aaaa-4000-8000-000000000002"
    assert got[serial(1)]["template"] == "Contoso Cloud Issuing CA"
    assert got[serial(1)]["template_oid"] == CA_ID
    assert result.stderr.count("unknownFutureValue") == 1
    assert "read as not revoked" in result.stderr


def test_the_status_only_revoked_leaf_is_revoked_at_the_fetch(
    emu: GraphEmulator, tmp_path: Path
) -> None:
    out = tmp_path / "all.csv"
    saved = tmp_path / "saved"
    result = CliRunner().invoke(
        app, run_args("--all", "--csv", str(out), "--save-snapshot", str(saved))
    )
    assert result.exit_code == 1, result.output
    fetched = json.loads((saved / "metadata.json").read_text())["fetched_at"]
    assert rows(out)[serial(5)]["revoked_at"] == fetched


def test_a_mixed_ad_cs_and_cloud_pki_run(emu: GraphEmulator, tmp_path: Path) -> None:
    out = tmp_path / "findings.csv"
    args = run_args(
        "--ca-export", str(FIXTURES / "adcs.csv"), "--ca-issuer", "Contoso Issuing CA 1",
        "--csv", str(out), "--out-dir", str(tmp_path / "out"),
    )  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    findings = {s: r["status"] for s, r in rows(out).items()}
    assert findings == {
        "06100000066AA11BB22CC33DD4400000000066": "not_reported",
        serial(2): "not_installed",
        serial(3): "not_reported",
        serial(6): "not_reported",
        serial(9): "superseded",
    }
    # Intune's installed Cloud PKI certificate that the leaf list lacks: the CA is covered.
    unknown = lines(tmp_path / "out" / "unknown-to-ca.jsonl")
    assert [u["intune"]["serial"] for u in unknown] == [serial(16)]  # type: ignore[index]
    sources = {r["source"].rsplit(":", 1)[0] for r in rows(out).values()}
    assert len(sources) == 2 and any(s.endswith("adcs.csv") for s in sources)


@pytest.mark.parametrize("template", ["contoso cloud issuing ca", CA_ID.upper()])
def test_template_picks_cloud_pki_cas_by_name_or_id(
    emu: GraphEmulator, tmp_path: Path, template: str
) -> None:
    out = tmp_path / "all.csv"
    args = run_args(
        "--ca-export", str(FIXTURES / "adcs.csv"), "--ca-issuer", "Contoso Issuing CA 1",
        "--template", template, "--all", "--csv", str(out), "--allow-empty",
    )  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    got = rows(out)
    assert got["06100000065AA11BB22CC33DD4400000000065"]["status"] == "out_of_scope"
    assert got[serial(2)]["status"] == "not_installed"


def test_a_partial_read_in_a_live_run_exits_3_without_a_report(
    emu: GraphEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECONCILE_GRAPH_MAX_ATTEMPTS", "2")
    emu.add_fault(parse_fault("gateway-timeout:route=cloud_pki_leaves,after=1,times=forever"))
    out_dir, out_csv = tmp_path / "out", tmp_path / "f.csv"
    result = CliRunner().invoke(app, run_args("--out-dir", str(out_dir), "--csv", str(out_csv)))
    assert result.exit_code == 3, result.output
    assert not out_dir.exists() and not out_csv.exists()


def test_a_snapshot_run_needs_the_cloud_pki_collections(tmp_path: Path) -> None:
    snap = tmp_path / "snap"
    snap.mkdir()
    meta = json.loads((SNAPSHOT / "metadata.json").read_text())
    for name in ("profiles", "certificate_states", "managed_devices"):
        (snap / f"{name}.jsonl").write_bytes((SNAPSHOT / f"{name}.jsonl").read_bytes())
    meta["counts"] = {k: v for k, v in meta["counts"].items() if not k.startswith("cloud_pki")}
    (snap / "metadata.json").write_text(json.dumps(meta))
    result = CliRunner().invoke(app, run_args("--snapshot", str(snap)))
    assert result.exit_code == 2
    assert "fetch it with --ca-source cloud-pki" in result.stderr


def test_explain_shows_the_leaf_and_managed_device(emu: GraphEmulator) -> None:
    result = CliRunner().invoke(
        app,
        ["explain", serial(3), "--ca-source", "cloud-pki", "--as-of", AS_OF, "--snapshot",
         str(SNAPSHOT)],
    )  # fmt: skip
    assert result.exit_code in (0, 1), result.output
    assert "leaf 976c94f8-94f8-976c-f894-6c97f8946c03" in result.output
    assert "managed device 99999999-aaaa-4000-8000-000000000099" in result.output


@pytest.mark.parametrize(
    ("scopes", "wanted"),
    [
        (("DeviceManagementConfiguration.Read.All", "DeviceManagementConfiguration.ReadWrite.All"),
         "DeviceManagementConfiguration.Read.All"),
        (("DeviceManagementCloudCA.ReadWrite.All", "DeviceManagementCloudCA.Read.All"),
         "DeviceManagementCloudCA.Read.All"),
    ],
)  # fmt: skip
def test_doctor_names_the_permission_the_403_asks_for(
    emu: GraphEmulator, scopes: tuple[str, ...], wanted: str
) -> None:
    emu.cloud_pki = CloudPki(forbidden=scopes)
    checks = {c.name: c for c in run_doctor(settings_for(emu).doctor_options())}
    check = checks["cloud PKI"]
    assert check.ok is False
    assert check.fix == f"grant the app {wanted} (application) and admin consent"


def test_doctor_passes_when_cloud_pki_is_readable(emu: GraphEmulator) -> None:
    checks = {c.name: c for c in run_doctor(settings_for(emu).doctor_options())}
    assert checks["cloud PKI"].ok is True
    assert "2 certification authorities" in checks["cloud PKI"].detail
    without = {c.name for c in run_doctor(resolve({}, demo_settings_env(emu)).doctor_options())}
    assert "cloud PKI" not in without


def test_a_mixed_run_bundle_verifies(emu: GraphEmulator, tmp_path: Path) -> None:
    out_dir, saved = tmp_path / "out", tmp_path / "saved"
    args = run_args(
        "--ca-export", str(FIXTURES / "adcs.csv"), "--ca-issuer", "Contoso Issuing CA 1",
        "--out-dir", str(out_dir), "--save-snapshot", str(saved),
    )  # fmt: skip
    assert CliRunner().invoke(app, args).exit_code == 1
    run = json.loads((out_dir / "run.json").read_text())
    assert run["settings"]["ca_sources"] == ["cloud-pki"]
    leaves = [i for i in run["inputs"] if i["format"] == "cloud_pki_leaf_certificates"]
    assert leaves[0]["kind"] == "snapshot"
    assert leaves and leaves[0]["rows"] == 9 and len(leaves[0]["sha256"]) == 64
    result = CliRunner().invoke(app, ["verify", str(out_dir)])
    assert result.exit_code == 0, result.output


def test_the_fetch_command_stores_cloud_pki_when_asked(emu: GraphEmulator, tmp_path: Path) -> None:
    out = tmp_path / "snap"
    result = CliRunner().invoke(app, ["fetch", "--ca-source", "cloud-pki", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 cloud_pki_cas" in result.output and "9 cloud_pki_leaf_certificates" in result.output
    plain = tmp_path / "plain"
    assert CliRunner().invoke(app, ["fetch", "--out", str(plain)]).exit_code == 0
    assert not (plain / "cloud_pki_leaf_certificates.jsonl").exists()


def test_doctor_command_prints_the_permission_and_exits_3(emu: GraphEmulator) -> None:
    emu.cloud_pki = CloudPki(forbidden=("DeviceManagementCloudCA.Read.All",))
    result = CliRunner().invoke(app, ["doctor", "--ca-source", "cloud-pki"])
    assert result.exit_code == 3
    assert "DeviceManagementCloudCA.Read.All" in " ".join(result.output.split())


def test_an_empty_cloud_pki_checks_nothing_and_stops(emu: GraphEmulator, tmp_path: Path) -> None:
    """No leaves (a wrong tenant, a CA not yet issuing) is not an all-clear."""
    emu.cloud_pki = CloudPki(cas=emu.cloud_pki.cas, leaves=[])
    result = CliRunner().invoke(app, run_args("--csv", str(tmp_path / "f.csv")))
    assert result.exit_code == 2, result.output
    assert "no in-scope Cloud PKI certificate (no leaf certificates" in result.stderr
    assert "cloud_pki_leaf_certificates.jsonl" in result.stderr
    assert not (tmp_path / "f.csv").exists()


def test_the_revocation_plan_prints_the_graph_call_for_cloud_pki(
    emu: GraphEmulator, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = run_args(
        "--ca-export", str(FIXTURES / "adcs.csv"), "--ca-issuer", "Contoso Issuing CA 1",
        "--out-dir", str(out),
    )  # fmt: skip
    assert CliRunner().invoke(app, args).exit_code == 1
    plan = {r["serial_number"]: r for r in csv.DictReader(io.StringIO(
        (out / "revocation-plan.csv").read_text(encoding="utf-8-sig"), newline=""))}  # fmt: skip
    assert {s: plan[s]["reason"] for s in (serial(3), serial(9))} == {
        serial(3): "cessationOfOperation",
        serial(9): "superseded",
    }
    url = f"https://graph.microsoft.com/beta/deviceManagement/cloudCertificationAuthority/{CA_ID}"
    assert plan[serial(3)]["command"] == (
        f'az rest --method POST --url "{url}/revokeLeafCertificate" '
        """--body '{"leafCertificateId":"976c94f8-94f8-976c-f894-6c97f8946c03"}'"""
    )
    script = (out / "revocation-plan.sh").read_text(encoding="utf-8")
    assert script.count("az rest --method POST") == 2 and "certutil" not in script
    assert "az rest" not in (out / "revocation-plan.ps1").read_text(encoding="utf-8")
    # Printed, never sent: the emulator saw no POST at all.
    assert not [r for r in emu.requests if r.method == "POST" and "revoke" in r.path]
