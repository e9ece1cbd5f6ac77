"""A snapshot's Intune records read into the engine's tables, never one Python object a record.

DuckDB's JSON reader takes the common line - an object whose fields reconcile reads are plain
strings or null, in the shapes Graph sends (hex serials and thumbprints, UTC timestamps, ASCII
names where a name is case-folded) - and converts it in SQL exactly as ``intune.records``
would. Every other line goes through ``intune.records`` itself, so an odd or bad line gets the
same row or the same reject (with its line number) as ever. Beside the engine's scan, a thread
hashes each file, counts and indexes its lines by byte offset and marks the lines DuckDB might
read differently from msgspec (NaN, trailing commas, escapes): those go through Python too. A
file DuckDB cannot be trusted with as a whole (a lone CR, a line that is not an object, one it
refuses) is read by Python line by line.

Report rows are always read by Python (small, and their status codes depend on configuration),
into the table all the same.
"""

from __future__ import annotations

import hashlib
import logging
import operator
from array import array
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import accumulate, repeat
from pathlib import Path
from typing import IO, Any

import duckdb
import msgspec

from reconcile.engine.db import Database
from reconcile.engine.tables import (
    EPOCH,
    INTUNE_COLUMNS,
    ORDER_SPAN,
    intune_row,
)
from reconcile.errors import IncompleteDataError, InputError
from reconcile.identity import device_fold
from reconcile.intune.records import (
    DEVICE_DECODER,
    REPORT,
    STATE_DECODER,
    STATES,
    ReportStatuses,
    decode_device,
    decode_device_light,
    decode_report_row,
    decode_state,
    decode_state_light,
    scan_report_row,
    scan_state,
)
from reconcile.intune.snapshot import COLLECTIONS, DEVICES, SnapshotFiles
from reconcile.model import DELIVERED_ISSUANCE_STATE, IntuneCertificate, ManagedDevice, Reject

__all__ = ["EngineSnapshot", "load_snapshot"]

log = logging.getLogger("reconcile")
# The fields the join's rows are made of; msgspec type-checks every field of every line in the
# byte pass (records.STATE_DECODER, DEVICE_DECODER), so SQL reads these as text and only checks
# their shapes.
_STATE_TEXT = (
    "certificateIssuanceState",
    "certificateSerialNumber",
    "certificateThumbprint",
    "certificateIssuer",
    "deviceDisplayName",
    "@reconcile.profileId",
    "certificateProfileDisplayName",
    "@reconcile.profileName",
    "certificateIssuanceDateTime",
    "certificateExpirationDateTime",
    "certificateLastIssuanceStateChangedDateTime",
    "lastCertificateStateChangeDateTime",
)
_DEVICE_TEXT = ("id", "deviceName", "lastSyncDateTime")
_STATE_ROW = (
    "serial",
    "thumbprint",
    "issuer",
    "delivered",
    "device_id",
    "device_name",
    "profile",
    "issued_at",
    "changed_at",
)
"""The intune columns the states' SQL gives, besides ord, collection and line (its position)."""
# Code points str.strip() removes that JSON may carry unescaped: a value starting or ending
# with one goes through Python (ASCII controls are escaped, so those lines already do).
_SPACES = "32, 133, 160, 5760, 8192, 8193, 8194, 8195, 8196, 8197, 8198, 8199, 8200, 8201, "
_SPACES += "8202, 8232, 8233, 8239, 8287, 12288"
_SPACE_CLASS = "".join(f"\\x{{{int(c):x}}}" for c in _SPACES.split(", "))
_DEVICE_ROWS = {"line": "BIGINT", "id": "VARCHAR", "key": "VARCHAR"}
_LINE_COLUMNS = {"line": "BIGINT"}
_DEVICE_TABLE = "snapshot_devices"
_ODD_TABLE = "snapshot_odd_lines"
# parse_iso reads '0001-01-01...' as unknown: shaped values before 0001-01-02 are NULL.
_NO_DATE_MICROS = (datetime(1, 1, 2, tzinfo=UTC) - EPOCH) // timedelta(microseconds=1)
# An Entry keeps a float timestamp; round(stamp * 1e6) gives back the exact microsecond below
# 2**51 µs (year 2041) or for whole seconds. Other times go through Python.
_EXACT_MICROS = 1 << 51
_BLOCK = 1 << 22
_HOST = "[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*\\.[A-Za-z0-9_-]+\\.?"


@dataclass
class _Facts:
    """What the byte pass learns of one file."""

    sha256: str = ""
    lines: int = 0
    offsets: array[int] = field(default_factory=lambda: array("q"))
    cut_off: bool = False
    odd: array[int] = field(default_factory=lambda: array("q"))
    """Lines msgspec refuses (bad JSON, a field of the wrong type) or that hold an escape:
    Python decides them."""
    untrusted: bool = False
    """A lone CR or an odd line that is not an object: DuckDB may split or skip lines."""


def _scan(handle: IO[bytes], decoder: msgspec.json.Decoder[Any]) -> _Facts:
    """Hash, count and index the lines of ``handle``, as ``SnapshotFiles`` iterates them, and
    type-check each with ``decoder``.

    A block at a time, each step a C loop over its lines: the Python loop over each line took
    the core DuckDB's read needs for longer (1M state lines: 6.0 s, against 4.9-5.3 s)."""
    facts = _Facts()
    digest = hashlib.sha256()
    offset = line = 0
    tail = b""
    while block := handle.read(_BLOCK):
        # What follows the last complete line is only hashed as well when the file is cut
        # off, and then the hash is never used.
        digest.update(block)
        raws = block.split(b"\n")
        raws[0] = tail + raws[0]
        tail = raws.pop()
        if raws:
            # A CR in an earlier block is in the first line, which the tail began.
            returns = b"\r" in block or b"\r" in raws[0]
            offset, line = _scan_lines(facts, decoder, raws, returns, offset, line)
    if tail:
        facts.cut_off = True
        line += 1
    facts.lines = line
    facts.sha256 = digest.hexdigest()
    return facts


def _scan_lines(
    facts: _Facts,
    decoder: msgspec.json.Decoder[Any],
    raws: list[bytes],
    returns: bool,
    offset: int,
    line: int,
) -> tuple[int, int]:
    """``_scan`` of whole lines without their LF, at byte ``offset`` after line ``line``
    (``returns``: whether a CR may be among them); gives the offset and line after them."""
    starts = array("q", accumulate(map(operator.add, map(len, raws), repeat(1)), initial=offset))
    after = starts.pop()
    facts.offsets.extend(starts)
    if returns and any(raw.count(b"\r") != raw.endswith(b"\r") for raw in raws):
        facts.untrusted = True
    decode = decoder.decode
    try:
        deque(map(decode, raws), maxlen=0)
    except (msgspec.DecodeError, msgspec.ValidationError):
        for number, raw in enumerate(raws, start=line + 1):
            try:
                decode(raw)
            except (msgspec.DecodeError, msgspec.ValidationError):
                facts.odd.append(number)
                if not raw.startswith(b"{"):
                    facts.untrusted = True
                continue
            if b"\\" in raw:
                facts.odd.append(number)
    else:
        facts.odd.extend(number for number, raw in enumerate(raws, start=line + 1) if b"\\" in raw)
    return after, line + len(raws)


def _columns(columns: dict[str, str]) -> str:
    return ", ".join(f"{name} {kind}" for name, kind in columns.items())


def _column(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _spaced(text: str) -> str:
    """Whether str.strip() would change the text."""
    return f"coalesce(regexp_matches({text}, '^[{_SPACE_CLASS}]|[{_SPACE_CLASS}]$'), false)"


def _time_shape(value: str) -> str:
    """The UTC ISO-8601 shape Graph sends: fixed digits, 1 to 7 fraction digits, a Z."""
    return (
        f"(regexp_full_match({value}, '[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}T[0-9]{{2}}:[0-9]{{2}}:"
        f"[0-9]{{2}}(\\.[0-9]{{1,7}})?Z') AND NOT starts_with({value}, '0000'))"
    )


def _time_parts(value: str, name: str) -> list[str]:
    """(shape ok, parsed second, microseconds) of a time column."""
    return [
        f"{_time_shape(value)} AS {name}_shape",
        f"try_strptime(substr({value}, 1, 19), '%Y-%m-%dT%H:%M:%S') AS {name}_ts",
        f"CASE WHEN {value}[20] = '.' THEN rpad(substr({value}, 21, length({value}) - 21), "
        f"6, '0')[1:6]::BIGINT ELSE 0 END AS {name}_us",
    ]


def _time_final(value: str, name: str) -> tuple[str, str]:
    """(micros, ok): the microsecond the Entry's stamp gives back, and whether SQL may say so."""
    micros = f"(epoch_us({name}_ts) + {name}_us)"
    ok = (
        f"({value} IS NULL OR {value} = '' OR ({name}_shape AND {name}_ts IS NOT NULL AND "
        f"(abs({micros}) < {_EXACT_MICROS} OR {name}_us = 0 OR {micros} < {_NO_DATE_MICROS})))"
    )
    value_sql = (
        f"CASE WHEN {value} IS NULL OR {value} = '' OR NOT {name}_shape THEN NULL "
        f"WHEN {micros} < {_NO_DATE_MICROS} THEN NULL ELSE {micros} END"
    )
    return value_sql, ok


def _source(names: tuple[str, ...]) -> str:
    """The file's fields as text, t0, t1, ... in ``names`` order."""
    columns = "{" + ", ".join(f"'{n}': 'VARCHAR'" for n in names) + "}"
    renamed = ", ".join(f"{_column(n)} AS t{i}" for i, n in enumerate(names))
    return f"(SELECT {renamed} FROM read_json(?, format='newline_delimited', columns={columns}))"


def _states_sql() -> str:
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
    odd = " OR ".join(_spaced(t[name]) for name in stripped)

    def clean(name: str) -> str:
        return f"nullif({t[name]}, '')"

    first, second = (
        t["certificateLastIssuanceStateChangedDateTime"],
        t["lastCertificateStateChangeDateTime"],
    )
    changed = f"CASE WHEN {first} <> '' THEN {first} ELSE {second} END"
    display = (
        f"coalesce({clean('certificateProfileDisplayName')}, {clean('@reconcile.profileName')})"
    )
    level2 = ", ".join(
        [
            f"NOT ({odd}) AS plain",
            f"{clean('certificateSerialNumber')} AS serial_text",
            f"{clean('certificateThumbprint')} AS thumb_text",
            f"{clean('certificateIssuer')} AS issuer",
            f"coalesce({clean('certificateIssuanceState')}, 'unknown') = "
            f"'{DELIVERED_ISSUANCE_STATE}' AS delivered",
            f"{clean('deviceDisplayName')} AS device_name",
            f"{clean('@reconcile.profileId')} AS profile_id",
            f"{display} AS display",
            f"{t['certificateIssuanceDateTime']} AS issued_text",
            f"{changed} AS changed_text",
            f"{t['certificateExpirationDateTime']} AS expires_text",
        ]
    )
    level3 = []
    for value, name in (("issued_text", "i"), ("changed_text", "c"), ("expires_text", "e")):
        level3 += _time_parts(value, name)
    issued, issued_ok = _time_final("issued_text", "i")
    changed_at, changed_ok = _time_final("changed_text", "c")
    _, expires_ok = _time_final("expires_text", "e")
    serial_ok = (
        "(serial_text IS NULL OR (regexp_full_match(serial_text, '[0-9A-Fa-f]+') "
        "AND length(ltrim(serial_text, '0')) <= 80))"
    )
    thumb_ok = (
        "(thumb_text IS NULL OR regexp_full_match(thumb_text, '[0-9A-Fa-f]{40}|[0-9A-Fa-f]{64}'))"
    )
    fold_ok = "(profile_id IS NOT NULL OR display IS NULL OR strlen(display) = length(display))"
    fast = " AND ".join(["plain", serial_ok, thumb_ok, fold_ok, issued_ok, changed_ok, expires_ok])
    return f"""
        SELECT coalesce({fast}, false) AS fast,
               CASE WHEN serial_text IS NOT NULL
                    THEN coalesce(nullif(ltrim(upper(serial_text), '0'), ''), '0') END AS serial,
               CASE WHEN serial_text IS NULL THEN upper(thumb_text) END AS thumbprint,
               issuer, delivered, NULL::VARCHAR AS device_id, device_name,
               coalesce(profile_id, lower(display)) AS profile,
               {issued} AS issued_at, {changed_at} AS changed_at
        FROM (SELECT *, {", ".join(level3)} FROM (
            SELECT {level2} FROM {_source(names)}))
    """


def _devices_sql() -> str:
    names = _DEVICE_TEXT
    t = {name: f"t{i}" for i, name in enumerate(names)}
    odd = _spaced(t["deviceName"])
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
        "plain AND id IS NOT NULL AND id <> '' AND (name IS NULL OR strlen(name) = length(name)) "
        f"AND {sync_ok}"
    )
    # identity.device_key of an ASCII name: a DNS host name (last label not all digits, no
    # '@') by its first label, case-folded.
    host = (
        f"contains(name, '.') AND NOT contains(name, '@') AND regexp_full_match(name, '{_HOST}') "
        "AND NOT regexp_full_match(regexp_extract(name, '\\.([A-Za-z0-9_-]+)\\.?$', 1), '[0-9]+')"
    )
    key = f"lower(CASE WHEN {host} THEN split_part(name, '.', 1) ELSE name END)"
    return f"""
        SELECT coalesce({fast}, false) AS fast, id, {key} AS key
        FROM (SELECT *, {", ".join(_time_parts("sync_text", "s"))} FROM (
            SELECT {level2} FROM {_source(names)}))
    """


class EngineSnapshot(SnapshotFiles):
    """A snapshot whose records are in the engine's ``intune``, ``device_ids`` and
    ``device_names`` tables; full records are read back from the files by offset.

    Metadata, inputs, rejects, profiles, Cloud PKI and the integrity checks are the ones
    ``SnapshotSource`` gives for the same directory (the same code reads the small collections).
    """

    def __init__(
        self, directory: Path, report_delivered: ReportStatuses | Iterable[str], db: Database
    ):
        super().__init__(directory, report_delivered)
        self._db = db
        self._devices = False
        self.native_rows: dict[str, int] = {}
        """Per collection the engine read, how many of its lines it converted in SQL."""
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reconcile-scan")
        try:
            self._read_all()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _has_devices(self) -> bool:
        return self._devices

    @property
    def devices_read(self) -> bool:
        """Whether the snapshot holds managed devices at all (the join's ``Records``)."""
        return "managed_devices" in self.metadata["counts"]

    def _collection(self, collection: int, path: Path, promised: int) -> None:
        if collection == REPORT:
            self._report(path, promised)
        elif collection in (STATES, DEVICES):
            self._native(collection, path, promised)
        else:
            super()._collection(collection, path, promised)

    def _report(self, path: Path, promised: int) -> None:
        scan = self._lines(REPORT, path)
        rejected = 0

        def rows() -> Iterator[tuple[object, ...]]:
            nonlocal rejected
            for line, raw in scan:
                try:
                    if not raw.strip():
                        raise ValueError("blank line")
                    yield intune_row(scan_report_row(raw, self.report_delivered, line))
                except ValueError as exc:
                    rejected += 1
                    self.rejects.append(Reject(str(path), line, str(exc)))

        self._db.insert("intune", INTUNE_COLUMNS, rows())
        self._finish(REPORT, path, promised, scan.digest, len(self._offsets[REPORT]), rejected)

    def _native(self, collection: int, path: Path, promised: int) -> None:
        """The engine reads the file while the byte pass runs; the lines it cannot be trusted
        with, or the whole file, go through Python."""
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror}", path) from None
        self._handles[collection] = handle
        decoder = STATE_DECODER if collection == STATES else DEVICE_DECODER
        future: Future[_Facts] = self._pool.submit(_scan, handle, decoder)
        db = self._db
        table = f"snapshot_raw_{collection}"
        select = _states_sql() if collection == STATES else _devices_sql()
        # DuckDB expands glob patterns in a path: it could read another file than the one hashed.
        read = not any(c in str(path) for c in "*?[{")
        db.execute("SET preserve_insertion_order = true")
        try:
            # rowid + 1 is the line: the table keeps the file's order.
            if read:
                db.execute(f"CREATE OR REPLACE TABLE {table} AS {select}", [str(path)])
        except duckdb.Error:
            read = False
        finally:
            db.execute("SET preserve_insertion_order = false")
        try:
            facts = future.result()
            if facts.cut_off:
                raise IncompleteDataError(
                    f"{path}:{facts.lines}: the last line is cut off (no line end); the "
                    "snapshot is incomplete"
                )
            self._offsets[collection] = facts.offsets
            if read:
                (count,) = db.rows(f"SELECT count(*) FROM {table}")[0]
                read = count == facts.lines and not facts.untrusted
            if collection == DEVICES:
                db.execute(f"CREATE OR REPLACE TABLE {_DEVICE_TABLE} ({_columns(_DEVICE_ROWS)})")
            slow: Sequence[int] = range(1, facts.lines + 1)
            if read:
                slow = self._fast(collection, table, facts.odd)
            name = COLLECTIONS[collection]
            self.native_rows[name] = facts.lines - len(slow)
            log.debug(
                "engine: %s: %d lines, %d through Python%s",
                name,
                facts.lines,
                len(slow),
                "" if read else " (the whole file)",
            )
            bad = self._python(collection, path, slow)
            if collection == DEVICES:
                self._device_tables()
        finally:
            db.execute(f"DROP TABLE IF EXISTS {table}")
            db.execute(f"DROP TABLE IF EXISTS {_DEVICE_TABLE}")
        self._finish(collection, path, promised, facts.sha256, facts.lines, bad)

    def _fast(self, collection: int, table: str, odd: array[int]) -> array[int]:
        """Copy the rows the engine read as Python would; returns the other lines, in order."""
        db = self._db
        db.execute(f"CREATE OR REPLACE TABLE {_ODD_TABLE} (line BIGINT)")
        try:
            db.insert(_ODD_TABLE, _LINE_COLUMNS, ((n,) for n in odd))
            fast = f"fast AND rowid + 1 NOT IN (SELECT line FROM {_ODD_TABLE})"
            if collection == STATES:
                columns = ", ".join(_STATE_ROW)
                db.execute(
                    f"INSERT INTO intune (ord, collection, line, {columns}) SELECT "
                    f"{collection * ORDER_SPAN} + rowid + 1, {collection}, rowid + 1, {columns} "
                    f"FROM {table} WHERE {fast}"
                )
            else:
                db.execute(
                    f"INSERT INTO {_DEVICE_TABLE} SELECT rowid + 1, id, key FROM {table} "
                    f"WHERE {fast}"
                )
            slow = (
                f"SELECT rowid + 1 FROM {table} WHERE NOT fast UNION SELECT line FROM {_ODD_TABLE}"
            )
            return array("q", (n for (n,) in db.stream(f"{slow} ORDER BY 1")))
        finally:
            db.execute(f"DROP TABLE {_ODD_TABLE}")

    def _python(self, collection: int, path: Path, lines: Iterable[int]) -> int:
        """The given lines through intune.records, in order; returns how many were rejected."""
        rejected = 0

        def rows() -> Iterator[tuple[object, ...]]:
            nonlocal rejected
            for line in lines:
                raw = self._line(collection, line)
                try:
                    if not raw.strip():
                        raise ValueError("blank line")
                    if collection == STATES:
                        yield intune_row(scan_state(raw, line))
                    else:
                        device = decode_device(raw)
                        yield line, device.id, device_fold(device.device_name)
                except ValueError as exc:
                    rejected += 1
                    self.rejects.append(Reject(str(path), line, str(exc)))

        if collection == STATES:
            self._db.insert("intune", INTUNE_COLUMNS, rows())
        else:
            self._db.insert(_DEVICE_TABLE, _DEVICE_ROWS, rows())
        return rejected

    def _device_tables(self) -> None:
        """``Devices``: by_id keeps an id's last line; every named device is under its key."""
        db = self._db
        db.execute(f"INSERT INTO device_ids SELECT id, max(line) FROM {_DEVICE_TABLE} GROUP BY id")
        db.execute(
            f"INSERT INTO device_names SELECT key, line FROM {_DEVICE_TABLE} WHERE key IS NOT NULL"
        )
        self._devices = db.rows(f"SELECT count(*) FROM {_DEVICE_TABLE}")[0][0] > 0

    def certificates(
        self, keys: Iterable[tuple[int, int]]
    ) -> dict[tuple[int, int], IntuneCertificate]:
        """Full records by (collection, line), read in file order."""
        found: dict[tuple[int, int], IntuneCertificate] = {}
        for collection, line in sorted(set(keys)):
            found[(collection, line)] = self.certificate(collection, line)
        return found

    def certificate(self, collection: int, line: int) -> IntuneCertificate:
        raw = self._line(collection, line)
        if collection == STATES:
            return decode_state(raw)
        return decode_report_row(raw, self.report_delivered, f"report:{line}")

    def devices(self, positions: Iterable[int]) -> dict[int, ManagedDevice]:
        """Managed devices by position (their line, the ``dev`` of the device tables)."""
        return {line: decode_device(self._line(DEVICES, line)) for line in sorted(set(positions))}

    def light_certificates(
        self, keys: Iterable[tuple[int, int]]
    ) -> dict[tuple[int, int], IntuneCertificate]:
        """``certificates`` as their ``light()`` copies; state records decoded light."""
        found: dict[tuple[int, int], IntuneCertificate] = {}
        for collection, line in sorted(set(keys)):
            if collection == STATES:
                found[(collection, line)] = decode_state_light(self._line(collection, line))
            else:
                found[(collection, line)] = self.certificate(collection, line).light()
        return found

    def light_devices(self, positions: Iterable[int]) -> dict[int, ManagedDevice]:
        """``devices`` as their ``light()`` copies, decoded light."""
        lines = sorted(set(positions))
        return {line: decode_device_light(self._line(DEVICES, line)) for line in lines}


def load_snapshot(
    db: Database, directory: Path, report_delivered: ReportStatuses | Iterable[str]
) -> EngineSnapshot:
    """Open the snapshot at ``directory`` into ``db``'s tables (``create_tables`` first)."""
    return EngineSnapshot(directory, report_delivered, db)
