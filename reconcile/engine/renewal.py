"""The expiring view's renewal check (``views._renewed``) over the ``intune`` table.

An expiring certificate whose device already holds a newer delivered certificate of the same
profile was renewed: it is no finding to act on. The candidates are few (delivered, expiring
within days); the records are every one Intune reports, so they are searched in SQL and only
the candidates' positions come back.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from reconcile.engine.db import Database
from reconcile.engine.keys import device_fold_sql, device_folds
from reconcile.engine.tables import micros, serial_text
from reconcile.identity import device_fold, fold
from reconcile.model import Verdict


class Candidate(NamedTuple):
    """What the check needs of one expiring verdict, as plain values."""

    device: str
    """The Intune record's device id, else ``device_fold`` of its device name."""
    profile: str
    """The record's profile id, else its folded profile name."""
    issued: int
    """The latest issuance either side gives, UTC epoch microseconds."""
    serial: str
    """The CA serial, canonical hex (``tables.serial_text``)."""
    thumbprint: str | None


_COLUMNS = {
    "idx": "BIGINT",
    "device": "VARCHAR",
    "profile": "VARCHAR",
    "issued": "BIGINT",
    "serial": "VARCHAR",
    "thumbprint": "VARCHAR",
}


def candidate_of(verdict: Verdict) -> Candidate | None:
    """The verdict's link and issuance as ``views._verdict_link`` and ``views._issued`` give
    them; None when it has no link or no issuance time (never renewed, as in views)."""
    record = verdict.intune
    if record is None:
        return None
    device = record.device_id or device_fold(record.device_name)
    profile = record.profile_id or fold(record.profile_name)
    times = [m for m in (micros(verdict.ca.not_before), micros(record.issued_at)) if m is not None]
    if not device or not profile or not times:
        return None
    return Candidate(
        device, profile, max(times), serial_text(verdict.ca.serial), verdict.ca.thumbprint
    )


DELIVERED = "delivered AND issued_at IS NOT NULL"
"""The ``intune`` records the check reads: once the join is done only these are kept."""
READS = "delivered, issued_at, profile, device_id, device_name, serial, thumbprint"


def renewed(db: Database, candidates: Iterable[Candidate | None]) -> set[int]:
    """Positions of the candidates for which ``intune`` holds a delivered record of the same
    device and profile, issued after the candidate, that is not the candidate's own.

    ``candidates`` are read once, as they come: at 1M rows 70,000 of them, made from the
    expiring view's spooled verdicts, were 20 MB as a list beside the run's verdicts."""
    db.execute(
        "CREATE OR REPLACE TABLE renewal_candidates ("
        + ", ".join(f"{name} {kind}" for name, kind in _COLUMNS.items())
        + ")"
    )
    rows = ((i, *c) for i, c in enumerate(candidates) if c is not None)
    if not db.insert("renewal_candidates", _COLUMNS, rows):
        db.execute("DROP TABLE renewal_candidates")
        return set()
    records = f"""
        FROM intune WHERE {DELIVERED}
        AND profile IN (SELECT profile FROM renewal_candidates)
    """
    device_folds(
        db,
        "renewal_folds",
        f"SELECT device_name {records} AND (device_id IS NULL OR device_id = '')",
    )
    found = db.rows(
        f"""
        SELECT DISTINCT c.idx FROM renewal_candidates c JOIN (
            SELECT CASE WHEN device_id <> '' THEN device_id
                        ELSE {device_fold_sql("device_name", "renewal_folds")} END AS device,
                   profile, issued_at, serial, thumbprint
            {records}
        ) i ON i.device = c.device AND i.profile = c.profile
        WHERE i.issued_at > c.issued
          AND NOT coalesce(CASE WHEN i.serial IS NOT NULL THEN i.serial = c.serial
                                ELSE i.thumbprint = c.thumbprint END, false)
        """
    )
    db.execute("DROP TABLE renewal_candidates")
    db.execute("DROP TABLE renewal_folds")
    return {index for (index,) in found}
