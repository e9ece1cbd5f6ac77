"""The views on the terminal, in summary.txt and in the HTML report (one section each).

Kept apart from table.py and html.py so each view's presentation lives with the others.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from tabulate import tabulate

from reconcile.history import RunRow
from reconcile.model import RunResult
from reconcile.report.viewsout import VIEW_COLUMNS
from reconcile.views import View, ViewRow

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


def _rows_text(view: View, rows: Sequence[ViewRow], width: int | None) -> str:
    """Columns when they fit ``width`` (always without one), else one block per certificate
    whose fields wrap at whole words; nothing is shortened."""
    from reconcile.report.table import _wrap, printable

    names = _SHOWN[view]
    cells = [[printable(c) for c in _cells(view, r, names)] for r in rows]
    table = tabulate(cells, headers=names, tablefmt="simple")
    if width is None or max(len(line) for line in table.splitlines()) <= width:
        return table
    blocks = []
    for row in cells:
        lines = [
            f"{row[0]}  {row[1]}",
            *(f"  {n}: {c}" for n, c in zip(names[2:], row[2:], strict=True)),
        ]
        blocks.append(_wrap("\n".join(lines), width, indent="    "))
    return "\n\n".join(blocks)


def text(result: RunResult, max_rows: int, width: int | None = None) -> str:
    """Each view's count and rows, then the connectors; empty when the run has no views."""
    from reconcile.report.table import _wrap, printable

    views = result.views
    if views is None:
        return ""
    parts = []
    for view in View:
        rows = views.rows(view)
        extra = f" within {views.expiry_days} days" if view is View.EXPIRING else ""
        parts.append("\n" + _wrap(f"{TITLES[view]}{extra}: {len(rows)}", width))
        if not rows:
            continue
        shown = rows[:max_rows] if max_rows >= 0 else rows
        parts.append(_rows_text(view, shown, width))
        if len(rows) > len(shown):
            parts.append(_wrap(f"… {len(rows) - len(shown)} more; see {view.value}.csv", width))
        step = SUMMARY_STEPS.get(view, rows[0].next_step)
        parts.append(_wrap(f"next step: {step}", width))
    health = views.connectors
    if health is not None:
        parts.append("\n" + _wrap(f"Certificate connectors: {len(health.connectors)}", width))
        parts += [_wrap(f"  {printable(health.describe(c))}", width) for c in health.connectors]
        parts += [_wrap(f"  warning: {printable(w)}", width) for w in health.warning_lines()]
    return "\n".join(parts) + "\n"


def _esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _section(view: View, rows: Sequence[ViewRow], run_id: str) -> str:
    names = [n for n, _ in VIEW_COLUMNS[view]]
    if not rows:
        return f'<h2>{_esc(TITLES[view])}: 0</h2><p class="note">None.</p>'
    head = "".join(f'<th scope="col">{_esc(n)}</th>' for n in names)
    body = "".join(
        "<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in _cells(view, r, names)) + "</tr>"
        for r in rows
    )
    table_id = f"view-{view.value}"
    return (
        f'<h2 id="{table_id}-title">{_esc(TITLES[view])}: {len(rows)}</h2>'
        f'<div class="controls"><input type="search" data-view-filter="{table_id}" '
        f'placeholder="Filter {_esc(view.value)}..." aria-label="Filter {_esc(view.value)}"></div>'
        f'<table id="{table_id}" class="view"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
        f'<p class="note">next step: {_esc(SUMMARY_STEPS.get(view, rows[0].next_step))}</p>'
    )


VIEW_JS = """
(function(){
Array.prototype.forEach.call(document.querySelectorAll('input[data-view-filter]'),function(q){
var t=document.getElementById(q.getAttribute('data-view-filter'));if(!t)return;
var rows=Array.prototype.slice.call(t.tBodies[0].rows);
q.addEventListener('input',function(){var s=q.value.toLowerCase();
rows.forEach(function(r){r.hidden=!!s&&r.textContent.toLowerCase().indexOf(s)<0;});});});
})();
"""


def sections(result: RunResult) -> str:
    """One filterable HTML section per view, then the connectors (VIEW_JS filters them)."""
    views = result.views
    if views is None:
        return ""
    parts = [_section(v, views.rows(v), result.run_id) for v in View]
    health = views.connectors
    if health is not None:
        stale = ' class="s-not_reported"'
        items = "".join(
            f"<li{stale if health.is_stale(c) else ''}>{_esc(health.describe(c))}</li>"
            for c in health.connectors
        )
        warnings = "".join(f"<li>{_esc(w)}</li>" for w in health.warning_lines())
        parts.append(
            f"<h2>Certificate connectors: {len(health.connectors)}</h2><ul>{items}</ul>"
            + (f'<p class="note">Warnings:</p><ul>{warnings}</ul>' if warnings else "")
        )
    return "".join(parts)


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
