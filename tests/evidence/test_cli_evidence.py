"""`reconcile evidence add` and `reconcile explain` end to end on the bundled demo tenant."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from reconcile.cli import app
from reconcile.demo import DEMO_AS_OF, DEMO_ISSUER, DEMO_TEMPLATES, demo_ca_export, demo_snapshot
from reconcile.timeparse import iso_z

# The demo's CONTOSO-LT-0103 has a not_reported certificate issued 2026-10-10T16:45:00Z.
NOT_REPORTED = "61000004758A4BBE47B440B8AC000000000475"
EVENT_39 = (
    "<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System>"
    "<Provider Name='Microsoft-Windows-DeviceManagement-Enterprise-Diagnostics-Provider'/>"
    "<EventID>39</EventID><Level>4</Level><TimeCreated SystemTime='2026-10-10T16:52:10.0000000Z'/>"
    "<Computer>CONTOSO-LT-0103</Computer></System>"
    "<RenderingInfo Culture='en-US'><Message>SCEP: Certificate installed successfully.</Message>"
    "</RenderingInfo></Event>\n"
)


def invoke(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def demo_inputs(db: Path | None) -> list[str]:
    args = [
        "--ca-export",
        str(demo_ca_export()),
        "--snapshot",
        str(demo_snapshot()),
        "--ca-issuer",
        DEMO_ISSUER,
        "--as-of",
        iso_z(DEMO_AS_OF),
    ]
    if db is not None:
        args += ["--evidence-db", str(db)]
    for template in DEMO_TEMPLATES:
        args += ["--template", template]
    return args


def test_add_then_explain_shows_a_reporting_problem(tmp_path: Path) -> None:
    db = tmp_path / "evidence.db"
    log = tmp_path / "admin.xml"
    log.write_text(EVENT_39, encoding="utf-8")

    added = invoke("evidence", "add", str(log), "--evidence-db", str(db))
    again = invoke("evidence", "add", str(log), "--evidence-db", str(db))
    explained = invoke("explain", NOT_REPORTED.lower(), *demo_inputs(db))
    ran = invoke("run", "--no-history", *demo_inputs(None), env={"RECONCILE_EVIDENCE_DB": str(db)})

    assert added.exit_code == 0
    assert f"{log}: windows log, added" in added.output
    assert "installed (reached cert_installed) at 2026-10-10T16:52:10Z" in added.output
    assert "windows log, already added" in again.output
    assert explained.exit_code == 0
    assert f"== {NOT_REPORTED}  installed_not_reported (finding)" in explained.output
    assert "next step: check Certificate Connector / NDES reporting" in explained.output
    assert "device windows log: event 39: SCEP: Certificate installed successfully." in (
        explained.output
    )
    assert ran.exit_code == 1
    assert "installed_not_reported" in ran.output


def test_add_rejects_a_file_that_is_no_log(tmp_path: Path, logs: Path) -> None:
    result = invoke(
        "evidence", "add", str(logs / "not-a-log.txt"), "--evidence-db", str(tmp_path / "e.db")
    )

    assert result.exit_code == 2
    assert "not a known device log" in result.output
    assert "Traceback" not in result.output


def test_explain_of_nothing_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke("explain", "NO-SUCH-DEVICE", *demo_inputs(tmp_path / "e.db"))

    assert result.exit_code == 2
    assert "nothing in this run matches device 'NO-SUCH-DEVICE'" in result.output
    assert not (tmp_path / "e.db").exists()
