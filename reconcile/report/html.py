"""One self-contained HTML page per run, for people who will not open a CSV.

The page fetches nothing (inline CSS, inline JS, inline SVG, and a Content-Security-Policy
that forbids every network load), so it can be mailed or archived and still render the same.
Device and user names come from Graph and are attacker-controlled, so the page is a set of
Jinja2 templates (``templates/``) in which every value is escaped unless it is markup this
module built from escaped parts; the script reads only the DOM, never data spliced into
JavaScript.
"""

from __future__ import annotations

import functools
import html
import platform
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import IO, TYPE_CHECKING, Any

import jinja2
from markupsafe import Markup

from reconcile import __version__
from reconcile.identity import serial_hex
from reconcile.model import (
    FINDING_STATUSES,
    TREND_RUNS,
    IntuneCertificate,
    RunDelta,
    RunResult,
    RunRow,
    Status,
    Verdict,
)
from reconcile.report import viewspage
from reconcile.report.columns import cell
from reconcile.report.historytext import findings_total, format_delta
from reconcile.timeparse import iso_z

if TYPE_CHECKING:
    from reconcile.report.document import Report

MAX_ROWS = 10_000
"""Beyond this the page gets slow in a browser; the CSV and JSONL hold every row."""


def esc(value: object) -> Markup:
    """Every value a template writes goes through here (the environment's ``finalize``):
    ``html.escape`` with quotes, so the bytes stay what they always were (``&quot;``,
    ``&#x27;``); markup built here from escaped parts passes unchanged."""
    if type(value) is str:
        return Markup(html.escape(value, quote=True))
    if isinstance(value, Markup):
        return value
    return Markup(html.escape("" if value is None else str(value), quote=True))


ACTION_STATUSES = FINDING_STATUSES - {Status.SUPERSEDED}
"""Findings someone must act on; a superseded certificate was replaced by a delivered renewal."""

# Where a name may wrap: after a separator, or before a capitalised word inside camelCase
# ("Contoso|Intune|SCEP|Windows", but "SCEPiOS" and "not_reported"-style states stay whole).
_WORD_START = re.compile(
    r"(?<=[ /._-])|(?<=[a-z])(?=[A-Z][a-z])|(?<=[A-Z])(?=[A-Z][a-z]{2,})|(?<=[a-z]{2})(?=[A-Z]{2,})"
)


def names(value: str | None, *, whole: bool = False) -> Markup:
    """A template, profile or state name that wraps only between its words, never inside one:
    each word is an unbreakable span. ``whole`` keeps it on one line (status names)."""
    value = value or ""
    parts = [value] if whole else [p for p in _WORD_START.split(value) if p]
    return Markup(
        "<wbr>".join(f'<span class="w">{html.escape(p, quote=True)}</span>' for p in parts or [""])
    )


class _Templates(jinja2.BaseLoader):
    """The package's templates. An .html template is stripped line by line and joined, so it
    can be laid out for reading while the page stays the compact markup it always was."""

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        path = resources.files("reconcile.report").joinpath("templates", template)
        try:
            source = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise jinja2.TemplateNotFound(template) from None
        if template.endswith(".html"):
            source = "".join(line.strip() for line in source.splitlines())
        return source, None, lambda: True


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=_Templates(),
        autoescape=True,
        finalize=esc,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["names"] = names
    env.filters["casefold"] = str.casefold
    return env


def _cards(result: RunResult) -> list[tuple[str, int, str]]:
    """(class, count, status) per status, zeros included, in the terminal summary's order."""
    cards = []
    for name, count in result.counts().items():
        if name in ACTION_STATUSES and count:
            cls = "card finding"
        elif name in FINDING_STATUSES and count:
            cls = "card info"
        else:
            cls = "card"
        cards.append((cls, count, name))
    return cards


@dataclass(frozen=True, slots=True)
class _Trend:
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    peak: int
    runs: int
    first: str
    last: str
    series: tuple[dict[str, Any], ...]


def trend(runs: Sequence[RunRow], width: int = 900, height: int = 200) -> _Trend | None:
    """Findings and accepted per run, and a line per view, scaled to the plot; None without
    runs."""
    runs = list(runs)[-TREND_RUNS:]
    if not runs:
        return None
    left, right, top, bottom = 50, 10, 12, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    series = (
        ("findings", "#cf222e", [findings_total(r.counts) for r in runs]),
        ("accepted", "#9a6700", [r.counts.get(Status.ACCEPTED.value, 0) for r in runs]),
        *viewspage.trend_series(runs),
    )
    peak = max(1, *(max(values) for _name, _colour, values in series))
    step = plot_w / max(1, len(runs) - 1)

    def point(i: int, v: int) -> tuple[str, str]:
        x = left + (i * step if len(runs) > 1 else plot_w / 2)
        return f"{x:.1f}", f"{top + plot_h - v / peak * plot_h:.1f}"

    lines = []
    for offset, (name, colour, values) in enumerate(series):
        dots = [(*point(i, v), f"{iso_z(runs[i].as_of)}: {v} {name}") for i, v in enumerate(values)]
        lines.append(
            {
                "name": name,
                "colour": colour,
                "points": " ".join(f"{x},{y}" for x, y, _title in dots),
                "dots": dots,
                "legend": left + 10 + offset * 110,
            }
        )
    return _Trend(
        width=width,
        height=height,
        left=left,
        right=width - right,
        top=top,
        bottom=top + plot_h,
        peak=peak,
        runs=len(runs),
        first=iso_z(runs[0].as_of)[:10],
        last=iso_z(runs[-1].as_of)[:10],
        series=tuple(lines),
    )


_HEADERS = (
    ("status", "Status", "13%", ""),
    ("serial", "Serial / thumbprint", "14%", ""),
    ("device", "Device / user", "13%", ""),
    ("template", "Template", "11%", "opt"),
    ("dates", "Issued / expires", "8%", "opt"),
    ("intune", "Intune state", "9%", ""),
    ("first_seen", "First seen", "7%", "opt"),
    ("age", "Age (d)", "5%", ""),
    ("next", "Reason / next step", "20%", ""),
)


def _finding(verdict: Verdict) -> dict[str, str]:
    """The cells of one findings row, from the CSV's columns."""
    device = cell(verdict, "device_name")
    note = " (gone from Intune)" if verdict.device_gone else ""
    if verdict.device_candidates:
        note = f" (ambiguous: {len(verdict.device_candidates)} managed devices share the name)"
    if not device and verdict.ca.common_name:
        device, note = verdict.ca.common_name, " (CA subject)"
    return {
        "status": cell(verdict, "status"),
        "new": " new" if verdict.new_since_last_run else "",
        "serial": cell(verdict, "serial_number"),
        "thumbprint": cell(verdict, "thumbprint"),
        "device": device,
        "device_note": note,
        "user": cell(verdict, "user"),
        "template": cell(verdict, "template"),
        "issued": cell(verdict, "issued_at"),
        "expires": cell(verdict, "expires_at"),
        "intune_state": cell(verdict, "intune_state"),
        "first_seen": cell(verdict, "first_seen"),
        "age": cell(verdict, "age_days"),
        "reason": verdict.reason,
        "next_step": verdict.next_step,
    }


def _table(result: RunResult) -> dict[str, Any]:
    """The findings and accepted exceptions, read once: counted, and the first MAX_ROWS kept."""
    total = 0
    statuses: set[str] = set()
    rows: list[dict[str, str]] = []
    for v in result.verdicts:
        if v.is_finding or v.status is Status.ACCEPTED:
            total += 1
            statuses.add(v.status.value)
            if len(rows) < MAX_ROWS:
                rows.append(_finding(v))
    return {"total": total, "statuses": sorted(statuses), "rows": rows}


def _unknown(record: IntuneCertificate) -> dict[str, str | None]:
    return {
        "serial": serial_hex(record.serial) if record.serial is not None else "",
        "device": record.device_name,
        "user": record.user,
        "profile": record.profile_name or record.profile_id,
        "state": record.state,
        "issuer": record.issuer,
        "issued": iso_z(record.issued_at)[:10] if record.issued_at else "",
    }


def _facts(result: RunResult) -> tuple[tuple[str, str], ...]:
    return (
        ("run id", result.run_id),
        ("as of", iso_z(result.as_of)),
        ("grace", f"{result.grace_hours:g} h"),
        ("tenant", result.tenant_id or ""),
        ("templates", ", ".join(result.templates) or "all"),
        ("Intune sources", ", ".join(result.intune_sources)),
        ("versions", f"reconcile {__version__}, Python {platform.python_version()}"),
    )


def render(result: RunResult, delta: RunDelta | None = None, runs: Sequence[RunRow] = ()) -> str:
    """The whole page as one string."""
    return "".join(_pieces(result, delta, runs))


def _pieces(result: RunResult, delta: RunDelta | None, runs: Sequence[RunRow]) -> Iterator[str]:
    """The page in the pieces the template yields: the views' rows are made as they are
    written, never all at once."""
    page = _environment().get_template("report.html")
    return page.generate(
        result=result,
        title=f"reconcile report {result.run_id}",
        as_of=iso_z(result.as_of),
        grace=f"{result.grace_hours:g}",
        findings=len(result.findings),
        cards=_cards(result),
        delta=format_delta(delta) if delta is not None else None,
        trend=trend(runs),
        headers=_HEADERS,
        table=_table(result),
        unknown=result.unknown_to_ca,
        unknown_rows=[_unknown(r) for r in result.unknown_to_ca[:MAX_ROWS]],
        views=viewspage.html_sections(result),
        connectors=viewspage.html_connectors(result),
        facts=_facts(result),
    )


def write(handle: IO[str], report: Report) -> None:
    pending: list[str] = []
    for piece in _pieces(report.result, report.delta, report.runs):
        pending.append(piece)
        if len(pending) >= 4096:
            handle.write("".join(pending))
            pending.clear()
    handle.write("".join(pending))
