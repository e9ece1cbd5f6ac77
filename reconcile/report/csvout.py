"""Auditor CSV: RFC 4180, CRLF, UTF-8 with BOM by default, formula-neutralised text cells.

Device and user names come from enrolled devices, so anyone can name a phone
``=HYPERLINK(...)``. Every text cell that a spreadsheet could read as a formula gets a
leading apostrophe; the JSON Lines output keeps the raw value.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from typing import IO

from reconcile.model import IntuneCertificate, Verdict
from reconcile.report.columns import COLUMNS, CSV_HEADER, UNKNOWN_COLUMNS, UNKNOWN_HEADER

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")


def neutralise(value: str | int | None) -> str | int:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def _write(
    handle: IO[str], header: Sequence[str], cells: Iterable[Iterable[str | int | None]]
) -> int:
    """Header, then one neutralised row per item; returns the number of rows."""
    out = csv.writer(handle, lineterminator="\r\n")
    out.writerow(header)
    rows = 0
    for row in cells:
        out.writerow([neutralise(cell) for cell in row])
        rows += 1
    return rows


def write_verdicts(handle: IO[str], verdicts: Iterable[Verdict], run_id: str) -> int:
    cells = ((*(c.get(v) for c in COLUMNS), run_id) for v in verdicts)
    return _write(handle, CSV_HEADER, cells)


def write_unknown(handle: IO[str], records: Iterable[IntuneCertificate], run_id: str) -> int:
    cells = ((*(c.get(r) for c in UNKNOWN_COLUMNS), run_id) for r in records)
    return _write(handle, UNKNOWN_HEADER, cells)


def csv_encoding(bom: bool) -> str:
    return "utf-8-sig" if bom else "utf-8"
