"""The columnar engine: both sides of a run as DuckDB tables, classified in SQL.

``classify`` takes records already in memory (tests, explain on a handful of records); a run
loads its inputs straight from the files (``reconcile.engine.load``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from reconcile.engine.classify import IntuneRecords, JoinOptions, JoinResult
from reconcile.engine.classify import classify as classify_tables
from reconcile.engine.db import Database
from reconcile.engine.tables import (
    CA_COLUMNS,
    DEVICE_KEY_COLUMNS,
    INTUNE_COLUMNS,
    ca_rows,
    create_statements,
    intune_row,
)
from reconcile.intune.side import Entry, IntuneSide
from reconcile.model import CaCertificate, IntuneCertificate, ManagedDevice, Verdict

__all__ = [
    "Database",
    "IntuneRecords",
    "JoinOptions",
    "JoinResult",
    "SideRecords",
    "classify",
    "classify_tables",
]


class SideRecords:
    """An in-memory IntuneSide as the engine's tables and record source."""

    def __init__(self, side: IntuneSide):
        self.side = side
        self.devices_present = side.devices is not None
        self._entries: dict[tuple[int, int], Entry] = {
            (e.collection, e.where): e for e in side.entries
        }

    def load(self, db: Database) -> None:
        db.insert("intune", INTUNE_COLUMNS, (intune_row(e) for e in self.side.entries))
        devices = self.side.devices
        if devices is not None:
            db.insert("device_ids", DEVICE_KEY_COLUMNS, devices.by_id.items())
            db.insert("device_names", DEVICE_KEY_COLUMNS, devices.by_name.items())

    def fetch(
        self, certificates: set[tuple[int, int]], devices: set[int]
    ) -> tuple[dict[tuple[int, int], IntuneCertificate], dict[int, ManagedDevice]]:
        found = {key: self.side.certificate(self._entries[key]) for key in certificates}
        known = self.side.devices
        return found, ({d: known.get(d) for d in devices} if known is not None else {})


def classify(
    certificates: Iterable[CaCertificate],
    side: IntuneSide,
    options: JoinOptions,
    keep_all: bool = True,
    keep_if: Callable[[Verdict], bool] | None = None,
) -> JoinResult:
    """Every certificate gets exactly one status, in the order given; see engine.classify."""
    with Database() as db:
        for statement in create_statements():
            db.execute(statement)
        records = SideRecords(side)
        records.load(db)
        db.insert("ca", CA_COLUMNS, ca_rows(certificates))
        return classify_tables(db, records, options, keep_all=keep_all, keep_if=keep_if)
