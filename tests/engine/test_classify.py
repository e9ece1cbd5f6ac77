"""The join over a natively loaded snapshot: ``classify_tables`` with ``EngineSnapshot`` as its
records gives the verdicts ``join.classify`` gives over the same snapshot read by Python."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from reconcile.engine.classify import Records, classify_tables
from reconcile.engine.db import Database
from reconcile.engine.snapshot import load_snapshot
from reconcile.engine.tables import create_tables, load_certificates
from reconcile.join import JoinOptions, ViewKeep, classify
from reconcile.model import CaCertificate
from tests.engine.reference_snapshot import SnapshotSource
from tests.factories import AS_OF, ca_cert

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = sorted(
    path.parent
    for base in (ROOT / "tests", ROOT / "reconcile" / "demo")
    for path in base.rglob("metadata.json")
)
DELIVERED = ("active", "installed")


def _certificates(source: SnapshotSource) -> list[CaCertificate]:
    """A CA certificate for every serial the snapshot names, on its device, plus one Intune
    never saw."""
    certs = [
        ca_cert(
            entry.serial,
            issuer=source.side.certificate(entry).issuer,
            common_name=entry.device_name,
            line=n,
        )
        for n, entry in enumerate(source.side.entries, start=2)
        if entry.serial is not None
    ]
    return [*certs, ca_cert(0xFEEDFACE, line=len(certs) + 2)]


@pytest.mark.parametrize("directory", FIXTURES, ids=lambda p: str(p.relative_to(ROOT)))
def test_native_snapshot_gives_the_python_sides_verdicts(directory: Path) -> None:
    options = JoinOptions(as_of=AS_OF)
    keep = ViewKeep(AS_OF, AS_OF + timedelta(days=400))
    with SnapshotSource(directory, DELIVERED) as source:
        certs = _certificates(source)
        expected = classify(certs, source.side, options, keep_all=False, keep_cert=keep)
    with Database() as db:
        create_tables(db)
        load_certificates(db, certs)
        with load_snapshot(db, directory, DELIVERED) as snapshot:
            records: Records = snapshot
            got = classify_tables(db, records, options, keep_all=False, keep_cert=keep)
    assert len(expected.verdicts) > 1
    assert got.verdicts == expected.verdicts
    assert got.unknown_to_ca == expected.unknown_to_ca
    assert got.dropped == expected.dropped
