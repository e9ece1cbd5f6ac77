"""The views' public contract through the CLI: file names, columns, the manifest, header-only
files, the plan script and the exit codes (revoked-but-installed is a finding, expiring is not).

Fixture tests/fixtures/views (as of 2026-11-20T02:00Z, one Windows SCEP profile):
0A01 revoked, Intune installed · 0A02 installed, expires in 11 days, no renewal ·
0A03 installed, expires in 15 days, renewed by 0A04 (installed) · 0A05 installFailed,
superseded by 0A06 · 0A07 installFailed on PC-99, gone from Intune · 0A08 revoked, no record.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

from typer.testing import CliRunner

from reconcile.cli import app

VIEWS = Path(__file__).parent / "fixtures" / "views"
AS_OF = "2026-11-20T02:00:00Z"
FILES = ("revoked-installed.csv", "expiring.csv", "revocation-plan.csv")
COLUMNS = {
    "revoked-installed.csv": [
        "serial_number", "issuer", "revoked_at", "device_name", "user", "profile",
        "intune_state", "intune_source", "next_step",
    ],
    "expiring.csv": [
        "serial_number", "issuer", "expires_at", "days_left", "device_name", "user", "profile",
        "next_step",
    ],
    "revocation-plan.csv": [
        "serial_number", "issuer", "status", "reason", "reason_code", "device_name", "command",
    ],
}  # fmt: skip


def run(export: str, *extra: str):
    args = [
        "run",
        "--ca-export",
        str(VIEWS / export),
        "--snapshot",
        str(VIEWS / "snapshot"),
        "--ca-issuer",
        "Contoso Issuing CA",
        "--as-of",
        AS_OF,
        "--no-history",
        *extra,
    ]
    return CliRunner().invoke(app, args, catch_exceptions=False)


def rows(path: Path) -> list[dict[str, str]]:
    text = path.read_text(encoding="utf-8-sig")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def header(path: Path) -> list[str]:
    return next(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"), newline="")))


def test_bundle_holds_each_view_with_its_columns_and_in_the_manifest(tmp_path):
    out = tmp_path / "bundle"
    result = run("issued.csv", "--out-dir", str(out))
    assert result.exit_code == 1, result.output
    for name in FILES:
        assert header(out / name)[: len(COLUMNS[name])] == COLUMNS[name]
    assert [r["serial_number"] for r in rows(out / "revoked-installed.csv")] == ["0A01"]
    (expiring,) = rows(out / "expiring.csv")
    assert (expiring["serial_number"], expiring["days_left"]) == ("0A02", "11")
    plan = {r["serial_number"]: r for r in rows(out / "revocation-plan.csv")}
    assert sorted(plan) == ["0A05", "0A07"]
    assert (plan["0A05"]["reason"], plan["0A05"]["reason_code"]) == ("superseded", "4")
    assert (plan["0A07"]["reason"], plan["0A07"]["reason_code"]) == ("cessationOfOperation", "5")
    assert plan["0A07"]["command"].startswith("certutil -revoke 0A07 5")
    manifest = (out / "manifest-sha256.txt").read_text(encoding="utf-8").splitlines()
    listed = {line[66:]: line[:64] for line in manifest}
    for name in (*FILES, "revocation-plan.ps1"):
        assert listed[name] == hashlib.sha256((out / name).read_bytes()).hexdigest()
    assert "revocation-plan.sh" not in listed
    run_json = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert run_json["views"]["counts"] == {
        "revoked_installed": 1,
        "expiring": 1,
        "revocation_plan": 2,
    }
    assert run_json["views"]["revoked-installed"][0]["serial_number"] == "0A01"
    summary = (out / "summary.txt").read_text(encoding="utf-8")
    assert "still installed (a security finding): 1" in summary
    assert "within 30 days: 1" in summary
    page = (out / "report.html").read_text(encoding="utf-8")
    assert 'id="view-revoked-installed"' in page and 'data-view-filter="view-expiring"' in page


def test_delivered_certificates_never_reach_the_plan(tmp_path):
    out = tmp_path / "bundle"
    run("issued.csv", "--out-dir", str(out), "--all")
    delivered = {r["serial_number"] for r in rows(out / "certificates.csv")
                 if r["status"] == "delivered"}  # fmt: skip
    assert delivered == {"0A02", "0A03", "0A04", "0A06"}
    assert delivered.isdisjoint(r["serial_number"] for r in rows(out / "revocation-plan.csv"))


def test_the_plan_script_says_it_revokes_nothing_and_what_each_line_is_based_on(tmp_path):
    out = tmp_path / "bundle"
    run("issued.csv", "--out-dir", str(out), "--expiry-days", "20")
    script = (out / "revocation-plan.ps1").read_text(encoding="utf-8")
    assert "reconcile never revokes anything and never calls a CA" in script
    assert "superseded, code 4" in script and "cessationOfOperation, code 5" in script
    commands = [line for line in script.splitlines() if line.startswith("certutil")]
    assert [c.split()[2:4] for c in commands] == [["0A05", "4"], ["0A07", "5"]]
    assert all("# CA config unknown" in c for c in commands)
    # 0A03 expires in 15 days but its renewal 0A04 is installed.
    assert [r["serial_number"] for r in rows(out / "expiring.csv")] == ["0A02"]


def test_the_ca_config_setting_puts_config_in_each_certutil_command(tmp_path, monkeypatch):
    monkeypatch.setenv("RECONCILE_CA_CONFIG", "ca01.contoso.com\\Contoso Issuing CA")
    plan = tmp_path / "plan.csv"
    run("issued.csv", "--revocation-plan", str(plan))
    commands = [r["command"] for r in rows(plan)]
    assert commands == [
        'certutil -config "ca01.contoso.com\\Contoso Issuing CA" -revoke 0A05 4',
        'certutil -config "ca01.contoso.com\\Contoso Issuing CA" -revoke 0A07 5',
    ]


def test_revoked_but_installed_alone_exits_1(tmp_path):
    single = tmp_path / "revoked.csv"
    result = run("revoked-only.csv", "--revoked-installed-csv", str(single))
    assert result.exit_code == 1, result.output
    assert "findings 0" in result.stdout
    assert [r["serial_number"] for r in rows(single)] == ["0A01"]


def test_expiring_alone_exits_0_and_empty_views_are_header_only(tmp_path):
    out = tmp_path / "bundle"
    expiring = tmp_path / "expiring-single.csv"
    result = run("expiring-only.csv", "--out-dir", str(out), "--expiring-csv", str(expiring))
    assert result.exit_code == 0, result.output
    assert [r["serial_number"] for r in rows(expiring)] == ["0A02"]
    for name in ("revoked-installed.csv", "revocation-plan.csv"):
        data = (out / name).read_bytes()
        assert data.startswith(b"\xef\xbb\xbfserial_number,issuer,")
        assert data.count(b"\r\n") == 1 and data.endswith(b"\r\n")


def test_expiry_days_narrows_and_widens_the_window(tmp_path):
    narrow, wide = tmp_path / "narrow.csv", tmp_path / "wide.csv"
    run("expiring-only.csv", "--expiring-csv", str(narrow), "--expiry-days", "10")
    run("expiring-only.csv", "--expiring-csv", str(wide), "--expiry-days", "400")
    assert rows(narrow) == []
    # 0A04 expires in 355 days and is the newest certificate of its device and profile.
    assert [r["serial_number"] for r in rows(wide)] == ["0A02", "0A04"]


def test_negative_expiry_days_is_a_config_error():
    result = run("issued.csv", "--expiry-days", "-1")
    assert result.exit_code == 2
    assert "--expiry-days must not be negative" in result.output
