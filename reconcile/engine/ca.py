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
    """SQL fragments for one export's columns, over the cells view (c<position> columns)."""

    def __init__(self, plan: CsvPlan, group: int):
        self.plan = plan
        self.group = group
        fields = plan.dialect.fields_of(plan.header)
        self.index = {f: i for f, i in fields.items() if f != IGNORE}
        # Position 0 always: a one-cell line (blank or trailer) is judged by it.
        self.used = sorted({0, *self.index.values()})
        self.nulls = ", ".join(_quote(n) for n in sorted(plan.dialect.nulls)) or "NULL"
        self.utc = zone(plan.options.timezone) is UTC
        d = _regex_class(plan.delimiter)
        # A cell quoted without inner quotes, or unquoted without quotes: csv.reader's cells.
        self.simple = f'^(?:"[^"\x00]*"|[^"{d}\x00]*)(?:{d}(?:"[^"\x00]*"|[^"{d}\x00]*))*$'
        # The same without the delimiter inside quotes: then string_split gives the cells.
        self.plain = f'^(?:"[^"{d}\x00]*"|[^"{d}\x00]*)(?:{d}(?:"[^"{d}\x00]*"|[^"{d}\x00]*))*$'
        self.split = f'{d}("[^"]*"|[^"{d}]*)'

    def cell(self, field: str) -> str | None:
        position = self.index.get(field)
        return None if position is None else f"c{position}"

    def text(self, field: str) -> str:
        cell = self.cell(field)
        if cell is None:
            return "NULL::VARCHAR"
        return f"CASE WHEN {cell} IN ({self.nulls}) THEN NULL ELSE {cell} END"

    def cells_table(self, lines: str) -> str:
        """Lines split into their used cells (plain lines by string_split, cheap); other
        lines keep their text for the view below."""
        parts = ", ".join(f"{_unquoted(f'parts[{i + 1}]')} AS c{i}" for i in self.used)
        delimiter = _quote(self.plan.delimiter)
        return f"""
            SELECT l IS NULL AS blank, plain, CASE WHEN NOT plain THEN l END AS l,
                   len(parts) AS width, {parts}
            FROM (SELECT l, plain,
                         CASE WHEN plain THEN string_split(l, {delimiter}) END AS parts
                  FROM (SELECT l, coalesce(regexp_full_match(l, {_quote(self.plain)}), false)
                               AS plain FROM {lines}))
        """

    def cells_view(self, table: str) -> str:
        """Every line's cells, the non-plain ones split by the (slower) quote-aware regex."""
        delimiter = _quote(self.plan.delimiter)
        columns = ", ".join(
            f"CASE WHEN plain THEN c{i} ELSE {_unquoted(f'parts[{i + 1}]')} END AS c{i}"
            for i in self.used
        )
        return f"""
            SELECT rowid + 1 AS line, blank, plain, l,
                   CASE WHEN plain THEN width ELSE len(parts) END AS width, {columns}
            FROM (SELECT rowid, *, CASE WHEN NOT plain AND NOT blank THEN regexp_extract_all(
                      {delimiter} || l, {_quote(self.split)}, 1) END AS parts FROM {table})
        """

    def date_values(self, view: str) -> str:
        """Distinct date cells parsed once: (text, micros); micros NULL when not plain."""
        cells = [self.cell(f) for f in ("not_before", "not_after", "revoked_at")]
        union = " UNION ".join(f"SELECT DISTINCT {c} AS text FROM {view}" for c in cells if c)
        if not union:
            return "SELECT NULL::VARCHAR AS text, NULL::BIGINT AS micros WHERE false"
        m = "m"

        def number(part: str) -> str:
            return f"TRY_CAST({m}.{part} AS INTEGER)"

        first, second = ("a", "b") if self.plan.options.date_order == "mdy" else ("b", "a")
        hour = (
            f"CASE WHEN {m}.ampm = '' THEN {number('h')} WHEN upper({m}.ampm) = 'PM' "
            f"THEN {number('h')} % 12 + 12 ELSE {number('h')} % 12 END"
        )
        seconds = f"coalesce({number('s')}, 0)"
        midnight = f"try(make_date({number('y')}, {number(first)}, {number(second)}))"
        valid = (
            f"{m}.y <> '' AND {midnight} IS NOT NULL AND {number('mi')} <= 59 "
            f"AND {seconds} <= 59 AND (CASE WHEN {m}.ampm = '' "
            f"THEN {number('h')} <= 23 ELSE {number('h')} BETWEEN 1 AND 12 END)"
            + ("" if self.utc else f" AND {m}.tz <> ''")
        )
        groups = "['a', 'b', 'y', 'h', 'mi', 's', 'ampm', 'tz']"
        return f"""
            SELECT text, CASE WHEN {valid} THEN epoch_us({midnight}::TIMESTAMP) +
                   ((({hour}) * 60 + {number("mi")}) * 60 + {seconds})::BIGINT * 1000000
                   END AS micros
            FROM (SELECT text, regexp_extract(text, {_quote(_DATE)}, {groups}) AS m
                  FROM ({union}) WHERE text IS NOT NULL AND text NOT IN ({self.nulls}))
        """


def _spaced(cell: str) -> str:
    """Whether str.strip() could change the cell: a first or last character outside printable
    ASCII (conservative: such a row goes through Python)."""
    return (
        f"coalesce({cell} <> '' AND (ord({cell}[1]) NOT BETWEEN 33 AND 126 "
        f"OR ord({cell}[-1]) NOT BETWEEN 33 AND 126), false)"
    )


def _conversion(sql: _Sql, view: str) -> str:
    """One row per physical line: whether SQL converted it, and the ca table's columns."""
    plan, group = sql.plan, sql.group
    width = len(plan.header)
    serial = sql.cell("serial")
    assert serial is not None
    thumb = sql.text("thumbprint")
    thumb_bare = f"replace({thumb}, ' ', '')"
    dates = {}
    date_checks = []
    joins = []
    for field, alias in (("not_before", "nb"), ("not_after", "na"), ("revoked_at", "rv")):
        cell = sql.cell(field)
        if cell is None:
            dates[field] = "NULL::BIGINT"
            continue
        joins.append(f"LEFT JOIN dates_{group} {alias} ON {alias}.text = {cell}")
        dates[field] = f"CASE WHEN {cell} IN ({sql.nulls}) THEN NULL ELSE {alias}.micros END"
        date_checks.append(f"({cell} IN ({sql.nulls}) OR {alias}.micros IS NOT NULL)")
    disp = sql.cell("disposition")
    revoked_flag = "NULL::BOOLEAN" if disp is None else "dm.a::BOOLEAN"
    disp_ok = "true" if disp is None else "dm.b IS NULL"
    if disp is not None:
        joins.append(f"LEFT JOIN dispositions_{group} dm ON dm.text = {disp}")
    revoked_at = (
        f"CASE WHEN ({revoked_flag}) = true AND ({dates['revoked_at']}) IS NULL "
        f"THEN coalesce({dates['not_before']}, 0) WHEN ({revoked_flag}) = false THEN NULL "
        f"ELSE {dates['revoked_at']} END"
    )
    joins.append(f"LEFT JOIN templates_{group} tm ON tm.text = {sql.text('template')}")
    joins.append(f"LEFT JOIN configs_{group} cm ON cm.text = {sql.text('config_string')}")
    joins.append(f"LEFT JOIN subjects_{group} sm ON sm.text = {sql.text('subject')}")
    oid = f"coalesce({sql.text('template_oid')}, tm.a)"
    name = f"coalesce({sql.text('template_name')}, tm.b)"
    default = "NULL" if plan.options.issuer is None else _quote(plan.options.issuer)
    issuer = f"coalesce({sql.text('issuer')}, {default}, cm.a)"
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
            f"width = {width}",
            *(f"NOT {_spaced(f'c{i}')}" for i in sql.used),
            f"{serial} NOT IN ({sql.nulls})",
            f"ltrim(upper({serial}), '{_HEX}') = ''",
            f"length(ltrim({serial}, '0')) <= 80",
            f"({thumb} IS NULL OR (ltrim(upper({thumb_bare}), '{_HEX}') = '' "
            f"AND length({thumb_bare}) IN (40, 64)))",
            *date_checks,
            disp_ok,
            request_ok,
        ]
    )
    return f"""
        SELECT v.line, v.l, v.plain, coalesce({checks}, false) AS fast,
               coalesce(nullif(ltrim(upper({serial}), '0'), ''), '0') AS serial,
               upper({thumb_bare}) AS thumbprint, {issuer} AS issuer,
               {sql.text("subject")} AS subject, {cn} AS common_name,
               {sql.text("requester")} AS requester, {oid} AS template_oid,
               {name} AS template_name, {request} AS request_id,
               {dates["not_before"]} AS not_before, {dates["not_after"]} AS not_after,
               {revoked_at} AS revoked_at, {san} AS san
        FROM {view} v {" ".join(joins)}
        WHERE v.line > {plan.header_line} AND NOT v.blank
    """


def _python_maps(db: Database, sql: _Sql, view: str) -> None:
    """Templates, dispositions, CA names and CNs of subjects, once per distinct cell; dates in
    SQL once per distinct cell."""
    plan, group = sql.plan, sql.group
    nulls = plan.dialect.nulls
    data = f"(SELECT * FROM {view} WHERE line > {plan.header_line} AND NOT blank)"

    def distinct(field: str, where: str = "true") -> list[str]:
        cell = sql.cell(field)
        if cell is None:
            return []
        rows = db.rows(f"SELECT DISTINCT {cell} FROM {data} WHERE {where}")
        return [v for (v,) in rows if isinstance(v, str)]

    templates = _Templates()
    maps: dict[str, list[tuple[object, ...]]] = {
        "templates": [(t, *templates(t), None) for t in distinct("template") if t not in nulls],
        "configs": [(c, _ca_name(c), None, None) for c in distinct("config_string")],
        "subjects": [],
        "dispositions": [],
    }
    cn = sql.cell("common_name")
    orphan = "true" if cn is None else f"{cn} IN ({sql.nulls})"
    maps["subjects"] = [
        (s, common_name(s), None, None) for s in distinct("subject", orphan) if s not in nulls
    ]
    for text in distinct("disposition"):
        try:
            revoked = disposition_revoked(text, nulls)
        except ValueError as exc:
            maps["dispositions"].append((text, None, str(exc), None))
            continue
        maps["dispositions"].append((text, None if revoked is None else str(revoked), None, None))
    columns = ", ".join(f"{c} VARCHAR" for c in _MAP)
    for name, rows in maps.items():
        db.execute(f"CREATE OR REPLACE TABLE {name}_{group} ({columns})")
        db.insert(f"{name}_{group}", _MAP, rows)
    db.execute(f"CREATE OR REPLACE TABLE dates_{group} AS {sql.date_values(data)}")


def load_export(db: Database, plan: CsvPlan, group: int, future: Future[Facts]) -> Loaded | None:
    """Load one export into the ca table; None when the Python reader must read it instead.
    DuckDB splits the lines while the byte pass hashes the file."""
    encoding = _ENCODINGS[plan.encoding][0]
    sql = _Sql(plan, group)
    cells = f"cells_{group}"
    lines = (
        "read_csv(?, columns={'l': 'VARCHAR'}, header=false, delim=E'\\x01', quote='', "
        f"escape='', encoding='{encoding}', auto_detect=false, new_line='\\r\\n', "
        "strict_mode=false)"
    )
    try:
        db.execute_in_order(
            f"CREATE OR REPLACE TABLE {cells} AS {sql.cells_table(lines)}", [str(plan.path)]
        )
    except duckdb.Error:
        return None
    facts = future.result()
    if facts.suspicious:
        db.execute(f"DROP TABLE {cells}")
        return None
    try:
        return _load(db, sql, facts, cells)
    finally:
        for name in ("cells", "templates", "configs", "subjects", "dispositions", "dates"):
            db.execute(f"DROP TABLE IF EXISTS {name}_{group}")
        db.execute(f"DROP VIEW IF EXISTS cells_view_{group}")


def _load(db: Database, sql: _Sql, facts: Facts, cells: str) -> Loaded | None:
    plan, group = sql.plan, sql.group
    ((count, odd),) = db.rows(
        f"SELECT count(*), count(*) FILTER (WHERE rowid + 1 > {plan.header_line} AND NOT plain "
        f"AND NOT blank AND (NOT regexp_full_match(l, {_quote(sql.simple)}) "
        f"OR contains(l, '\ufffd'))) FROM {cells}"
    )
    if count != facts.lines or odd:
        return None
    (plain_fffd,) = db.rows(
        f"SELECT count(*) FROM {cells} WHERE plain AND ("
        + " OR ".join(f"contains(c{i}, '\ufffd')" for i in sql.used)
        + ")"
    )[0]
    if plain_fffd:
        return None
    view = f"cells_view_{group}"
    db.execute(f"CREATE OR REPLACE VIEW {view} AS {sql.cells_view(cells)}")
    _python_maps(db, sql, view)
    parsed = f"parsed_{group}"
    db.execute_small_builds(f"CREATE OR REPLACE TABLE {parsed} AS {_conversion(sql, view)}")
    try:
        columns = ", ".join(c for c in CA_COLUMNS if c not in ("seq", "source", "line"))
        db.execute(
            f"INSERT INTO ca (seq, source, line, {columns}) SELECT {group * ORDER_SPAN} + line, "
            f"{_quote(str(plan.path))}, line, {columns} FROM {parsed} WHERE fast"
        )
        ((fast,),) = db.rows(f"SELECT count(*) FROM {parsed} WHERE fast")
        cells_sql = ", ".join(f"v.c{i}" for i in sql.used)
        slow = db.rows(
            f"SELECT v.line, v.plain, v.l, v.width, {cells_sql} FROM {view} v "
            f"JOIN (SELECT line FROM {parsed} WHERE NOT fast) USING (line) ORDER BY v.line"
        )
    finally:
        db.execute(f"DROP TABLE {parsed}")
    return _python_rows(db, sql, facts, fast, slow)


def _python_rows(
    db: Database, sql: _Sql, facts: Facts, fast: int, slow: list[tuple[object, ...]]
) -> Loaded:
    """The lines SQL did not convert, through the reader's own row function."""
    plan, group = sql.plan, sql.group
    rejects: list[Reject] = []
    records: list[CaCertificate] = []
    rows = fast
    for line, plain, text, width, *used in slow:
        assert isinstance(line, int)
        if plain:
            # Unused cells are never read by the converter; only the row's width matters.
            assert isinstance(width, int)
            cells = [""] * width
            for position, value in zip(sql.used, used, strict=True):
                if position < width:
                    cells[position] = str(value)
        else:
            assert isinstance(text, str)
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
