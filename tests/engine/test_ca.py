"""The engine's CA loader against the Python reader: same rows, rejects, notes and provenance.

Every CA fixture export under tests/ (in UTF-8, UTF-8 with BOM and UTF-16LE with BOM), and
generated and mutated certutil and PSPKI exports (hypothesis), are read both ways: the ca table
must hold exactly ``tables.ca_row(cert, seq)`` of each certificate ExportReader yields, and the
rejects, notes, InputFile and any InputError must be the reader's.
"""

from __future__ import annotations

import codecs
import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconcile.ca import ExportReader, ReaderOptions
from reconcile.engine.ca import Loaded, eligible, load_export
from reconcile.engine.db import Database
from reconcile.engine.tables import CA_COLUMNS, ca_row, create_tables
from reconcile.errors import InputError
from reconcile.model import CaCertificate, InputFile, Reject
from tests.helpers import CERTUTIL_HEADER, examples

ROOT = Path(__file__).parent.parent
FIXTURES = ROOT / "fixtures"
EXPORTS = sorted(
    p
    for p in FIXTURES.rglob("*")
    if p.suffix in (".csv", ".txt") and "snapshot" not in p.parts and "evidence" not in p.parts
)
SPANISH = FIXTURES / "ca" / "certutil-columns-es.toml"
OPTIONS = [
    ReaderOptions(),
    ReaderOptions(issuer="Contoso Issuing CA 1"),
    ReaderOptions(date_order="dmy", given=frozenset({"date_order"})),
    ReaderOptions(timezone="Europe/Berlin", given=frozenset({"timezone"})),
    ReaderOptions(column_map=SPANISH, date_order="dmy", timezone="Europe/Madrid"),
]
START = 7
"""seq of the first certificate: the caller's running count over earlier exports."""


@dataclass
class Read:
    rows: list[tuple[object, ...]]
    rejects: list[Reject]
    input_file: InputFile | None
    error: str | None
    notes: tuple[str, ...]
    zone_note: str | None


def python_read(path: Path, options: ReaderOptions) -> Read | None:
    """What ExportReader tells its caller; None when it refuses the file at construction."""
    try:
        reader = ExportReader(path, options)
    except InputError:
        return None
    certificates: list[CaCertificate] = []
    rejects: list[Reject] = []
    error = None
    with reader:
        try:
            for item in reader:
                if isinstance(item, CaCertificate):
                    certificates.append(item)
                else:
                    rejects.append(item)
        except InputError as exc:
            error = str(exc)
    rows = [ca_row(cert, seq) for seq, cert in enumerate(certificates, start=START)]
    input_file = None if error else reader.input_file()
    return Read(rows, rejects, input_file, error, tuple(reader.notes), reader.zone_note)


def engine_read(path: Path, options: ReaderOptions) -> tuple[Read, Loaded]:
    reader = ExportReader(path, options)
    with Database() as db:
        create_tables(db)
        loaded = load_export(db, reader, START)
        rows = db.rows(f"SELECT {', '.join(CA_COLUMNS)} FROM ca ORDER BY seq")
    error = None if loaded.error is None else str(loaded.error)
    read = Read(rows, loaded.rejects, loaded.input_file, error, loaded.notes, loaded.zone_note)
    return read, loaded


def same_both_ways(path: Path, options: ReaderOptions) -> Loaded | None:
    """Asserts both reads agree; returns the engine's Loaded (None: the reader refused it)."""
    expected = python_read(path, options)
    if expected is None:
        with pytest.raises(InputError):
            ExportReader(path, options)
        return None
    got, loaded = engine_read(path, options)
    assert got.error == expected.error
    assert got.rejects == expected.rejects
    assert got.rows == expected.rows
    assert got.input_file == expected.input_file
    assert got.notes == expected.notes
    assert got.zone_note == expected.zone_note
    assert loaded.certificates == len(expected.rows)
    return loaded


def encoded(data: bytes, how: str) -> bytes:
    if how == "utf-8":
        return data
    text = data.decode("utf-8-sig")
    if how == "utf-8-sig":
        return codecs.BOM_UTF8 + text.encode("utf-8")
    if how == "utf-16-nobom":
        return text.encode("utf-16-le")
    if how == "utf-16-be":
        return codecs.BOM_UTF16_BE + text.encode("utf-16-be")
    return codecs.BOM_UTF16_LE + text.encode("utf-16-le")


@contextlib.contextmanager
def written(data: bytes, name: str = "export.csv") -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        yield path


def test_the_fixtures_hold_certutil_and_pspki_exports() -> None:
    names = {p.name for p in EXPORTS}
    assert {"certutil-en.csv", "certutil-trailer.csv", "pspki-issued.csv", "pspki-de.csv"} <= names
    assert {"issued.csv", "adcs.csv"} <= names


@pytest.mark.parametrize("path", EXPORTS, ids=lambda p: str(p.relative_to(FIXTURES)))
@pytest.mark.parametrize("how", ["utf-8", "utf-8-sig", "utf-16", "utf-16-nobom", "utf-16-be"])
@pytest.mark.parametrize("options", OPTIONS, ids=["default", "issuer", "dmy", "berlin", "es"])
def test_every_fixture_export_reads_the_same_both_ways(
    path: Path, how: str, options: ReaderOptions
) -> None:
    try:
        data = encoded(path.read_bytes(), how)
    except UnicodeDecodeError:
        pytest.skip("not UTF-8 text: only its own encoding applies")
    with written(data, path.name) as copy:
        same_both_ways(copy, options)


@pytest.mark.parametrize(
    "name",
    [
        "ca/certutil-en.csv",
        "ca/certutil-trailer.csv",
        "ca/pspki-issued.csv",
        "ca/pspki-revoked.csv",
        "ca/pspki-de.csv",
        "ca/pspki-fr.csv",
        "cli/issued.csv",
    ],
)
@pytest.mark.parametrize("how", ["utf-8", "utf-8-sig", "utf-16", "utf-16-nobom"])
def test_duckdb_reads_the_certutil_and_pspki_fixtures_itself(name: str, how: str) -> None:
    with written(encoded((FIXTURES / name).read_bytes(), how)) as path:
        loaded = same_both_ways(path, ReaderOptions())
    assert loaded is not None and loaded.native and loaded.in_sql > 0


def test_other_formats_go_through_the_python_reader() -> None:
    for name in ("certutil-text-utf16.txt", "openssl-index.txt", "ejbca-certificatedata.csv"):
        loaded = same_both_ways(FIXTURES / "ca" / name, ReaderOptions())
        assert loaded is not None and not loaded.native


def test_a_record_over_two_lines_leaves_the_whole_file_to_python() -> None:
    loaded = same_both_ways(FIXTURES / "ca" / "certutil-malformed.csv", ReaderOptions())
    assert loaded is not None and not loaded.native and loaded.rejects


def test_a_miscounted_trailer_is_the_readers_error_after_the_rows_before_it() -> None:
    text = (FIXTURES / "ca" / "certutil-trailer.csv").read_text("utf-8")
    with written(text.replace("4 Rows", "5 Rows").encode()) as path:
        loaded = same_both_ways(path, ReaderOptions())
    assert loaded is not None and loaded.native
    assert loaded.error is not None and "certutil printed 5 rows" in str(loaded.error)
    assert loaded.input_file is None


def test_a_cut_last_row_is_the_readers_error_after_every_row() -> None:
    text = (FIXTURES / "cli" / "issued.csv").read_text("utf-8").rstrip("\r\n")
    with written((text.rsplit(",", 3)[0]).encode()) as path:
        loaded = same_both_ways(path, ReaderOptions())
    assert loaded is not None and loaded.native
    assert loaded.error is not None and "cut short" in str(loaded.error)


def test_odd_lines_go_through_the_converter_and_keep_their_place() -> None:
    header = (
        '"Issued Request ID","Serial Number","Certificate Effective Date","Request Disposition"'
    )
    lines = [
        header,
        '"1","0a","4/25/2026 7:36 PM","20"',
        '"2","0b"," 4/25/2026 7:36 PM","20"',  # a space strip() removes: Python converts it
        '"3","xyz","4/25/2026 7:36 PM","20"',  # a reject, its text from the converter
        "",
        '"4","0d","2026-04-25T19:36:00Z","20"',  # ISO: CultureDates' fallback
        '"5","0e","4/25/2026 7:36 PM","21 -- Revoked"',
        '"6","0f","4/25/2026 7:36 PM","0x1f (31) -- Denied"',
        '"7","10","4/25/2026 7:36 PM","20","extra"',
        '"0x8","11","4/25/2026 7:36 PM","20"',
        '"9","12","13/25/2026 7:36 PM","20"',
        '"10","13","4/25/2026 7:36 PM GMT","20"',
        "",
        "7 Rows",
        "CertUtil: -view command completed successfully.",
    ]
    text = "\r\n".join(lines).replace("7 Rows", "10 Rows") + "\r\n"
    with written(text.encode()) as path:
        loaded = same_both_ways(path, ReaderOptions())
    assert loaded is not None and loaded.native and len(loaded.rejects) == 4


def test_a_forced_encoding_is_left_to_python() -> None:
    path = FIXTURES / "ca" / "certutil-en.csv"
    with ExportReader(path, ReaderOptions(encoding="utf-8")) as reader:
        plan = reader.csv_plan()
    assert plan is not None and not eligible(plan)
    loaded = same_both_ways(path, ReaderOptions(encoding="utf-8"))
    assert loaded is not None and not loaded.native


# --- generated exports -------------------------------------------------------------------

PSPKI_HEADER = [
    "RequestID",
    "Request.RequesterName",
    "CommonName",
    "DistinguishedName",
    "NotBefore",
    "NotAfter",
    "SerialNumber",
    "CertificateTemplate",
    "CertificateHash",
    "Request.RevokedWhen",
    "Request.Disposition",
    "ConfigString",
]
_MONTH_DAY = st.tuples(st.integers(1, 12), st.integers(1, 31), st.integers(1990, 2099))


@st.composite
def culture_dates(draw: st.DrawFn) -> str:
    """A date the way some culture prints it (or a bad one)."""
    month, day, year = draw(_MONTH_DAY)
    hour, minute, second = (
        draw(st.integers(0, 23)),
        draw(st.integers(0, 59)),
        draw(st.integers(0, 59)),
    )
    shape = draw(st.sampled_from(["us", "us-s", "eu", "dotted", "iso", "cs", "bad", "odd"]))
    if shape == "us":
        twelve = hour % 12 or 12
        text = f"{month}/{day}/{year} {twelve}:{minute:02} {'PM' if hour >= 12 else 'AM'}"
    elif shape == "us-s":
        text = f"{month}/{day}/{year} {hour}:{minute:02}:{second:02}"
    elif shape == "eu":
        text = f"{day:02}/{month:02}/{year} {hour:02}:{minute:02}"
    elif shape == "dotted":
        text = f"{day:02}.{month:02}.{year} {hour:02}:{minute:02}:{second:02}"
    elif shape == "iso":
        text = f"{year}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}"
    elif shape == "cs":
        text = f"{day}. {month}. {year} {hour}:{minute:02}:{second:02}"
    elif shape == "bad":
        text = draw(
            st.sampled_from(["31/31/2026 7:00 PM", "2/30/2026 1:00", "soon", "1/2/2026 25:00"])
        )
    else:
        text = draw(
            st.sampled_from(
                [
                    "1/2/2026 13:00 PM",
                    "1/2/2026 12:00 am",
                    "1/2/26 1:00",
                    "1/2/2026",
                    "1-2-2026 1:02",
                    "0001-01-01 00:00:00",
                    "9999-12-31 23:59:59",
                    "3/29/2026 2:30",
                    "10/25/2026 2:30",
                    "1/2/2026 7:04  GMT",
                    "1/2/2026 7:04:05.123",
                    "2026-01-02T03:04:05Z",
                ]
            )
        )
    suffix = draw(st.sampled_from(["", "", " GMT", " UTC", " Z", " utc"]))
    return text + suffix


SERIALS = st.one_of(
    st.integers(0, 2**160).map(lambda n: f"{n:x}"),
    st.integers(0, 2**64).map(lambda n: f"{n:040x}"),
    st.sampled_from(["", "EMPTY", "xyz", "61 00 ff", "0x1f", "0" * 90, "f" * 81, "AB:CD"]),
)
THUMBS = st.one_of(
    st.binary(min_size=20, max_size=20).map(lambda b: " ".join(f"{x:02x}" for x in b)),
    st.binary(min_size=32, max_size=32).map(bytes.hex),
    st.sampled_from(["", "EMPTY", "ab cd", "zz" * 20]),
)
TEXTS = st.one_of(
    st.sampled_from(
        [
            "PC-01",
            "CN=PC-01",
            "CN=PC-1, O=Contoso",
            'CN="a, b"',
            "Straße ",
            "\u00a0PC",
            "PC\t",
            "",
            "EMPTY",
            "CONTOSO\\svc-ndes",
            "ca01.corp\\Contoso Issuing CA",
            "Maximum Row Index: 5",
        ]
    ),
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00\x01"),
        max_size=10,
    ),
)
TEMPLATES = st.sampled_from(
    [
        "Machine",
        "1.3.6.1.4.1.311.21.8.1.2 Intune-SCEP",
        "1.2.3.4",
        "SubCA",
        "CAExchange",
        "",
        "EMPTY",
    ]
)
DISPOSITIONS = st.sampled_from(
    [
        "20",
        "21",
        "20 -- Issued",
        "21 -- Revoked",
        "0x15 (21) -- Revoked",
        "31",
        "Issued",
        "",
        "EMPTY",
    ]
)
REQUEST_IDS = st.one_of(
    st.integers(1, 10**6).map(str), st.sampled_from(["0xb (11)", "0x1f", "(7)", "", "EMPTY"])
)


GOOD_SERIALS = st.integers(0, 2**160).map(lambda n: f"{n:x}")
GOOD_THUMBS = st.binary(min_size=20, max_size=20).map(lambda b: " ".join(f"{x:02x}" for x in b))
GOOD_DATES = st.builds(
    lambda m, d, y, h, mi, pm, z: f"{m}/{d}/{y} {h}:{mi:02} {'PM' if pm else 'AM'}{z}",
    st.integers(1, 12),
    st.integers(1, 28),
    st.integers(1990, 2099),
    st.integers(1, 12),
    st.integers(0, 59),
    st.booleans(),
    st.sampled_from(["", " GMT"]),
)


@st.composite
def row_cells(draw: st.DrawFn, pspki: bool) -> list[str]:
    """Mostly rows the engine converts itself; some with a bad or odd cell anywhere."""
    good = draw(st.integers(0, 3)) > 0
    date = GOOD_DATES if good else st.one_of(culture_dates(), st.sampled_from(["", "EMPTY"]))
    common = {
        "id": draw(st.integers(1, 10**6).map(str) if good else REQUEST_IDS),
        "serial": draw(GOOD_SERIALS if good else SERIALS),
        "thumb": draw(GOOD_THUMBS if good else THUMBS),
        "nb": draw(date),
        "na": draw(date),
        "template": draw(TEMPLATES),
        "requester": draw(TEXTS),
        "cn": draw(TEXTS),
        "dn": draw(TEXTS),
        "revoked": draw(
            st.sampled_from([""] if pspki else ["EMPTY", ""])
            if good
            else st.one_of(st.just("EMPTY"), culture_dates())
        ),
        "disposition": draw(st.sampled_from(["20", "21 -- Revoked"]) if good else DISPOSITIONS),
    }
    if pspki:
        order = ["id", "requester", "cn", "dn", "nb", "na", "serial", "template", "thumb"]
        return [*(common[k] for k in order), common["revoked"], common["disposition"], draw(TEXTS)]
    order = ["id", "serial", "thumb", "nb", "na", "template", "requester", "cn", "dn"]
    return [*(common[k] for k in order), common["revoked"], common["disposition"]]


def _cell(value: str, quoting: str, delimiter: str) -> str:
    if quoting == "all" or (quoting == "needed" and (delimiter in value or '"' in value)):
        return '"' + value.replace('"', '""') + '"'
    if value == "EMPTY" and quoting == "certutil":
        return value
    return '"' + value.replace('"', '""') + '"' if quoting == "certutil" else value


@st.composite
def exports(draw: st.DrawFn) -> bytes:
    """A certutil or PSPKI export: random cultures, odd cells, blank lines and trailers."""
    pspki = draw(st.booleans())
    delimiter = draw(st.sampled_from([",", ";"])) if pspki else ","
    quoting = draw(st.sampled_from(["all", "needed"])) if pspki else "certutil"
    header = PSPKI_HEADER if pspki else CERTUTIL_HEADER
    rows = draw(st.lists(row_cells(pspki), min_size=1, max_size=8))
    lines = [delimiter.join(f'"{h}"' for h in header)]
    if pspki and draw(st.booleans()):
        lines.insert(0, "#TYPE SysadminsLV.PKI.Management.CertificateServices.Database.AdcsDbRow")
    for cells in rows:
        if draw(st.integers(0, 9)) == 0:
            cells = cells[: draw(st.integers(1, len(cells)))]
        lines.append(delimiter.join(_cell(c, quoting, delimiter) for c in cells))
        if draw(st.integers(0, 6)) == 0:
            lines.append(draw(st.sampled_from(["", "   ", '""', "\t"])))
    if not pspki:
        stated = len(rows) + draw(st.sampled_from([0, 0, 0, 1]))
        ending = draw(st.sampled_from(["none", "rows", "full"]))
        if ending != "none":
            lines += ["", f"Maximum Row Index: {len(rows)}", "", f"{stated} Rows"]
        if ending == "full":
            lines += ["  36 Row Properties, Total Size = 1190, Max Size = 76, Ave Size = 33"]
            lines += ["CertUtil: -view command completed successfully."]
    newline = draw(st.sampled_from(["\r\n", "\r\n", "\n"]))
    text = newline.join(lines) + draw(st.sampled_from([newline, newline, ""]))
    return encoded(text.encode("utf-8"), draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16"])))


GENERATED_OPTIONS = st.sampled_from(OPTIONS[:4])


@settings(max_examples=examples(120), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(exports(), GENERATED_OPTIONS)
def test_generated_exports_read_the_same_both_ways(data: bytes, options: ReaderOptions) -> None:
    with written(data) as path:
        same_both_ways(path, options)


SEEDS = [
    FIXTURES / "ca" / n for n in ("certutil-en.csv", "certutil-trailer.csv", "pspki-issued.csv")
]
SEEDS.append(FIXTURES / "cli" / "issued.csv")
TOKENS = [
    b",",
    b";",
    b" ",
    b"\r\n",
    b"\n",
    b"EMPTY",
    b"\xc3\xa4",
    b"\xc2\xa0",
    b"0x",
    b"PM",
    b" GMT",
]
TOKENS += [b"13/", b"/31/", b"2/29/2023", b"--", b"(", b")", b"21", b"0", b"F", b":", b'"', b"\r"]
TOKENS += [b"\x00", b"\xff", b"5 Rows\r\n", b"\r\n\r\n", b"\t", b". "]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)).read_bytes())
    header_end = data.find(b"\n") + 1
    for _ in range(draw(st.integers(1, 6))):
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


@settings(max_examples=examples(80), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(), GENERATED_OPTIONS, st.booleans())
def test_mutated_exports_read_the_same_both_ways(
    data: bytes, options: ReaderOptions, wide: bool
) -> None:
    if wide:
        with contextlib.suppress(UnicodeDecodeError):
            data = encoded(data, "utf-16")
    with written(data) as path:
        same_both_ways(path, options)


def test_many_rejects_between_certificates_keep_every_seq() -> None:
    header = '"Issued Request ID","Serial Number","Certificate Effective Date"'
    lines = [header]
    for n in range(1, 201):
        serial = "zz" if n % 3 == 0 else f"{n:x}"
        lines.append(f'"{n}","{serial}","4/25/2026 7:36 PM"')
        if n % 7 == 0:
            lines.append("")
    with written(("\r\n".join(lines) + "\r\n").encode()) as path:
        loaded = same_both_ways(path, ReaderOptions())
    assert loaded is not None and loaded.native and len(loaded.rejects) == 66


def test_a_tab_inside_a_quoted_cell_of_a_tab_delimited_export() -> None:
    header = "\t".join(f'"{h}"' for h in PSPKI_HEADER[:7])
    row = ["1", "\tCONTOSO\\svc", "PC\t1", "CN=PC", "4/25/2026 7:36 PM", "4/25/2027 7:36 PM", "0a"]
    text = header + "\r\n" + "\t".join(f'"{c}"' for c in row) + "\r\n"
    with written(text.encode()) as path:
        loaded = same_both_ways(path, ReaderOptions())
    assert loaded is not None


def test_an_engine_failure_mid_load_leaves_the_file_to_python(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import duckdb

    from reconcile.engine import ca

    def broken(self: ca._Native, cells: str, facts: object) -> None:
        self.db.execute(
            f"INSERT INTO ca (seq, serial, source, line) VALUES ({self.seq_start}, '1', ?, 2)",
            [self.plan.source],
        )
        raise duckdb.ConversionException("boom")

    monkeypatch.setattr(ca._Native, "_convert", broken)
    loaded = same_both_ways(FIXTURES / "ca" / "certutil-en.csv", ReaderOptions())
    assert loaded is not None and not loaded.native


def test_a_path_duckdb_would_read_as_a_glob_is_read_by_python(tmp_path: Path) -> None:
    source = FIXTURES / "ca" / "certutil-en.csv"
    (tmp_path / "export1.csv").write_bytes(source.read_bytes().replace(b"PC", b"XX"))
    glob = tmp_path / "export[1].csv"
    glob.write_bytes(source.read_bytes())
    loaded = same_both_ways(glob, ReaderOptions())
    assert loaded is not None and not loaded.native
