"""What the admin sees on the terminal: counts per status, then the findings.

Given a width, every line fits it: wide cells wrap instead of being cut, and on a narrow
terminal each finding becomes a short block so the next step keeps whole words. Without a
width (summary.txt) nothing is wrapped or shortened.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, TYPE_CHECKING

from tabulate import tabulate

from reconcile.model import FINDING_STATUSES, RunResult, Verdict
from reconcile.report import viewspage
from reconcile.report.columns import cell
from reconcile.report.text import GAP, joined, printable, table_lines, wrap
from reconcile.spool import Spool
from reconcile.terminal import safe
from reconcile.timeparse import iso_z

if TYPE_CHECKING:
    from reconcile.report.document import Report

HEADERS = ("status", "serial", "device", "template", "issued", "intune", "next step")
# Widest a wrapped cell may get before the next step's share is taken from the rest.
_CAPS = {2: 28, 3: 24, 5: 22}
_MIN_NEXT_STEP = 40


def summary_table(result: RunResult) -> str:
    """Every status with its count, zeros included, in the same order as the HTML cards."""
    rows = [
        (
            name,
            count,
            "finding"
            if name in FINDING_STATUSES
            else "intune only"
            if name == "unknown_to_ca"
            else "",
        )
        for name, count in result.counts().items()
    ]
    rows.append(("rejected input rows", len(result.rejects), "input"))
    if result.duplicate_rows:
        rows.append(("duplicate rows collapsed", result.duplicate_rows, "input"))
    return tabulate(rows, headers=("status", "certificates", "kind"), tablefmt="simple")


def _device(v: Verdict) -> str:
    name = v.managed_name or v.ca.common_name
    suffix = " (gone)" if v.device_gone else ""
    if v.device_candidates:
        suffix = " (ambiguous)"
    return printable(name) + suffix


def _row(v: Verdict) -> tuple[str, ...]:
    return (
        cell(v, "status"),
        cell(v, "serial_number"),
        _device(v),
        printable(cell(v, "template")),
        cell(v, "issued_at")[:10],
        printable(cell(v, "intune_state")),
        printable(v.next_step or v.reason),
    )


def _as_table(rows: list[tuple[str, ...]], width: int | None) -> str | None:
    """The findings as columns, or None when ``width`` leaves the next step too little room."""
    if width is None:
        return tabulate(rows, headers=HEADERS, tablefmt="simple")
    widths = [
        max(len(HEADERS[i]), *(min(len(r[i]), _CAPS.get(i, len(r[i]))) for r in rows))
        for i in range(len(HEADERS) - 1)
    ]
    room = width - sum(widths) - GAP * (len(HEADERS) - 1)
    if room < _MIN_NEXT_STEP:
        return None
    caps: list[int | None] = [_CAPS.get(i) for i in range(len(HEADERS) - 1)]
    return tabulate(
        rows,
        headers=HEADERS,
        tablefmt="simple",
        maxcolwidths=[*caps, room],
        break_on_hyphens=False,
    )


def _as_blocks(rows: list[tuple[str, ...]], width: int) -> str:
    """One short block per finding for a narrow terminal; every field wraps at whole words."""
    blocks = []
    for status, serial, device, template, issued, state, step in rows:
        lines = [
            f"{status}  {device}",
            f"  serial {serial}  issued {issued}",
            f"  template {template or '-'}  intune {state or '-'}",
            f"  next step: {step}",
        ]
        blocks.append(wrap("\n".join(lines), width, indent="    "))
    return "\n\n".join(blocks)


def findings_table(result: RunResult, max_rows: int, width: int | None = None) -> str:
    return "".join(_findings_pieces(result, max_rows, width))


def _findings_pieces(result: RunResult, max_rows: int, width: int | None) -> Iterator[str]:
    """findings_table in pieces: without a width (summary.txt, every row) the table is
    written a chunk of rows at a time."""
    findings = result.findings
    if not findings:
        yield wrap(
            "No findings: every in-scope certificate is delivered, pending or accounted for.",
            width,
        )
        return
    shown = findings[:max_rows] if max_rows >= 0 else findings
    if width is None:
        rows = Spool.of(map(_row, shown))
        yield from joined(table_lines(rows, HEADERS))
        rows.close()
    else:
        listed = [_row(v) for v in shown]
        table = _as_table(listed, width)
        yield table if table is not None else _as_blocks(listed, width)
    hidden = len(findings) - len(shown)
    if hidden > 0:
        yield "\n" + wrap(
            f"… {hidden} more finding(s) not shown; write them all with --csv PATH "
            "or --out-dir DIR, or raise --max-rows.",
            width,
        )


def render(result: RunResult, max_rows: int, preamble: str = "", width: int | None = None) -> str:
    """The full terminal report, fitted to ``width``; summary.txt holds it unwrapped."""
    return "".join(_pieces(result, max_rows, preamble, width))


def _pieces(result: RunResult, max_rows: int, preamble: str, width: int | None) -> Iterator[str]:
    head = (
        f"reconcile run {result.run_id}  as of {iso_z(result.as_of)}  "
        f"grace {result.grace_hours:g} h  findings {len(result.findings)}"
    )
    parts = [wrap(head, width), ""]
    if preamble:
        parts += [wrap(safe(preamble, multiline=True), width), ""]
    parts += [summary_table(result), ""]
    yield "\n".join(parts) + "\n"
    yield from _findings_pieces(result, max_rows, width)
    if result.notes:
        # How the CA exports were read (date order, zone, issuer, copies): never silent.
        notes = "\n".join(f"note: {printable(n)}" for n in result.notes)
        yield "\n\n" + wrap(notes, width, indent="      ")
    yield "\n"
    for index, piece in enumerate(viewspage.text_pieces(result, max_rows, width)):
        yield "\n" + piece if index == 0 else piece


def write(handle: IO[str], report: Report) -> None:
    """The terminal text (summary.txt with the report's default of every row, unwrapped),
    written as it is made."""
    for piece in _pieces(report.result, report.max_rows, report.preamble, report.width):
        handle.write(piece)
