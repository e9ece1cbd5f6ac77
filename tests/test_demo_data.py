"""The bundled demo data: well-formed, reproducible, and classified as its manifest says.

The expected statuses come from benchmarks/gen_data.py's manifest and are re-derived here from
the raw files by a small reference implementation of the rules, so neither the data nor the
pipeline can drift without a failure.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from reconcile import pipeline
from reconcile.demo import (
    DEMO_AS_OF,
    DEMO_CLOUD_PKI_CA,
    DEMO_DIR,
    DEMO_ISSUER,
    DEMO_TEMPLATES,
    demo_ca_export,
    demo_snapshot,
)
from reconcile.intune.cloudpki import LEAF_FIELDS
from reconcile.intune.sources import DEVICE_FIELDS, PROFILE_FIELDS, STATE_FIELDS
from reconcile.model import RunResult
from reconcile.report.csvout import write_verdicts
from reconcile.settings import Settings
from tests.helpers import CERTUTIL_HEADER, demo_settings, read_snapshot

ROOT = Path(__file__).resolve().parents[1]
ALL_STATUSES = (
    "delivered",
    "not_installed",
    "not_reported",
    "superseded",
    "within_grace",
    "revoked",
    "expired",
    "out_of_scope",
    "unknown_to_ca",
)
REPORT_DELIVERED = frozenset(s.casefold() for s in Settings().report_delivered)


@pytest.fixture(scope="module")
def gen_data() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_data", ROOT / "benchmarks" / "gen_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_data"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DEMO_DIR / "manifest.json").read_text(encoding="utf-8"))
    return data


def _ca_rows(path: Path) -> tuple[list[dict[str, str]], list[str]]:
    """Data rows as dicts, and the lines after them (certutil's status trailer)."""
    lines = path.read_bytes().decode("utf-16").splitlines()
    data = [line for line in lines if line.startswith('"')]
    trailer = lines[len(data) :]
    reader = csv.reader(data)
    header = next(reader)
    assert header == CERTUTIL_HEADER
    return [dict(zip(header, row, strict=True)) for row in reader], trailer


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --- the files ----------------------------------------------------------------------------------


def test_snapshot_parses_cleanly() -> None:
    snapshot = read_snapshot(demo_snapshot(), REPORT_DELIVERED)
    counts = snapshot.metadata["counts"]
    assert snapshot.rejects == ()
    assert snapshot.metadata["complete"] is True
    assert snapshot.metadata["cloud"] == "global"
    assert snapshot.metadata["intune_source"] == "both"
    assert snapshot.tenant_id == "c0ffee00-5a1e-4d3e-9c7a-00000000c0de"
    # Contoso's three AD CS profiles, Fabrikam's, and the Cloud PKI SCEP profile.
    assert len(snapshot.profiles) == counts["profiles"] == 5
    assert counts["cloud_pki_cas"] == 2 and snapshot.metadata["ca_sources"] == ["cloud-pki"]
    assert len(snapshot.devices) == counts["managed_devices"] == 15
    assert len(snapshot.certificates) == counts["certificate_states"] + counts["report_rows"]
    assert {p.odata_type for p in snapshot.profiles} == {
        "windows81SCEPCertificateProfile",
        "iosScepCertificateProfile",
        "androidWorkProfilePkcsCertificateProfile",
    }
    states = {c.state for c in snapshot.certificates}
    assert {"installed", "installFailed", "issued", "responsePending", "someFutureState"} <= states


def test_snapshot_objects_are_what_the_fetcher_selects() -> None:
    """Same shape as a live fetch: only the $select fields plus the profile annotations."""
    annotations = {"@reconcile.profileId", "@reconcile.profileName", "@reconcile.profileType"}
    for record in _jsonl(demo_snapshot() / "certificate_states.jsonl"):
        assert set(record) == set(STATE_FIELDS) | annotations
    for device in _jsonl(demo_snapshot() / "managed_devices.jsonl"):
        assert set(device) == set(DEVICE_FIELDS)
    for profile in _jsonl(demo_snapshot() / "profiles.jsonl"):
        assert set(profile) == {"@odata.type", *PROFILE_FIELDS}
        assert profile["@odata.type"].startswith("#microsoft.graph.")


def test_ca_export_is_a_powershell_51_certutil_capture(manifest: dict[str, Any]) -> None:
    raw = demo_ca_export().read_bytes()
    assert raw[:2] == b"\xff\xfe"
    assert b"\r\x00\n\x00" in raw
    rows, trailer = _ca_rows(demo_ca_export())
    assert len(rows) == len(manifest["certificates"])
    assert trailer == ["", f"{len(rows)} Rows", "CertUtil: -view command completed successfully."]
    text = raw.decode("utf-16")
    assert ",EMPTY," in text and '"EMPTY"' not in text
    for row in rows:
        serial, request_id = row["Serial Number"], int(row["Issued Request ID"])
        assert re.fullmatch(r"[0-9a-f]{38}", serial)
        assert int(serial[2:10], 16) == int(serial[-8:], 16) == request_id
        assert re.fullmatch(r"[0-9a-f]{2}( [0-9a-f]{2}){19}", row["Certificate Hash"])
        assert re.fullmatch(
            r"\d{1,2}/\d{1,2}/\d{4} \d{1,2}:\d{2} [AP]M GMT", row["Certificate Effective Date"]
        )
        revoked = row["Revocation Date"] != "EMPTY"
        assert row["Request Disposition"] == ("21 -- Revoked" if revoked else "20 -- Issued")
    requesters = {r["Requester Name"] for r in rows}
    assert {"CONTOSO\\svc-ndes", "CONTOSO\\INTUNE-CONN$"} <= requesters
    # Non-ASCII survives the UTF-16 round trip; a hostile CN is RFC 4180 quoted.
    names = {r["Issued Common Name"] for r in rows}
    assert "ZoëB_Pixel7" in names
    assert '=HYPERLINK("http://evil.example","x")' in names


def test_generator_reproduces_the_committed_files(gen_data: ModuleType, tmp_path: Path) -> None:
    gen_data.build_demo(tmp_path)
    committed = sorted(p.relative_to(DEMO_DIR) for p in DEMO_DIR.rglob("*") if p.is_file())
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    data = [p for p in committed if p.suffix in (".csv", ".json", ".jsonl")]
    assert data == generated
    for name in data:
        assert (tmp_path / name).read_bytes() == (DEMO_DIR / name).read_bytes(), name


# --- the rules, re-derived from the raw files ----------------------------------------------------


@dataclass(frozen=True)
class _Record:
    serial: int | None
    thumbprint: str | None
    issuer_cn: str | None
    delivered: bool
    link: tuple[str, str]


def _issuer_cn(text: str | None) -> str | None:
    if not text:
        return None
    match = re.search(r"CN=([^,]+)", text, re.IGNORECASE)
    return (match.group(1) if match else text).strip().casefold()


def _hex(text: str | None) -> int | None:
    return int(re.sub(r"[\s:\-]", "", text), 16) if text else None


def _intune_records() -> list[_Record]:
    records = [
        _Record(
            _hex(s["certificateSerialNumber"]),
            s["certificateThumbprint"].upper(),
            _issuer_cn(s["certificateIssuer"]),
            s["certificateIssuanceState"] == "installed",
            (s["deviceDisplayName"].casefold(), s["@reconcile.profileId"]),
        )
        for s in _jsonl(demo_snapshot() / "certificate_states.jsonl")
    ]
    records += [
        _Record(
            _hex(r["SerialNumber"]),
            r["Thumbprint"].upper(),
            _issuer_cn(r["IssuerName"]),
            r["CertificateStatus"].casefold() in REPORT_DELIVERED,
            (r["DeviceName"].casefold(), r["PolicyId"]),
        )
        for r in _jsonl(demo_snapshot() / "report_rows.jsonl")
    ]
    return records


def _date(text: str) -> datetime | None:
    if text == "EMPTY":
        return None
    return datetime.strptime(text, "%m/%d/%Y %I:%M %p GMT").replace(tzinfo=UTC)


def _reference_statuses() -> tuple[dict[int, str], set[int]]:
    """Statuses by serial, and the unknown_to_ca serials, straight from the rules."""
    wanted = {t.casefold() for t in DEMO_TEMPLATES}
    issuer = DEMO_ISSUER.casefold()
    records = _intune_records()
    rows, _ = _ca_rows(demo_ca_export())
    certs = []
    for row in rows:
        oid, _, name = row["Certificate Template"].partition(" ")
        template = (oid, name) if name else ("", oid)
        serial = int(row["Serial Number"], 16)
        thumb = row["Certificate Hash"].replace(" ", "").upper()
        matched = [r for r in records if r.serial == serial and r.issuer_cn in (None, issuer)] or [
            r for r in records if r.serial is None and r.thumbprint == thumb
        ]
        ca_link = (row["Issued Common Name"].casefold(), template[0] or template[1])
        certs.append(
            {
                "serial": serial,
                "in_scope": bool(wanted & {t.casefold() for t in template if t}),
                "not_before": _date(row["Certificate Effective Date"]),
                "not_after": _date(row["Certificate Expiration Date"]),
                "revoked": _date(row["Revocation Date"]),
                "matched": matched,
                "links": {ca_link, *(r.link for r in matched)},
            }
        )
    status: dict[int, str] = {}
    for cert in certs:
        if not cert["in_scope"]:
            status[cert["serial"]] = "out_of_scope"
        elif cert["revoked"] is not None:
            status[cert["serial"]] = "revoked"
        elif cert["not_after"] < DEMO_AS_OF:
            status[cert["serial"]] = "expired"
        elif any(r.delivered for r in cert["matched"]):
            status[cert["serial"]] = "delivered"
        elif cert["not_before"] > DEMO_AS_OF - timedelta(hours=24):
            status[cert["serial"]] = "within_grace"
    delivered = [c for c in certs if status.get(c["serial"]) == "delivered"]
    for cert in certs:
        if cert["serial"] in status:
            continue
        newer = any(
            d["not_before"] > cert["not_before"] and d["links"] & cert["links"] for d in delivered
        )
        if newer:
            status[cert["serial"]] = "superseded"
        else:
            status[cert["serial"]] = "not_installed" if cert["matched"] else "not_reported"
    matched_ids = {id(r) for c in certs for r in c["matched"]}
    unknown = {
        r.serial
        for r in records
        if r.issuer_cn == issuer and id(r) not in matched_ids and r.serial is not None
    }
    return status, unknown


def test_manifest_agrees_with_the_rules(manifest: dict[str, Any]) -> None:
    status, unknown = _reference_statuses()
    expected = {int(c["serial"], 16): c["expected"] for c in manifest["certificates"]}
    assert status == expected
    assert unknown == {
        int(i["serial"], 16) for i in manifest["intune_only"] if i["expected"] == "unknown_to_ca"
    }


def test_every_status_is_represented_at_least_twice(manifest: dict[str, Any]) -> None:
    counts = manifest["expected_counts"]
    assert all(counts.get(s, 0) >= 2 for s in ALL_STATUSES), counts
    assert 40 <= len(manifest["certificates"]) <= 60


def test_readme_documents_the_expected_counts(manifest: dict[str, Any]) -> None:
    readme = (DEMO_DIR / "README.md").read_text(encoding="utf-8")
    for status in ALL_STATUSES:
        assert re.search(rf"\| `{status}` +\| +{manifest['expected_counts'][status]} +\|", readme)


# --- the real pipeline on the demo ---------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_result() -> RunResult:
    return pipeline.run(demo_settings(), keep_all=True)


def test_pipeline_counts_match_the_manifest(
    demo_result: RunResult, manifest: dict[str, Any]
) -> None:
    expected = Counter(c["expected"] for c in manifest["certificates"])
    counts = demo_result.counts()
    for status in ALL_STATUSES[:-1]:
        assert counts[status] == expected[status], status
    assert counts["unknown_to_ca"] == manifest["expected_counts"]["unknown_to_ca"]
    assert demo_result.rejects == ()
    assert len(demo_result.findings) == sum(
        expected[s] for s in ("not_installed", "not_reported", "superseded")
    )


def test_pipeline_gives_each_certificate_its_manifest_status(
    demo_result: RunResult, manifest: dict[str, Any]
) -> None:
    got = {v.ca.serial: v.status.value for v in demo_result.verdicts}
    assert got == {int(c["serial"], 16): c["expected"] for c in manifest["certificates"]}
    unknown = {r.serial for r in demo_result.unknown_to_ca}
    assert unknown == {
        int(i["serial"], 16) for i in manifest["intune_only"] if i["expected"] == "unknown_to_ca"
    }


def test_retired_device_is_a_revocation_candidate(
    demo_result: RunResult, manifest: dict[str, Any]
) -> None:
    """Findings on a device that is no longer managed are flagged, with or without a record."""
    by_serial = {int(c["serial"], 16): c for c in manifest["certificates"]}
    gone = {v.ca.serial for v in demo_result.findings if v.device_gone}
    retired = {
        v.ca.serial
        for v in demo_result.findings
        if by_serial[v.ca.serial]["device_managed"] is False
    }
    assert gone == retired
    assert any(v.intune is None for v in demo_result.findings if v.ca.serial in gone)
    assert any(v.intune is not None for v in demo_result.findings if v.ca.serial in gone)


def test_hostile_names_are_neutralised_in_csv(demo_result: RunResult) -> None:
    buffer = io.StringIO()
    write_verdicts(buffer, demo_result.findings, demo_result.run_id)
    cells = [cell for row in csv.reader(io.StringIO(buffer.getvalue())) for cell in row]
    assert '\'=HYPERLINK("http://evil.example","x")' in cells
    assert "'-2+3+cmd|' /C calc'!A0" in cells
    assert "'@SUM(1+9)*cmd|' /C calc'!A0" in cells
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@")]
    names = {v.intune.device_name for v in demo_result.findings if v.intune is not None}
    assert '=HYPERLINK("http://evil.example","x")' in names


# --- the demo's Microsoft Cloud PKI ---------------------------------------------------------------


def test_cloud_pki_objects_are_what_the_fetcher_reads(manifest: dict[str, Any]) -> None:
    leaves = _jsonl(demo_snapshot() / "cloud_pki_leaf_certificates.jsonl")
    for leaf in leaves:
        assert set(leaf) == {"@odata.type", *LEAF_FIELDS}
        assert leaf["issuerName"] == DEMO_CLOUD_PKI_CA
    statuses = {leaf["certificateStatus"] for leaf in leaves}
    assert statuses == {"unknown", "active", "revoked", "expired", "unknownFutureValue"}
    cas = _jsonl(demo_snapshot() / "cloud_pki_cas.jsonl")
    issuing = [
        c for c in cas if c["cloudCertificationAuthorityType"] == "issuingCertificationAuthority"
    ]
    assert [c["id"] for c in issuing] == [manifest["cloud_pki"]["ca_id"]]
    assert {leaf["issuerId"] for leaf in leaves} == {manifest["cloud_pki"]["ca_id"]}
    devices = {d["id"] for d in _jsonl(demo_snapshot() / "managed_devices.jsonl")}
    gone = [leaf for leaf in leaves if leaf["deviceId"] not in devices]
    assert [leaf["deviceName"] for leaf in gone] == ["CONTOSO-LT-0099"]


@pytest.fixture(scope="module")
def mixed_result() -> RunResult:
    settings = demo_settings(
        ca_sources=("cloud-pki",), templates=(*DEMO_TEMPLATES, DEMO_CLOUD_PKI_CA)
    )
    return pipeline.run(settings, keep_all=True)


def test_pipeline_gives_each_cloud_pki_leaf_its_manifest_status(
    mixed_result: RunResult, manifest: dict[str, Any]
) -> None:
    leaves = manifest["cloud_pki"]["leaves"]
    got = {v.ca.serial: v.status.value for v in mixed_result.verdicts}
    for leaf in leaves:
        assert got[int(leaf["serial"], 16)] == leaf["expected"], leaf["why"]
    for cert in manifest["certificates"]:
        assert got[int(cert["serial"], 16)] == cert["expected"], cert["why"]
    assert len(got) == len(leaves) + len(manifest["certificates"])
    assert mixed_result.rejects == ()
    gone = {v.ca.serial for v in mixed_result.verdicts if v.ca.cloud_pki_leaf_id and v.device_gone}
    assert gone == {int(leaf["serial"], 16) for leaf in leaves if not leaf["device_managed"]}


def test_every_cloud_pki_status_shows_in_the_manifest(manifest: dict[str, Any]) -> None:
    counts = manifest["cloud_pki"]["expected_counts"]
    assert {"delivered", "not_installed", "not_reported", "superseded", "revoked"} <= set(counts)
    assert {leaf["status"] for leaf in manifest["cloud_pki"]["leaves"]} == {
        "unknown", "active", "revoked", "expired", "unknownFutureValue"
    }  # fmt: skip


# --- the benchmark generator, small ---------------------------------------------------------------


def test_benchmark_data_is_valid_and_classifies_as_generated(
    gen_data: ModuleType, tmp_path: Path
) -> None:
    bench = gen_data.write_bench(1500, tmp_path, utf16=True, seed=3)
    snapshot = read_snapshot(tmp_path / "snapshot", REPORT_DELIVERED)
    assert snapshot.rejects == ()
    assert len(snapshot.certificates) == 1500
    for line in (tmp_path / "snapshot" / "certificate_states.jsonl").read_text().splitlines():
        canonical = json.dumps(
            json.loads(line), ensure_ascii=False, separators=(",", ":"), sort_keys=True
        )
        assert line == canonical
    result = pipeline.run(
        Settings(
            ca_exports=(tmp_path / "ca_export.csv",),
            snapshot=tmp_path / "snapshot",
            ca_issuer=(bench["issuer"],),
            templates=tuple(bench["templates"]),
            as_of=DEMO_AS_OF,
            no_history=True,
        )
    )
    counts = result.counts()
    assert {k: counts[k] for k in bench["expected_counts"]} == bench["expected_counts"]
    assert sum(n for status, n in counts.items() if status != "unknown_to_ca") == 1500
    assert result.verdicts == result.findings


def test_demo_shows_at_least_one_row_in_each_view(manifest: dict[str, Any]) -> None:
    """The default run (findings only), as `reconcile demo` makes it."""
    result = pipeline.run(demo_settings())
    assert result.views is not None
    expected = {int(c["serial"], 16): c["expected"] for c in manifest["certificates"]}
    revoked = [r.verdict.ca.serial for r in result.views.revoked_installed]
    expiring = [(r.verdict.ca.serial, r.days_left) for r in result.views.expiring]
    plan = {r.verdict.ca.serial: r.reason for r in result.views.revocation_plan}
    assert [expected[s] for s in revoked] == ["revoked"]
    assert [(expected[s], days) for s, days in expiring] == [("delivered", 8)]
    assert sorted(str(r) for r in plan.values()) == [
        "cessationOfOperation", "cessationOfOperation", "superseded", "superseded", "superseded",
    ]  # fmt: skip
    assert all(expected[s] != "delivered" for s in plan)
    health = result.views.connectors
    assert health is not None and len(health.connectors) == 2 and health.stale == ()
