"""The engine's snapshot reader against the Python one: same entries, devices, rejects, hashes."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconcile.engine.db import Database
from reconcile.engine.files import Scanner
from reconcile.engine.snapshot import NativeSnapshot
from reconcile.engine.tables import INTUNE_COLUMNS, create_statements, intune_row
from reconcile.intune.snapshot import SnapshotSource, SnapshotWriter

DELIVERED = frozenset({"active", "installed"})
TEXT = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "",
            " ",
            "installed",
            "installFailed",
            "Installed",
            " installed",
            "61000AbCd",
            "00",
            "0",
            "xyz",
            "00:ab:cd",
            "AB" * 20,
            "ab" * 32,
            "AB" * 21,
            "2026-11-01T10:00:00Z",
            "2026-11-01T10:00:00.1234567Z",
            "2026-11-01T10:00:00.12345678Z",
            "0001-01-01T00:00:00Z",
            "2026-02-30T10:00:00Z",
            "2026-11-01T10:00:00-08:00",
            "2026-11-01 10:00:00Z",
            "2026-11-01T24:00:00Z",
            "PC-01",
            "pc-01 ",
            "Straße",
            "ZOË-PC",
            "p1",
            "Windows SCEP",
            "CN=Contoso Issuing CA",
            "a\u00a0",
            "\u2003b",
            'quote"d',
            "back\\slash",
        ]
    ),
    st.text(max_size=6),
)
VALUE = st.one_of(
    TEXT,
    TEXT,
    TEXT,
    st.integers(-3, 3),
    st.booleans(),
    st.just([1]),
    st.floats(allow_nan=False, allow_infinity=False),
)
STATE_KEYS = [
    "id",
    "certificateIssuanceState",
    "certificateSerialNumber",
    "certificateThumbprint",
    "certificateIssuer",
    "deviceDisplayName",
    "userDisplayName",
    "certificateProfileDisplayName",
    "devicePlatform",
    "certificateIssuanceDateTime",
    "certificateExpirationDateTime",
    "certificateLastIssuanceStateChangedDateTime",
    "lastCertificateStateChangeDateTime",
    "@reconcile.profileId",
    "@reconcile.profileName",
    "certificateErrorCode",
]
DEVICE_KEYS = ["id", "deviceName", "azureADDeviceId", "userPrincipalName", "lastSyncDateTime"]
RAW = st.sampled_from(["", "   ", "{not json", "[1]", "null", '{"id": NaN}', '{"id":"a",}'])


@st.composite
def lines(draw: st.DrawFn, keys: list[str]) -> list[str]:
    out = []
    for _ in range(draw(st.integers(0, 8))):
        if draw(st.sampled_from([False] * 30 + [True])):
            out.append(draw(RAW))
            continue
        chosen = draw(st.lists(st.sampled_from(keys), unique=True))
        obj = {k: draw(VALUE) for k in chosen}
        out.append(json.dumps(obj, ensure_ascii=draw(st.booleans()), sort_keys=True))
    return out


def write(directory: Path, states: list[str], devices: list[str]) -> Path:
    target = directory / "snap"
    with SnapshotWriter(target, {"tenant_id": "t"}) as writer:
        writer.open_collection("certificate_states")
        writer.open_collection("managed_devices")
        writer.commit()
    for name, rows in (("certificate_states", states), ("managed_devices", devices)):
        (target / f"{name}.jsonl").write_text("".join(r + "\n" for r in rows), encoding="utf-8")
    meta = json.loads((target / "metadata.json").read_text())
    meta["counts"] = {"certificate_states": len(states), "managed_devices": len(devices)}
    (target / "metadata.json").write_text(json.dumps(meta))
    return target


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines(STATE_KEYS), lines(DEVICE_KEYS))
def test_snapshots_read_the_same_both_ways(states: list[str], devices: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        target = write(Path(tmp), states, devices)
        with SnapshotSource(target, DELIVERED) as python:
            expected_entries = sorted(intune_row(e) for e in python.side.entries)
            assert python.side.devices is not None
            expected_ids = sorted(python.side.devices.by_id.items())
            expected_names = sorted(python.side.devices.by_name.items())
            expected_rejects, expected_inputs = python.rejects, python.inputs
        scanner = Scanner()
        try:
            with Database() as db:
                for statement in create_statements():
                    db.execute(statement)
                with NativeSnapshot(target, DELIVERED, db, scanner) as native:
                    entries = db.rows(
                        f"SELECT {', '.join(INTUNE_COLUMNS)} FROM intune ORDER BY ord"
                    )
                    ids = db.rows("SELECT key, dev FROM device_ids ORDER BY key")
                    names = db.rows("SELECT key, dev FROM device_names ORDER BY key")
                    assert native.rejects == expected_rejects
                    assert native.inputs == expected_inputs
        finally:
            scanner.close()
    assert entries == expected_entries
    assert ids == expected_ids
    assert names == expected_names
