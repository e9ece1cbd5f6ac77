"""The views' files: one formula-safe CSV per view and the revocation plan as a script.

Columns are a public contract like the findings': add at the end only.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Sequence
from typing import IO

from reconcile.identity import serial_hex
from reconcile.report.columns import COLUMNS
from reconcile.report.csvout import _write, neutralised
from reconcile.timeparse import iso_z
from reconcile.views import AD_CS_FORMATS, REASON_CODES, View, ViewRow, Views, script_suffix

_BY_NAME = {c.name: c.get for c in COLUMNS}

Cell = Callable[[ViewRow], str | int | None]


def _verdict(name: str) -> Cell:
    get = _BY_NAME[name]
    return lambda row: get(row.verdict)


def _plan_device(row: ViewRow) -> str | int | None:
    """The device Intune names, else the one the CA subject names (a CA-only finding)."""
    return _BY_NAME["device_name"](row.verdict) or row.verdict.ca.common_name


VIEW_COLUMNS: dict[View, tuple[tuple[str, Cell], ...]] = {
    View.REVOKED_INSTALLED: (
        ("serial_number", _verdict("serial_number")),
        ("issuer", _verdict("issuer")),
        ("revoked_at", _verdict("revoked_at")),
        ("device_name", _verdict("device_name")),
        ("user", _verdict("user")),
        ("profile", _verdict("profile")),
        ("intune_state", _verdict("intune_state")),
        ("intune_source", _verdict("intune_source")),
        ("next_step", lambda r: r.next_step),
        ("thumbprint", _verdict("thumbprint")),
        ("device_id", _verdict("device_id")),
        ("source", _verdict("source")),
    ),
    View.EXPIRING: (
        ("serial_number", _verdict("serial_number")),
        ("issuer", _verdict("issuer")),
        ("expires_at", _verdict("expires_at")),
        ("days_left", lambda r: r.days_left),
        ("device_name", _verdict("device_name")),
        ("user", _verdict("user")),
        ("profile", _verdict("profile")),
        ("next_step", lambda r: r.next_step),
        ("thumbprint", _verdict("thumbprint")),
        ("device_id", _verdict("device_id")),
        ("source", _verdict("source")),
    ),
    View.REVOCATION_PLAN: (
        ("serial_number", _verdict("serial_number")),
        ("issuer", _verdict("issuer")),
        ("status", _verdict("status")),
        ("reason", lambda r: r.reason.value if r.reason else None),
        ("reason_code", lambda r: REASON_CODES[r.reason] if r.reason else None),
        ("device_name", _plan_device),
        ("command", lambda r: r.command),
        ("next_step", lambda r: r.next_step),
        ("device_in_intune", _verdict("device_in_intune")),
        ("source", _verdict("source")),
    ),
}


def header(view: View) -> tuple[str, ...]:
    return (*(name for name, _ in VIEW_COLUMNS[view]), "run_id")


def _cells(view: View, row: ViewRow, run_id: str) -> tuple[str | int | None, ...]:
    return (*(get(row) for _, get in VIEW_COLUMNS[view]), run_id)


def write_view(handle: IO[str], view: View, rows: Iterable[ViewRow], run_id: str) -> int:
    """Header, then one neutralised row per certificate (header only when the view is empty)."""
    return _write(handle, header(view), (_cells(view, r, run_id) for r in rows))


def write_row(handle: IO[str], view: View, row: ViewRow, run_id: str) -> None:
    """One row as write_view writes it, without the header."""
    csv.writer(handle, lineterminator="\r\n").writerow(neutralised(_cells(view, row, run_id)))


def script_suffixes(formats: Sequence[str]) -> tuple[str, ...]:
    """The plan scripts a run gets: ``ps1`` for AD CS exports, ``sh`` for any other."""
    suffixes = {script_suffix(f) for f in formats}
    return tuple(s for s in ("ps1", "sh") if s in suffixes)


def write_script(handle: IO[str], views: Views, suffix: str, run_id: str, as_of: str) -> int:
    """The plan as a script an admin reviews line by line; reconcile never runs it. Written
    a row at a time."""
    rows = (r for r in views.revocation_plan if (r.ca_format in AD_CS_FORMATS) == (suffix == "ps1"))
    c = "#"
    lines = []
    if suffix == "sh":
        lines.append("#!/bin/sh")
    lines += [
        f"{c} Revocation plan from reconcile run {run_id} (as of {as_of}).",
        f"{c} reconcile never revokes anything and never calls a CA: this script is for review.",
        f"{c} Each line is based on one finding: superseded (a delivered renewal for the same",
        f"{c} device and profile replaced it; CRL reason superseded, code 4) or a device gone",
        f"{c} from Intune (cessationOfOperation, code 5). Delivered certificates are never listed.",
        f"{c} Check each line against revocation-plan.csv before running it.",
    ]
    if suffix == "sh":
        lines.append("set -eu")
    handle.write("\n".join(lines) + "\n")
    written = 0
    for row in rows:
        v = row.verdict
        device = _plan_device(row) or "unknown device"
        reason = row.reason.value if row.reason else ""
        handle.write(
            f"{c} serial {serial_hex(v.ca.serial)}, {v.status.value}, {reason}, device "
            f"{_safe(str(device))}, issued {iso_z(v.ca.not_before)}\n{row.command}\n"
        )
        written += 1
    return written


def _safe(text: str) -> str:
    """Device names are attacker-controlled: no line breaks or control characters in a comment."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)
