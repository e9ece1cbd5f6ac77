"""A snapshot read into the engine: certificate states and managed devices by DuckDB's JSON reader.

The native scan takes the common line - an object whose fields reconcile reads are strings or
null, in the shapes Graph sends (plain hex serials and thumbprints, UTC timestamps, ASCII names
where a name is case-folded) - and converts it in SQL exactly as ``intune.records`` would. Every
other line goes through ``intune.records`` itself, so an odd or bad line gets the same record or
the same reject (with its line number) as it always did. A file DuckDB cannot be trusted with
(see ``engine.files``), or that its strict reader refuses, is read by Python line by line.

Report rows are always read by Python: the report export is small next to the states, and its
status codes depend on configuration.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from reconcile.engine.db import Database
from reconcile.engine.files import Facts, Scanner, pick_lines
from reconcile.engine.tables import EPOCH, INTUNE_COLUMNS, ORDER_SPAN, intune_row
from reconcile.errors import IncompleteDataError, InputError
from reconcile.intune.records import (
    REPORT,
    STATES,
    decode_device,
    decode_profile,
    decode_report_row,
    decode_state,
    scan_report_row,
    scan_state,
)
from reconcile.intune.side import fold
from reconcile.intune.snapshot import COLLECTIONS, DEVICES, read_metadata
from reconcile.model import CertificateProfile, InputFile, IntuneCertificate, ManagedDevice, Reject

PROFILES = COLLECTIONS.index("profiles")
# What DuckDB's JSON reader accepts and msgspec refuses, and what it splits lines on.
_JSON_NEEDLES = (b"NaN", b"Infinity", b",}", b",]", b"\x01")
_STATE_TEXT = (
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
)
_STATE_INTEGERS = ("certificateErrorCode",)
_DEVICE_TEXT = (
    "id",
    "deviceName",
    "azureADDeviceId",
    "serialNumber",
    "userPrincipalName",
    "operatingSystem",
    "lastSyncDateTime",
)
# Python's str.strip() removes these; a value starting or ending with one goes through Python.
_SPACE = r"[ \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]"
_ASCII = r"^[\x00-\x7F]*$"
_ISO = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,7})?Z$"
# Graph's year-1 placeholders (anything before 0001-01-02) mean unknown, as in records._time.
_NO_DATE_MICROS = (datetime(1, 1, 2, tzinfo=UTC) - EPOCH) // timedelta(microseconds=1)
_DEVICE_COLUMNS = {"line": "BIGINT", "id": "VARCHAR", "name_fold": "VARCHAR"}


def _column(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _text_sql(name: str) -> tuple[str, str]:
    """(value, ok): a JSON string without escapes or surrounding spaces, or null/missing."""
    raw = _column(name)
    value = (
        f"CASE WHEN {raw} IS NULL OR {raw} = 'null' THEN NULL "
        f"WHEN {raw} LIKE '\"%\"' AND length({raw}) >= 2 AND NOT contains({raw}, '\\') "
        f"THEN {raw}[2:-2] END"
    )
    ok = (
        f"({raw} IS NULL OR {raw} = 'null' OR ({raw} LIKE '\"%\"' AND length({raw}) >= 2 "
        f"AND NOT contains({raw}, '\\') "
        f"AND NOT regexp_matches({raw}[2:-2], '^{_SPACE}|{_SPACE}$')))"
    )
    return value, ok


def _time_sql(value: str) -> tuple[str, str]:
    """(micros, ok) for ``records._time``: empty means unknown, year-1 placeholders too."""
    parsed = (
        f"epoch_us(try_strptime(substr({value}, 1, 19), '%Y-%m-%dT%H:%M:%S')) + "
        f"coalesce(rpad(nullif(regexp_extract({value}, '\\.([0-9]+)Z$', 1), ''), 6, '0')[1:6]"
        "::BIGINT, 0)"
    )
    shaped = (
        f"regexp_matches({value}, '{_ISO}') AND substr({value}, 1, 4) <> '0000' "
        f"AND try_strptime(substr({value}, 1, 19), '%Y-%m-%dT%H:%M:%S') IS NOT NULL"
    )
    micros = (
        f"CASE WHEN {value} IS NULL OR {value} = '' THEN NULL "
        f"WHEN ({parsed}) < {_NO_DATE_MICROS} THEN NULL ELSE {parsed} END"
    )
    ok = f"({value} IS NULL OR {value} = '' OR ({shaped}))"
    return micros, ok


def _hex_ok(value: str, lengths: str | None = None) -> str:
    if lengths is None:
        return (
            f"({value} IS NULL OR (regexp_matches({value}, '^[0-9A-Fa-f]+$') "
            f"AND length(ltrim({value}, '0')) <= 80))"
        )
    return f"({value} IS NULL OR (regexp_matches({value}, '^[0-9A-Fa-f]+$') AND {lengths}))"


def _fold_ok(value: str) -> str:
    return f"({value} IS NULL OR regexp_matches({value}, '{_ASCII}'))"


def _states_sql() -> str:
    text = {name: _text_sql(name) for name in _STATE_TEXT}
    oks = [ok for _, ok in text.values()]
    oks += [
        f"({_column(n)} IS NULL OR {_column(n)} = 'null' OR "
        f"regexp_matches({_column(n)}, '^-?[0-9]{{1,18}}$'))"
        for n in _STATE_INTEGERS
    ]

    def clean(name: str) -> str:
        return f"nullif({text[name][0]}, '')"

    serial, thumb = clean("certificateSerialNumber"), clean("certificateThumbprint")
    display = (
        f"coalesce({clean('certificateProfileDisplayName')}, {clean('@reconcile.profileName')})"
    )
    last_changed = text["certificateLastIssuanceStateChangedDateTime"][0]
    changed = (
        f"CASE WHEN {last_changed} <> '' THEN {last_changed} "
        f"ELSE {text['lastCertificateStateChangeDateTime'][0]} END"
    )
    issued, issued_ok = _time_sql(text["certificateIssuanceDateTime"][0])
    changed_at, changed_ok = _time_sql(changed)
    _, expires_ok = _time_sql(text["certificateExpirationDateTime"][0])
    profile_id = clean("@reconcile.profileId")
    oks += [
        _hex_ok(serial),
        _hex_ok(thumb, f"length({thumb}) IN (40, 64)"),
        f"({profile_id} IS NOT NULL OR {_fold_ok(display)})",
        issued_ok,
        changed_ok,
        expires_ok,
    ]
    canonical = f"coalesce(nullif(ltrim(upper({serial}), '0'), ''), '0')"
    state = f"coalesce({clean('certificateIssuanceState')}, 'unknown')"
    return f"""
        SELECT {" AND ".join(oks)} AS fast,
               CASE WHEN {serial} IS NOT NULL THEN {canonical} END AS serial,
               CASE WHEN {serial} IS NULL THEN upper({thumb}) END AS thumbprint,
               {clean("certificateIssuer")} AS issuer,
               {state} = 'installed' AS delivered,
               NULL::VARCHAR AS device_id,
               {clean("deviceDisplayName")} AS device_name,
               coalesce({profile_id}, lower({display})) AS profile,
               {issued} AS issued_at,
               {changed_at} AS changed_at
    """


def _devices_sql() -> str:
    text = {name: _text_sql(name) for name in _DEVICE_TEXT}
    oks = [ok for _, ok in text.values()]
    name = f"nullif({text['deviceName'][0]}, '')"
    device_id = text["id"][0]
    _, sync_ok = _time_sql(text["lastSyncDateTime"][0])
    oks += [f"({device_id} IS NOT NULL AND {device_id} <> '')", _fold_ok(name), sync_ok]
    return f"""
        SELECT {" AND ".join(oks)} AS fast, {device_id} AS id, lower({name}) AS name_fold
    """


def _json_columns(names: tuple[str, ...]) -> str:
    return "{" + ", ".join(f"'{n}': 'JSON'" for n in names) + "}"


class NativeSnapshot:
    """A snapshot loaded into the engine's ``intune`` and device tables, files kept for read-back.

    Each collection listed in the metadata must hold exactly the promised number of lines
    (else incomplete data); a line that is not a usable record is a Reject with its number.
    """

    def __init__(
        self, directory: Path, report_delivered: frozenset[str], db: Database, scanner: Scanner
    ):
        self.path = directory
        self.metadata: dict[str, Any] = read_metadata(directory)
        self.report_delivered = report_delivered
        self.rejects: list[Reject] = []
        self.inputs: list[InputFile] = []
        self.profiles: list[CertificateProfile] = []
        self._db = db
        self._files: dict[int, Path] = {}
        counts: dict[str, Any] = self.metadata["counts"]
        self.devices_present = "managed_devices" in counts
        db.execute(
            "CREATE TABLE IF NOT EXISTS device_rows (line BIGINT, id VARCHAR, name_fold VARCHAR)"
        )
        facts = {}
        for name in COLLECTIONS:
            path = directory / f"{name}.jsonl"
            if name not in counts:
                if path.exists():
                    raise InputError(f"{path.name} present but not listed in counts", directory)
                continue
            if not path.is_file():
                raise IncompleteDataError(f"{path}: listed in metadata but missing")
            self._files[COLLECTIONS.index(name)] = path
            facts[name] = scanner.submit(path, _JSON_NEEDLES)
        for name, future in facts.items():
            self._load(name, future.result(), counts[name])
        if self.devices_present:
            db.execute(
                "INSERT INTO device_ids SELECT id, max(line) FROM device_rows GROUP BY id"
            )
            db.execute(
                "INSERT INTO device_names SELECT name_fold, max(line) FROM device_rows "
                "WHERE name_fold IS NOT NULL GROUP BY name_fold"
            )

    @property
    def tenant_id(self) -> str | None:
        value = self.metadata.get("tenant_id")
        return str(value) if value else None

    def _load(self, name: str, facts: Facts, promised: Any) -> None:
        collection = COLLECTIONS.index(name)
        path = self._files[collection]
        bad = 0
        if collection == STATES and not facts.suspicious:
            bad = self._native(collection, path, facts, _STATE_TEXT + _STATE_INTEGERS)
        elif collection == DEVICES and not facts.suspicious:
            bad = self._native(collection, path, facts, _DEVICE_TEXT)
        else:
            bad = -1
        if bad < 0:
            bad = self._python(collection, path, range(1, facts.lines + 1), None)
        if facts.lines != promised:
            raise IncompleteDataError(
                f"{path}: metadata promises {promised} records, file holds {facts.lines}"
            )
        self.inputs.append(
            InputFile(str(path), "snapshot", name, facts.sha256, facts.lines, bad)
        )

    def _native(self, collection: int, path: Path, facts: Facts, names: tuple[str, ...]) -> int:
        """Load the fast lines in SQL and the rest through Python; -1 if DuckDB refused."""
        db = self._db
        table = f"raw_{collection}"
        select = _states_sql() if collection == STATES else _devices_sql()
        try:
            db.execute(
                f"CREATE OR REPLACE TABLE {table} AS {select} FROM read_json(?, "
                f"format='newline_delimited', columns={_json_columns(names)})",
                [str(path)],
            )
        except duckdb.Error:
            return -1
        (rows,) = db.rows(f"SELECT count(*) FROM {table}")[0]
        if rows != facts.lines:
            # Blank lines (skipped by DuckDB) shift the line numbers: Python reads the file.
            db.execute(f"DROP TABLE {table}")
            return -1
        if collection == STATES:
            columns = ", ".join(c for c in INTUNE_COLUMNS if c not in ("ord", "collection", "line"))
            db.execute(
                f"INSERT INTO intune SELECT {collection * ORDER_SPAN} + rowid + 1, {collection}, "
                f"rowid + 1, {columns} FROM {table} WHERE fast"
            )
        else:
            db.execute(
                f"INSERT INTO device_rows SELECT rowid + 1, id, name_fold FROM {table} WHERE fast"
            )
        slow = [int(n) for (n,) in db.rows(f"SELECT rowid + 1 FROM {table} WHERE NOT fast")]
        db.execute(f"DROP TABLE {table}")
        return self._python(collection, path, slow, slow)

    def _python(
        self, collection: int, path: Path, lines: Iterator[int] | range | list[int],
        only: list[int] | None,
    ) -> int:
        """Lines through intune.records; returns how many were rejected."""
        entries: list[tuple[object, ...]] = []
        devices: list[tuple[object, ...]] = []
        bad = 0
        raw_lines = pick_lines(path, only) if only is not None else None
        source = _all_lines(path) if raw_lines is None else iter(sorted(raw_lines.items()))
        for line, raw in source:
            try:
                if not raw.strip():
                    raise ValueError("blank line")
                if collection == STATES:
                    entries.append(intune_row(scan_state(raw, line)))
                elif collection == REPORT:
                    entries.append(intune_row(scan_report_row(raw, self.report_delivered, line)))
                elif collection == DEVICES:
                    device = decode_device(raw)
                    devices.append((line, device.id, fold(device.device_name)))
                else:
                    self.profiles.append(decode_profile(raw))
            except ValueError as exc:
                bad += 1
                self.rejects.append(Reject(str(path), line, str(exc)))
        self._db.insert("intune", INTUNE_COLUMNS, entries)
        self._db.insert("device_rows", _DEVICE_COLUMNS, devices)
        return bad

    def fetch(
        self, certificates: set[tuple[int, int]], devices: set[int]
    ) -> tuple[dict[tuple[int, int], IntuneCertificate], dict[int, ManagedDevice]]:
        found: dict[tuple[int, int], IntuneCertificate] = {}
        for collection in (STATES, REPORT):
            lines = {line for c, line in certificates if c == collection}
            if not lines:
                continue
            for line, raw in pick_lines(self._files[collection], lines).items():
                found[(collection, line)] = (
                    decode_state(raw)
                    if collection == STATES
                    else decode_report_row(raw, self.report_delivered, f"report:{line}")
                )
        known: dict[int, ManagedDevice] = {}
        if devices:
            for line, raw in pick_lines(self._files[DEVICES], devices).items():
                known[line] = decode_device(raw)
        return found, known

    def intune_sources(self) -> Iterator[str]:
        counts = self.metadata.get("counts", {})
        if "certificate_states" in counts:
            yield "states"
        if "report_rows" in counts:
            yield "report"


def _all_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as handle:
        yield from enumerate(handle, start=1)
