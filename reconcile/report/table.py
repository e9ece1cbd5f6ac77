"""What the admin sees on the terminal: counts per status, then the findings."""

from __future__ import annotations

import re

from tabulate import tabulate

from reconcile.identity import serial_hex
from reconcile.model import FINDING_STATUSES, RunResult, Status, Verdict
from reconcile.timeparse import iso_z

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str | None, width: int = 40) -> str:
    """Names from Graph may hold escape sequences; never let them reach the terminal raw."""
    if not text:
        return ""
    clean = _CONTROL.sub("\N{REPLACEMENT CHARACTER}", text)
    return clean if len(clean) <= width else clean[: width - 1] + "…"


def summary_table(result: RunResult) -> str:
    counts = result.counts()
    rows = [
        (name, count, "finding" if name in FINDING_STATUSES else "")
        for name, count in counts.items()
        if count or name not in (Status.INSTALLED_NOT_REPORTED, Status.ACCEPTED)
    ]
    rows.append(("rejected input rows", len(result.rejects), ""))
    return tabulate(rows, headers=("status", "certificates", ""), tablefmt="simple")


def _device(v: Verdict) -> str:
    name = v.intune.device_name if v.intune and v.intune.device_name else None
    if name is None and v.device is not None:
        name = v.device.device_name
    if name is None:
        name = v.ca.common_name
    suffix = " (gone)" if v.device_gone else ""
    return printable(name, 28) + suffix


def findings_table(result: RunResult, max_rows: int) -> str:
    findings = result.findings
    if not findings:
        return "No findings: every in-scope certificate is delivered, pending or accounted for."
    shown = findings[:max_rows] if max_rows >= 0 else findings
    rows = [
        (
            v.status.value,
            serial_hex(v.ca.serial),
            _device(v),
            printable(v.ca.template_name or v.ca.template_oid, 24),
            iso_z(v.ca.not_before)[:10],
            printable(v.intune.state if v.intune else "", 22),
            printable(v.next_step or v.reason, 60),
        )
        for v in shown
    ]
    table = tabulate(
        rows,
        headers=("status", "serial", "device", "template", "issued", "intune", "next step"),
        tablefmt="simple",
    )
    hidden = len(findings) - len(shown)
    if hidden > 0:
        table += (
            f"\n… {hidden} more finding(s) not shown; write them all with --csv PATH "
            "or --out-dir DIR, or raise --max-rows."
        )
    return table


def render(result: RunResult, max_rows: int, preamble: str = "") -> str:
    """The full terminal report; summary.txt holds the same text."""
    head = (
        f"reconcile run {result.run_id}  as of {iso_z(result.as_of)}  "
        f"grace {result.grace_hours:g} h  findings {len(result.findings)}"
    )
    parts = [head, ""]
    if preamble:
        parts += [preamble, ""]
    parts += [summary_table(result), "", findings_table(result, max_rows)]
    from reconcile.report import viewspage

    views = viewspage.text(result, max_rows)
    return "\n".join(parts) + "\n" + (f"\n{views}" if views else "")
