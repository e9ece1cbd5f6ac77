"""The engine's CA reader against the Python reader: same records, rejects and provenance.

Every fixture export and mutated variants of them (hypothesis) are read both ways; when the
engine takes a file (it may hand it back to the Python reader), everything must be equal.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconcile.ca import ExportReader, ReaderOptions
from reconcile.engine.ca import eligible, load_export, submit_scan
from reconcile.engine.db import Database
from reconcile.engine.files import Scanner
from reconcile.engine.tables import CA_COLUMNS, ca_record, create_statements
from reconcile.errors import InputError
from reconcile.model import CaCertificate, InputFile, Reject
from tests.ca.conftest import read_export

FIXTURES = Path(__file__).parent.parent / "fixtures" / "ca"
CSV_EXPORTS = sorted(p for p in FIXTURES.iterdir() if p.suffix == ".csv")
SPANISH = FIXTURES / "certutil-columns-es.toml"
OPTIONS = [
    ReaderOptions(issuer="CA 1"),
    ReaderOptions(),
    ReaderOptions(date_order="dmy"),
    ReaderOptions(column_map=SPANISH, date_order="dmy", timezone="Europe/Madrid"),
]


@dataclass
class Read:
    records: list[CaCertificate]
    rejects: list[Reject]
    input_file: InputFile


def engine_read(path: Path, options: ReaderOptions) -> Read | None:
    """The export as the engine reads it, or None when it leaves it to the Python reader."""
    with ExportReader(path, options) as reader:
        plan = reader.csv_plan()
        if plan is None or not eligible(plan):
            return None
        scanner = Scanner()
        try:
            with Database() as db:
                for statement in create_statements():
                    db.execute(statement)
                loaded = load_export(db, plan, 0, submit_scan(scanner, plan))
                if loaded is None:
                    return None
                columns = ", ".join(c for c in CA_COLUMNS if c != "seq")
                rows = db.rows(f"SELECT {columns} FROM ca ORDER BY seq")
        finally:
            scanner.close()
    return Read([ca_record(row) for row in rows], loaded.rejects, loaded.input_file)


def python_read(path: Path, options: ReaderOptions) -> Read:
    result = read_export(path, **{f: getattr(options, f) for f in options.__dataclass_fields__})
    return Read(result.records, result.rejects, result.input_file)


def same_both_ways(path: Path, options: ReaderOptions) -> bool:
    """Asserts equality when the engine reads the file; says whether it did."""
    try:
        expected = python_read(path, options)
    except InputError:
        return False
    got = engine_read(path, options)
    if got is None:
        return False
    assert got.rejects == expected.rejects
    assert got.records == expected.records
    assert got.input_file == expected.input_file
    return True


@pytest.mark.parametrize("path", CSV_EXPORTS, ids=lambda p: p.name)
@pytest.mark.parametrize("options", OPTIONS)
def test_fixture_exports_read_the_same_both_ways(path: Path, options: ReaderOptions) -> None:
    same_both_ways(path, options)


@pytest.mark.parametrize("name", ["certutil-en.csv", "pspki-issued.csv", "pspki-revoked.csv"])
def test_the_engine_reads_certutil_and_pspki_itself(name: str, tmp_path: Path) -> None:
    path = FIXTURES / name
    assert same_both_ways(path, ReaderOptions())
    wide = tmp_path / name
    wide.write_bytes(codecs.BOM_UTF16_LE + path.read_text("utf-8").encode("utf-16-le"))
    assert same_both_ways(wide, ReaderOptions())


SEEDS = [FIXTURES / n for n in ("certutil-en.csv", "pspki-issued.csv", "certutil-malformed.csv")]
# Mostly tokens that keep a line plain CSV (so the engine converts it); a few that do not.
TOKENS = [b",", b";", b"\t", b" ", b"\n", b"EMPTY", b"\xc3\xa4", b"\xc2\xa0", b"0x", b"PM", b"AM"]
TOKENS += [
    b" GMT",
    b" UTC",
    b"13/",
    b"/31/",
    b"2/29/2023",
    b"2023 ",
    b"--",
    b"(",
    b")",
    b"21",
    b"z",
]
TOKENS += [b"0", b"F", b"g", b":", b'"', b"\r", b"\x00"]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)).read_bytes())
    header_end = data.find(b"\n") + 1
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(header_end, max(header_end, len(data) - 1)))
        action = draw(st.sampled_from(["flip", "delete", "dup", "token", "token", "token"]))
        if action == "flip" and data[at : at + 1] != b'"':
            data[at : at + 1] = bytes([draw(st.integers(32, 126))])
        elif action == "delete":
            del data[at : at + draw(st.integers(1, 4))]
        elif action == "dup":
            end = data.find(b"\n", at)
            data[at:at] = data[at : end + 1 if end >= 0 else len(data)]
        else:
            data[at:at] = draw(st.sampled_from(TOKENS))
    return bytes(data)


CELLS = st.one_of(
    st.sampled_from(
        [
            "",
            "EMPTY",
            " EMPTY",
            "4/25/2027 7:36 PM",
            "4/25/2027 7:36 PM GMT",
            "25/4/2027 19:36",
            "2/29/2023 1:00 AM GMT",
            "12/31/2026 12:00 AM utc",
            "1/2/2026 13:00 PM GMT",
            "1/2/2026 0:00 AM",
            "1/2/2026 23:59:59 GMT",
            "1/2/2026 7:60 AM",
            "2026-01-02 10:00",
            "00ab",
            "0x1f",
            "61 00 ff",
            "ZZ",
            "0" * 90,
            "f" * 81,
            "A" * 40,
            "ab " * 19 + "ab",
            "21 -- Revoked",
            "20 -- Issued",
            "30 -- Failed",
            "0x15 (21)",
            "nonsense",
            "Machine",
            "1.2.3.4 WebServer",
            "1.2.3.4",
            "CN=PC-1, O=x",
            "CN=PC-1",
            "0xb (11)",
            "Straße ",
            "\u00a0PC",
            "PC\t",
            "Maximum Row Index: 5",
        ]
    ),
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters='"\r\n\x00'),
        max_size=12,
    ),
)


@st.composite
def rebuilt(draw: st.DrawFn) -> bytes:
    """A seed export with cells replaced: lines stay plain CSV, values get odd."""
    seed = draw(st.sampled_from(SEEDS[:2])).read_text("utf-8").splitlines()
    header, rows = seed[0], [next(csv.reader([r])) for r in seed[1:] if r.strip()]
    rows = [r for r in rows if len(r) > 1] or [[""] * len(next(csv.reader([header])))]
    lines = [header]
    for _ in range(draw(st.integers(1, 6))):
        row = list(draw(st.sampled_from(rows)))
        for _ in range(draw(st.integers(0, 3))):
            if draw(st.integers(0, 9)) == 0:
                row.append(draw(CELLS))
            else:
                row[draw(st.integers(0, len(row) - 1))] = draw(CELLS)
        quoted = draw(st.booleans())
        lines.append(",".join(f'"{c}"' if quoted or "," in c else c for c in row))
    return ("\r\n".join(lines) + draw(st.sampled_from(["", "\r\n", "\r\n\r\n5 Rows\r\n"]))).encode()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rebuilt(), st.sampled_from(OPTIONS[:3]), st.booleans())
def test_rebuilt_exports_read_the_same_both_ways(
    data: bytes, options: ReaderOptions, wide: bool
) -> None:
    if wide:
        data = codecs.BOM_UTF16_LE + data.decode("utf-8").encode("utf-16-le")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "export.csv"
        path.write_bytes(data)
        same_both_ways(path, options)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(), st.sampled_from(OPTIONS[:3]), st.booleans())
def test_mutated_exports_read_the_same_both_ways(
    data: bytes, options: ReaderOptions, wide: bool
) -> None:
    if wide:
        with contextlib.suppress(UnicodeDecodeError):
            data = codecs.BOM_UTF16_LE + data.decode("utf-8").encode("utf-16-le")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "export.csv"
        path.write_bytes(data)
        same_both_ways(path, options)
