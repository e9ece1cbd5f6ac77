"""managedDeviceCertificateState links to its device only by deviceDisplayName, which is not
unique: with two managed devices of one name the run says ``ambiguous`` and explain lists both,
through the real client against the emulator."""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconcile.cli import app
from reconcile.demo import DEMO_AS_OF, DEMO_ISSUER, DEMO_TEMPLATES, DEMO_TENANT_ID, demo_ca_export
from reconcile.emulator import GraphEmulator
from reconcile.emulator.demo import DEMO_SNAPSHOT, demo_settings_env

NAME = "CONTOSO-LT-0103"
SERIAL = "610000047223461C9BA93DB3EB000000000472"  # responsePending on CONTOSO-LT-0103
TWIN_ID = "0b7e55a1-0000-4c1d-8e6f-7a1e0d0c0103"


@pytest.fixture
def twins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphEmulator]:
    """The demo tenant plus a second managed device carrying the same display name."""
    tenant = tmp_path / "tenant"
    shutil.copytree(DEMO_SNAPSHOT, tenant)
    devices = tenant / "managed_devices.jsonl"
    twin = {
        "id": TWIN_ID,
        "deviceName": NAME.lower(),
        "operatingSystem": "Windows",
        "serialNumber": "TWIN-0103",
        "lastSyncDateTime": "2026-11-20T08:00:00Z",
    }
    with devices.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(twin) + "\n")
    with GraphEmulator(snapshot_dir=tenant, tenant=DEMO_TENANT_ID) as emu:
        for name, value in demo_settings_env(emu).items():
            monkeypatch.setenv(name, value)
        yield emu


def _args(command: str, *extra: str) -> list[str]:
    templates = [arg for t in DEMO_TEMPLATES for arg in ("--template", t)]
    return [
        command,
        *extra,
        "--ca-export", str(demo_ca_export()),
        "--ca-issuer", DEMO_ISSUER,
        "--as-of", DEMO_AS_OF.isoformat(),
        "--intune-source", "states",
        *templates,
    ]  # fmt: skip


def test_a_shared_device_name_is_ambiguous_never_a_guess(
    twins: GraphEmulator, tmp_path: Path
) -> None:
    out = tmp_path / "findings.csv"
    saved = tmp_path / "saved"
    jsonl = tmp_path / "findings.jsonl"
    result = CliRunner().invoke(
        app,
        _args(
            "run",
            "--no-history",
            "--csv", str(out),
            "--json", str(jsonl),
            "--html", str(tmp_path / "findings.html"),
            "--save-snapshot", str(saved),
        ),
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert f"{NAME} (ambiguous)" in result.stdout
    html = (tmp_path / "findings.html").read_text(encoding="utf-8")
    assert "(ambiguous: 2 managed devices share the name)" in html
    records = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines()]
    ambiguous = next(
        r for r in records if r.get("ca", {}).get("serial", "").lstrip("0") == SERIAL.lstrip("0")
    )
    assert sorted(d["id"] for d in ambiguous["device_candidates"]) == sorted(
        [TWIN_ID, "8c0a70a7-a845-47f9-953a-5154281fa6f5"]
    )
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig"), newline="")))
    row = next(r for r in rows if r["serial_number"].lstrip("0") == SERIAL.lstrip("0"))
    assert row["device_in_intune"] == "ambiguous"
    assert row["device_last_sync"] == ""
    others = [r for r in rows if (r["device_name"] or NAME).casefold() != NAME.casefold()]
    assert all(r["device_in_intune"] != "ambiguous" for r in others)

    explained = CliRunner().invoke(app, [*_args("explain", SERIAL), "--snapshot", str(saved)])
    assert explained.exit_code == 0, explained.output
    text = explained.stdout
    assert "ambiguous: 2 managed devices share this name; none was picked" in text
    assert TWIN_ID in text and "8c0a70a7-a845-47f9-953a-5154281fa6f5" in text
