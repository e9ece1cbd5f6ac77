"""One certificate, one verdict: overlapping exports collapse, disagreeing copies are named."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta

import pytest

from reconcile.model import CaCertificate
from tests.engine.reference_dedupe import Collapser
from tests.factories import AS_OF, ca_cert


def collapse(
    certs: Iterable[CaCertificate], index: frozenset[str] = frozenset()
) -> tuple[Collapser, list[CaCertificate], list[CaCertificate]]:
    """What the first read passes on, and what a replay of the same rows would pass on."""
    rows = list(certs)
    collapser = Collapser(index)
    first = list(collapser.first_copies(rows))
    collapser.finish()
    return collapser, first, list(collapser.winners(rows))


def test_identical_copies_collapse_and_are_counted() -> None:
    a = ca_cert(0x10, source="a.csv", line=2)
    b = ca_cert(0x10, source="b.csv", line=7)
    other = ca_cert(0x11, source="a.csv", line=3)
    collapser, first, _ = collapse([a, other, b])
    assert first == [a, other]
    assert collapser.duplicate_rows == 1
    assert collapser.warnings == [] and not collapser.replay_needed


def test_issuer_spellings_are_one_certificate_but_other_cas_are_not() -> None:
    a = ca_cert(0x10, issuer="Contoso Issuing CA", line=2)
    b = ca_cert(0x10, issuer="CN=Contoso Issuing CA, DC=contoso, DC=com", line=3)
    c = ca_cert(0x10, issuer="Fabrikam CA", line=4)
    collapser, first, _ = collapse([a, b, c])
    assert [x.line for x in first] == [2, 4]
    assert collapser.duplicate_rows == 1


def test_a_later_revoked_copy_wins_through_a_replay(caplog: pytest.LogCaptureFixture) -> None:
    issued = ca_cert(0x10, source="issued.csv", line=5)
    other = ca_cert(0x11, source="issued.csv", line=6)
    revoked = ca_cert(0x10, source="revoked.csv", line=2, revoked_at=AS_OF - timedelta(days=1))
    with caplog.at_level(logging.WARNING, logger="reconcile"):
        collapser, first, winners = collapse([issued, other, revoked])
    assert first == [issued, other]
    assert collapser.replay_needed
    assert winners == [other, revoked]
    assert collapser.duplicate_rows == 1
    assert collapser.warnings == [
        "serial 10 appears twice with different values: revoked.csv:2 (revoked) is kept over "
        "issued.csv:5"
    ]
    assert collapser.warnings[0] in caplog.text


def test_an_earlier_revoked_copy_wins_without_a_replay() -> None:
    revoked = ca_cert(0x10, source="revoked.csv", line=2, revoked_at=AS_OF - timedelta(days=1))
    issued = ca_cert(0x10, source="issued.csv", line=5)
    collapser, first, winners = collapse([revoked, issued])
    assert first == winners == [revoked]
    assert not collapser.replay_needed
    assert "revoked.csv:2 (revoked) is kept over issued.csv:5" in collapser.warnings[0]


def test_newest_copy_wins_when_neither_is_revoked() -> None:
    old = ca_cert(0x10, line=2, not_before=AS_OF - timedelta(days=30))
    new = ca_cert(0x10, line=9, not_before=AS_OF - timedelta(days=3))
    collapser, first, winners = collapse([old, new])
    assert first == [old] and winners == [new]
    assert "ca.csv:9 (newest) is kept over ca.csv:2" in collapser.warnings[0]


def test_index_txt_serial_reuse_keeps_every_row_and_warns_once() -> None:
    a = ca_cert(0x1003, source="index.txt", line=3, subject="/CN=host-d", issuer=None)
    b = ca_cert(0x1003, source="index.txt", line=4, subject="/CN=host-e", issuer=None)
    again = ca_cert(0x1003, source="index.txt", line=5, subject="/CN=host-e", issuer=None)
    collapser, first, winners = collapse([a, b, again], frozenset({"index.txt"}))
    assert first == winners == [a, b]
    assert collapser.duplicate_rows == 1
    assert collapser.warnings == [
        "serial 1003 is reused for different subjects (index.txt:3, index.txt:4): the CA "
        "database is inconsistent; every row is kept"
    ]
