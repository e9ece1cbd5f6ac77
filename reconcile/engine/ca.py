"""CA exports into the engine's ``ca`` table: certutil and PSPKI CSV read by DuckDB itself.

``load_export`` is the one entry point for every format. The ExportReader, built as always,
recognises the file (format, header, column map, the date order its first pass chose, notes);
then DuckDB reads the physical lines (UTF-8 or UTF-16LE), so each keeps its line number. A line
in the plain shape - cells quoted without inner quotes or unquoted, nothing ``str.strip()``
would remove from a cell the converter reads, a hex serial, culture dates - is converted in SQL
exactly as ``ca.table`` converts it. Every other line (an odd cell, a bad value, a trailer, a
width mismatch) goes through the reader's own converter, so it becomes the same record, reject
or skipped line as always. Text rules (templates, dispositions, CA names, CNs of subjects, dates
outside the plain shapes) run in Python once per distinct value.

A file DuckDB cannot be trusted with (a record over several lines, a quote inside a cell, a lone
CR, NUL, bytes that do not decode, a line too long for Python's csv module) and every other
format are read by the Python reader from start to end, into the same table.
"""

from __future__ import annotations

import bisect
import csv
import itertools
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, timedelta
from pathlib import Path

import duckdb

from reconcile.ca import CsvPlan, ExportReader, cut_short, incomplete, skipped_line
from reconcile.ca.certutil import stated_rows
from reconcile.ca.columns import IGNORE
from reconcile.ca.dates import CultureDates
from reconcile.ca.formats import CaFormat
from reconcile.ca.table import (
    _ca_name,
    _Templates,
    certutil_request_id,
    disposition_revoked,
    template_scope,
)
from reconcile.engine.db import Database
from reconcile.engine.files import Facts, Scanner
from reconcile.engine.tables import CA_COLUMNS, ca_row, load_certificates, micros
from reconcile.errors import InputError
from reconcile.identity import common_name
from reconcile.model import CaCertificate, InputFile, Reject

log = logging.getLogger("reconcile.engine")

NATIVE_FORMATS = frozenset({CaFormat.CERTUTIL, CaFormat.PSPKI})
# TextSource's encoding label -> (DuckDB's encoding, the codec the byte scan decodes with)
_ENCODINGS = {
    "utf-8": ("utf-8", "utf-8"),
    "utf-8-sig": ("utf-8", "utf-8"),
    "utf-16-le": ("utf-16", "utf-16-le"),
}
# Python's csv module refuses a field over 131,072 characters: such a file is Python's.
_LINE_LIMIT = 100_000
_HEX = "[0-9A-Fa-f]"
_DATE_FIELDS = ("not_before", "not_after", "revoked_at")
_OUTPUT = [c for c in CA_COLUMNS if c != "seq"]
# Up to this many non-certificate lines before the last one, seq is one expression; beyond, a join.
_INLINE_HOLES = 64
_names = itertools.count()


@dataclass(frozen=True)
class Loaded:
    """What reading one export gave, as the Python reader tells its caller.

    ``certificates`` rows went into ``ca`` (``seq`` from the start given, in file order);
    ``rejects`` in file order; ``error`` is the InputError the reader raised after yielding
    those (the caller raises it after handling the rejects), and then ``input_file`` is None.
    """

    certificates: int
    rejects: list[Reject]
    input_file: InputFile | None
    error: InputError | None
    notes: tuple[str, ...]
    zone_note: str | None
    native: bool
    in_sql: int = 0
    """Certificates SQL converted itself (the rest went through the reader's converter)."""


def load_export(
    db: Database, reader: ExportReader, seq_start: int, scanner: Scanner | None = None
) -> Loaded:
    """Append the certificates ``reader`` would yield to ``ca``; the reader is closed after."""
    with reader:
        plan = reader.csv_plan()
        if plan is not None and eligible(plan):
            own = scanner is None
            scanner = scanner or Scanner()
            try:
                native = _Native(db, plan, seq_start).load(scanner)
            finally:
                if own:
                    scanner.close()
            if native is not None:
                certificates, in_sql, rejects, input_file, error = native
                return Loaded(
                    certificates,
                    rejects,
                    input_file,
                    error,
                    tuple(reader.notes),
                    reader.zone_note,
                    True,
                    in_sql,
                )
        return load_stream(db, reader, seq_start)


def load_stream(db: Database, reader: ExportReader, seq_start: int) -> Loaded:
    """Any format through the Python reader, its certificates into ``ca`` as they stream."""
    rejects: list[Reject] = []
    failure: list[InputError] = []

    def certificates() -> Iterator[CaCertificate]:
        try:
            for item in reader:
                if isinstance(item, CaCertificate):
                    yield item
                else:
                    rejects.append(item)
        except InputError as exc:
            failure.append(exc)

    with reader:
        count = load_certificates(db, certificates(), seq_start)
    error = failure[0] if failure else None
    return Loaded(
        count,
        rejects,
        None if error else reader.input_file(),
        error,
        tuple(reader.notes),
        reader.zone_note,
        False,
    )


def eligible(plan: CsvPlan) -> bool:
    """Whether DuckDB may read this export: a format, encoding and dialect SQL mirrors."""
    dialect = plan.dialect
    fields = dialect.fields_of(plan.header)
    return (
        plan.format in NATIVE_FORMATS
        and plan.encoding in _ENCODINGS
        and not plan.forced_encoding
        and dialect.serial_base == 16
        and isinstance(dialect.dates, CultureDates)
        and dialect.status_rule is None
        and dialect.request_id in (None, certutil_request_id)
        and "cert_type" not in fields
        and len(plan.delimiter) == 1
        and plan.delimiter not in '"\r\n\x00\x01'
        and len(plan.header) > 1
        # DuckDB expands glob patterns in a path: it could read another file than the one hashed.
        and not any(c in str(plan.path) for c in "*?[{")
    )


def physical_lines(encoding: str) -> str:
    """A file (the statement's one parameter) as one text ``l`` per physical line, in file
    order while ``preserve_insertion_order`` is on: no quote, escape or delimiter applies."""
    return (
        "read_csv(?, columns={'l': 'VARCHAR'}, header=false, delim=chr(1), quote='', escape='', "
        f"encoding='{encoding}', auto_detect=false, strict_mode=false, "
        f"max_line_size={4 * _LINE_LIMIT})"
    )


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _unquoted(cell: str) -> str:
    return f"CASE WHEN starts_with({cell}, '\"') THEN {cell}[2:-2] ELSE {cell} END"


def _regex_class(delimiter: str) -> str:
    return "\\" + delimiter if delimiter in "\\^]-[" else delimiter


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


def _inner(text: str) -> str:
    """What stands between the first '(' and the last character."""
    return f"{text}[strpos({text}, '(') + 1:-2]"


class _Native:
    """One export read by DuckDB; ``load`` returns None when Python must read it instead."""

    def __init__(self, db: Database, plan: CsvPlan, seq_start: int) -> None:
        self.db = db
        self.plan = plan
        self.seq_start = seq_start
        self.id = next(_names)
        fields = plan.dialect.fields_of(plan.header)
        self.index = {f: i for f, i in fields.items() if f != IGNORE}
        # Position 0 always: a one-cell line (blank or trailer) is judged by it.
        self.used = sorted({0, *self.index.values()})
        self.width = len(plan.header)
        self.nulls = ", ".join(_quote(n) for n in sorted(plan.dialect.nulls)) or "NULL"
        self.trailers = plan.dialect.trailers
        d = _regex_class(plan.delimiter)
        quoted, bare = '"[^"]*"', f'[^"{d}]*'
        # Cells quoted without inner quotes, or unquoted without quotes: csv.reader's cells.
        self.simple = f"^(?:{quoted}|{bare})(?:{d}(?:{quoted}|{bare}))*$"
        # The same without the delimiter inside quotes: then string_split gives the cells.
        self.plain = f'^(?:"[^"{d}]*"|{bare})(?:{d}(?:"[^"{d}]*"|{bare}))*$'
        self.split = f"{d}({quoted}|{bare})"
        self.tables: list[str] = []
        self._skipped: list[int] = []
        """Non-blank data lines that are no record: blank-looking, one blank cell, trailers."""

    def name(self, kind: str) -> str:
        table = f"ca_{kind}_{self.id}"
        self.tables.append(table)
        return table

    def cell(self, field: str) -> str | None:
        position = self.index.get(field)
        return None if position is None else f"c{position}"

    def text(self, field: str, prefix: str = "") -> str:
        cell = self.cell(field)
        if cell is None:
            return "NULL::VARCHAR"
        return f"CASE WHEN {prefix}{cell} IN ({self.nulls}) THEN NULL ELSE {prefix}{cell} END"

    def load(
        self, scanner: Scanner
    ) -> tuple[int, int, list[Reject], InputFile | None, InputError | None] | None:
        duck_encoding, codec = _ENCODINGS[self.plan.encoding]
        before = _stamp(self.plan.path)
        future = scanner.submit(self.plan.path, codec)
        try:
            cells = self._read_lines(duck_encoding)
            facts = future.result()
            if cells is None or facts.suspicious or not self._trusted(cells, facts):
                return None
            if _stamp(self.plan.path) != before:
                # Rewritten while DuckDB and the hash read it: the two may not be one file.
                return None
            try:
                return self._convert(cells, facts)
            except duckdb.Error as exc:
                # Never seen; the Python reader reads the file instead of a traceback.
                log.debug(
                    "%s: engine read failed (%s); reading it in Python", self.plan.source, exc
                )
                self.db.execute(
                    "DELETE FROM ca WHERE source = ? AND seq >= ?",
                    [self.plan.source, self.seq_start],
                )
                return None
        finally:
            for table in reversed(self.tables):
                self.db.execute(f"DROP TABLE IF EXISTS {table}")

    def _read_lines(self, encoding: str) -> str | None:
        """The file's lines with their numbers (``line``), split into the cells the converter
        reads.

        Two statements: only the read keeps the file's order (rowid + 1 is the line), because
        splitting and checking a million lines in order ran on one thread (7.7 s against 4.1 s
        for the split alone, in parallel, at 1M UTF-16 rows)."""
        lines = f"ca_lines_{self.id}"  # dropped as soon as the cells are split
        table = self.name("cells")
        d = _quote(self.plan.delimiter)
        cells = ", ".join(f"cells[{i + 1}] AS c{i}" for i in self.used)
        # A plain line keeps no text when it starts with a quote: it is neither blank nor a
        # trailer, and its used cells are all the converter reads.
        dated, split = self._date_columns()
        # No used cell starts or ends with a space (other whitespace: ``spaced``).
        edges = " AND ".join(
            f"NOT (starts_with(cells[{i + 1}], ' ') OR suffix(cells[{i + 1}], ' '))"
            for i in self.used
        )
        dates = [
            f"{f}_{part}"
            for f in _DATE_FIELDS
            if f in self.index
            for part in ("day", "clock", "zoned")
        ]
        kept = ", ".join(
            ["line", "blank", "ok", "lead", "l", "width", *(f"c{i}" for i in self.used), *dates]
        )
        sql = f"""
            CREATE TEMP TABLE {table} AS
            SELECT {kept}, {self._static()} AS static FROM (
            SELECT {split} FROM (SELECT {dated} FROM (
            SELECT line, l IS NULL AS blank, plain, lead, ok,
                   coalesce(NOT spaced AND {edges}, false) AS edges,
                   CASE WHEN NOT plain OR NOT lead THEN l END AS l, len(cells) AS width, {cells}
            FROM (SELECT *, CASE WHEN plain THEN string_split(replace(l, '"', ''), {d})
                                 WHEN ok THEN list_transform(regexp_extract_all({d} || l,
                                     {_quote(self.split)}, 1),
                                     lambda x: {_unquoted("x")}) END AS cells
                  FROM (SELECT line, l, plain, coalesce(starts_with(l, '"'), false) AS lead,
                               {self._whitespace()} AS spaced,
                               l IS NULL OR (length(l) <= {_LINE_LIMIT}
                                   AND NOT contains(l, chr(13))
                                   AND CASE WHEN plain THEN true
                                       ELSE regexp_full_match(l, {_quote(self.simple)}) END)
                               AS ok
                        FROM (SELECT line, l,
                                     coalesce(regexp_full_match(l, {_quote(self.plain)}), false)
                                     AS plain
                              FROM (SELECT rowid + 1 AS line, l FROM {lines})))))))
        """
        read = f"CREATE TEMP TABLE {lines} AS SELECT l FROM {physical_lines(encoding)}"
        self.db.execute("SET preserve_insertion_order = true")
        try:
            self.db.execute(read, [str(self.plan.path)])
        except duckdb.Error:
            return None
        finally:
            self.db.execute("SET preserve_insertion_order = false")
        try:
            self.db.execute(sql)
        except duckdb.Error:
            return None
        finally:
            self.db.execute(f"DROP TABLE IF EXISTS {lines}")
        return table

    def _static(self) -> str:
        """What makes SQL's conversion of a line exact without the lookup tables: the header's
        width, cells strip() leaves alone, a bare hex serial and thumbprint, date cells in the
        shape CultureDates splits at its first space, request ids the converter keeps."""
        serial = self.cell("serial")
        assert serial is not None
        checks = [f"width = {self.width}", "edges"]
        if self.trailers:
            checks.append("lead")
        checks += [
            f"{serial} NOT IN ({self.nulls})",
            f"regexp_full_match({serial}, '{_HEX}+')",
            f"length(ltrim({serial}, '0')) <= 80",
        ]
        thumb = self.text("thumbprint")
        checks.append(
            f"({thumb} IS NULL OR regexp_full_match(replace({thumb}, ' ', ''), "
            f"'{_HEX}{{40}}|{_HEX}{{64}}'))"
        )
        for field in _DATE_FIELDS:
            cell = self.cell(field)
            if cell is not None:
                checks.append(f"({cell} IN ({self.nulls}) OR {field}_plain)")
        request = self.text("request_id")
        if self.plan.dialect.request_id is not None:
            # `0xb (11)` whose parenthesis holds no plain number: the converter decides.
            checks.append(
                f"({request} IS NULL OR NOT (contains({request}, '(') AND suffix({request}, ')'))"
                f" OR regexp_full_match({_inner(request)}, ' *[0-9]+ *'))"
            )
        return f"coalesce({' AND '.join(checks)}, false)"

    def _request_id(self, request: str) -> str:
        """certutil_request_id in SQL: `0xb (11)` -> `11`, `0xb` -> `11`, else the text."""
        if self.plan.dialect.request_id is None:
            return request
        inner = _inner(request)
        return (
            f"CASE WHEN contains({request}, '(') AND suffix({request}, ')') "
            f"AND regexp_full_match({inner}, ' *[0-9]+ *') THEN trim({inner}) "
            f"WHEN regexp_full_match({request}, '0[xX]{_HEX}{{1,16}}') "
            f"THEN CAST(CAST({request} AS UBIGINT) AS VARCHAR) ELSE {request} END"
        )

    def _whitespace(self) -> str:
        """Whether the line holds whitespace other than spaces (or a tab delimiter): then a
        cell might start or end with what str.strip() removes, and Python converts it."""
        d = self.plan.delimiter
        controls = [c for c in (9, 11, 12, 28, 29, 30, 31) if chr(c) != d]
        unicode = "".join(
            f"\\x{{{c:x}}}" for c in (0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000)
        )
        others = f"[{unicode}\\x{{2000}}-\\x{{200a}}]"
        found = " OR ".join(f"contains(l, chr({c}))" for c in controls)
        if d == "\t":
            # A tab inside a quoted cell is no delimiter: it may sit at the cell's edge.
            found += " OR (NOT plain AND contains(l, chr(9)))"
        return f"({found} OR (strlen(l) <> length(l) AND regexp_matches(l, '{others}')))"

    def _trusted(self, cells: str, facts: Facts) -> bool:
        ((count, odd),) = self.db.rows(
            f"SELECT count(*), count(*) FILTER (WHERE line > {self.plan.header_line} "
            f"AND NOT ok) FROM {cells}"
        )
        return bool(count == facts.lines and not odd)

    def _data(self, cells: str) -> str:
        header = self.plan.header_line
        return f"(SELECT * FROM {cells} WHERE line > {header} AND NOT blank)"

    def _distinct(self, data: str, field: str, where: str = "true") -> list[str]:
        cell = self.cell(field)
        if cell is None:
            return []
        rows = self.db.rows(f"SELECT DISTINCT {cell} FROM {data} WHERE {where}")
        return [value for (value,) in rows if isinstance(value, str)]

    def _maps(self, data: str) -> dict[str, str]:
        """Lookup tables of the text rules, computed once per distinct cell."""
        plan = self.plan
        nulls = plan.dialect.nulls
        split = _Templates()
        tables: dict[str, tuple[dict[str, str], Sequence[tuple[object, ...]]]] = {}
        templates = []
        for value in self._distinct(data, "template"):
            if value in nulls:
                continue
            oid, name = split(value)
            templates.append((value, oid, name, template_scope(name) if name else None))
        tables["templates"] = (
            {"text": "VARCHAR", "oid": "VARCHAR", "name": "VARCHAR", "scope": "VARCHAR"},
            templates,
        )
        names = [(v, template_scope(v)) for v in self._distinct(data, "template_name")]
        tables["names"] = ({"text": "VARCHAR", "scope": "VARCHAR"}, names)
        configs = [(v, _ca_name(v)) for v in self._distinct(data, "config_string")]
        tables["configs"] = ({"text": "VARCHAR", "name": "VARCHAR"}, configs)
        cn = self.cell("common_name")
        orphan = "true" if cn is None else f"{cn} IN ({self.nulls})"
        subjects = [
            (v, common_name(v)) for v in self._distinct(data, "subject", orphan) if v not in nulls
        ]
        tables["subjects"] = ({"text": "VARCHAR", "cn": "VARCHAR"}, subjects)
        dispositions: list[tuple[object, ...]] = []
        for value in self._distinct(data, "disposition"):
            if value.strip() in nulls:
                dispositions.append((value, None, True))
                continue
            try:
                dispositions.append((value, disposition_revoked(value), True))
            except ValueError:
                dispositions.append((value, None, False))
        tables["dispositions"] = (
            {"text": "VARCHAR", "revoked": "BOOLEAN", "ok": "BOOLEAN"},
            dispositions,
        )
        made: dict[str, str] = {}
        for kind, (columns, rows) in tables.items():
            table = self.name(kind)
            body = ", ".join(f"{c} {t}" for c, t in columns.items())
            self.db.execute(f"CREATE TABLE {table} ({body})")
            self.db.insert(table, columns, rows)
            made[kind] = table
        made["days"], made["clocks"] = self._dates(data)
        return made

    def _dates(self, data: str) -> tuple[str, str]:
        """CultureDates' own day and clock parsers over the distinct day and clock parts of
        the date cells: (day -> midnight UTC and, in the CA's zone, local midnight as UTC)."""
        fields = [f for f in _DATE_FIELDS if f in self.index]

        def distinct(part: str) -> list[str]:
            union = " UNION ".join(f"SELECT DISTINCT {f}_{part} AS t FROM {data}" for f in fields)
            if not union:
                return []
            return sorted(t for (t,) in self.db.rows(union) if isinstance(t, str))

        culture = self.plan.dialect.dates
        assert isinstance(culture, CultureDates)
        zone = culture._zone
        days: list[tuple[object, ...]] = []
        for text in distinct("day"):
            try:
                midnight = culture._day(text)
            except (ValueError, OverflowError):
                days.append((text, None, None))
                continue
            local = None
            if zone is not UTC and 1 < midnight.year < 9999:
                naive = midnight.replace(tzinfo=None)
                start = zone.utcoffset(naive)
                end = zone.utcoffset(naive + timedelta(days=1, microseconds=-1))
                if start is not None and start == end:
                    local = micros(midnight - start)
            days.append((text, micros(midnight), local))
        clocks: list[tuple[object, ...]] = []
        for text in distinct("clock"):
            try:
                clocks.append((text, culture._clock(text) // timedelta(microseconds=1)))
            except (ValueError, OverflowError):
                clocks.append((text, None))
        day_table, clock_table = self.name("days"), self.name("clocks")
        day_columns = {"text": "VARCHAR", "utc": "BIGINT", "local": "BIGINT"}
        clock_columns = {"text": "VARCHAR", "micros": "BIGINT"}
        for table, columns, rows in (
            (day_table, day_columns, days),
            (clock_table, clock_columns, clocks),
        ):
            body = ", ".join(f"{c} {t}" for c, t in columns.items())
            self.db.execute(f"CREATE TEMP TABLE {table} ({body})")
            self.db.insert(table, columns, rows)
        return day_table, clock_table

    def _date_columns(self) -> tuple[str, str]:
        """Per date cell, what CultureDates splits it into: whether a UTC suffix names the
        zone, the day part, the clock part, and whether nothing else (a '. ' in cs-CZ dates,
        a space that rstrip() would remove) could change them. Two select lists: over the
        cells, then over those."""
        first, second = ["*"], ["*"]
        for field in _DATE_FIELDS:
            cell = self.cell(field)
            if cell is None:
                continue
            four = " OR ".join(f"suffix({cell}, ' {z}')" for z in ("GMT", "UTC", "gmt", "utc"))
            two = f"suffix({cell}, ' Z') OR suffix({cell}, ' z')"
            first.append(
                f"coalesce({four} OR {two}, false) AS {field}_zoned, CASE WHEN {four} THEN "
                f"{cell}[1:-5] WHEN {two} THEN {cell}[1:-3] ELSE {cell} END AS {field}_body"
            )
            body = f"{field}_body"
            day = f"split_part({body}, ' ', 1)"
            second.append(
                f"{day} AS {field}_day, CASE WHEN contains({body}, ' ') THEN "
                f"{body}[length({day}) + 2:] ELSE '' END AS {field}_clock, "
                f"coalesce(NOT contains({body}, '. ') AND (NOT {field}_zoned OR "
                f"(length({body}) > 0 AND ord({body}[-1]) BETWEEN 33 AND 126)), false) "
                f"AS {field}_plain"
            )
        return ", ".join(first), ", ".join(second)

    def _conversion(self, maps: dict[str, str]) -> tuple[str, str, str]:
        """The SQL over a data line ``v``: the joins, the test that SQL converts the line
        exactly as the converter would, and the ca table's columns after ``seq``."""
        plan = self.plan
        serial = self.cell("serial")
        assert serial is not None
        joins = []
        dates: dict[str, str] = {}
        checks = ["v.static"]
        thumb = self.text("thumbprint", "v.")
        thumb_bare = f"replace({thumb}, ' ', '')"
        culture = plan.dialect.dates
        assert isinstance(culture, CultureDates)
        utc = culture._zone is UTC
        for field, alias in zip(_DATE_FIELDS, ("nb", "na", "rv"), strict=True):
            cell = self.cell(field)
            if cell is None:
                dates[field] = "NULL::BIGINT"
                continue
            day, clock = f"{alias}d", f"{alias}k"
            joins.append(f"LEFT JOIN {maps['days']} {day} ON {day}.text = v.{field}_day")
            joins.append(f"LEFT JOIN {maps['clocks']} {clock} ON {clock}.text = v.{field}_clock")
            midnight = (
                f"{day}.utc"
                if utc
                else f"CASE WHEN v.{field}_zoned THEN {day}.utc ELSE {day}.local END"
            )
            dates[field] = (
                f"CASE WHEN v.{cell} IN ({self.nulls}) THEN NULL "
                f"ELSE {midnight} + {clock}.micros END"
            )
            checks.append(
                f"(v.{cell} IN ({self.nulls}) OR (({midnight}) IS NOT NULL "
                f"AND {clock}.micros IS NOT NULL))"
            )
        disposition = self.cell("disposition")
        revoked = "NULL::BOOLEAN"
        if disposition is not None:
            joins.append(f"LEFT JOIN {maps['dispositions']} dm ON dm.text = v.{disposition}")
            revoked = "dm.revoked"
            checks.append("dm.ok")
        revoked_at = (
            f"CASE WHEN {revoked} AND ({dates['revoked_at']}) IS NULL "
            f"THEN coalesce({dates['not_before']}, 0) WHEN NOT {revoked} THEN NULL "
            f"ELSE {dates['revoked_at']} END"
        )
        request = self.text("request_id", "v.")
        template = self.cell("template")
        template = "NULL::VARCHAR" if template is None else f"v.{template}"
        joins.append(f"LEFT JOIN {maps['templates']} tm ON tm.text = {template}")
        joins.append(
            f"LEFT JOIN {maps['names']} tn ON tn.text = {self.text('template_name', 'v.')}"
        )
        joins.append(
            f"LEFT JOIN {maps['configs']} cm ON cm.text = {self.text('config_string', 'v.')}"
        )
        joins.append(f"LEFT JOIN {maps['subjects']} sm ON sm.text = {self.text('subject', 'v.')}")
        name = self.text("template_name", "v.")
        default = "NULL" if plan.issuer is None else _quote(plan.issuer)
        scope = f"CASE WHEN {name} IS NOT NULL THEN tn.scope ELSE tm.scope END"
        columns = {
            "serial": f"coalesce(nullif(ltrim(upper(v.{serial}), '0'), ''), '0')",
            "thumbprint": f"upper({thumb_bare})",
            "issuer": f"coalesce({self.text('issuer', 'v.')}, {default}, cm.name)",
            "subject": self.text("subject", "v."),
            "common_name": f"coalesce({self.text('common_name', 'v.')}, sm.cn)",
            "requester": self.text("requester", "v."),
            "template_oid": f"coalesce({self.text('template_oid', 'v.')}, tm.oid)",
            "template_name": f"coalesce({name}, tm.name)",
            "request_id": self._request_id(request),
            "not_before": dates["not_before"],
            "not_after": dates["not_after"],
            "revoked_at": revoked_at,
            "source": _quote(plan.source),
            "line": "v.line",
            "san": f"coalesce({self.text('san', 'v.')}, 'UPN=' || {self.text('upn', 'v.')})",
            "out_of_scope": scope,
            "managed_device_id": "NULL::VARCHAR",
            "cloud_pki_leaf_id": "NULL::VARCHAR",
        }
        body = ", ".join(f"{sql} AS {column}" for column, sql in columns.items())
        return " ".join(joins), f"coalesce({' AND '.join(checks)}, false)", body

    def _convert(
        self, cells: str, facts: Facts
    ) -> tuple[int, int, list[Reject], InputFile | None, InputError | None]:
        db = self.db
        data = self._data(cells)
        joins, fast, columns = self._conversion(self._maps(data))
        used = ", ".join(f"v.c{i}" for i in self.used)
        slow = db.rows(
            f"SELECT v.line, v.l, v.width, {used} FROM {data} v {joins} WHERE NOT {fast} "
            "ORDER BY v.line"
        )
        records, rejects, trailers, error = self._python_rows(slow, facts)
        slow_lines = [line for line, *_ in slow]
        miscounted = self._miscounted(cells, slow_lines, trailers)
        stop = None
        if miscounted is not None:
            # The reader raises at that trailer: what follows it was never yielded.
            error, stop = miscounted, miscounted.line
            assert stop is not None
            rejects = [r for r in rejects if r.line < stop]
            records = [r for r in records if r.line < stop]
            slow_lines = [line for line in slow_lines if line < stop]
        limit = "" if stop is None else f" AND v.line < {stop}"
        header = self.plan.header_line
        before = "" if stop is None else f" AND line < {stop}"
        blank = db.rows(f"SELECT line FROM {cells} WHERE blank AND line > {header}{before}")
        kept = {r.line for r in records}
        holes = sorted([line for (line,) in blank] + [n for n in slow_lines if n not in kept])
        first = self.seq_start - header - 1
        db.insert(
            "ca",
            CA_COLUMNS,
            (ca_row(r, first + r.line - bisect.bisect_left(holes, r.line)) for r in records),
        )
        seq, seq_join = self._seq(first, holes)
        names = ", ".join(_OUTPUT)
        db.execute(
            f"INSERT INTO ca (seq, {names}) SELECT {seq}, {columns} FROM {data} v {joins} "
            f"{seq_join} WHERE {fast}{limit}"
        )
        ((lines,),) = db.rows(f"SELECT count(*) FROM {data} v WHERE true{limit}")
        in_sql = lines - len(slow_lines)
        certificates = in_sql + len(records)
        log.debug(
            "%s: %d certificates converted in SQL, %d lines through the converter",
            self.plan.source,
            in_sql,
            len(slow_lines),
        )
        if error is not None:
            return certificates, in_sql, rejects, None, error
        input_file = InputFile(
            path=self.plan.source,
            kind="ca-export",
            format=self.plan.format,
            sha256=facts.sha256,
            rows=certificates + len(rejects),
            rejected=len(rejects),
        )
        return certificates, in_sql, rejects, input_file, None

    def _seq(self, first: int, holes: list[int]) -> tuple[str, str]:
        """``seq`` of a converted line: its place among the file's certificates, counted past
        the lines before it that are none (blank, skipped or rejected)."""
        if len(holes) <= _INLINE_HOLES:
            before = " + ".join(f"(v.line > {h})::BIGINT" for h in holes) or "0"
            return f"{first} + v.line - ({before})", ""
        table = self.name("holes")
        self.db.execute(f"CREATE TEMP TABLE {table} (line BIGINT, before BIGINT)")
        self.db.insert(
            table, {"line": "BIGINT", "before": "BIGINT"}, ((h, i + 1) for i, h in enumerate(holes))
        )
        seq = f"{first} + v.line - coalesce(h.before, 0)"
        return seq, f"ASOF LEFT JOIN {table} h ON v.line >= h.line"

    def _python_rows(
        self, slow: Sequence[tuple[object, ...]], facts: Facts
    ) -> tuple[list[CaCertificate], list[Reject], list[tuple[int, int]], InputError | None]:
        """The lines SQL did not convert, as the reader's record loop treats one-line records.

        Returns records, rejects, the (line, stated count) of each counting trailer, and the
        cut-short error of a last line without a line break (raised after every row)."""
        plan = self.plan
        convert = plan.convert
        records: list[CaCertificate] = []
        rejects: list[Reject] = []
        trailers: list[tuple[int, int]] = []
        error: InputError | None = None
        for line, text, width, *used in slow:
            assert isinstance(line, int) and isinstance(width, int)
            if text is None:
                # Plain, so its cells are known; the converter reads only these positions.
                cells = [""] * width
                for position, value in zip(self.used, used, strict=True):
                    if position < width:
                        cells[position] = str(value)
                text = '"'  # it started with a quote; nothing else of it is read
            else:
                assert isinstance(text, str)
                if not text.strip():
                    self._skipped.append(line)
                    continue
                cells = next(csv.reader([text], delimiter=plan.delimiter, strict=True), [])
            if skipped_line(text, cells, self.trailers):
                self._skipped.append(line)
                stated = stated_rows(text) if self.trailers else None
                if stated is not None:
                    trailers.append((line, stated))
                continue
            try:
                records.append(convert(cells, line))
            except ValueError as exc:
                rejects.append(Reject(plan.source, line, str(exc)))
            if line == facts.lines and not facts.ends_with_newline and len(cells) != self.width:
                error = cut_short(plan.source, line)
        return records, rejects, trailers, error

    def _miscounted(
        self, cells: str, slow: list[int], trailers: list[tuple[int, int]]
    ) -> InputError | None:
        """certutil's first "N Rows" line that does not count the records since the last one.

        Records are the non-blank lines SQL converted plus the Python rows that were not
        skipped, i.e. every non-blank line but the trailers and one-blank-cell lines."""
        if not trailers:
            return None
        starts = [self.plan.header_line, *(line for line, _ in trailers)]
        bounds = [
            (start, line, stated) for start, (line, stated) in zip(starts, trailers, strict=False)
        ]
        values = ", ".join(f"({i}, {a}, {b})" for i, (a, b, _) in enumerate(bounds))
        lines = dict(
            self.db.rows(
                f"SELECT t.i, count(c.line) FROM (VALUES {values}) t(i, a, b) LEFT JOIN "
                f"{self._data(cells)} c ON c.line > t.a AND c.line < t.b GROUP BY t.i"
            )
        )
        skipped = sorted(self._skipped)
        for i, (start, line, stated) in enumerate(bounds):
            counted = lines.get(i, 0) - sum(1 for n in skipped if start < n < line)
            if counted != stated:
                return incomplete(stated, counted, self.plan.source, line)
        return None
