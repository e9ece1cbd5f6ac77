"""CA exports read into the engine: certutil and PSPKI CSV files by DuckDB, line by line.

DuckDB reads the physical lines (UTF-8 or UTF-16LE), so each keeps its line number. A line in
the plain shape - cells either quoted without inner quotes or unquoted, nothing Python's
``strip()`` would remove, a hex serial, culture dates like ``5/5/2026 7:04 AM GMT`` - is
converted in SQL exactly as ``ca.table`` converts it. Any other line of the right shape (an odd
cell, a bad value, a trailer, a width mismatch) goes to the reader's own row function, so it
becomes the same record, reject or skipped line as always. Text rules (templates, dispositions,
CA names, CNs from subjects) run in Python once per distinct value.

A file with a line that is not a plain CSV record on its own (an embedded quote or line break,
a NUL, undecodable bytes) is read by the Python reader from start to end instead.
"""

from __future__ import annotations

import csv
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC

import duckdb

from reconcile.ca import CsvPlan
from reconcile.ca.columns import IGNORE
from reconcile.ca.dates import CultureDates, zone
from reconcile.ca.table import _ca_name, _Templates, disposition_revoked
from reconcile.engine.db import Database
from reconcile.engine.files import Facts, Scanner
from reconcile.engine.tables import CA_COLUMNS, ORDER_SPAN, ca_row
from reconcile.identity import common_name
from reconcile.model import CaCertificate, InputFile, Reject

NATIVE_FORMATS = frozenset({"certutil", "pspki"})
# TextSource's label -> (DuckDB's encoding, CR and LF as the file's bytes)
_ENCODINGS = {
    "utf-8": ("utf-8", b"\r", b"\n"),
    "utf-8-sig": ("utf-8", b"\r", b"\n"),
    "utf-16-le": ("utf-16", b"\r\x00", b"\n\x00"),
}
# ASCII characters str.strip() removes (besides space), then the other code points it removes.
_STRIP = "9, 10, 11, 12, 13, 28, 29, 30, 31, 32, 133, 160, 5760, 8192, 8193, 8194, 8195, 8196, "
_STRIP += "8197, 8198, 8199, 8200, 8201, 8202, 8232, 8233, 8239, 8287, 12288"
_HEX = "0123456789ABCDEF"
_DATE = (
    r"^([0-9]{1,2})/([0-9]{1,2})/([0-9]{4}) ([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?"
    r"(?: (AM|PM|am|pm|Am|aM|Pm|pM))?( GMT| UTC| Z| gmt| utc| z)?$"
)
_MAP = {"text": "VARCHAR", "a": "VARCHAR", "b": "VARCHAR", "c": "VARCHAR"}


@dataclass(frozen=True)
class Loaded:
    """What loading one export gave: its provenance and its rejects, in line order."""

    input_file: InputFile
    rejects: list[Reject]


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _unquoted(cell: str) -> str:
    return f"CASE WHEN {cell}[1] = '\"' THEN {cell}[2:-2] ELSE {cell} END"


def _regex_class(delimiter: str) -> str:
    return "\\" + delimiter if delimiter in r"\^]-[" else delimiter


def eligible(plan: CsvPlan) -> bool:
    dialect = plan.dialect
    return (
        plan.format in NATIVE_FORMATS
        and plan.encoding in _ENCODINGS
        and dialect.serial_base == 16
        and isinstance(dialect.dates, CultureDates)
        and plan.options.date_order in ("mdy", "dmy")
        and dialect.status_rule is None
        and len(plan.delimiter) == 1
        and plan.delimiter not in '"\r\n'
        and len(plan.header) > 1
    )


class _Sql:
    """SQL fragments for one export's columns."""

    def __init__(self, plan: CsvPlan):
        self.plan = plan
        fields = plan.dialect.fields_of(plan.header)
        self.index = {f: i for f, i in fields.items() if f != IGNORE}
        self.nulls = ", ".join(_quote(n) for n in sorted(plan.dialect.nulls)) or "NULL"
        self.utc = zone(plan.options.timezone) is UTC

    def cell(self, field: str) -> str | None:
        position = self.index.get(field)
        return None if position is None else f"c{position}"

    def text(self, field: str) -> str:
        cell = self.cell(field)
        if cell is None:
            return "NULL::VARCHAR"
        return f"CASE WHEN {cell} IN ({self.nulls}) THEN NULL ELSE {cell} END"

    def match(self, field: str) -> str | None:
        """The regexp_extract struct of a date cell, computed once a level below."""
        cell = self.cell(field)
        if cell is None:
            return None
        groups = "['a', 'b', 'y', 'h', 'mi', 's', 'ampm', 'tz']"
        return f"regexp_extract({cell}, {_quote(_DATE)}, {groups}) AS m_{field}"

    def date(self, field: str) -> tuple[str, str]:
        """(micros, ok) for a culture date cell, as CultureDates reads the plain shape."""
        cell = self.cell(field)
        if cell is None:
            return "NULL::BIGINT", "true"
        m = f"m_{field}"

        def number(part: str) -> str:
            return f"TRY_CAST({m}.{part} AS INTEGER)"

        first, second = ("a", "b") if self.plan.options.date_order == "mdy" else ("b", "a")
        ampm = f"upper({m}.ampm)"
        hour = (
            f"CASE WHEN {m}.ampm = '' THEN {number('h')} WHEN {ampm} = 'PM' "
            f"THEN {number('h')} % 12 + 12 ELSE {number('h')} % 12 END"
        )
        second_of_minute = f"coalesce({number('s')}, 0)"
        midnight = f"try(make_date({number('y')}, {number(first)}, {number(second)}))"
        valid = (
            f"{m}.y <> '' AND {midnight} IS NOT NULL AND {number('mi')} <= 59 "
            f"AND {second_of_minute} <= 59 AND (CASE WHEN {m}.ampm = '' "
            f"THEN {number('h')} <= 23 ELSE {number('h')} BETWEEN 1 AND 12 END)"
            + ("" if self.utc else f" AND {m}.tz <> ''")
        )
        parsed = (
            f"CASE WHEN {valid} THEN epoch_us({midnight}::TIMESTAMP) + "
            f"((({hour}) * 60 + {number('mi')}) * 60 + {second_of_minute})::BIGINT * 1000000 END"
        )
        micros = f"CASE WHEN {cell} IN ({self.nulls}) THEN NULL ELSE {parsed} END"
        ok = f"coalesce({cell} IN ({self.nulls}) OR ({parsed}) IS NOT NULL, false)"
        return micros, ok


def _spaced(cell: str) -> str:
    return f"coalesce(ord({cell}[1]) IN ({_STRIP}) OR ord({cell}[-1]) IN ({_STRIP}), false)"


def _conversion(plan: CsvPlan, group: int, source_sql: str) -> str:
    """One row per physical line: whether SQL converted it, and the ca table's columns."""
    sql = _Sql(plan)
    width = len(plan.header)
    d = _regex_class(plan.delimiter)
    cell_re = f'"[^"\\x00]*"|[^"{d}\\x00]*'
    simple = f"^(?:{cell_re})(?:{d}(?:{cell_re}))*$"
    split = f'{d}("[^"]*"|[^"{d}]*)'
    used = sorted(set(sql.index.values()))
    cells = ", ".join(f"{_unquoted(f'cells[{i + 1}]')} AS c{i}" for i in used)
    serial = sql.cell("serial")
    assert serial is not None
    thumb = sql.text("thumbprint")
    thumb_bare = f"replace({thumb}, ' ', '')"
    not_before, nb_ok = sql.date("not_before")
    not_after, na_ok = sql.date("not_after")
    revoked_text, rv_ok = sql.date("revoked_at")
    disp = sql.cell("disposition")
    revoked_flag = "NULL::BOOLEAN" if disp is None else "dm.a::BOOLEAN"
    disp_ok = "true" if disp is None else "dm.b IS NULL"
    revoked_at = (
        f"CASE WHEN ({revoked_flag}) = true AND ({revoked_text}) IS NULL "
        f"THEN coalesce({not_before}, 0) WHEN ({revoked_flag}) = false THEN NULL "
        f"ELSE {revoked_text} END"
    )
    template = sql.text("template")
    oid = f"coalesce({sql.text('template_oid')}, tm.a)"
    name = f"coalesce({sql.text('template_name')}, tm.b)"
    issuer_cell = sql.text("issuer")
    default = "NULL" if plan.options.issuer is None else _quote(plan.options.issuer)
    issuer = f"coalesce({issuer_cell}, {default}, cm.a)"
    subject = sql.text("subject")
    cn = f"coalesce({sql.text('common_name')}, sm.a)"
    request = sql.text("request_id")
    request_ok = "true"
    if plan.dialect.request_id is not None:
        request_ok = (
            f"({request} IS NULL OR NOT ((contains({request}, '(') AND suffix({request}, ')')) "
            f"OR {request}[1:2] IN ('0x', '0X')))"
        )
    san = f"coalesce({sql.text('san')}, 'UPN=' || {sql.text('upn')})"
    checks = " AND ".join(
        [
            "simple",
            f"len(cells) = {width}",
            *(f"NOT {_spaced(f'c{i}')}" for i in used),
            f"{serial} NOT IN ({sql.nulls})",
            f"ltrim(upper({serial}), '{_HEX}') = ''",
            f"length(ltrim({serial}, '0')) <= 80",
            f"({thumb} IS NULL OR (ltrim(upper({thumb_bare}), '{_HEX}') = '' "
            f"AND length({thumb_bare}) IN (40, 64)))",
            nb_ok,
            na_ok,
            rv_ok,
            disp_ok,
            request_ok,
        ]
    )
    joins = []
    if disp is not None:
        joins.append(f"LEFT JOIN dispositions_{group} dm ON dm.text = {disp}")
    joins.append(f"LEFT JOIN templates_{group} tm ON tm.text = {template}")
    joins.append(f"LEFT JOIN configs_{group} cm ON cm.text = {sql.text('config_string')}")
    joins.append(f"LEFT JOIN subjects_{group} sm ON sm.text = {subject}")
    matches = [m for m in (sql.match(f) for f in ("not_before", "not_after", "revoked_at")) if m]
    level = ", ".join(["*", *matches])
    return f"""
        SELECT l, coalesce({checks}, false) AS fast,
               coalesce(nullif(ltrim(upper({serial}), '0'), ''), '0') AS serial,
               upper({thumb_bare}) AS thumbprint, {issuer} AS issuer, {subject} AS subject,
               {cn} AS common_name, {sql.text("requester")} AS requester,
               {oid} AS template_oid, {name} AS template_name, {request} AS request_id,
               {not_before} AS not_before, {not_after} AS not_after,
               {revoked_at} AS revoked_at, {san} AS san
        FROM (SELECT {level} FROM (
            SELECT *, {cells} FROM (
                SELECT l, simple, CASE WHEN simple THEN
                    regexp_extract_all({_quote(plan.delimiter)} || l, {_quote(split)}, 1)
                    END AS cells
                FROM (SELECT l, regexp_full_match(l, {_quote(simple)}) AS simple FROM {source_sql})
            )
        )) {" ".join(joins)}
    """


def _python_maps(db: Database, plan: CsvPlan, group: int, lines: str) -> None:
    """Templates, dispositions, CA names and CNs of subjects, once per distinct cell."""
    sql = _Sql(plan)
    d = _regex_class(plan.delimiter)
    split = f'{d}("[^"]*"|[^"{d}]*)'
    cells = f"regexp_extract_all({_quote(plan.delimiter)} || l, {_quote(split)}, 1)"
    nulls = plan.dialect.nulls

    def distinct(field: str, stripped: bool = True) -> list[str]:
        position = sql.index.get(field)
        if position is None:
            return []
        cell = _unquoted(f"cells[{position + 1}]")
        rows = db.rows(f"SELECT DISTINCT {cell} FROM (SELECT {cells} AS cells FROM {lines})")
        values = [v for (v,) in rows if isinstance(v, str)]
        return [v for v in values if v.strip() not in nulls] if stripped else values

    templates = _Templates()
    maps: dict[str, list[tuple[object, ...]]] = {
        "templates": [(t, *templates(t), None) for t in distinct("template")],
        "configs": [(c, _ca_name(c), None, None) for c in distinct("config_string")],
        "subjects": [],
        "dispositions": [],
    }
    maps["subjects"] = [
        (s, common_name(s), None, None) for s in _orphan_subjects(db, sql, cells, lines)
    ]
    for text in distinct("disposition", stripped=False):
        try:
            revoked = disposition_revoked(text, nulls)
            maps["dispositions"].append(
                (text, None if revoked is None else str(revoked), None, None)
            )
        except ValueError as exc:
            maps["dispositions"].append((text, None, str(exc), None))
    for name, rows in maps.items():
        columns = ", ".join(f"{c} VARCHAR" for c in _MAP)
        db.execute(f"CREATE OR REPLACE TABLE {name}_{group} ({columns})")
        db.insert(f"{name}_{group}", _MAP, rows)


def _orphan_subjects(db: Database, sql: _Sql, cells: str, lines: str) -> list[str]:
    """Subjects of rows without a CN cell: the CN is taken from them (identity.common_name)."""
    subject = sql.index.get("subject")
    if subject is None:
        return []
    where = "true"
    cn = sql.index.get("common_name")
    if cn is not None:
        where = f"trim({_unquoted(f'cells[{cn + 1}]')}) IN ({sql.nulls})"
    rows = db.rows(
        f"SELECT DISTINCT {_unquoted(f'cells[{subject + 1}]')} "
        f"FROM (SELECT {cells} AS cells FROM {lines}) WHERE {where}"
    )
    return [v for (v,) in rows if isinstance(v, str) and v.strip() not in sql.plan.dialect.nulls]


def load_export(db: Database, plan: CsvPlan, group: int, facts: Facts) -> Loaded | None:
    """Load one export into the ca table; None when the Python reader must read it instead."""
    if facts.suspicious:
        return None
    encoding = _ENCODINGS[plan.encoding][0]
    lines = f"lines_{group}"
    try:
        db.execute(
            f"CREATE OR REPLACE TABLE {lines} AS SELECT l FROM read_csv(?, "
            f"columns={{'l': 'VARCHAR'}}, header=false, delim=E'\\x01', quote='', escape='', "
            f"encoding='{encoding}', "
            "auto_detect=false, new_line='\\r\\n', strict_mode=false)",
            [str(plan.path)],
        )
    except duckdb.Error:
        return None
    try:
        return _load(db, plan, group, facts, lines)
    finally:
        db.execute(f"DROP TABLE IF EXISTS {lines}")


def _load(db: Database, plan: CsvPlan, group: int, facts: Facts, lines: str) -> Loaded | None:
    d = _regex_class(plan.delimiter)
    cell_re = f'"[^"\\x00]*"|[^"{d}\\x00]*'
    simple = f"^(?:{cell_re})(?:{d}(?:{cell_re}))*$"
    start = plan.header_line
    ((count, odd),) = db.rows(
        f"SELECT count(*), count(*) FILTER (WHERE rowid + 1 > {start} AND l IS NOT NULL AND "
        f"(NOT regexp_full_match(l, {_quote(simple)}) OR contains(l, '\ufffd'))) FROM {lines}"
    )
    if count != facts.lines or odd:
        return None
    data = f"(SELECT l FROM {lines} WHERE rowid + 1 > {start})"
    _python_maps(db, plan, group, data)
    parsed = f"parsed_{group}"
    db.execute(f"CREATE OR REPLACE TABLE {parsed} AS {_conversion(plan, group, lines)}")
    columns = ", ".join(c for c in CA_COLUMNS if c not in ("seq", "source", "line"))
    db.execute(
        f"INSERT INTO ca (seq, source, line, {columns}) SELECT {group * ORDER_SPAN} + rowid + 1, "
        f"{_quote(str(plan.path))}, rowid + 1, {columns} FROM {parsed} "
        f"WHERE fast AND rowid + 1 > {start}"
    )
    ((fast,),) = db.rows(f"SELECT count(*) FROM {parsed} WHERE fast AND rowid + 1 > {start}")
    slow = db.rows(
        f"SELECT rowid + 1, l FROM {parsed} WHERE NOT fast AND rowid + 1 > {start} "
        "AND l IS NOT NULL ORDER BY 1"
    )
    db.execute(f"DROP TABLE {parsed}")
    for name in ("templates", "configs", "subjects", "dispositions"):
        db.execute(f"DROP TABLE {name}_{group}")
    rejects: list[Reject] = []
    rows = fast
    records: list[CaCertificate] = []
    for line, text in slow:
        cells = next(csv.reader([text], delimiter=plan.delimiter, strict=True), [])
        item = plan.row(cells, line)
        if item is None:
            continue
        rows += 1
        if isinstance(item, Reject):
            rejects.append(item)
        else:
            records.append(item)
    db.insert("ca", CA_COLUMNS, (ca_row(r, group * ORDER_SPAN + r.line) for r in records))
    return Loaded(
        InputFile(
            path=str(plan.path),
            kind="ca-export",
            format=plan.format,
            sha256=facts.sha256,
            rows=rows,
            rejected=len(rejects),
        ),
        rejects,
    )


def submit_scan(scanner: Scanner, plan: CsvPlan) -> Future[Facts]:
    """Start the byte scan of an export (hash, lines, lone CRs) before the engine reads it."""
    _, cr, lf = _ENCODINGS[plan.encoding]
    return scanner.submit(plan.path, (b"\x01" + lf[1:],), cr, lf)
