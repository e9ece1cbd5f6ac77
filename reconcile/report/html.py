"""One self-contained HTML page per run, for people who will not open a CSV.

The page fetches nothing (inline CSS, inline JS, inline SVG, and a Content-Security-Policy
that forbids every network load), so it can be mailed or archived and still render the same.
Device and user names come from Graph and are attacker-controlled: every value is written with
``html.escape``, and the script reads only the DOM, never data spliced into JavaScript.
"""

from __future__ import annotations

import html
import platform
import re
from collections.abc import Sequence
from typing import IO

from reconcile import __version__
from reconcile.history import TREND_RUNS, RunDelta, RunRow, findings_total, format_delta
from reconcile.identity import serial_hex
from reconcile.model import FINDING_STATUSES, RunResult, Status, Verdict
from reconcile.report import viewspage
from reconcile.report.columns import COLUMNS
from reconcile.timeparse import iso_z

MAX_ROWS = 10_000
"""Beyond this the page gets slow in a browser; the CSV and JSONL hold every row."""

_GET = {c.name: c.get for c in COLUMNS}

_CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;padding:1rem 1.5rem;
color:#1b1f24;background:#fff;line-height:1.4;font-size:15px}
h1{font-size:1.4rem;margin:.2rem 0}h2{font-size:1.1rem;margin:1.6rem 0 .5rem}
.meta{color:#555;font-size:.9rem;overflow-wrap:anywhere}
.cards{display:flex;flex-wrap:wrap;gap:.5rem;margin:.8rem 0}
.card{border:1px solid #d0d7de;border-radius:6px;padding:.4rem .7rem;min-width:8.5rem}
.card b{display:block;font-size:1.3rem}.card.finding{border-color:#cf222e;background:#fff5f5}
.card.info{border-color:#8c959f;background:#f6f8fa}
.card span{font-size:.8rem;color:#555}
pre.delta{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f8fa;padding:.6rem;
border-radius:6px;font-size:.85rem}
svg.trend{width:100%;max-width:60rem;height:auto;display:block}
.controls{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center;margin:.5rem 0}
.controls input{flex:1 1 16rem;padding:.35rem;font-size:.9rem}
.controls select{padding:.3rem;font-size:.9rem}
table{width:100%;border-collapse:collapse;table-layout:fixed}
th,td{text-align:left;vertical-align:top;padding:.3rem .35rem;border-bottom:1px solid #e1e4e8;
overflow-wrap:anywhere;word-break:break-word;font-size:.8rem}
th{background:#f6f8fa;position:sticky;top:0;cursor:pointer;user-select:none}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
.mono{font-family:ui-monospace,"Cascadia Mono",Consolas,monospace;font-size:.75rem}
.small{color:#555;font-size:.72rem}
.s-not_reported,.s-not_installed,.s-installed_not_reported{color:#cf222e;font-weight:600}
.s-superseded{color:#57606a;font-weight:600}
.names{overflow-wrap:normal;word-break:normal}.w{white-space:nowrap}
.s-accepted{color:#9a6700;font-weight:600}
.note{color:#555;font-size:.85rem}
@media (max-width:900px){.opt{display:none}body{padding:.6rem}}
"""

_JS = """
(function(){
var table=document.getElementById('findings');if(!table)return;
var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows);
var q=document.getElementById('filter'),st=document.getElementById('status');
var count=document.getElementById('shown');
function apply(){var t=q.value.toLowerCase(),s=st.value,n=0;
rows.forEach(function(r){var ok=(!s||r.getAttribute('data-status')===s)&&
(!t||r.textContent.toLowerCase().indexOf(t)>=0);r.hidden=!ok;if(ok)n++;});
count.textContent=String(n);}
q.addEventListener('input',apply);st.addEventListener('change',apply);
Array.prototype.forEach.call(table.tHead.rows[0].cells,function(th,i){
th.addEventListener('click',function(){
var asc=th.getAttribute('aria-sort')!=='ascending';
Array.prototype.forEach.call(table.tHead.rows[0].cells,function(o){o.removeAttribute('aria-sort');});
th.setAttribute('aria-sort',asc?'ascending':'descending');
var num=th.getAttribute('data-type')==='number';
rows.sort(function(a,b){var x=a.cells[i].getAttribute('data-sort')||a.cells[i].textContent,
y=b.cells[i].getAttribute('data-sort')||b.cells[i].textContent;
var c=num?(parseFloat(x)||0)-(parseFloat(y)||0):x.localeCompare(y);return asc?c:-c;});
rows.forEach(function(r){body.appendChild(r);});});});
apply();})();
"""

_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "img-src data:; base-uri 'none'; form-action 'none'"
)


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _text(verdict: Verdict, column: str) -> str:
    value = _GET[column](verdict)
    return "" if value is None else str(value)


ACTION_STATUSES = FINDING_STATUSES - {Status.SUPERSEDED}
"""Findings someone must act on; a superseded certificate was replaced by a delivered renewal."""

# Where a name may wrap: after a separator, or before a capitalised word inside camelCase
# ("Contoso|Intune|SCEP|Windows", but "SCEPiOS" and "not_reported"-style states stay whole).
_WORD_START = re.compile(
    r"(?<=[ /._-])|(?<=[a-z])(?=[A-Z][a-z])|(?<=[A-Z])(?=[A-Z][a-z]{2,})|(?<=[a-z]{2})(?=[A-Z]{2,})"
)


def names(value: str, *, whole: bool = False) -> str:
    """A template, profile or state name that wraps only between its words, never inside one:
    each word is an unbreakable span. ``whole`` keeps it on one line (status names)."""
    parts = [value] if whole else [p for p in _WORD_START.split(value) if p]
    return "<wbr>".join(f'<span class="w">{esc(part)}</span>' for part in parts or [""])


def _cards(result: RunResult) -> str:
    """One card per status, zeros included, in the terminal summary's order."""
    counts = result.counts()
    items = [
        f'<div class="card finding"><b>{len(result.findings)}</b><span>findings</span></div>',
    ]
    for name, count in counts.items():
        if name in ACTION_STATUSES and count:
            cls = "card finding"
        elif name in FINDING_STATUSES and count:
            cls = "card info"
        else:
            cls = "card"
        items.append(f'<div class="{cls}"><b>{count}</b><span>{esc(name)}</span></div>')
    items.append(f'<div class="card"><b>{len(result.rejects)}</b><span>rejected rows</span></div>')
    return '<div class="cards">' + "".join(items) + "</div>"


def trend_svg(runs: Sequence[RunRow], width: int = 900, height: int = 200) -> str:
    """Findings and accepted per run as two polylines; the scale is stated on the axis."""
    runs = list(runs)[-TREND_RUNS:]
    if not runs:
        return '<p class="note">No run history yet (history disabled or this is the first run).</p>'
    left, right, top, bottom = 50, 10, 12, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    series = (
        ("findings", "#cf222e", [findings_total(r.counts) for r in runs]),
        ("accepted", "#9a6700", [r.counts.get(Status.ACCEPTED.value, 0) for r in runs]),
        *viewspage.trend_series(runs),
    )
    peak = max(1, *(max(values) for _name, _colour, values in series))
    step = plot_w / max(1, len(runs) - 1)

    def point(i: int, v: int) -> str:
        x = left + (i * step if len(runs) > 1 else plot_w / 2)
        return f"{x:.1f},{top + plot_h - v / peak * plot_h:.1f}"

    parts = [
        f'<svg class="trend" viewBox="0 0 {width} {height}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" aria-labelledby="trend-title">',
        f'<title id="trend-title">Findings per run, {len(runs)} run(s)</title>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" '
        'stroke="#888"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#888"/>',
        f'<text x="{left - 6}" y="{top + 10}" font-size="11" text-anchor="end">{peak}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" font-size="11" text-anchor="end">0</text>',
        f'<text x="{left}" y="{top + plot_h + 14}" font-size="11">'
        f"{esc(iso_z(runs[0].as_of)[:10])}</text>",
        f'<text x="{width - right}" y="{top + plot_h + 14}" font-size="11" text-anchor="end">'
        f"{esc(iso_z(runs[-1].as_of)[:10])}</text>",
    ]
    for offset, (name, colour, values) in enumerate(series):
        points = " ".join(point(i, v) for i, v in enumerate(values))
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>'
        )
        for i, v in enumerate(values):
            x, y = point(i, v).split(",")
            parts.append(
                f'<circle cx="{x}" cy="{y}" r="2.5" fill="{colour}"><title>'
                f"{esc(iso_z(runs[i].as_of))}: {v} {name}</title></circle>"
            )
        lx = left + 10 + offset * 110
        parts.append(
            f'<rect x="{lx}" y="{height - 16}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{lx + 14}" y="{height - 7}" font-size="11">{name}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


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


def _row(verdict: Verdict) -> str:
    status = verdict.status.value
    serial = serial_hex(verdict.ca.serial)
    thumb = verdict.ca.thumbprint or ""
    device = _text(verdict, "device_name")
    gone = " (gone from Intune)" if verdict.device_gone else ""
    if verdict.device_candidates:
        gone = f" (ambiguous: {len(verdict.device_candidates)} managed devices share the name)"
    if not device and verdict.ca.common_name:
        device, gone = verdict.ca.common_name, " (CA subject)"
    user = _text(verdict, "user")
    new = " new" if verdict.new_since_last_run else ""
    age = "" if verdict.age_days is None else str(verdict.age_days)
    cells = (
        f'<td class="s-{esc(status)} names">{names(status, whole=True)}'
        f'<span class="small">{new}</span></td>',
        f'<td class="mono">{esc(serial)}<br><span class="small">{esc(thumb)}</span></td>',
        f'<td data-sort="{esc(device.casefold())}">{esc(device)}{esc(gone)}'
        f'<br><span class="small">{esc(user)}</span></td>',
        f'<td class="opt names">{names(_text(verdict, "template"))}</td>',
        f'<td class="opt" data-sort="{esc(_text(verdict, "issued_at"))}">'
        f"{esc(_text(verdict, 'issued_at')[:10])}<br>"
        f'<span class="small">{esc(_text(verdict, "expires_at")[:10])}</span></td>',
        f'<td class="names">{names(_text(verdict, "intune_state"))}</td>',
        f'<td class="opt">{esc(_text(verdict, "first_seen")[:10])}</td>',
        f'<td data-sort="{esc(age)}">{esc(age)}</td>',
        f"<td>{esc(verdict.reason)}"
        + (f'<br><span class="small">{esc(verdict.next_step)}</span>' if verdict.next_step else "")
        + "</td>",
    )
    return f'<tr data-status="{esc(status)}">' + "".join(cells) + "</tr>"


_NUMERIC = ' data-type="number"'


def _table(result: RunResult) -> str:
    rows = [v for v in result.verdicts if v.is_finding or v.status is Status.ACCEPTED]
    shown = rows[:MAX_ROWS]
    statuses = sorted({v.status.value for v in rows})
    options = "".join(f'<option value="{esc(s)}">{esc(s)}</option>' for s in statuses)
    head = "".join(
        f'<th scope="col" class="{cls}"{_NUMERIC if key == "age" else ""}>{esc(title)}</th>'
        for key, title, _width, cls in _HEADERS
    )
    cols = "".join(f'<col class="{cls}" style="width:{width}">' for _k, _t, width, cls in _HEADERS)
    note = ""
    if len(rows) > len(shown):
        note = (
            f'<p class="note">Showing the first {len(shown)} of {len(rows)} rows; '
            "the CSV and JSONL files hold all of them.</p>"
        )
    if not rows:
        return '<p class="note">No findings: every in-scope certificate is accounted for.</p>'
    return (
        '<div class="controls"><input id="filter" type="search" '
        'placeholder="Filter: serial, device, user, reason..." aria-label="Filter findings">'
        f'<select id="status" aria-label="Status"><option value="">all statuses</option>'
        f"{options}</select>"
        f'<span class="note"><span id="shown">{len(shown)}</span> shown</span></div>{note}'
        f'<table id="findings"><colgroup>{cols}</colgroup><thead><tr>{head}</tr></thead><tbody>'
        + "".join(_row(v) for v in shown)
        + "</tbody></table>"
    )


def _unknown_to_ca(result: RunResult) -> str:
    """Intune records whose serial no CA export holds: shown row by row, not only counted."""
    records = result.unknown_to_ca
    if not records:
        return '<p class="note">Every Intune certificate record matches a CA export row.</p>'
    shown = records[:MAX_ROWS]
    rows = "".join(
        "<tr>"
        f'<td class="mono">{esc(serial_hex(r.serial) if r.serial is not None else "")}</td>'
        f"<td>{esc(r.device_name)}<br><span class='small'>{esc(r.user)}</span></td>"
        f'<td class="names">{names(r.profile_name or r.profile_id or "")}</td>'
        f'<td class="names">{names(r.state or "")}</td>'
        f"<td>{esc(r.issuer)}</td>"
        f"<td>{esc(iso_z(r.issued_at)[:10] if r.issued_at else '')}</td>"
        "</tr>"
        for r in shown
    )
    note = (
        f'<p class="note">Showing the first {len(shown)} of {len(records)} records.</p>'
        if len(records) > len(shown)
        else ""
    )
    return (
        '<p class="note">Intune reports these certificates, but no CA export given lists their '
        "serial: another CA, or an export that is incomplete.</p>"
        f'{note}<table id="unknown-to-ca"><colgroup><col style="width:24%">'
        '<col style="width:18%"><col style="width:18%"><col style="width:12%">'
        '<col style="width:18%"><col style="width:10%"></colgroup>'
        "<thead><tr><th>Serial</th><th>Device / user</th><th>Profile</th><th>Intune state</th>"
        f"<th>Issuer</th><th>Issued</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _provenance(result: RunResult) -> str:
    rows = "".join(
        f'<tr><td>{esc(i.kind)}</td><td class="mono">{esc(i.path)}</td><td>{esc(i.format)}</td>'
        f'<td class="mono">{esc(i.sha256)}</td><td>{i.rows}</td><td>{i.rejected}</td></tr>'
        for i in result.inputs
    )
    facts = (
        ("run id", result.run_id),
        ("as of", iso_z(result.as_of)),
        ("grace", f"{result.grace_hours:g} h"),
        ("tenant", result.tenant_id or ""),
        ("templates", ", ".join(result.templates) or "all"),
        ("Intune sources", ", ".join(result.intune_sources)),
        ("versions", f"reconcile {__version__}, Python {platform.python_version()}"),
    )
    dl = "".join(f"<tr><th scope='row'>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in facts)
    return (
        f'<table class="facts"><colgroup><col style="width:12rem"><col></colgroup>{dl}</table>'
        '<h3 style="font-size:1rem">Inputs</h3><table><colgroup><col style="width:9%">'
        '<col style="width:30%"><col style="width:9%"><col style="width:40%">'
        '<col style="width:6%"><col style="width:6%"></colgroup>'
        "<thead><tr><th>kind</th><th>path</th><th>format</th><th>sha256</th><th>rows</th>"
        f"<th>rejected</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def render(result: RunResult, delta: RunDelta | None = None, runs: Sequence[RunRow] = ()) -> str:
    """The whole page as one string."""
    title = f"reconcile report {result.run_id}"
    changed = (
        f'<pre class="delta">{esc(format_delta(delta))}</pre>'
        if delta is not None
        else '<p class="note">Run history is disabled, so nothing is compared.</p>'
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>Certificates issued but not delivered</h1>"
        f'<div class="meta">run {esc(result.run_id)} · as of {esc(iso_z(result.as_of))} · '
        f"grace {result.grace_hours:g} h · tenant {esc(result.tenant_id or 'unknown')}</div>"
        f"</header><main>{_cards(result)}"
        f"<h2>What changed</h2>{changed}"
        f"<h2>Trend</h2>{trend_svg(runs)}"
        f"<h2>Findings</h2>{_table(result)}"
        f"<h2>Unknown to the CA ({len(result.unknown_to_ca)})</h2>{_unknown_to_ca(result)}"
        f"{viewspage.sections(result)}"
        f"<h2>Provenance</h2>{_provenance(result)}"
        f"</main><script>{_JS}{viewspage.VIEW_JS}</script></body></html>\n"
    )


def write(
    handle: IO[str], result: RunResult, delta: RunDelta | None, runs: Sequence[RunRow]
) -> None:
    handle.write(render(result, delta, runs))
