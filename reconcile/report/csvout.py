"""Auditor CSV: RFC 4180, CRLF, UTF-8 with BOM by default, formula-neutralised text cells.

Device and user names come from enrolled devices, so anyone can name a phone
``=HYPERLINK(...)``. Every text cell that a spreadsheet could read as a formula gets a
leading apostrophe; the JSON Lines output keeps the raw value.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
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


def write_verdicts(handle: IO[str], verdicts: Iterable[Verdict], run_id: str) -> int:
    """Write header and rows; returns the number of rows."""
    out = csv.writer(handle, lineterminator="\r\n")
    out.writerow(CSV_HEADER)
    rows = 0
    for verdict in verdicts:
        out.writerow([*(neutralise(c.get(verdict)) for c in COLUMNS), neutralise(run_id)])
        rows += 1
    return rows


def write_unknown(handle: IO[str], records: Iterable[IntuneCertificate], run_id: str) -> int:
    out = csv.writer(handle, lineterminator="\r\n")
    out.writerow(UNKNOWN_HEADER)
    rows = 0
    for record in records:
        out.writerow([*(neutralise(c.get(record)) for c in UNKNOWN_COLUMNS), neutralise(run_id)])
        rows += 1
    return rows


def csv_encoding(bom: bool) -> str:
    return "utf-8-sig" if bom else "utf-8"
