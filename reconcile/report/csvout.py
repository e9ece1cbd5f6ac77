"""Auditor CSV: RFC 4180, CRLF, UTF-8 with BOM by default, formula-neutralised text cells.

Device and user names come from enrolled devices, so anyone can name a phone
``=HYPERLINK(...)``. Every text cell that a spreadsheet could read as a formula gets a
leading apostrophe; the JSON Lines output keeps the raw value.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from typing import IO, TYPE_CHECKING

from reconcile.model import IntuneCertificate, Verdict
from reconcile.report.columns import COLUMNS, CSV_HEADER, UNKNOWN_COLUMNS, UNKNOWN_HEADER

if TYPE_CHECKING:
    from reconcile.report.document import Report

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")


def neutralised(row: Iterable[str | int | None]) -> list[str | int]:
    """The row's cells as written: None empty, a text a spreadsheet could read as a formula
    after an apostrophe. One comprehension: a call per cell was a third of writing 50,000
    findings."""
    return [
        ("'" + v if v.startswith(FORMULA_PREFIXES) else v)
        if isinstance(v, str)
        else ("" if v is None else v)
        for v in row
    ]


def _write(
    handle: IO[str], header: Sequence[str], cells: Iterable[Iterable[str | int | None]]
) -> int:
    """Header, then one neutralised row per item; returns the number of rows."""
    out = csv.writer(handle, lineterminator="\r\n")
    out.writerow(header)
    rows = 0
    for row in cells:
        out.writerow(neutralised(row))
        rows += 1
    return rows


def write_verdicts(handle: IO[str], verdicts: Iterable[Verdict], run_id: str) -> int:
    cells = ((*(c.get(v) for c in COLUMNS), run_id) for v in verdicts)
    return _write(handle, CSV_HEADER, cells)


def write(handle: IO[str], report: Report) -> int:
    """findings.csv (certificates.csv with --all)."""
    return write_verdicts(handle, report.rows, report.result.run_id)


def write_unknown_to_ca(handle: IO[str], report: Report) -> int:
    """unknown-to-ca.csv: Intune records no CA export lists."""
    return write_unknown(handle, report.result.unknown_to_ca, report.result.run_id)


def write_unknown(handle: IO[str], records: Iterable[IntuneCertificate], run_id: str) -> int:
    cells = ((*(c.get(r) for c in UNKNOWN_COLUMNS), run_id) for r in records)
    return _write(handle, UNKNOWN_HEADER, cells)


def csv_encoding(bom: bool) -> str:
    return "utf-8-sig" if bom else "utf-8"
