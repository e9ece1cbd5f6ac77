"""The guards' counts and issuer inference from the tables equal the Python passes'."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconcile import guards
from reconcile.ca import ExportReader, ReaderOptions
from reconcile.engine import guards as engine_guards
from reconcile.engine.db import Database
from reconcile.engine.tables import (
    CA_COLUMNS,
    INTUNE_COLUMNS,
    ca_record,
    create_tables,
    intune_row,
    load_certificates,
)
from reconcile.errors import UsageError
from reconcile.intune.side import Entry
from reconcile.model import CaCertificate, CaExtent
from tests.engine import reference_guards
from tests.factories import AS_OF, ca_cert

FIXTURES = Path(__file__).parent.parent / "fixtures"
SLOW = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_columns = ", ".join(c for c in CA_COLUMNS if c != "seq")

certificates = st.builds(
    lambda oid, name, source, scope: ca_cert(
        1, template_oid=oid, template_name=name, source=source, out_of_scope=scope
    ),
    st.sampled_from([None, "1.2.3", "1.2.4"]),
    st.sampled_from([None, "Intune-SCEP", "intune-scep", "Web", "Straße"]),
    st.sampled_from(["a.csv", "b.csv"]),
    st.sampled_from([None, "a CA certificate"]),
)
wanted = st.lists(
    st.sampled_from(["1.2.3", "INTUNE-SCEP", "strasse", "Web", "nothing"]), max_size=3
)


def _error(counts: engine_guards.Templates, templates: list[str]) -> str | None:
    try:
        guards.check_templates(counts, templates)
    except UsageError as exc:
        return str(exc)
    return None


@SLOW
@given(st.lists(certificates, max_size=12), wanted)
def test_the_tally_counts_like_the_python_one(
    certs: list[CaCertificate], templates: list[str]
) -> None:
    python = reference_guards.Tally(certs, templates)
    assert list(python) == certs
    with Database() as db:
        create_tables(db)
        load_certificates(db, certs)
        counts, in_scope = engine_guards.tally(db, templates)
    assert list(counts.items()) == list(python.templates.items())
    assert list(in_scope.items()) == list(python.in_scope.items())
    assert _error(counts, templates) == _error(python.templates, templates)


def _entry(serial: int | None, issuer: str | None, where: int) -> Entry:
    thumbprint = "AB" * 20 if serial is None else None
    # Two collections, in order: the side lists entries as ``ord`` orders them.
    return Entry(serial, thumbprint, issuer, True, None, "PC", "p", None, None, where // 20, where)


def _load(db: Database, certs: Sequence[CaCertificate], entries: Sequence[Entry]) -> None:
    create_tables(db)
    load_certificates(db, certs)
    db.insert("intune", INTUNE_COLUMNS, (intune_row(e) for e in entries))


def _export(directory: Path, name: str, serials: Sequence[int]) -> Path:
    path = directory / name
    rows = [f'"{n + 1}","{serial:x}"' for n, serial in enumerate(serials)]
    path.write_text('"RequestID","SerialNumber"\n' + "\n".join(rows) + "\n", encoding="utf-8")
    return path


_ISSUERS = ["CN=Contoso CA, DC=corp", "Contoso CA", "Fabrikam CA", "CN=Other CA", None, ""]
# Mostly one CA, so that inference succeeds as often as it stops.
_VOTE = st.sampled_from([0] * 12 + [1, 2, 2, 3, 4, 5])
# A thumbprint-only record of a second CA first: two issuers, so that there is a choice.
entries = st.tuples(st.just(None), st.sampled_from([2, 3])).flatmap(
    lambda other: st.lists(
        st.tuples(st.integers(0, 24) | st.none(), _VOTE), min_size=10, max_size=60
    ).map(lambda rest: [other, *rest])
)
exports = st.lists(st.lists(st.integers(0, 24), min_size=3, max_size=30), min_size=1, max_size=3)


def _python(paths: Sequence[Path], given: Sequence[Entry]) -> object:
    readers = [(i, ExportReader(p, ReaderOptions())) for i, p in enumerate(paths)]
    try:
        return reference_guards.infer_issuers(readers, given)
    except UsageError as exc:
        return str(exc)
    finally:
        for _, reader in readers:
            reader.close()


def _sql(paths: Sequence[Path], given: Sequence[Entry]) -> object:
    certs = []
    for path in paths:
        with ExportReader(path, ReaderOptions()) as reader:
            certs += [c for c in reader if isinstance(c, CaCertificate)]
    with Database() as db:
        _load(db, certs, given)
        try:
            return engine_guards.infer_issuers(db, [(i, str(p)) for i, p in enumerate(paths)])
        except UsageError as exc:
            return str(exc)


def _shares(found: object) -> object:
    """An error's issuer list, per issuer, when counts tie (Python orders ties by a set)."""
    if not isinstance(found, str) or " CAs (" not in found:
        return found
    head, _, listed = found.partition(" CAs (")
    counts = re.findall(r"\((\d+)\)(?:, |\); pass)", listed)
    if len(set(counts)) == len(counts):
        return found
    named = {
        name: re.findall(f"(?:^|, ){re.escape(name)} \\((\\d+)\\)", listed)
        for name in _ISSUERS
        if name
    }
    return head, named


@SLOW
@given(exports, entries, st.booleans())
def test_issuer_inference_decides_like_the_python_pass(
    files: list[list[int]], votes: list[tuple[int | None, int]], same_file_twice: bool
) -> None:
    given = [_entry(serial, _ISSUERS[issuer], n) for n, (serial, issuer) in enumerate(votes, 1)]
    with tempfile.TemporaryDirectory() as tmp:
        paths = [_export(Path(tmp), f"x{n}.csv", serials) for n, serials in enumerate(files)]
        if same_file_twice:
            paths.append(paths[0])
        assert _shares(_sql(paths, given)) == _shares(_python(paths, given))


def test_a_clear_majority_is_inferred_with_the_same_note(tmp_path: Path) -> None:
    path = _export(tmp_path, "x.csv", range(1, 41))
    given = [_entry(n, "CN=Contoso CA", n) for n in range(1, 40)] + [_entry(40, "CN=Other CA", 40)]
    found = _sql([path], given)
    assert found == _python([path], given)
    assert found == (
        {0: "CN=Contoso CA"},
        [
            f"{path}: the export names no issuer; using CN=Contoso CA, which issued 39 of its "
            "40 serials Intune knows (pass --ca-issuer to set it)"
        ],
    )
    assert _sql([path], given[:39]) == ({}, [])


@pytest.mark.parametrize(
    ("fixture", "issuer"),
    [("cli/issued.csv", "CN=Contoso CA, DC=corp"), ("ca/openssl-index.txt", "Contoso Root")],
)
def test_applying_an_issuer_equals_reading_the_export_with_it(fixture: str, issuer: str) -> None:
    path = FIXTURES / fixture
    with ExportReader(path, ReaderOptions()) as reader:
        assert not reader.names_issuer
        read = [c for c in reader if isinstance(c, CaCertificate)]
    other = ca_cert(7, source="other.csv", issuer=None)
    with ExportReader(path, ReaderOptions(issuer=issuer)) as again:
        expected = [c for c in again if isinstance(c, CaCertificate)]
    with Database() as db:
        create_tables(db)
        load_certificates(db, [*read, other])
        engine_guards.apply_issuers(db, [(0, str(path)), (1, "other.csv")], {0: issuer})
        rows = db.rows(f"SELECT {_columns} FROM ca ORDER BY seq")
    assert [ca_record(row) for row in rows] == [*expected, other]
    assert read != expected


def test_extent_is_each_issuers_reach_in_the_exports_only() -> None:
    newest = AS_OF - timedelta(days=1)
    rows = [
        ca_cert(1, issuer="Contoso Issuing CA", request_id="7", source="a.csv"),
        ca_cert(2, issuer="CN=Contoso Issuing CA, DC=contoso", request_id="12", source="b.csv"),
        ca_cert(3, issuer="Contoso Issuing CA", request_id="x", not_before=newest, source="a.csv"),
        ca_cert(4, issuer=None, request_id=None, not_before=None, source="c.csv"),
        ca_cert(5, issuer="Cloud PKI CA", not_before=AS_OF, source="cloud_pki_leaves.jsonl"),
    ]
    with Database() as db:
        create_tables(db)
        load_certificates(db, rows)
        found = engine_guards.extent(db, ["a.csv", "b.csv", "c.csv", "a.csv"])
        assert engine_guards.extent(db, []) == ()
    assert found == (
        CaExtent("contoso issuing ca", "Contoso Issuing CA", 3, newest, 12, ("a.csv", "b.csv")),
        CaExtent("", "(exports naming no issuer)", 1, None, None, ("c.csv",)),
    )
