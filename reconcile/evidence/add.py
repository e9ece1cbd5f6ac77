"""`reconcile evidence add`: parse logs, store what they prove, and say so per file.

Every file is parsed before anything is stored, so one unreadable file among several leaves
the store as it was and the command can simply be re-run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from reconcile.errors import UsageError
from reconcile.evidence.model import Outcome, ParsedLog
from reconcile.evidence.parse import parse_log
from reconcile.evidence.source import ParseOptions, sha256_of
from reconcile.evidence.store import AddResult, EvidenceStore
from reconcile.timeparse import iso_z


@dataclass(frozen=True, slots=True)
class Added:
    parsed: ParsedLog
    result: AddResult


def parse_options(
    device: str | None = None, timezone: str | None = None, log_date: str | None = None
) -> ParseOptions:
    """Options as typed on the command line; a bad zone or date is a usage error."""
    zone: tzinfo = UTC
    if timezone:
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise UsageError(f"--timezone {timezone!r} is not a known IANA time zone") from None
    day = None
    if log_date:
        try:
            day = date.fromisoformat(log_date)
        except ValueError:
            raise UsageError(f"--log-date {log_date!r} is not a date (YYYY-MM-DD)") from None
    return ParseOptions(device=device.strip() if device else None, timezone=zone, log_date=day)


def options_key(options: ParseOptions) -> str:
    """How a file was read; the same bytes read another way replace the earlier reading."""
    day = options.log_date.isoformat() if options.log_date else ""
    return f"device={options.device or ''};timezone={options.timezone};log_date={day}"


def add_logs(
    paths: Sequence[Path],
    store: EvidenceStore,
    options: ParseOptions,
    now: datetime | None = None,
) -> list[Added]:
    parsed = [parse_log(path, options, sha256_of(path)) for path in paths]
    key = options_key(options)
    return [Added(p, store.add(p, key, now)) for p in parsed]


def render_added(added: Sequence[Added]) -> str:
    """Per file: what it proved (device, stage, outcome) and how much of it was skipped."""
    lines: list[str] = []
    for item in added:
        parsed = item.parsed
        lines.append(f"{parsed.path}: {parsed.platform.value} log, {item.result.value}")
        if not parsed.records:
            lines.append("  no SCEP enrollment found")
        for record in parsed.records:
            stage = record.stage.value if record.stage else "no stage"
            when = record.installed_at if record.outcome is Outcome.INSTALLED else record.time
            at = f" at {iso_z(when)}" if when else ""
            profile = record.profile or "profile not logged"
            lines.append(f"  {record.device}: {profile}")
            lines.append(f"    {record.outcome.value} (reached {stage}){at}")
            if record.detail:
                lines.append(f"    {record.detail}")
        lines.append(f"  {parsed.units} {parsed.unit} read, {parsed.skipped} skipped")
        if parsed.undated:
            lines.append(
                "  this log has no dates: add it again with --log-date YYYY-MM-DD "
                "so its installs can be matched to certificates"
            )
        lines.extend(f"  warning: {warning}" for warning in parsed.warnings)
    return "\n".join(lines) + "\n"
