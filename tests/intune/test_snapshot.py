from __future__ import annotations

import hashlib
import json

import pytest

from reconcile.errors import IncompleteDataError, InputError
from reconcile.intune.snapshot import SnapshotWriter
from reconcile.model import IntuneSource
from tests.helpers import read_snapshot

DELIVERED = frozenset({"active"})

STATE = {
    "@odata.type": "#microsoft.graph.managedDeviceCertificateState",
    "id": "s1",
    "certificateIssuanceState": "installed",
    "certificateSerialNumber": "00:ab:CD",
    "certificateThumbprint": "ab" * 20,
    "certificateIssuer": "CN=Contoso Issuing CA",
    "deviceDisplayName": "PC-01",
    "userDisplayName": "Alex",
    "certificateIssuanceDateTime": "2026-11-01T10:00:00.1234567-08:00",
    "certificateExpirationDateTime": "0001-01-01T00:00:00Z",
    "@reconcile.profileId": "p1",
    "@reconcile.profileName": "Windows SCEP",
}


def write(tmp_path, **collections):
    target = tmp_path / "snap"
    with SnapshotWriter(target, {"tenant_id": "t-1"}) as writer:
        for name, objects in collections.items():
            writer.open_collection(name)
            for obj in objects:
                writer.write(name, obj)
        writer.commit()
    return target


def test_round_trip_parses_records_and_provenance(tmp_path):
    report_row = {"SerialNumber": "1F", "CertificateStatus": "Active", "DeviceId": "d1"}
    device = {"id": "d1", "deviceName": "PC-01", "lastSyncDateTime": "2026-11-19T01:00:00Z"}
    target = write(
        tmp_path,
        certificate_states=[STATE, {**STATE, "id": "s2", "certificateIssuanceState": "brandNew"}],
        report_rows=[report_row],
        managed_devices=[device],
        profiles=[],
    )
    snap = read_snapshot(target, DELIVERED)
    assert snap.tenant_id == "t-1"
    first, second, report = snap.certificates
    assert first.serial == 0xABCD and first.thumbprint == "AB" * 20
    assert first.delivered and first.profile_id == "p1" and first.profile_name == "Windows SCEP"
    assert (
        first.issued_at is not None
        and first.issued_at.isoformat() == "2026-11-01T18:00:00.123456+00:00"
    )
    assert first.expires_at is None
    assert second.state == "brandNew" and not second.delivered
    assert report.source is IntuneSource.REPORT and report.delivered and report.device_id == "d1"
    assert snap.devices[0].device_name == "PC-01"
    assert snap.profiles == ()
    assert {i.format for i in snap.inputs} == {
        "certificate_states",
        "report_rows",
        "managed_devices",
        "profiles",
    }
    assert all(len(i.sha256) == 64 for i in snap.inputs)


def test_bad_records_become_rejects_with_line_numbers(tmp_path):
    target = write(tmp_path, certificate_states=[STATE, {"certificateSerialNumber": "xyz"}])
    path = target / "certificate_states.jsonl"
    with path.open("ab") as handle:
        handle.write(b"{not json\n")
    meta = json.loads((target / "metadata.json").read_text())
    meta["counts"]["certificate_states"] = 3
    meta["sha256"]["certificate_states"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (target / "metadata.json").write_text(json.dumps(meta))
    snap = read_snapshot(target, DELIVERED)
    assert len(snap.certificates) == 1
    assert [(r.line, r.reason.split(":")[0]) for r in snap.rejects] == [
        (2, "serial number 'xyz' is not hexadecimal"),
        (3, "invalid JSON"),
    ]


def test_truncated_collection_is_incomplete_data(tmp_path):
    target = write(tmp_path, certificate_states=[STATE, STATE])
    path = target / "certificate_states.jsonl"
    path.write_bytes(path.read_bytes().splitlines(keepends=True)[0])
    with pytest.raises(IncompleteDataError, match="promises 2 records, file holds 1"):
        read_snapshot(target, DELIVERED)


def test_not_a_snapshot_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="metadata.json is missing"):
        read_snapshot(tmp_path, DELIVERED)


def test_unpublished_writer_leaves_nothing_behind(tmp_path):
    with SnapshotWriter(tmp_path / "snap", {}) as writer:
        writer.write("certificate_states", STATE)
    assert list(tmp_path.iterdir()) == []


def test_the_byte_cap_fails_clearly_and_leaves_nothing_behind(tmp_path):
    line = len(json.dumps(STATE, ensure_ascii=False, separators=(",", ":")).encode()) + 1
    with (
        pytest.raises(IncompleteDataError, match=f"exceed {2 * line} bytes.*record 3"),
        SnapshotWriter(tmp_path / "snap", {}, max_bytes=2 * line) as writer,
    ):
        for _ in range(3):
            writer.write("certificate_states", STATE)
    assert writer.bytes_written == 3 * line
    assert list(tmp_path.iterdir()) == []


def test_a_failing_flush_still_removes_the_hidden_folder(tmp_path, monkeypatch):
    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("reconcile.intune.snapshot.os.fsync", full_disk)
    with (
        pytest.raises(InputError, match="cannot write snapshot: No space left on device"),
        SnapshotWriter(tmp_path / "snap", {}) as writer,
    ):
        writer.write("certificate_states", STATE)
        writer.write("managed_devices", {"id": "d1"})
        writer.commit()
    assert list(tmp_path.iterdir()) == []


def test_a_failing_publish_keeps_the_older_snapshot(tmp_path, monkeypatch):
    target = write(tmp_path, managed_devices=[{"id": "old"}])
    real_replace = __import__("os").replace
    calls = []

    def flaky(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # moving the new snapshot into place
            raise OSError(13, "Permission denied")
        real_replace(src, dst)

    monkeypatch.setattr("reconcile.intune.snapshot.os.replace", flaky)
    with (
        pytest.raises(InputError, match="cannot publish snapshot: Permission denied"),
        SnapshotWriter(target, {}) as writer,
    ):
        writer.write("managed_devices", {"id": "new"})
        writer.commit()
    assert [p.name for p in tmp_path.iterdir()] == ["snap"]
    assert '"old"' in (target / "managed_devices.jsonl").read_text(encoding="utf-8")
