"""The engine's snapshot loader against SnapshotSource: same tables, rejects, inputs, errors and
records, on random snapshots and on every snapshot fixture."""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconcile.engine import snapshot
from reconcile.engine.db import Database
from reconcile.engine.snapshot import _SPACES, EngineSnapshot, _scan, load_snapshot
from reconcile.engine.tables import INTUNE_COLUMNS, create_tables, load_side
from reconcile.errors import IncompleteDataError, ReconcileError
from reconcile.intune.connectors import load_connectors
from reconcile.intune.records import DEVICE_DECODER, STATE_DECODER, ReportStatuses
from reconcile.intune.snapshot import DEVICES
from tests.engine.reference_snapshot import SnapshotSource, scan_by_line
from tests.helpers import examples

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = sorted(
    path.parent
    for base in (ROOT / "tests", ROOT / "reconcile" / "demo")
    for path in base.rglob("metadata.json")
)
DELIVERED = ("active", "installed")
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
            "0x1F",
            "xyz",
            "00:ab:cd",
            "AB" * 20,
            "ab" * 32,
            "AB" * 21,
            "ab " * 20,
            "2026-11-01T10:00:00Z",
            "2026-11-01T10:00:00.1234567Z",
            "2026-11-01T10:00:00.12345678Z",
            "2026-11-01T10:00:00.Z",
            "2026-11-01T10:00:60Z",
            "2099-11-01T10:00:00.1234567Z",
            "9999-12-31T23:59:59.999999Z",
            "9999-12-31T23:59:59Z",
            "0001-01-01T00:00:00Z",
            "0001-01-01T00:00:00.5Z",
            "0001-01-02T00:00:00.5Z",
            "1969-12-31T23:59:59.999999Z",
            "2026-02-30T10:00:00Z",
            "2026-11-01T10:00:00-08:00",
            "2026-11-01T10:00:00z",
            "2026-11-01 10:00:00Z",
            "2026-11-01T24:00:00Z",
            "PC-01",
            "pc-01 ",
            "pc-01.corp.contoso.com",
            "PC-01.corp.contoso.com.",
            "10.0.0.1",
            "host.123",
            "megan@contoso.com",
            "a..b",
            "Straße",
            "ZOË-PC",
            "zoë-pc.example.com",
            "İstanbul",
            "p1",
            "Windows SCEP",
            "CN=Contoso Issuing CA",
            "a\u00a0",
            "\u2003b",
            "\u0085c",
            'quote"d',
            "back\\slash",
            "tab\there",
            "NaN",
            "inf",
        ]
    ),
    st.text(max_size=6),
)
VALUE = st.one_of(
    TEXT,
    TEXT,
    TEXT,
    st.integers(-3, 3),
    st.sampled_from([10**19, -(10**19), 2**63 - 1]),
    st.booleans(),
    st.just([1]),
    st.just({"x": None}),
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
    "@odata.type",
    "other",
]
REPORT_KEYS = [
    "DeviceId",
    "DeviceName",
    "UPN",
    "PolicyId",
    "SerialNumber",
    "Thumbprint",
    "IssuerName",
    "SubjectName",
    "CertificateStatus",
    "CertificateStatus_loc",
    "ValidFrom",
    "ValidTo",
]
DEVICE_KEYS = [
    "id",
    "deviceName",
    "azureADDeviceId",
    "serialNumber",
    "userPrincipalName",
    "operatingSystem",
    "lastSyncDateTime",
    "other",
]
# Lines that are not what the writer writes: DuckDB accepts some that msgspec refuses.
RAW = st.sampled_from(
    [
        "",
        "   ",
        "{not json",
        "[1]",
        "null",
        '"text"',
        '{"id": NaN}',
        '{"id":"a","other":-Infinity}',
        '{"id":"a",}',
        '{"id":"a","other":[1,]}',
        '{"id":"a"} {"id":"b"}',
        '{"id":"a","id":"b"}',
        '{"certificateSerialNumber":"01","certificateSerialNumber":"02","deviceName":"PC"}',
        ' {"id":"a"}',
        '{"id":"a"}\r',
        '{"id":"a"}\x0c',
        '{"id":"a\\u0041"}',
        '{"deviceN\\u0061me":"PC-01","id":"k"}',
        '{"certificateSerialNumber":"0\\u0031","deviceName":"x\\ty","id":"e"}',
        '{"id":"a","other":1e400}',
        '{"id":"a","other":' + "[" * 200 + "]" * 200 + "}",
        '{"id":"lone\rcr"}',
    ]
)


@st.composite
def graph_time(draw: st.DrawFn) -> str:
    """A timestamp as Graph writes it: 0 to 7 fraction digits and a Z."""
    moment = draw(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)))
    digits = draw(st.integers(0, 7))
    fraction = f"{moment.microsecond:06d}{draw(st.integers(0, 9))}"[:digits]
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if digits else "") + "Z"


NAMES = st.sampled_from(
    ["PC-01", "pc-01", "PC-01.corp.contoso.com", "host.123", "Alex's iPhone 12.1", "ZOË-PC", ""]
)
GRAPH = {
    "certificateSerialNumber": st.from_regex(r"[0-9A-Fa-f]{1,40}", fullmatch=True),
    "certificateThumbprint": st.from_regex(r"[0-9A-F]{40}", fullmatch=True),
    "certificateIssuer": st.sampled_from(["CN=Contoso Issuing CA, DC=corp", "CN=Straße CA"]),
    "certificateIssuanceState": st.sampled_from(["installed", "failed", "revoked"]),
    "deviceDisplayName": NAMES,
    "deviceName": NAMES,
    "certificateProfileDisplayName": st.sampled_from(["Windows SCEP", "Wi-Fi PKCS", "Ünï"]),
    "@reconcile.profileId": st.sampled_from(["p1", "p2", ""]),
    "certificateIssuanceDateTime": graph_time(),
    "certificateExpirationDateTime": graph_time(),
    "certificateLastIssuanceStateChangedDateTime": graph_time(),
    "lastCertificateStateChangeDateTime": graph_time(),
    "lastSyncDateTime": graph_time(),
    "id": st.sampled_from(["a", "b", "c"]),
    "certificateErrorCode": st.integers(-(2**31), 2**31),
}


@st.composite
def lines(draw: st.DrawFn, keys: list[str]) -> list[str]:
    """Lines in the shapes Graph sends, with odd values and odd lines among them."""
    out = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["graph"] * 6 + ["random"] * 3 + ["raw"]))
        if kind == "raw":
            out.append(draw(RAW))
            continue
        chosen = draw(st.lists(st.sampled_from(keys), unique=True))
        if kind == "graph":
            obj = {k: draw(GRAPH[k]) if k in GRAPH else draw(TEXT) for k in chosen}
        else:
            obj = {k: draw(VALUE) for k in chosen}
        out.append(json.dumps(obj, ensure_ascii=draw(st.booleans()), sort_keys=True))
    return out


def write(directory: Path, collections: dict[str, list[str]], *, hashed: bool = True) -> Path:
    target = directory / "snap"
    target.mkdir()
    digests = {}
    for name, rows in collections.items():
        data = "".join(r + "\n" for r in rows).encode("utf-8", "surrogatepass")
        (target / f"{name}.jsonl").write_bytes(data)
        digests[name] = hashlib.sha256(data).hexdigest()
    meta: dict[str, Any] = {
        "format": "reconcile-snapshot",
        "version": 1,
        "complete": True,
        "tenant_id": "t-1",
        "fetched_at": "2026-11-20T01:40:00Z",
        "counts": {name: len(rows) for name, rows in collections.items()},
    }
    if hashed:
        meta["sha256"] = digests
    (target / "metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    return target


def tables(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    return {
        "intune": db.rows(f"SELECT {', '.join(INTUNE_COLUMNS)} FROM intune ORDER BY ord"),
        "device_ids": db.rows("SELECT key, dev FROM device_ids ORDER BY key, dev"),
        "device_names": db.rows("SELECT key, dev FROM device_names ORDER BY key, dev"),
    }


def statuses() -> ReportStatuses:
    return ReportStatuses(DELIVERED, {"1": "Active"})


@contextmanager
def both(directory: Path) -> Iterator[tuple[Any, Any]]:
    """(Python snapshot and its tables, or the error) and the same for the engine."""
    python: Any
    native: Any
    with Database() as db:
        create_tables(db)
        try:
            source = SnapshotSource(directory, statuses())
        except ReconcileError as exc:
            python = (type(exc), str(exc))
            source = None
        else:
            load_side(db, source.side)
            python = (source, tables(db))
    with Database() as db:
        create_tables(db)
        try:
            engine = load_snapshot(db, directory, statuses())
        except ReconcileError as exc:
            native = (type(exc), str(exc))
            engine = None
        else:
            native = (engine, tables(db))
        try:
            yield python, native
        finally:
            for opened in (source, engine):
                if opened is not None:
                    opened.close()


def check_same(directory: Path) -> dict[str, int]:
    """Asserts both loaders agree; returns how many lines the engine converted in SQL."""
    with both(directory) as (python, native):
        if not isinstance(python[0], SnapshotSource):
            assert native == python
            return {}
        assert isinstance(native[0], EngineSnapshot), native
        source, expected = python
        engine, found = native
        assert found == expected
        assert engine.rejects == source.rejects
        assert engine.inputs == source.inputs
        assert engine.profiles == source.profiles
        assert engine.devices_read == (source.side.devices is not None)
        assert engine.report_delivered.unknown == source.report_delivered.unknown
        entries = source.side.entries
        fetched = engine.certificates((e.collection, e.where) for e in entries)
        assert [fetched[(e.collection, e.where)] for e in entries] == [
            source.side.certificate(e) for e in entries
        ]
        light = engine.light_certificates((e.collection, e.where) for e in entries)
        assert [light[(e.collection, e.where)] for e in entries] == [
            source.side.certificate(e).light() for e in entries
        ]
        if source.side.devices is not None:
            lines = list(source.device_lines)
            assert list(engine.devices(lines).values()) == [
                source.side.devices.get(n) for n in lines
            ]
            assert list(engine.light_devices(lines).values()) == [
                source.side.devices.get(n).light() for n in lines
            ]
        if engine.cloud_pki_input is not None:
            assert list(engine.cloud_pki()) == list(source.cloud_pki())
            assert engine.cloud_pki().rejects == source.cloud_pki().rejects
        as_of = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
        assert load_connectors(engine, as_of, 24) == load_connectors(source, as_of, 24)
        assert (engine.tenant_id, engine.fetched_at) == (source.tenant_id, source.fetched_at)
        return dict(engine.native_rows)


@settings(max_examples=examples(120), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines(STATE_KEYS), lines(REPORT_KEYS), lines(DEVICE_KEYS), st.booleans())
def test_random_snapshots_load_the_same_both_ways(
    states: list[str], report: list[str], devices: list[str], hashed: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        target = write(
            Path(tmp),
            {"certificate_states": states, "report_rows": report, "managed_devices": devices},
            hashed=hashed,
        )
        check_same(target)


@settings(max_examples=examples(200), deadline=None)
@given(
    lines(STATE_KEYS + DEVICE_KEYS),
    st.lists(st.sampled_from(["\n", "\n", "\r\n", "\r", "\\u0041\n"]), min_size=8, max_size=8),
    st.integers(1, 80),
    st.booleans(),
    st.booleans(),
)
def test_the_byte_pass_reads_blocks_as_a_loop_reads_lines(
    rows: list[str], ends: list[str], block: int, states: bool, cut: bool
) -> None:
    """Lines across block boundaries, lone CRs, CRLF, escapes, a last line cut off."""
    data = "".join(row + ends[n % len(ends)] for n, row in enumerate(rows)).encode(
        "utf-8", "surrogatepass"
    )
    if cut and data:
        data = data[:-1]
    decoder = STATE_DECODER if states else DEVICE_DECODER
    with mock.patch.object(snapshot, "_BLOCK", block):
        facts = _scan(io.BytesIO(data), decoder)
    expected = scan_by_line(io.BytesIO(data), decoder)
    if expected.cut_off:
        # A file cut off is incomplete data: its hash is never used.
        facts.sha256 = expected.sha256
    assert facts == expected


@pytest.mark.parametrize("directory", FIXTURES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_snapshot_fixture_loads_the_same_both_ways(directory: Path) -> None:
    native = check_same(directory)
    assert native.get("certificate_states", 0) > 0, "the engine read no line itself"


def test_fixtures_are_found() -> None:
    assert len(FIXTURES) >= 4


STATE = {
    "certificateIssuanceState": "installed",
    "certificateSerialNumber": "61000AbCd",
    "certificateIssuer": "CN=Contoso Issuing CA",
    "deviceDisplayName": "PC-01",
    "certificateIssuanceDateTime": "2026-11-01T10:00:00.1234567Z",
    "@reconcile.profileId": "p1",
}
DEVICE = {"id": "d1", "deviceName": "PC-01", "lastSyncDateTime": "2026-11-19T01:00:00Z"}


def snapshot_lines(states: int = 3, devices: int = 2) -> dict[str, list[str]]:
    return {
        "certificate_states": [json.dumps({**STATE, "id": f"s{n}"}) for n in range(states)],
        "managed_devices": [json.dumps({**DEVICE, "id": f"d{n}"}) for n in range(devices)],
    }


@pytest.mark.parametrize(
    "damage",
    [
        "cut_off",
        "sha256",
        "count",
        "missing",
        "unlisted",
        "no_devices",
        "devices_cut_off_and_states_changed",
    ],
)
def test_integrity_errors_are_the_same(tmp_path: Path, damage: str) -> None:
    collections = snapshot_lines()
    if damage == "no_devices":
        collections["managed_devices"] = ['{"deviceName":"no id"}']
    target = write(tmp_path, collections)
    states = target / "certificate_states.jsonl"
    devices = target / "managed_devices.jsonl"
    meta = json.loads((target / "metadata.json").read_text())
    if damage == "cut_off":
        states.write_bytes(states.read_bytes()[:-1])
    elif damage == "sha256":
        states.write_bytes(states.read_bytes().replace(b"installed", b"installFailed", 1))
    elif damage == "count":
        meta["counts"]["managed_devices"] = 3
    elif damage == "missing":
        devices.unlink()
    elif damage == "unlisted":
        del meta["counts"]["managed_devices"]
    elif damage == "devices_cut_off_and_states_changed":
        devices.write_bytes(devices.read_bytes()[:-1])
        states.write_bytes(states.read_bytes().replace(b"installed", b"installFailed", 1))
    (target / "metadata.json").write_text(json.dumps(meta))
    with both(target) as (python, native):
        assert isinstance(python[0], type) and issubclass(python[0], ReconcileError), python
        assert native == python


def test_odd_lines_in_a_large_file_keep_their_line_numbers(tmp_path: Path) -> None:
    collections = snapshot_lines(states=500, devices=300)
    states = collections["certificate_states"]
    states[7] = '{"id":"x","certificateSerialNumber":"zz"}'
    states[100] = json.dumps({**STATE, "deviceDisplayName": "Zoë\\n"})
    states[200] = '{"id":"a","other":NaN}'
    states[201] = json.dumps({**STATE, "certificateIssuer": "CN=Straße, O=Ü"}, ensure_ascii=False)
    devices = collections["managed_devices"]
    devices[3] = json.dumps({**DEVICE, "id": "d1"})
    devices[4] = json.dumps({**DEVICE, "id": "d4", "deviceName": "pc-01.corp.contoso.com"})
    devices[5] = json.dumps({**DEVICE, "id": "d5", "deviceName": "ZOË-PC"})
    devices[6] = '{"id":"d6","deviceName":"x",}'
    native = check_same(write(tmp_path, collections))
    # Python decides the odd lines only: three states (a bad serial, an escape, NaN) and two
    # devices (a non-ASCII name to case-fold, a trailing comma); Straße needs no folding.
    assert native == {"certificate_states": 497, "managed_devices": 298}


def test_a_file_duckdb_refuses_is_read_by_python(tmp_path: Path) -> None:
    collections = snapshot_lines(states=50, devices=20)
    collections["certificate_states"][10] = "{not json"
    collections["managed_devices"][2] = ""
    assert check_same(write(tmp_path, collections)) == {
        "certificate_states": 0,
        "managed_devices": 0,
    }


def test_spaces_are_the_ones_str_strip_removes() -> None:
    # Below U+0020 JSON escapes them: such lines go through Python anyway.
    expected = [c for c in range(0x20, 0x110000) if chr(c).isspace()]
    assert [int(c) for c in _SPACES.split(", ")] == expected


def test_records_come_back_by_offset_in_batches(tmp_path: Path) -> None:
    target = write(tmp_path, snapshot_lines(states=5, devices=3))
    with Database() as db:
        create_tables(db)
        with load_snapshot(db, target, statuses()) as engine:
            found = engine.certificates([(0, 5), (0, 1), (0, 5)])
            devices = engine.devices([3, 1])
    assert [r.record_id for r in found.values()] == ["s0", "s4"]
    assert [d.id for d in devices.values()] == ["d0", "d2"]
    assert DEVICES == 2


def test_a_record_cut_off_after_the_read_is_incomplete_data(tmp_path: Path) -> None:
    """Records are read back by the byte range indexed; a file cut short since is no record."""
    target = write(tmp_path, snapshot_lines(states=5, devices=3))
    states = target / "certificate_states.jsonl"
    with Database() as db:
        create_tables(db)
        with load_snapshot(db, target, statuses()) as engine:
            lines = states.read_bytes().splitlines(keepends=True)
            states.write_bytes(b"".join(lines[:2]) + lines[2][:10])
            assert engine.certificate(0, 2).record_id == "s1"
            with pytest.raises(IncompleteDataError, match=r"certificate_states.jsonl:3: the file"):
                engine.certificate(0, 3)


def test_a_path_duckdb_would_read_as_a_glob_is_read_by_python(tmp_path: Path) -> None:
    decoy = write(tmp_path, snapshot_lines(states=3, devices=2))
    decoy.rename(tmp_path / "snap1")
    (tmp_path / "snap[1]").mkdir()
    collections = snapshot_lines(states=3, devices=2)
    collections["certificate_states"][0] = json.dumps({**STATE, "certificateSerialNumber": "FF"})
    target = write(tmp_path / "snap[1]", collections)
    assert check_same(target) == {"certificate_states": 0, "managed_devices": 0}


def test_a_file_read_in_parallel_chunks_keeps_its_line_order(tmp_path: Path) -> None:
    # About 48 MB: DuckDB splits it into buffers its threads read side by side.
    pad = "x" * 16_000
    states = [
        json.dumps({**STATE, "id": f"s{n}", "certificateSerialNumber": f"{n:X}", "pad": pad})
        for n in range(3000)
    ]
    for n in (0, 1234, 2047, 2999):
        states[n] = json.dumps({"certificateSerialNumber": f"00:{n:04X}", "pad": pad})
    native = check_same(write(tmp_path, {"certificate_states": states}))
    assert native == {"certificate_states": 2996}
