"""The views on the terminal, in summary.txt and in the HTML report (one section each; the
markup is templates/views.html).

Kept apart from table.py and html.py so each view's presentation lives with the others.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any

from reconcile.model import RunResult, RunRow
from reconcile.report.text import fit_table, joined, printable, table_lines, wrap
from reconcile.report.viewsout import VIEW_COLUMNS
from reconcile.spool import Mapped, Spool
from reconcile.views import View, ViewRow, Views

TITLES = {
    View.REVOKED_INSTALLED: "Revoked by the CA, still installed (a security finding)",
    View.EXPIRING: "Installed, expiring without a delivered renewal",
    View.REVOCATION_PLAN: "Revocation plan (for review; reconcile never revokes)",
}
_SHOWN = {
    View.REVOKED_INSTALLED: ("serial_number", "device_name", "revoked_at", "intune_state"),
    View.EXPIRING: ("serial_number", "device_name", "expires_at", "days_left", "profile"),
    View.REVOCATION_PLAN: ("serial_number", "device_name", "reason", "command"),
}
SUMMARY_STEPS = {
    View.REVOCATION_PLAN: (
        "review each command against revocation-plan.csv (reason per row), then run it on the CA"
    ),
}


def _cells(view: View, row: ViewRow, names: Sequence[str]) -> list[str]:
    getters = dict(VIEW_COLUMNS[view])
    return ["" if (value := getters[n](row)) is None else str(value) for n in names]


def _row_cells(view: View, names: Sequence[str], row: ViewRow) -> list[str]:
    return [printable(c) for c in _cells(view, row, names)]


def _rows_text(view: View, rows: Sequence[ViewRow], width: int | None) -> Iterator[str]:
    """Columns when they fit ``width`` (always without one: then written a chunk of rows at a
    time), else one block per certificate."""
    names = _SHOWN[view]
    if width is None:
        cells = Spool.of(map(functools.partial(_row_cells, view, names), rows))
        yield from table_lines(cells, names)
        cells.close()
        return
    yield fit_table([_row_cells(view, names, r) for r in rows], names, width, title=2)


def text(result: RunResult, max_rows: int, width: int | None = None) -> str:
    """Each view's count and rows, then the connectors; empty when the run has no views."""
    return "".join(text_pieces(result, max_rows, width))


def text_pieces(result: RunResult, max_rows: int, width: int | None = None) -> Iterator[str]:
    """``text`` in pieces, each view's rows written as they are made."""
    views = result.views
    if views is None:
        return
    yield from joined(_parts(views, max_rows, width))
    yield "\n"


def _parts(views: Views, max_rows: int, width: int | None) -> Iterator[str]:
    for view in View:
        rows = views.rows(view)
        extra = f" within {views.expiry_days} days" if view is View.EXPIRING else ""
        yield "\n" + wrap(f"{TITLES[view]}{extra}: {len(rows)}", width)
        if not rows:
            continue
        shown = rows[:max_rows] if max_rows >= 0 else rows
        yield from _rows_text(view, shown, width)
        if len(rows) > len(shown):
            yield wrap(f"… {len(rows) - len(shown)} more; see {view.value}.csv", width)
        step = SUMMARY_STEPS.get(view, rows[0].next_step)
        yield wrap(f"next step: {step}", width)
    health = views.connectors
    if health is not None:
        yield "\n" + wrap(f"Certificate connectors: {len(health.connectors)}", width)
        yield from (wrap(f"  {printable(health.describe(c))}", width) for c in health.connectors)
        yield from (wrap(f"  warning: {printable(w)}", width) for w in health.warning_lines())


def html_sections(result: RunResult) -> list[dict[str, Any]]:
    """Each view's title, columns, cells and next step for the HTML page (views.html); the
    cells of each row are made as the page is written."""
    views = result.views
    if views is None:
        return []
    sections = []
    for view in View:
        rows = views.rows(view)
        columns = [n for n, _ in VIEW_COLUMNS[view]]
        sections.append(
            {
                "name": view.value,
                "title": TITLES[view],
                "columns": columns,
                "rows": Mapped(rows, functools.partial(_cells, view, names=columns)),
                "next_step": SUMMARY_STEPS.get(view, rows[0].next_step) if rows else "",
            }
        )
    return sections


def html_connectors(result: RunResult) -> dict[str, Any] | None:
    """(stale, description) per certificate connector and the warnings; None when the run
    did not read them."""
    health = result.views.connectors if result.views is not None else None
    if health is None:
        return None
    return {
        "entries": [(health.is_stale(c), health.describe(c)) for c in health.connectors],
        "warnings": health.warning_lines(),
    }


_TREND = (
    ("revoked installed", "#8250df", "revoked_installed"),
    ("expiring", "#0969da", "expiring"),
)


def trend_series(runs: Sequence[RunRow]) -> list[tuple[str, str, list[int]]]:
    """A line per view the history recorded a certificate in (none for runs before views)."""
    series = []
    for name, colour, key in _TREND:
        values = [r.counts.get(key, 0) for r in runs]
        if any(values):
            series.append((name, colour, values))
    return series
