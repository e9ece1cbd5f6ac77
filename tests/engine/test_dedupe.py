"""The engine's duplicate collapsing gives exactly what ``dedupe.Collapser`` gives."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconcile.engine.db import Database
from reconcile.engine.dedupe import Collapsed, collapse
from reconcile.engine.tables import CA_COLUMNS, ca_record, create_tables, load_certificates
from reconcile.model import CaCertificate
from tests.engine.reference_dedupe import Collapser
from tests.factories import AS_OF, ca_cert
from tests.helpers import examples

INDEX = frozenset({"index.txt"})
_TIMES = (
    None,
    AS_OF,
    AS_OF + timedelta(seconds=30),  # the same minute: ranks equal, values differ
    AS_OF - timedelta(days=3),
    datetime(1969, 12, 31, 23, 58, 59, 500000, tzinfo=UTC),  # int() truncates toward zero
    datetime(1969, 12, 31, 23, 59, 0, 500000, tzinfo=UTC),
    datetime(1850, 1, 1, tzinfo=UTC),  # both clamp to the lowest stamp
    datetime(1900, 6, 1, tzinfo=UTC),
    datetime(2200, 1, 1, tzinfo=UTC),  # both clamp to the highest
    datetime(2300, 1, 1, tzinfo=UTC),
)
_columns = ", ".join(c for c in CA_COLUMNS if c != "seq")


def python_collapse(
    certs: Sequence[CaCertificate], index: frozenset[str]
) -> tuple[Collapsed, list[CaCertificate]]:
    """What today's pipeline hands the join: the first copies, or the replay's winners."""
    collapser = Collapser(index)
    passed = list(collapser.first_copies(certs))
    collapser.finish()
    if collapser.replay_needed:
        passed = list(collapser.winners(certs))
    found = Collapsed(collapser.duplicate_rows, tuple(collapser.warnings), collapser.replay_needed)
    return found, passed


def sql_collapse(
    certs: Sequence[CaCertificate], index: frozenset[str]
) -> tuple[Collapsed, list[CaCertificate]]:
    with Database() as db:
        create_tables(db)
        load_certificates(db, certs)
        found = collapse(db, index)
        kept = [ca_record(row) for row in db.rows(f"SELECT {_columns} FROM ca ORDER BY seq")]
    return found, kept


certificates = st.builds(
    lambda serial, issuer, source, line, subject, revoked, before, after, request: ca_cert(
        serial,
        issuer=issuer,
        source=source,
        line=line,
        subject=subject,
        revoked_at=revoked,
        not_before=before,
        not_after=after,
        request_id=request,
    ),
    st.integers(0, 3) | st.just(0xFFFF_FFFF_FFFF_FFFF_FFFF),
    st.sampled_from([None, "", "Contoso CA", "CN=Contoso CA, DC=corp", "contoso ca", "Other CA"]),
    st.sampled_from(["a.csv", "b.csv", "index.txt", "it's.csv"]),
    st.integers(1, 4),
    st.sampled_from([None, "/CN=host-a", "/CN=host-b"]),
    st.sampled_from(_TIMES[:4]),
    st.sampled_from(_TIMES),
    st.sampled_from(_TIMES),
    st.sampled_from(["42", "43", None]),
)


@settings(max_examples=examples(100), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(certificates, max_size=14),
    st.sampled_from([frozenset(), INDEX, INDEX | {"it's.csv"}]),
)
def test_the_engine_collapses_exactly_like_the_python_pass(
    certs: list[CaCertificate], index: frozenset[str]
) -> None:
    assert sql_collapse(certs, index) == python_collapse(certs, index)


def test_a_file_given_twice_with_a_replay_keeps_both_copies_of_the_winner() -> None:
    issued = ca_cert(0x10, source="a.csv", line=2)
    revoked = ca_cert(0x10, source="b.csv", line=2, revoked_at=AS_OF)
    twice = ca_cert(0x11, source="a.csv", line=3)
    certs = [issued, twice, revoked, twice]
    found, kept = sql_collapse(certs, frozenset())
    assert (found, kept) == python_collapse(certs, frozenset())
    assert found.replay_needed and kept == [twice, revoked, twice]


def test_the_examples_of_the_python_tests(caplog: pytest.LogCaptureFixture) -> None:
    issued = ca_cert(0x10, source="issued.csv", line=5)
    other = ca_cert(0x11, source="issued.csv", line=6)
    revoked = ca_cert(0x10, source="revoked.csv", line=2, revoked_at=AS_OF - timedelta(days=1))
    with caplog.at_level(logging.WARNING, logger="reconcile"):
        found, kept = sql_collapse([issued, other, revoked], frozenset())
    assert kept == [other, revoked]
    assert found == Collapsed(
        1,
        (
            "serial 10 appears twice with different values: revoked.csv:2 (revoked) is kept "
            "over issued.csv:5",
        ),
        True,
    )
    assert found.warnings[0] in caplog.text
    a = ca_cert(0x1003, source="index.txt", line=3, subject="/CN=host-d", issuer=None)
    b = replace(a, line=4, subject="/CN=host-e")
    found, kept = sql_collapse([a, b, replace(b, line=5)], INDEX)
    assert kept == [a, b]
    assert found.warnings == (
        "serial 1003 is reused for different subjects (index.txt:3, index.txt:4): the CA "
        "database is inconsistent; every row is kept",
    )
