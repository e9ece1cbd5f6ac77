"""One certificate, one verdict: overlapping exports collapse, disagreeing copies are named."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from reconcile.dedupe import collapse
from tests.factories import AS_OF, ca_cert


def test_identical_copies_collapse_and_are_counted() -> None:
    a = ca_cert(0x10, source="a.csv", line=2)
    b = ca_cert(0x10, source="b.csv", line=7)
    other = ca_cert(0x11, source="a.csv", line=3)
    result = collapse([a, other, b], frozenset())
    assert result.certificates == [a, other]
    assert result.duplicate_rows == 1
    assert result.warnings == []


def test_issuer_spellings_are_one_certificate_but_other_cas_are_not() -> None:
    a = ca_cert(0x10, issuer="Contoso Issuing CA", line=2)
    b = ca_cert(0x10, issuer="CN=Contoso Issuing CA, DC=contoso, DC=com", line=3)
    c = ca_cert(0x10, issuer="Fabrikam CA", line=4)
    result = collapse([a, b, c], frozenset())
    assert [x.line for x in result.certificates] == [2, 4]
    assert result.duplicate_rows == 1


def test_revoked_copy_wins_with_a_warning_naming_both_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    issued = ca_cert(0x10, source="issued.csv", line=5)
    revoked = ca_cert(0x10, source="revoked.csv", line=2, revoked_at=AS_OF - timedelta(days=1))
    with caplog.at_level(logging.WARNING, logger="reconcile"):
        result = collapse([revoked, issued], frozenset())
    assert result.certificates == [revoked]
    assert result.duplicate_rows == 1
    assert result.warnings == [
        "serial 10 appears twice with different values: revoked.csv:2 (revoked) is kept over "
        "issued.csv:5"
    ]
    assert result.warnings[0] in caplog.text


def test_newest_copy_wins_when_neither_is_revoked() -> None:
    old = ca_cert(0x10, line=2, not_before=AS_OF - timedelta(days=30))
    new = ca_cert(0x10, line=9, not_before=AS_OF - timedelta(days=3))
    result = collapse([new, old], frozenset())
    assert result.certificates == [new]
    assert "ca.csv:9 (newest) is kept over ca.csv:2" in result.warnings[0]


def test_index_txt_serial_reuse_keeps_every_row_and_warns_once() -> None:
    a = ca_cert(0x1003, source="index.txt", line=3, subject="/CN=host-d", issuer=None)
    b = ca_cert(0x1003, source="index.txt", line=4, subject="/CN=host-e", issuer=None)
    result = collapse([a, b], frozenset({"index.txt"}))
    assert result.certificates == [a, b]
    assert result.duplicate_rows == 0
    assert result.warnings == [
        "serial 1003 is reused for different subjects (index.txt:3, index.txt:4): the CA "
        "database is inconsistent; every row is kept"
    ]
