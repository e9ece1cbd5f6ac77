"""The join over a natively loaded snapshot: ``classify_tables`` with ``EngineSnapshot`` as its
records gives the verdicts ``join.classify`` gives over the same snapshot read by Python."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from reconcile.engine import classify as classify_module
from reconcile.engine.classify import Records, classify_tables
from reconcile.engine.db import Database
from reconcile.engine.snapshot import load_snapshot
from reconcile.engine.tables import CA_COLUMNS, ca_record, ca_row, create_tables, load_certificates
from reconcile.enrich.advice import next_step
from reconcile.join import JoinOptions, ViewKeep, classify
from reconcile.model import CA_LIGHT_EMPTIES, CaCertificate
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


class _Watched:
    """The snapshot's records, noting the engine's tables each time verdicts are built."""

    def __init__(self, inner: Records, db: Database) -> None:
        self.inner, self.db = inner, db
        self.tables: list[set[str]] = []

    @property
    def devices_read(self) -> bool:
        return self.inner.devices_read

    def certificates(self, keys: Collection[tuple[int, int]]) -> Mapping[Any, Any]:
        self.tables.append({name for (name,) in self.db.rows("SHOW TABLES")})
        return self.inner.certificates(keys)

    def devices(self, positions: Collection[int]) -> Mapping[int, Any]:
        return self.inner.devices(positions)

    def light_certificates(self, keys: Collection[tuple[int, int]]) -> Mapping[Any, Any]:
        self.tables.append({name for (name,) in self.db.rows("SHOW TABLES")})
        return self.inner.light_certificates(keys)

    def light_devices(self, positions: Collection[int]) -> Mapping[int, Any]:
        return self.inner.light_devices(positions)


def test_the_join_tables_go_before_the_verdicts_are_built_and_each_comes_advised() -> None:
    """The kept rows are copied out and the join's tables dropped before a verdict is built,
    so the engine's memory is back before Python's grows; each kept verdict comes with the
    next step ``with_next_steps`` would give it, and is otherwise the same."""
    directory = FIXTURES[0]
    keep = ViewKeep(AS_OF, AS_OF + timedelta(days=400))
    plain, advised = JoinOptions(as_of=AS_OF), JoinOptions(as_of=AS_OF, next_step=next_step)
    with SnapshotSource(directory, DELIVERED) as source:
        certs = _certificates(source)
        expected = classify(certs, source.side, plain, False, keep_cert=keep, defer_records=True)
    with Database() as db:
        create_tables(db)
        load_certificates(db, certs)
        with load_snapshot(db, directory, DELIVERED) as snapshot:
            records = _Watched(snapshot, db)
            got = classify_tables(
                db, records, advised, keep_all=False, keep_cert=keep, defer_records=True
            )
    assert records.tables and all(
        {"ca", "j_verdicts", "j_ca", "j_in", "device_ids"}.isdisjoint(seen)
        for seen in records.tables
    )
    assert len(got.verdicts) > 1
    assert [v.next_step for v in got.verdicts] == [next_step(v) for v in expected.verdicts]
    assert [replace(v, next_step="") for v in got.verdicts] == list(expected.verdicts)


@pytest.mark.parametrize("defer", [False, True])
def test_kept_rows_copied_a_few_ca_rows_at_a_time_are_the_same(
    monkeypatch: pytest.MonkeyPatch, defer: bool
) -> None:
    """At 10M rows the kept rows are copied and read back one range of CA rows at a time;
    ranges of three rows (some of them empty) give the verdicts one range gives."""
    directory = FIXTURES[0]
    options = JoinOptions(as_of=AS_OF)
    keep = ViewKeep(AS_OF, AS_OF + timedelta(days=400))
    with SnapshotSource(directory, DELIVERED) as source:
        certs = _certificates(source)
        expected = classify(certs, source.side, options, False, keep_cert=keep, defer_records=defer)
        expected_later = expected.deferred.view_only() if expected.deferred else iter(())
        later = list(expected_later)
    monkeypatch.setattr(classify_module, "_SEQ_RANGE", 3)
    with Database() as db:
        create_tables(db)
        load_certificates(db, certs)
        with load_snapshot(db, directory, DELIVERED) as snapshot:
            got = classify_tables(
                db, snapshot, options, keep_all=False, keep_cert=keep, defer_records=defer
            )
            got_later = list(got.deferred.view_only()) if got.deferred else []
    assert len(certs) > 3 * 3 and len(got.verdicts) > 1
    assert got.verdicts == expected.verdicts
    assert got_later == later
    assert got.dropped == expected.dropped


def test_a_ca_row_read_as_light_rows_is_the_light_record() -> None:
    """View-only verdicts read their CA rows with ``CA_LIGHT_EMPTIES`` as NULL instead of making
    each record light: those must be exactly the fields ``CaCertificate.light`` empties (every
    field is set here, so one too many or too few shows)."""
    unset: dict[str, Any] = {"thumbprint": "A" * 40, "revoked_at": AS_OF, "san": "DNS=pc-1"}
    unset |= {"out_of_scope": "CA", "managed_device_id": "dev-1", "cloud_pki_leaf_id": "leaf-1"}
    full = replace(ca_cert(0xABC), **unset)
    assert None not in (getattr(full, f.name) for f in fields(full))
    row = ca_row(full, 0)[1:]
    names = list(CA_COLUMNS)[1:]
    nulled = tuple(
        None if name in CA_LIGHT_EMPTIES else value for name, value in zip(names, row, strict=True)
    )
    assert ca_record(nulled) == full.light()
