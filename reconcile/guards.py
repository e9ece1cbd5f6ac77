"""Checks that stop a run which could not check what it was asked to (exit 2, no report).

A report saying "No findings" over an export whose every row was rejected, over a template
that matches nothing, or over a serial-only match against another CA's records, is a false
all-clear: a nightly job would stay green forever while checking nothing.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from reconcile.errors import InputError, UsageError
from reconcile.model import CaExtent, InputFile, PastExtent, Reject
from reconcile.timeparse import iso_z

log = logging.getLogger("reconcile")

# One issuer must account for this share of an issuer-less export's matched serials.
INFER_SHARE = 0.95
_LISTED_TEMPLATES = 10
# Intune data fetched further than this from as-of describes another day than the report's.
SNAPSHOT_AGE = timedelta(days=7)
# A CA's export may hold this share fewer certificates than the last run's before a note says so.
SHRINK_SHARE = 0.01


def _fix_for(reason: str) -> str:
    if "is not a date" in reason:
        return "set --date-order (mdy, dmy or ymd) or --ca-timezone to match the CA"
    if "columns where the header has" in reason or "not valid CSV" in reason:
        return "check --ca-format and that the file is one export, not several pasted together"
    if "unbalanced" in reason:
        return "export the file again; a cell holds a stray double quote"
    return "see the rejected rows with -v, or raise --max-reject-ratio if they are expected"


def check_rejects(inputs: Iterable[InputFile], rejects: Sequence[Reject], ratio: float) -> None:
    """Every row, or more than ``ratio`` of an export's rows, rejected: stop."""
    for item in inputs:
        if not item.rows or not item.rejected:
            continue
        if item.rejected == item.rows or item.rejected / item.rows > ratio:
            first = next((r for r in rejects if r.source == item.path), None)
            reason = f"line {first.line}: {first.reason}" if first is not None else "unknown"
            raise InputError(
                f"{item.rejected} of {item.rows} rows rejected (more than ca.max_reject_ratio "
                f"{ratio:g}); first: {reason}; {_fix_for(reason)}",
                item.path,
            )


def check_templates(
    counts: Counter[tuple[str | None, str | None]], templates: Sequence[str]
) -> None:
    """A --template that matches no row of any export is a typo, not an all-clear."""
    for template in templates:
        wanted = template.casefold()
        if any(
            (oid is not None and oid.casefold() == wanted)
            or (name is not None and name.casefold() == wanted)
            for oid, name in counts
        ):
            continue
        named: Counter[str] = Counter()
        for (oid, name), count in counts.items():
            named[name or oid or "(no template)"] += count
        held = ", ".join(
            f"{name} ({count})" for name, count in named.most_common(_LISTED_TEMPLATES)
        )
        raise UsageError(
            f"template {template!r} matches no certificate of the CA exports; "
            f"they hold: {held or 'no certificates'}"
        )


def check_empty(in_scope_rows: Counter[str], inputs: Iterable[InputFile]) -> None:
    """An export with no in-scope certificate checks nothing: stop unless --allow-empty."""
    for item in inputs:
        if item.kind == "ca-export" and not in_scope_rows[item.path]:
            what = f"{item.rows} rows" if item.rows else "no rows"
            raise InputError(
                f"no in-scope certificate ({what}, none selected); pass --allow-empty if that "
                "is expected",
                item.path,
            )


def check_snapshot(
    path: Path,
    tenant_id: str | None,
    fetched_at: datetime | None,
    configured_tenant: str | None,
    as_of: datetime,
    tenant_label: str = "--tenant-id",
) -> list[str]:
    """Intune data of another tenant stops the run; data fetched weeks away from as-of is
    said (stderr, summary, run.json): every delivery state in it may have changed since."""
    if configured_tenant and tenant_id and tenant_id.casefold() != configured_tenant.casefold():
        raise InputError(
            f"the snapshot is of tenant {tenant_id}, not the configured tenant "
            f"{configured_tenant} ({tenant_label}); fetch that tenant or unset {tenant_label}",
            path,
        )
    if fetched_at is None or abs(as_of - fetched_at) <= SNAPSHOT_AGE:
        return []
    days = abs(as_of - fetched_at).days
    side = "before" if fetched_at < as_of else "after"
    note = (
        f"{path}: Intune data fetched {fetched_at.strftime('%Y-%m-%dT%H:%M:%SZ')}, {days} days "
        f"{side} as-of: delivery states may differ from the CA's on that day; fetch again "
        "or set --as-of to the fetch time"
    )
    log.warning("%s", note)
    return [note]


def check_extent(
    current: Sequence[CaExtent], past: PastExtent | None, allow_older: bool
) -> list[str]:
    """Against the last recorded run: a CA's newest certificate (or highest request id) older
    than that run's means rows are missing, most likely the newest ones of a cut export, and
    a report would call their certificates' absence from Intune an all-clear: stop, unless
    ``allow_older``. Fewer certificates than that run's gets a note: rows purged from the
    CA database (certutil -deleterow) look the same as rows lost from the middle of a file."""
    if past is None:
        return []
    before = {e.issuer_key: e for e in past.extents}
    run = f"the last run ({past.run_id}, as of {iso_z(past.as_of)})"
    notes = []
    for now in current:
        then = before.pop(now.issuer_key, None)
        if then is None:
            continue
        where = ", ".join(now.sources)
        lost = _lost(now, then)
        if lost is not None:
            found = f"{now.issuer}: {lost} in {run}: the export is missing rows"
            if not allow_older:
                raise InputError(
                    f"{found} (cut short, or an older copy); export it again, or pass "
                    "--allow-older-export if it is older on purpose",
                    where,
                )
            notes.append(f"{where}: {found} (--allow-older-export)")
        elif now.certificates < then.certificates * (1 - SHRINK_SHARE):
            notes.append(
                f"{where}: {now.issuer}: {now.certificates} certificates, {then.certificates} "
                f"in {run}: rows purged from the CA database, or lost from the export"
            )
    notes.extend(
        f"{then.issuer}: {then.certificates} certificates in {run}, in none of this run's exports"
        for then in before.values()
    )
    for note in notes:
        log.warning("%s", note)
    return notes


def _lost(now: CaExtent, then: CaExtent) -> str | None:
    """What says ``now`` lacks rows ``then`` had: a CA never takes back a request number or
    an issuance."""
    if (
        now.highest_request_id is not None
        and then.highest_request_id is not None
        and now.highest_request_id < then.highest_request_id
    ):
        return f"highest request id {now.highest_request_id}, but {then.highest_request_id}"
    if (
        now.newest_issued is not None
        and then.newest_issued is not None
        and now.newest_issued < then.newest_issued
    ):
        return (
            f"newest certificate issued {iso_z(now.newest_issued)}, but {iso_z(then.newest_issued)}"
        )
    return None
