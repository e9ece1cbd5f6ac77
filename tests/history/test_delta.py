"""The delta from what the store read: pure, so every case is a few records and no database."""

from __future__ import annotations

from datetime import timedelta

from reconcile.history.delta import LONGEST_OPEN, delta, label
from reconcile.model import FindingRef, Status
from tests.factories import AS_OF, ca_cert, device, intune_cert, verdict


def _key(serial: int) -> tuple[str, str]:
    return ("CN=ISSUER", f"{serial:04X}")


def test_new_resolved_and_longest_open_from_the_store_facts():
    current = {_key(n): verdict(Status.NOT_REPORTED, ca=ca_cert(n)) for n in range(1, 9)}
    first_seen = {key: AS_OF - timedelta(days=int(key[1], 16)) for key in current}
    gone = FindingRef("CN=ISSUER", "0999", "PC-9", "not_installed", AS_OF - timedelta(days=3), 3)
    changes = delta("run-1", current, first_seen, {_key(1), _key(2)}, [gone], AS_OF)
    assert changes.previous_run_id == "run-1"
    assert [r.serial for r in changes.new] == ["0001", "0002"]
    assert changes.resolved == (gone,)
    assert changes.open_count == 8
    # Oldest first among those open before (new ones are not "open longest").
    assert [r.serial for r in changes.longest_open] == ["0008", "0007", "0006", "0005", "0004"]
    assert len(changes.longest_open) == LONGEST_OPEN
    assert changes.longest_open[0].age_days == 8


def test_resolved_come_sorted_by_issuer_then_serial():
    refs = [
        FindingRef(issuer, serial, None, "not_reported", AS_OF, 0)
        for issuer, serial in (("B", "01"), ("A", "02"), ("A", "01"))
    ]
    changes = delta(None, {}, {}, set(), refs, AS_OF)
    assert [(r.issuer, r.serial) for r in changes.resolved] == [
        ("A", "01"),
        ("A", "02"),
        ("B", "01"),
    ]
    assert changes.new == () and changes.longest_open == () and changes.open_count == 0


def test_a_finding_is_labelled_by_intune_then_the_ca():
    assert label(verdict(Status.NOT_INSTALLED, intune=intune_cert(device_name="PC-1"))) == "PC-1"
    assert label(verdict(Status.NOT_REPORTED, device=device("PC-2"))) == "PC-2"
    assert label(verdict(Status.NOT_REPORTED, ca=ca_cert(common_name="PC-3"))) == "PC-3"
    bare = verdict(Status.NOT_REPORTED, ca=ca_cert(common_name=None, subject="CN=X, O=Y"))
    assert label(bare) == "CN=X, O=Y"
