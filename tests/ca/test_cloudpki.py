"""Cloud PKI leaf certificates (Graph's documented JSON) as CA certificate records."""

from __future__ import annotations

import json
import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from reconcile.ca.cloudpki import (
    CloudPkiSource,
    check_leaf,
    decode_ca,
    leaf_certificate,
    revoke_command,
)
from reconcile.errors import IncompleteDataError, InputError
from reconcile.model import CaCertificate, InputFile, Reject
from tests.engine.reference_snapshot import SnapshotSource

SNAPSHOT = Path(__file__).parent.parent / "fixtures" / "cloudpki" / "snapshot"
LEAVES = SNAPSHOT / "cloud_pki_leaf_certificates.jsonl"
CA_ID = "5f2b6c1e-3d4a-4b8e-9c7f-1a2b3c4d5e6f"
FETCHED = datetime(2026, 11, 20, 1, 30, tzinfo=UTC)
INPUT = InputFile("leaves.jsonl", "ca-export", "cloud-pki", "0" * 64, 0, 0)


def leaf_lines() -> list[dict[str, Any]]:
    return [json.loads(line) for line in LEAVES.read_text(encoding="utf-8").splitlines()]


def convert(leaf: dict[str, Any]) -> tuple[CaCertificate, str]:
    raw = json.dumps(leaf).encode()
    return leaf_certificate(raw, 7, "leaves.jsonl", {CA_ID: "Contoso Cloud Issuing CA"}, FETCHED)


def test_an_active_leaf_becomes_the_record_an_export_row_would() -> None:
    record, status = convert(leaf_lines()[0])
    assert status == "active"
    assert record.serial == int("4A" + "0" * 28 + "01", 16)
    assert record.thumbprint == "01" * 20
    assert record.issuer == "Contoso Cloud Issuing CA"
    assert record.subject == "CN=PC-CLOUD-01" and record.common_name == "PC-CLOUD-01"
    assert record.template_oid == CA_ID and record.template_name == "Contoso Cloud Issuing CA"
    assert record.not_before == datetime(2026, 11, 1, 10, tzinfo=UTC)
    assert record.not_after == datetime(2027, 11, 1, 10, tzinfo=UTC)
    assert record.revoked_at is None
    assert record.requester == "alex@contoso.example"
    assert record.managed_device_id == "11111111-aaaa-4000-8000-000000000001"
    assert record.cloud_pki_leaf_id == "976c94f8-94f8-976c-f894-6c97f8946c01"
    assert (record.source, record.line) == ("leaves.jsonl", 7)


def test_serial_and_thumbprint_spellings_are_canonicalised() -> None:
    leaf = {**leaf_lines()[0], "serialNumber": "4a:00:00:01", "thumbprint": "ab cd " * 10}
    record, _ = convert(leaf)
    assert record.serial == 0x4A000001
    assert record.thumbprint == "ABCD" * 10


def test_revoked_by_date_or_by_status() -> None:
    by_date, status = convert(leaf_lines()[3])
    assert status == "revoked" and by_date.revoked_at == datetime(2026, 11, 10, 8, tzinfo=UTC)
    by_status, _ = convert(leaf_lines()[4])
    assert by_status.revoked_at == FETCHED, "revoked no later than the fetch that saw it"
    dated_but_active = {**leaf_lines()[0], "revocationDateTime": "2026-11-15T00:00:00Z"}
    assert convert(dated_but_active)[0].revoked_at == datetime(2026, 11, 15, tzinfo=UTC)


@pytest.mark.parametrize("status", ["unknown", "unknownFutureValue", "suspendedSomeday"])
def test_vague_statuses_are_not_revoked(status: str) -> None:
    record, seen = convert({**leaf_lines()[0], "certificateStatus": status})
    assert seen == status and record.revoked_at is None


@pytest.mark.parametrize("device", [None, "", "00000000-0000-0000-0000-000000000000"])
def test_a_leaf_without_a_device_has_no_managed_device_id(device: str | None) -> None:
    record, _ = convert({**leaf_lines()[0], "deviceId": device})
    assert record.managed_device_id is None


def test_a_leaf_without_issuer_name_takes_its_cas_name() -> None:
    record, _ = convert({**leaf_lines()[0], "issuerName": None})
    assert record.issuer == "Contoso Cloud Issuing CA"


def test_a_ca_missing_from_the_list_falls_back_to_the_issuer_name() -> None:
    raw = json.dumps({**leaf_lines()[0], "issuerId": "other"}).encode()
    record, _ = leaf_certificate(raw, 1, "x", {}, None)
    assert (record.template_oid, record.template_name) == ("other", "Contoso Cloud Issuing CA")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"serialNumber": None}, "without serialNumber"),
        ({"serialNumber": "not-hex"}, "not hexadecimal"),
        ({"thumbprint": "abc"}, "not 40 or 64 hex digits"),
        ({"validityEndDateTime": "tomorrow"}, "validityEndDateTime 'tomorrow'"),
        ({"deviceId": 7}, "Expected `str | null`"),
    ],
)
def test_an_unusable_leaf_names_the_problem(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        check_leaf(json.dumps({**leaf_lines()[0], **change}).encode())


def test_decode_ca_needs_an_id() -> None:
    assert decode_ca(b'{"id": "c1", "displayName": "Issuing"}') == ("c1", "Issuing")
    assert decode_ca(b'{"id": "c1", "commonName": "CN only"}') == ("c1", "CN only")
    with pytest.raises(ValueError, match="without an id"):
        decode_ca(b'{"displayName": "Issuing"}')


def test_the_source_streams_every_leaf_and_says_vague_statuses_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "reconcile")
    with SnapshotSource(SNAPSHOT, frozenset({"installed"})) as snapshot:
        source = snapshot.cloud_pki()
        items = [*source, *source]
        inputs = {i.format: i for i in snapshot.inputs}
    assert len(items) == 18, "a second pass (the join's replay) reads the file again"
    assert len(items[:9]) and all(isinstance(i, CaCertificate) for i in items)
    warnings = [r.getMessage() for r in caplog.records if "Cloud PKI" in r.getMessage()]
    assert warnings == [
        "Cloud PKI leaf certificates with status 1 unknown, 1 unknownFutureValue: read as not "
        "revoked (revocationDateTime is not set on them)"
    ]
    # The leaf file is a snapshot collection (bundled and verified with it) read as a CA.
    leaves = source.input_file
    assert leaves == inputs["cloud_pki_leaf_certificates"] and leaves.path == str(LEAVES)
    assert leaves.rows == 9 and leaves.rejected == 0 and len(leaves.sha256) == 64
    assert inputs["cloud_pki_cas"].rows == 2


def test_a_bad_leaf_is_one_reject_with_its_line(tmp_path: Path) -> None:
    copy = tmp_path / "snap"
    shutil.copytree(SNAPSHOT, copy)
    path = copy / "cloud_pki_leaf_certificates.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2].replace('"serialNumber":"4A', '"serialNumber":"ZZ')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with SnapshotSource(copy, frozenset()) as snapshot:
        source = snapshot.cloud_pki()
        items = list(source)
        assert snapshot.rejects == []
        assert source.rejects == (Reject(str(path), 3, source.rejects[0].reason),)
        assert "not hexadecimal" in source.rejects[0].reason
        assert source.input_file.rejected == 1
    assert len(items) == 8 and all(isinstance(i, CaCertificate) for i in items)


def test_a_leaf_file_shorter_than_its_count_is_incomplete(tmp_path: Path) -> None:
    copy = tmp_path / "snap"
    shutil.copytree(SNAPSHOT, copy)
    path = copy / "cloud_pki_leaf_certificates.jsonl"
    path.write_text("".join(path.read_text(encoding="utf-8").splitlines(True)[:5]))
    with pytest.raises(IncompleteDataError, match="promises 9 records, file holds 5"):
        SnapshotSource(copy, frozenset())


def test_a_snapshot_without_cloud_pki_is_an_input_error(tmp_path: Path) -> None:
    copy = tmp_path / "snap"
    shutil.copytree(SNAPSHOT, copy)
    meta = json.loads((copy / "metadata.json").read_text())
    for name in ("cloud_pki_cas", "cloud_pki_leaf_certificates"):
        del meta["counts"][name]
        (copy / f"{name}.jsonl").unlink()
    (copy / "metadata.json").write_text(json.dumps(meta))
    with (
        SnapshotSource(copy, frozenset()) as snapshot,
        pytest.raises(InputError, match="fetch it with --ca-source cloud-pki"),
    ):
        snapshot.cloud_pki()


def test_revoke_command_is_the_graph_call_with_the_leaf_id() -> None:
    record, _ = convert(leaf_lines()[1])
    assert revoke_command(record) == (
        f"POST https://graph.microsoft.com/beta/deviceManagement/cloudCertificationAuthority/"
        f'{CA_ID}/revokeLeafCertificate {{"leafCertificateId":'
        f'"976c94f8-94f8-976c-f894-6c97f8946c02"}}'
    )
    sovereign = revoke_command(record, "https://graph.microsoft.us/")
    assert sovereign is not None and sovereign.startswith("POST https://graph.microsoft.us/beta/")


def test_revoke_command_is_none_for_an_export_row() -> None:
    record, _ = convert(leaf_lines()[0])
    export_row = CaCertificate(
        **{
            **{f: getattr(record, f) for f in CaCertificate.__slots__},
            "cloud_pki_leaf_id": None,
        }
    )
    assert revoke_command(export_row) is None


def test_the_source_skips_lines_the_snapshot_already_rejected(tmp_path: Path) -> None:
    (tmp_path / "cloud_pki_leaf_certificates.jsonl").write_bytes(LEAVES.read_bytes())
    rejects = [Reject("x", 1, "bad"), Reject("x", 2, "bad")]
    source = CloudPkiSource(tmp_path, {CA_ID: "Issuing"}, None, INPUT, rejects)
    records = [i for i in source if isinstance(i, CaCertificate)]
    assert [r.line for r in records] == [3, 4, 5, 6, 7, 8, 9]
    assert {r.template_name for r in records} == {"Issuing"}


def test_an_undocumented_status_is_said_without_its_control_characters(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    leaf = {**leaf_lines()[0], "certificateStatus": "paused\x1b[2J"}
    (tmp_path / "cloud_pki_leaf_certificates.jsonl").write_text(json.dumps(leaf) + "\n")
    caplog.set_level(logging.WARNING, "reconcile")
    records = list(CloudPkiSource(tmp_path, {CA_ID: "Issuing"}, None, INPUT))
    assert isinstance(records[0], CaCertificate) and records[0].revoked_at is None
    (message,) = [r.getMessage() for r in caplog.records]
    assert "\x1b" not in message and "'paused\\x1b[2J'" in message


def test_a_leaf_file_changed_after_the_scan_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "cloud_pki_leaf_certificates.jsonl").write_text('{"serialNumber": "zz"}\n')
    with pytest.raises(InputError, match=r":1: changed while being read: serial number"):
        list(CloudPkiSource(tmp_path, {}, None, INPUT))


def test_a_vague_status_with_a_revocation_date_is_revoked_and_not_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    leaf = {
        **leaf_lines()[0],
        "certificateStatus": "unknownFutureValue",
        "revocationDateTime": "2026-11-15T00:00:00Z",
    }
    (tmp_path / "cloud_pki_leaf_certificates.jsonl").write_text(json.dumps(leaf) + "\n")
    caplog.set_level(logging.WARNING, "reconcile")
    (record,) = list(CloudPkiSource(tmp_path, {CA_ID: "Issuing"}, None, INPUT))
    assert record.revoked_at == datetime(2026, 11, 15, tzinfo=UTC)
    assert caplog.records == []


def test_revoke_command_quotes_an_odd_ca_id() -> None:
    record, _ = convert({**leaf_lines()[0], "issuerId": "a/../b c"})
    command = revoke_command(record)
    assert command is not None and "/cloudCertificationAuthority/a%2F..%2Fb%20c/" in command


def test_leaves_of_a_ca_missing_from_the_list_are_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "cloud_pki_leaf_certificates.jsonl").write_bytes(LEAVES.read_bytes())
    caplog.set_level(logging.WARNING, "reconcile")
    records = list(CloudPkiSource(tmp_path, {"other": "Other CA"}, None, INPUT))
    assert {r.template_name for r in records} == {"Contoso Cloud Issuing CA"}
    messages = [
        r.getMessage() for r in caplog.records if "missing from the CA list" in r.getMessage()
    ]
    assert messages == [
        "Cloud PKI leaf certificates of CAs missing from the CA list (template is their "
        f"issuerName): 9 of {CA_ID!r}"
    ]
