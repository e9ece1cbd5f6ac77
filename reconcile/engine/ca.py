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

import csv
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC

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
_DATE = (
    r"^(?:([0-9]{1,2})[/-]([0-9]{1,2})[/-]([0-9]{4})"
    r"|([0-9]{1,2})\.([0-9]{1,2})\.([0-9]{4})"
    r"|([0-9]{4})[/.-]([0-9]{1,2})[/.-]([0-9]{1,2}))"
    r"(?: ([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?(?: ([AaPp][Mm]))?)?"
    r"( GMT| UTC| Z| gmt| utc| z)?$"
)
_DATE_GROUPS = ["a", "b", "y", "dd", "dm", "dy", "iy", "im", "id", "h", "mi", "s", "ap", "tz"]
_DATE_FIELDS = ("not_before", "not_after", "revoked_at")
_OUTPUT = [c for c in CA_COLUMNS if c != "seq"]
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
                certificates, rejects, input_file, error = native
                return Loaded(
                    certificates,
                    rejects,
                    input_file,
                    error,
                    tuple(reader.notes),
                    reader.zone_note,
                    True,
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
    )


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _unquoted(cell: str) -> str:
    return f"CASE WHEN starts_with({cell}, '\"') THEN {cell}[2:-2] ELSE {cell} END"


def _regex_class(delimiter: str) -> str:
    return "\\" + delimiter if delimiter in "\\^]-[" else delimiter


def _edges_plain(cell: str) -> str:
    """No character str.strip() could remove at either end (conservatively: printable ASCII)."""
    return f"({cell} = '' OR (ord({cell}[1]) BETWEEN 33 AND 126 AND ord({cell}[-1]) BETWEEN 33 AND 126))"


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

    def load(self, scanner: Scanner) -> tuple[int, list[Reject], InputFile | None, InputError | None] | None:
        duck_encoding, codec = _ENCODINGS[self.plan.encoding]
        future = scanner.submit(self.plan.path, codec)
        try:
            cells = self._read_lines(duck_encoding)
            facts = future.result()
            if cells is None or facts.suspicious or not self._trusted(cells, facts):
                return None
            return self._convert(cells, facts)
        finally:
            for table in reversed(self.tables):
                self.db.execute(f"DROP TABLE IF EXISTS {table}")

    def _read_lines(self, encoding: str) -> str | None:
        """The file's lines as rows (rowid + 1 = line), split into the cells the converter reads."""
        table = self.name("cells")
        delimiter = _quote(self.plan.delimiter)
        parts = ", ".join(f"{_unquoted(f'parts[{i + 1}]')} AS c{i}" for i in self.used)
        # A plain line keeps no text when it starts with a quote: it is neither blank nor a
        # trailer, and its used cells are all the converter reads.
        keep = "NOT plain OR NOT lead"
        sql = f"""
            CREATE TABLE {table} AS
            SELECT l IS NULL AS blank, plain, lead, ok, CASE WHEN {keep} THEN l END AS l,
                   len(parts) AS width, {parts}
            FROM (SELECT *, CASE WHEN plain THEN string_split(l, {delimiter})
                                 WHEN ok THEN regexp_extract_all({delimiter} || l,
                                     {_quote(self.split)}, 1) END AS parts
                  FROM (SELECT l, plain, coalesce(starts_with(l, '"'), false) AS lead,
                               l IS NULL OR (length(l) <= {_LINE_LIMIT}
                                   AND NOT contains(l, chr(13))
                                   AND (plain OR regexp_full_match(l, {_quote(self.simple)})))
                               AS ok
                        FROM (SELECT l, coalesce(regexp_full_match(l, {_quote(self.plain)}),
                                                 false) AS plain
                              FROM read_csv(?, columns={{'l': 'VARCHAR'}}, header=false,
                                   delim=chr(1), quote='', escape='', encoding='{encoding}',
                                   auto_detect=false, strict_mode=false,
                                   max_line_size={4 * _LINE_LIMIT}))))
        """
        self.db.execute("SET preserve_insertion_order = true")
        try:
            self.db.execute(sql, [str(self.plan.path)])
        except duckdb.Error:
            return None
        finally:
            self.db.execute("SET preserve_insertion_order = false")
        return table

    def _trusted(self, cells: str, facts: Facts) -> bool:
        ((count, odd),) = self.db.rows(
            f"SELECT count(*), count(*) FILTER (WHERE rowid + 1 > {self.plan.header_line} "
            f"AND NOT ok) FROM {cells}"
        )
        return bool(count == facts.lines and not odd)

    def _data(self, cells: str) -> str:
        return f"(SELECT rowid + 1 AS line, * FROM {cells} WHERE rowid + 1 > {self.plan.header_line} AND NOT blank)"

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
        tables: dict[str, tuple[dict[str, str], list[tuple[object, ...]]]] = {}
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
        made["dates"] = self._dates(data)
        return made

    def _dates(self, data: str) -> str:
        """Distinct date cells: plain shapes parsed in SQL, the rest by the reader's parser."""
        table = self.name("dates")
        cells = [c for c in (self.cell(f) for f in _DATE_FIELDS) if c is not None]
        union = " UNION ".join(f"SELECT {c} AS text FROM {data}" for c in cells)
        if not union:
            union = "SELECT NULL::VARCHAR AS text WHERE false"
        self.db.execute(
            f"CREATE TABLE {table} AS SELECT text, {self._date_sql()} AS micros "
            f"FROM (SELECT text, regexp_extract(text, {_quote(_DATE)}, {_DATE_GROUPS!r}) AS m "
            f"FROM ({union}) WHERE text IS NOT NULL AND text NOT IN ({self.nulls}))"
        )
        parse = self.plan.dialect.dates
        parsed: list[tuple[object, ...]] = []
        for (value,) in self.db.rows(f"SELECT text FROM {table} WHERE micros IS NULL"):
            try:
                parsed.append((value, micros(parse(value)), True))
            except ValueError:
                parsed.append((value, None, False))
        extra = self.name("dates_py")
        columns = {"text": "VARCHAR", "micros": "BIGINT", "ok": "BOOLEAN"}
        self.db.execute(f"CREATE TABLE {extra} (text VARCHAR, micros BIGINT, ok BOOLEAN)")
        self.db.insert(extra, columns, parsed)
        final = self.name("dates_all")
        self.db.execute(
            f"CREATE TABLE {final} AS SELECT d.text, coalesce(d.micros, p.micros) AS micros, "
            f"d.micros IS NOT NULL OR coalesce(p.ok, false) AS ok "
            f"FROM {table} d LEFT JOIN {extra} p ON p.text = d.text"
        )
        return final

    def _date_sql(self) -> str:
        """CultureDates' arithmetic for the shapes of _DATE; NULL where Python must decide."""

        def number(group: str) -> str:
            return f"TRY_CAST(nullif(m.{group}, '') AS INTEGER)"

        order = self.plan.date_order
        if order == "mdy":
            month, day = number("a"), number("b")
        elif order == "dmy":
            month, day = number("b"), number("a")
        else:  # ymd: a short first field is a two-digit year; Python decides
            month = day = "NULL::INTEGER"
        year = f"coalesce({number('y')}, {number('dy')}, {number('iy')})"
        month = f"CASE WHEN m.y <> '' THEN {month} WHEN m.dy <> '' THEN {number('dm')} ELSE {number('im')} END"
        day = f"CASE WHEN m.y <> '' THEN {day} WHEN m.dy <> '' THEN {number('dd')} ELSE {number('id')} END"
        hour = number("h")
        clock_hour = (
            f"CASE WHEN m.ap = '' THEN {hour} WHEN upper(m.ap) = 'PM' "
            f"THEN {hour} % 12 + 12 ELSE {hour} % 12 END"
        )
        minute, second = number("mi"), f"coalesce({number('s')}, 0)"
        midnight = f"try(make_date({year}, {month}, {day}))"
        utc = isinstance(self.plan.dialect.dates, CultureDates) and self._zone_is_utc()
        valid = " AND ".join(
            [
                f"{year} >= 1",
                f"{midnight} IS NOT NULL",
                f"(m.h = '' OR ({minute} <= 59 AND {second} <= 59 AND CASE WHEN m.ap = '' "
                f"THEN {hour} <= 23 ELSE {hour} BETWEEN 1 AND 12 END))",
                "true" if utc else "m.tz <> ''",
            ]
        )
        offset = f"CASE WHEN m.h = '' THEN 0 ELSE (({clock_hour}) * 60 + {minute}) * 60 + {second} END"
        return (
            f"CASE WHEN m.y || m.dy || m.iy <> '' AND {valid} THEN "
            f"epoch_us({midnight}::TIMESTAMP) + ({offset})::BIGINT * 1000000 END"
        )

    def _zone_is_utc(self) -> bool:
        dates = self.plan.dialect.dates
        assert isinstance(dates, CultureDates)
        return dates._zone is UTC

    def _conversion(self, cells: str, maps: dict[str, str]) -> str:
        """One row per data line: whether SQL converted it, and the ca table's columns."""
        plan = self.plan
        serial = self.cell("serial")
        assert serial is not None
        joins = []
        dates: dict[str, str] = {}
        checks = [f"v.width = {self.width}"]
        if self.trailers:
            checks.append("v.lead")
        checks += [_edges_plain(f"v.c{i}") for i in self.used]
        checks += [
            f"v.{serial} NOT IN ({self.nulls})",
            f"regexp_full_match(v.{serial}, '{_HEX}+')",
            f"length(ltrim(v.{serial}, '0')) <= 80",
        ]
        thumb = self.text("thumbprint", "v.")
        thumb_bare = f"replace({thumb}, ' ', '')"
        checks.append(
            f"({thumb} IS NULL OR regexp_full_match({thumb_bare}, '{_HEX}{{40}}|{_HEX}{{64}}'))"
        )
        for field, alias in zip(_DATE_FIELDS, ("nb", "na", "rv"), strict=True):
            cell = self.cell(field)
            if cell is None:
                dates[field] = "NULL::BIGINT"
                continue
            joins.append(f"LEFT JOIN {maps['dates']} {alias} ON {alias}.text = v.{cell}")
            dates[field] = f"CASE WHEN v.{cell} IN ({self.nulls}) THEN NULL ELSE {alias}.micros END"
            checks.append(f"(v.{cell} IN ({self.nulls}) OR {alias}.ok)")
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
        if plan.dialect.request_id is not None:
            checks.append(
                f"({request} IS NULL OR NOT ((contains({request}, '(') AND suffix({request}, ')'))"
                f" OR {request}[1:2] IN ('0x', '0X')))"
            )
        template = self.cell("template")
        template = "NULL::VARCHAR" if template is None else f"v.{template}"
        joins.append(f"LEFT JOIN {maps['templates']} tm ON tm.text = {template}")
        joins.append(f"LEFT JOIN {maps['names']} tn ON tn.text = {self.text('template_name', 'v.')}")
        joins.append(f"LEFT JOIN {maps['configs']} cm ON cm.text = {self.text('config_string', 'v.')}")
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
            "request_id": request,
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
        return (
            f"SELECT coalesce({' AND '.join(checks)}, false) AS fast, {body} "
            f"FROM {self._data(cells)} v {' '.join(joins)}"
        )

    def _convert(
        self, cells: str, facts: Facts
    ) -> tuple[int, list[Reject], InputFile | None, InputError | None]:
        db = self.db
        maps = self._maps(self._data(cells))
        parsed = self.name("parsed")
        db.execute(f"CREATE TABLE {parsed} AS {self._conversion(cells, maps)}")
        used = ", ".join(f"v.c{i}" for i in self.used)
        slow = db.rows(
            f"SELECT v.line, v.l, v.width, {used} FROM {self._data(cells)} v "
            f"JOIN (SELECT line FROM {parsed} WHERE NOT fast) USING (line) ORDER BY v.line"
        )
        records, rejects, trailers, error = self._python_rows(slow, facts)
        miscounted = self._miscounted(parsed, records, rejects, trailers)
        limit = "true"
        if miscounted is not None:
            # The reader raises at that trailer: what follows it was never yielded.
            error = miscounted
            stop = miscounted.line
            assert stop is not None
            rejects = [r for r in rejects if r.line < stop]
            records = [r for r in records if r.line < stop]
            limit = f"line < {stop}"
        python = self.name("python")
        body = ", ".join(f"{c} {CA_COLUMNS[c]}" for c in CA_COLUMNS)
        db.execute(f"CREATE TABLE {python} ({body})")
        db.insert(python, CA_COLUMNS, (ca_row(r, 0) for r in records))
        columns = ", ".join(_OUTPUT)
        db.execute(
            f"INSERT INTO ca (seq, {columns}) SELECT {self.seq_start - 1} + row_number() OVER "
            f"(ORDER BY line), {columns} FROM (SELECT {columns} FROM {parsed} WHERE fast AND "
            f"{limit} UNION ALL SELECT {columns} FROM {python} WHERE {limit})"
        )
        ((fast,),) = db.rows(f"SELECT count(*) FROM {parsed} WHERE fast AND {limit}")
        certificates = fast + len(records)
        if error is not None:
            return certificates, rejects, None, error
        input_file = InputFile(
            path=self.plan.source,
            kind="ca-export",
            format=self.plan.format,
            sha256=facts.sha256,
            rows=certificates + len(rejects),
            rejected=len(rejects),
        )
        return certificates, rejects, input_file, None

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
                    continue
                cells = next(csv.reader([text], delimiter=plan.delimiter, strict=True), [])
            if skipped_line(text, cells, self.trailers):
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
        self,
        parsed: str,
        records: list[CaCertificate],
        rejects: list[Reject],
        trailers: list[tuple[int, int]],
    ) -> InputError | None:
        """certutil's first "N Rows" line that does not count the records since the last one."""
        if not trailers:
            return None
        starts = [0, *(line for line, _ in trailers)]
        bounds = [(start, line, stated) for start, (line, stated) in zip(starts, trailers)]
        values = ", ".join(f"({i}, {a}, {b})" for i, (a, b, _) in enumerate(bounds))
        fast = dict(
            self.db.rows(
                f"SELECT t.i, count(p.line) FROM (VALUES {values}) t(i, a, b) LEFT JOIN "
                f"(SELECT line FROM {parsed} WHERE fast) p ON p.line > t.a AND p.line < t.b "
                "GROUP BY t.i"
            )
        )
        lines = sorted([r.line for r in records] + [r.line for r in rejects])
        for i, (start, line, stated) in enumerate(bounds):
            counted = fast.get(i, 0) + sum(1 for n in lines if start < n < line)
            if counted != stated:
                return incomplete(stated, counted, self.plan.source, line)
        return None
