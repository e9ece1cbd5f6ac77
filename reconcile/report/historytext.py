"""The run history as text: the delta a summary opens with, and `reconcile history` tables.

Given a width (the terminal's), every table fits it: see :func:`reconcile.report.text.fit_table`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from reconcile.model import FINDING_STATUSES, FindingDetail, RunDelta, RunRow, Status
from reconcile.report.text import fit_table, printable
from reconcile.timeparse import iso_z

_TREND_STATUSES = (
    Status.NOT_REPORTED,
    Status.NOT_INSTALLED,
    Status.SUPERSEDED,
    Status.INSTALLED_NOT_REPORTED,
    Status.ACCEPTED,
    Status.WITHIN_GRACE,
    Status.DELIVERED,
)

VIEW_COUNTS = ("revoked_installed", "expiring", "revocation_plan")
"""Each view's count, recorded beside the status counts."""


def findings_total(counts: Mapping[str, int]) -> int:
    return sum(counts.get(s.value, 0) for s in FINDING_STATUSES)


def format_delta(delta: RunDelta, limit: int = 10) -> str:
    """The block a summary opens with: new, resolved, open longest."""
    if delta.previous_run_id is None:
        lines = [f"First recorded run: {len(delta.new)} open findings, all new."]
    else:
        lines = [
            f"Since run {delta.previous_run_id}: {len(delta.new)} new, "
            f"{len(delta.resolved)} resolved, {delta.open_count} open."
        ]
    sections = (
        ("New", delta.new if delta.previous_run_id is not None else ()),
        ("Resolved", delta.resolved),
        ("Open longest", delta.longest_open),
    )
    for title, refs in sections:
        if not refs:
            continue
        lines.append(f"{title}:")
        for ref in refs[:limit]:
            name = f" {printable(ref.label)}" if ref.label else ""
            lines.append(
                f"  {ref.serial}{name} ({ref.status}, first seen {iso_z(ref.first_seen)[:10]},"
                f" {ref.age_days} d)"
            )
        if len(refs) > limit:
            lines.append(f"  ... and {len(refs) - limit} more")
    return "\n".join(lines)


def format_runs(rows: Sequence[RunRow], width: int | None = None) -> str:
    """One line per run; on a narrow terminal the columns after the run id form a second table."""
    table = [
        (
            r.run_id,
            iso_z(r.as_of),
            printable(r.tenant),
            findings_total(r.counts),
            r.counts.get(Status.ACCEPTED.value, 0),
            r.exit_code,
            f"{r.duration:.1f}",
        )
        for r in rows
    ]
    headers = ("run", "as_of", "tenant", "findings", "accepted", "exit", "seconds")
    return fit_table(table, headers, width, split=True)


def format_trend(rows: Sequence[RunRow], width: int | None = None) -> str:
    """One line per run; on a narrow terminal the counts go into several tables by as_of."""
    headers = ("as_of", "findings", *(s.value for s in _TREND_STATUSES), *VIEW_COUNTS)
    table = [
        (
            iso_z(r.as_of),
            findings_total(r.counts),
            *(r.counts.get(s.value, 0) for s in _TREND_STATUSES),
            *(r.counts.get(name, 0) for name in VIEW_COUNTS),
        )
        for r in rows
    ]
    return fit_table(table, headers, width, split=True)


def format_run_details(rows: Sequence[FindingDetail], width: int | None = None) -> str:
    """The device or subject wraps at words; a block per finding when the serial leaves no room."""
    if not rows:
        return "No findings were open in this run."
    return fit_table(
        [
            (d.status, d.serial, printable(d.label), iso_z(d.first_seen)[:10], d.age_days)
            for d in rows
        ],
        ("latest status", "serial", "device or subject", "first seen", "age (days)"),
        width,
        title=2,
        wrapped=(2,),
        min_room=20,
    )
