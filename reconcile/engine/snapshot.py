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
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

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
# Code points Python's str.strip() removes besides ASCII controls (which JSON escapes): a value
# starting or ending with one goes through Python.
_SPACES = "32, 133, 160, 5760, 8192, 8193, 8194, 8195, 8196, 8197, 8198, 8199, 8200, 8201, 8202, "
_SPACES += "8232, 8233, 8239, 8287, 12288"
_DEVICE_COLUMNS = {"line": "BIGINT", "id": "VARCHAR", "name_fold": "VARCHAR"}
# Graph's year-1 placeholders (anything before 0001-01-02) mean unknown, as in records._time.
_NO_DATE_MICROS = (datetime(1, 1, 2, tzinfo=UTC) - EPOCH) // timedelta(microseconds=1)
_HEX = "0123456789ABCDEF"


def _column(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _strings(names: tuple[str, ...], integers: tuple[str, ...] = ()) -> str:
    """Level 1: each JSON value as text (t_N) when it is a plain string, and whether it is odd
    (x_N: another JSON type, an escape, or surrounding spaces)."""
    parts = []
    for number, name in enumerate(names):
        raw = f"CAST({_column(name)} AS VARCHAR)"
        text = f"CASE WHEN {raw}[1] = '\"' AND NOT contains({raw}, '\\') THEN {raw}[2:-2] END"
        parts.append(f"{text} AS t{number}")
        parts.append(
            f"{raw} IS NOT NULL AND {raw} <> 'null' AND ({raw}[1] <> '\"' "
            f"OR contains({raw}, '\\')) AS x{number}"
        )
    for name in integers:
        raw = f"CAST({_column(name)} AS VARCHAR)"
        parts.append(
            f"{raw} IS NOT NULL AND {raw} <> 'null' AND NOT (length({raw}) <= 18 AND "
            f"ltrim(ltrim({raw}, '-'), '0123456789') = '' AND ltrim({raw}, '-') <> '' "
            f"AND length(ltrim({raw}, '-')) >= length({raw}) - 1) AS xi_{len(parts)}"
        )
    return ", ".join(parts)


def _spaced(text: str) -> str:
    """Whether str.strip() would change the text (exotic spaces only outside ASCII)."""
    return (
        f"coalesce({text}[1] = ' ' OR {text}[-1] = ' ' OR (strlen({text}) <> length({text}) AND "
        f"(ord({text}[1]) IN ({_SPACES}) OR ord({text}[-1]) IN ({_SPACES}))), false)"
    )


def _time_shape(value: str) -> str:
    """The UTC ISO-8601 shape Graph sends: fixed digits, 1 to 7 fraction digits, a Z."""
    fraction = f"substr({value}, 21, length({value}) - 21)"
    return (
        f"(translate(substr({value}, 1, 19), '123456789', '000000000') = "
        "'0000-00-00T00:00:00' AND substr({value}, 1, 4) <> '0000' AND ("
        f"({value}[20] = 'Z' AND length({value}) = 20) OR ({value}[20] = '.' AND "
        f"{value}[-1] = 'Z' AND length({value}) BETWEEN 22 AND 28 AND "
        f"translate({fraction}, '123456789', '000000000') = repeat('0', length({fraction})))))"
    ).replace("{value}", value)


def _time_parts(value: str, name: str) -> list[str]:
    """Level 2: (shape ok, parsed second) for a time column."""
    return [
        f"{_time_shape(value)} AS {name}_shape",
        f"try_strptime(substr({value}, 1, 19), '%Y-%m-%dT%H:%M:%S') AS {name}_ts",
        f"CASE WHEN {value}[20] = '.' THEN rpad(substr({value}, 21, length({value}) - 21), "
        f"6, '0')[1:6]::BIGINT ELSE 0 END AS {name}_us",
    ]


def _time_final(value: str, name: str) -> tuple[str, str]:
    """Level 3: (micros, ok) exactly as records._time gives them for a shaped value."""
    micros = f"epoch_us({name}_ts) + {name}_us"
    ok = f"({value} IS NULL OR {value} = '' OR ({name}_shape AND {name}_ts IS NOT NULL))"
    value_sql = (
        f"CASE WHEN {value} IS NULL OR {value} = '' OR NOT {name}_shape THEN NULL "
        f"WHEN {micros} < {_NO_DATE_MICROS} THEN NULL ELSE {micros} END"
    )
    return value_sql, ok


def _states_sql(source: str) -> str:
    names = _STATE_TEXT
    t = {name: f"t{i}" for i, name in enumerate(names)}
    # Fields Python strips before use; times and hex fail their shape checks when spaced, and
    # the other fields are only type-checked.
    stripped = (
        "certificateIssuanceState",
        "certificateIssuer",
        "deviceDisplayName",
        "@reconcile.profileId",
        "certificateProfileDisplayName",
        "@reconcile.profileName",
    )
    odd = " OR ".join(
        [f"x{i}" for i in range(len(names))]
        + [f"xi_{2 * len(names) + i}" for i in range(len(_STATE_INTEGERS))]
        + [_spaced(t[name]) for name in stripped]
    )

    def clean(name: str) -> str:
        return f"nullif({t[name]}, '')"

    changed = (
        f"CASE WHEN {t['certificateLastIssuanceStateChangedDateTime']} <> '' "
        f"THEN {t['certificateLastIssuanceStateChangedDateTime']} "
        f"ELSE {t['lastCertificateStateChangeDateTime']} END"
    )
    display = (
        f"coalesce({clean('certificateProfileDisplayName')}, {clean('@reconcile.profileName')})"
    )
    level2 = ", ".join(
        [
            f"NOT ({odd}) AS plain",
            f"{clean('certificateSerialNumber')} AS serial_text",
            f"{clean('certificateThumbprint')} AS thumb_text",
            f"{clean('certificateIssuer')} AS issuer",
            f"coalesce({clean('certificateIssuanceState')}, 'unknown') = 'installed' AS delivered",
            f"{clean('deviceDisplayName')} AS device_name",
            f"{clean('@reconcile.profileId')} AS profile_id",
            f"{display} AS display",
            f"{t['certificateIssuanceDateTime']} AS issued_text",
            f"{changed} AS changed_text",
            f"{t['certificateExpirationDateTime']} AS expires_text",
        ]
    )
    level3_times = []
    for value, name in (("issued_text", "i"), ("changed_text", "c"), ("expires_text", "e")):
        level3_times += _time_parts(value, name)
    issued, issued_ok = _time_final("issued_text", "i")
    changed_at, changed_ok = _time_final("changed_text", "c")
    _, expires_ok = _time_final("expires_text", "e")
    serial_ok = (
        f"(serial_text IS NULL OR (ltrim(upper(serial_text), '{_HEX}') = '' "
        "AND length(ltrim(serial_text, '0')) <= 80))"
    )
    thumb_ok = (
        f"(thumb_text IS NULL OR (ltrim(upper(thumb_text), '{_HEX}') = '' "
        "AND length(thumb_text) IN (40, 64)))"
    )
    fold_ok = "(profile_id IS NOT NULL OR display IS NULL OR strlen(display) = length(display))"
    fast = " AND ".join(["plain", serial_ok, thumb_ok, fold_ok, issued_ok, changed_ok, expires_ok])
    return f"""
        SELECT {fast} AS fast,
               CASE WHEN serial_text IS NOT NULL
                    THEN coalesce(nullif(ltrim(upper(serial_text), '0'), ''), '0') END AS serial,
               CASE WHEN serial_text IS NULL THEN upper(thumb_text) END AS thumbprint,
               issuer, delivered, NULL::VARCHAR AS device_id, device_name,
               coalesce(profile_id, lower(display)) AS profile,
               {issued} AS issued_at, {changed_at} AS changed_at
        FROM (SELECT *, {", ".join(level3_times)} FROM (
            SELECT {level2} FROM (SELECT {_strings(names, _STATE_INTEGERS)} FROM {source})))
    """


def _devices_sql(source: str) -> str:
    names = _DEVICE_TEXT
    t = {name: f"t{i}" for i, name in enumerate(names)}
    odd = " OR ".join([f"x{i}" for i in range(len(names))] + [_spaced(t["deviceName"])])
    level2 = ", ".join(
        [
            f"NOT ({odd}) AS plain",
            f"{t['id']} AS id",
            f"nullif({t['deviceName']}, '') AS name",
            f"{t['lastSyncDateTime']} AS sync_text",
        ]
    )
    _, sync_ok = _time_final("sync_text", "s")
    fast = (
        f"plain AND id IS NOT NULL AND id <> '' AND (name IS NULL OR strlen(name) = length(name)) "
        f"AND {sync_ok}"
    )
    return f"""
        SELECT {fast} AS fast, id, lower(name) AS name_fold
        FROM (SELECT *, {", ".join(_time_parts("sync_text", "s"))} FROM (
            SELECT {level2} FROM (SELECT {_strings(names)} FROM {source})))
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
            facts[name] = scanner.submit(
                path, _JSON_NEEDLES, with_offsets=name != "profiles", line_start=b"{"
            )
        self._facts: dict[int, Facts] = {}
        self._handles: dict[int, BinaryIO] = {}
        for name, future in facts.items():
            self._load(name, future, counts[name])
        if self.devices_present:
            db.execute("INSERT INTO device_ids SELECT id, max(line) FROM device_rows GROUP BY id")
            db.execute(
                "INSERT INTO device_names SELECT name_fold, max(line) FROM device_rows "
                "WHERE name_fold IS NOT NULL GROUP BY name_fold"
            )

    @property
    def tenant_id(self) -> str | None:
        value = self.metadata.get("tenant_id")
        return str(value) if value else None

    def _load(self, name: str, future: Future[Facts], promised: Any) -> None:
        collection = COLLECTIONS.index(name)
        path = self._files[collection]
        bad = -1
        if collection == STATES:
            bad = self._native(collection, path, future, _STATE_TEXT + _STATE_INTEGERS)
        elif collection == DEVICES:
            bad = self._native(collection, path, future, _DEVICE_TEXT)
        self._facts[collection] = facts = future.result()
        if bad < 0:
            bad = self._python(collection, path, range(1, facts.lines + 1), None)
        if facts.lines != promised:
            raise IncompleteDataError(
                f"{path}: metadata promises {promised} records, file holds {facts.lines}"
            )
        self.inputs.append(InputFile(str(path), "snapshot", name, facts.sha256, facts.lines, bad))

    def _native(
        self, collection: int, path: Path, future: Future[Facts], names: tuple[str, ...]
    ) -> int:
        """Load the fast lines in SQL and the rest through Python; -1 if DuckDB refused or the
        file is one to read in Python. The scan runs while the byte pass hashes the file."""
        db = self._db
        table = f"raw_{collection}"
        source = f"read_json(?, format='newline_delimited', columns={_json_columns(names)})"
        select = _states_sql(source) if collection == STATES else _devices_sql(source)
        try:
            db.execute_in_order(f"CREATE OR REPLACE TABLE {table} AS {select}", [str(path)])
        except duckdb.Error:
            return -1
        (rows,) = db.rows(f"SELECT count(*) FROM {table}")[0]
        facts = future.result()
        if rows != facts.lines or facts.suspicious:
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
        self,
        collection: int,
        path: Path,
        lines: Iterator[int] | range | list[int],
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

    def _line(self, collection: int, line: int) -> bytes:
        handle = self._handles.get(collection)
        if handle is None:
            handle = self._handles[collection] = self._files[collection].open("rb")
        return self._facts[collection].line(handle, line)

    def fetch(
        self, certificates: set[tuple[int, int]], devices: set[int]
    ) -> tuple[dict[tuple[int, int], IntuneCertificate], dict[int, ManagedDevice]]:
        found: dict[tuple[int, int], IntuneCertificate] = {}
        for collection, line in sorted(certificates):
            raw = self._line(collection, line)
            found[(collection, line)] = (
                decode_state(raw)
                if collection == STATES
                else decode_report_row(raw, self.report_delivered, f"report:{line}")
            )
        known = {line: decode_device(self._line(DEVICES, line)) for line in sorted(devices)}
        return found, known

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()

    def __enter__(self) -> NativeSnapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def intune_sources(self) -> Iterator[str]:
        counts = self.metadata.get("counts", {})
        if "certificate_states" in counts:
            yield "states"
        if "report_rows" in counts:
            yield "report"


def _all_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as handle:
        yield from enumerate(handle, start=1)
