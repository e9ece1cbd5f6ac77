"""Exports in the shapes found in public repositories: cultures, certutil's text output and
trailer, EJBCA certificate types, and damaged files whose every line must be accounted for."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconcile.ca import ExportReader, ReaderOptions
from reconcile.ca.records import MAX_RECORD_LINES
from reconcile.errors import InputError
from tests.ca.conftest import FIXTURES, read_export
from tests.helpers import examples

PSPKI_HEAD = '"RequestID","CommonName","NotBefore","NotAfter","SerialNumber","CertificateTemplate"'


def pspki(path: Path, dates: list[str]) -> Path:
    lines = [PSPKI_HEAD]
    for n, when in enumerate(dates, start=1):
        lines.append(f'"{n}","PC-{n}","{when}","{when}","{n:040x}","Machine"')
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    return path


def test_german_pspki_export_reads_day_first() -> None:
    result = read_export(FIXTURES / "pspki-de.csv")
    assert result.rejects == []
    assert [r.not_before for r in result.records] == [
        datetime(2018, 1, 5, 15, 32, 32, tzinfo=UTC),
        datetime(2018, 1, 22, 15, 32, 32, tzinfo=UTC),
    ]


def test_czech_dates_with_spaces_after_the_dots() -> None:
    (record,) = read_export(FIXTURES / "pspki-cs.csv").records
    assert record.not_before == datetime(2023, 10, 3, 10, 11, 26, tzinfo=UTC)


def test_french_export_is_day_first_from_its_first_day_over_12() -> None:
    path = FIXTURES / "pspki-fr.csv"
    reader = ExportReader(path, ReaderOptions())
    records = list(reader)
    # Line 3 (03/02) and line 4 (05/01) are ambiguous; line 5 (22/01) decides for the file.
    assert [r.not_before.date().isoformat() for r in records] == [  # type: ignore[union-attr]
        "2018-02-03",
        "2018-01-05",
        "2018-01-22",
    ]
    assert reader.date_order == "dmy"
    assert f"{path}: date order dmy detected from line 5 (first field > 12)" in reader.notes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4/25/2027 7:36 PM", datetime(2027, 4, 25, 19, 36, tzinfo=UTC)),  # en-US
        ("2018/01/22 15:32", datetime(2018, 1, 22, 15, 32, tzinfo=UTC)),  # ja-JP, zh-CN
        ("2018-01-22 15:32:32", datetime(2018, 1, 22, 15, 32, 32, tzinfo=UTC)),  # sv-SE
        ("22/01/2018 15:32", datetime(2018, 1, 22, 15, 32, tzinfo=UTC)),  # fr-FR, en-GB
    ],
)
def test_each_culture_reads_without_a_setting(
    tmp_path: Path, text: str, expected: datetime
) -> None:
    (record,) = read_export(pspki(tmp_path / "x.csv", [text])).records
    assert record.not_before == expected


def test_all_ambiguous_falls_back_to_the_configured_order(tmp_path: Path) -> None:
    path = pspki(tmp_path / "x.csv", ["03/02/2018 10:00", "04/05/2018 10:00"])
    default = ExportReader(path, ReaderOptions())
    assert [r.not_before.month for r in default] == [3, 4]  # type: ignore[union-attr]
    assert any("date order mdy (default)" in n for n in default.notes)
    configured = ExportReader(path, ReaderOptions(date_order="dmy"))
    assert [r.not_before.month for r in configured] == [2, 5]  # type: ignore[union-attr]
    assert any("date order dmy (configured)" in n for n in configured.notes)


def test_a_file_mixing_day_first_and_month_first_never_swaps(tmp_path: Path) -> None:
    # Before the first zone-less date is seen both orders are known: the file is refused.
    path = tmp_path / "x.csv"
    path.write_text(
        PSPKI_HEAD + '\n"1","a","22/01/2018 1:00 GMT","01/22/2018 1:00 GMT","0a","Machine"\n',
        encoding="utf-8",
    )
    with pytest.raises(InputError, match="line 2 has a day > 12 first, line 2 second"):
        ExportReader(path, ReaderOptions())
    # Once decided, a contradicting row is a reject: dmy reads 01/22 as month 22.
    result = read_export(pspki(tmp_path / "y.csv", ["22/01/2018 10:00", "01/22/2018 10:00"]))
    assert [r.line for r in result.records] == [2]
    assert [r.line for r in result.rejects] == [3]


def test_zone_less_dates_are_noted_unless_a_zone_is_set(tmp_path: Path) -> None:
    path = pspki(tmp_path / "x.csv", ["22/01/2018 10:00"])
    reader = ExportReader(path, ReaderOptions())
    assert reader.zone_note == (
        f"{path}: dates carry no zone (first at line 2): read as UTC; set --ca-timezone to the "
        "CA's zone"
    )
    berlin = ExportReader(path, ReaderOptions(timezone="Europe/Berlin"))
    assert berlin.zone_note is None
    (record,) = list(berlin)
    assert record.not_before == datetime(2018, 1, 22, 9, 0, tzinfo=UTC)  # type: ignore[union-attr]
    gmt = ExportReader(FIXTURES / "certutil-en.csv", ReaderOptions())
    assert gmt.zone_note is None


CULTURES = {
    "en-US": lambda d: (
        f"{d.month}/{d.day}/{d.year} {d.hour % 12 or 12}:{d.minute:02d} "
        + ("PM" if d.hour >= 12 else "AM")
    ),
    "de-DE": lambda d: f"{d.day:02d}.{d.month:02d}.{d.year} {d.hour:02d}:{d.minute:02d}:00",
    "cs-CZ": lambda d: f"{d.day}. {d.month}. {d.year} {d.hour}:{d.minute:02d}:00",
    "fr-FR": lambda d: f"{d.day:02d}/{d.month:02d}/{d.year} {d.hour:02d}:{d.minute:02d}",
    "ja-JP": lambda d: f"{d.year}/{d.month:02d}/{d.day:02d} {d.hour}:{d.minute:02d}",
    "sv-SE": lambda d: f"{d.year}-{d.month:02d}-{d.day:02d} {d.hour:02d}:{d.minute:02d}:00",
}
MINUTES = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2049, 12, 31)).map(
    lambda d: d.replace(second=0, microsecond=0, tzinfo=UTC)
)


@settings(max_examples=examples(60), deadline=None)
@given(
    culture=st.sampled_from(sorted(CULTURES)),
    dates=st.lists(MINUTES, min_size=1, max_size=6),
    order=st.sampled_from(["mdy", "dmy", "ymd"]),
)
def test_detection_never_swaps_when_a_day_over_12_exists(
    culture: str, dates: list[datetime], order: str
) -> None:
    if all(d.day <= 12 for d in dates):
        dates = [*dates, dates[0].replace(day=13)]
    with tempfile.TemporaryDirectory() as tmp:
        path = pspki(Path(tmp) / "x.csv", [CULTURES[culture](d) for d in dates])
        records = list(ExportReader(path, ReaderOptions(date_order=order)))
    assert [r.not_before for r in records] == dates  # type: ignore[union-attr]


def _same_certificates(a: list, b: list) -> bool:  # type: ignore[type-arg]
    fields = ("serial", "common_name", "template_oid", "template_name", "request_id")
    more = ("not_before", "not_after", "revoked_at", "out_of_scope")
    return [tuple(getattr(r, f) for f in fields + more) for r in a] == [
        tuple(getattr(r, f) for f in fields + more) for r in b
    ]


def test_certutil_text_output_in_utf16_matches_its_csv_form() -> None:
    text = read_export(FIXTURES / "certutil-text-utf16.txt")
    csv = read_export(FIXTURES / "certutil-trailer.csv")
    assert text.format == "certutil-text" and csv.format == "certutil"
    assert text.rejects == [] and csv.rejects == []
    assert text.input_file.rows == csv.input_file.rows == 4
    assert _same_certificates(text.records, csv.records)
    first = text.records[0]
    assert first.request_id == "3" and text.records[1].request_id == "11"
    assert first.template_oid is not None and first.template_oid.endswith(".11658720")
    assert first.template_name == "Intune SCEP Device"
    assert [r.line for r in text.records] == [14, 26, 38, 50]
    assert text.records[2].revoked_at == datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


def test_certutil_text_format_can_be_forced_and_refuses_a_csv() -> None:
    forced = read_export(FIXTURES / "certutil-text-utf16.txt", format="certutil-text")
    assert len(forced.records) == 4
    with pytest.raises(InputError, match="not certutil's text output: line 1"):
        ExportReader(FIXTURES / "certutil-trailer.csv", ReaderOptions(format="certutil-text"))


def test_a_stray_line_in_text_output_is_a_reject_with_its_number(tmp_path: Path) -> None:
    raw = (FIXTURES / "certutil-text-utf16.txt").read_bytes().decode("utf-16")
    raw = raw.replace("Maximum Row Index: 4", "garbage here\r\nMaximum Row Index: 4")
    path = tmp_path / "x.txt"
    path.write_text(raw, encoding="utf-16")
    result = read_export(path)
    assert len(result.records) == 4
    assert [(r.line, r.reason) for r in result.rejects] == [
        (62, "not part of a Row block: 'garbage here'")
    ]


def test_statistics_trailer_lines_are_neither_rows_nor_rejects() -> None:
    result = read_export(FIXTURES / "certutil-trailer.csv")
    assert result.input_file.rows == 4 and result.rejects == []


def test_ca_certificates_are_out_of_scope_with_a_reason() -> None:
    ejbca = read_export(FIXTURES / "ejbca-types.csv").by_line()
    assert ejbca[2].out_of_scope is None
    assert ejbca[3].out_of_scope == "EJBCA type 2: a sub CA certificate, not a device's"
    assert ejbca[4].out_of_scope == "EJBCA type 8: a root CA certificate, not a device's"
    exchange = read_export(FIXTURES / "certutil-trailer.csv").records[3]
    assert exchange.out_of_scope == "template CAExchange issues CA certificates, not a device's"


def test_a_stray_quote_costs_its_own_line_only() -> None:
    result = read_export(FIXTURES / "ejbca-types.csv")
    assert [r.line for r in result.rejects] == [5]
    assert "unbalanced" in result.rejects[0].reason
    assert [r.line for r in result.records] == [2, 3, 4, 6, 7, 8, 9]
    assert result.input_file.rows == 8


def test_every_line_of_a_large_damaged_export_is_accounted_for(tmp_path: Path) -> None:
    head = "fingerprint,subjectDN,status,type,serialNumber,notBefore,expireDate,revocationDate"
    lines = [head]
    for n in range(1, 10_001):
        subject = f'"CN=host-{n}"' if n != 17 else '"CN=host-"17"'
        lines.append(f"{n:040x},{subject},20,1,{n},1777145760000,1808681760000,-1")
    path = tmp_path / "big.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = read_export(path)
    assert result.input_file.rows == 10_000
    assert [r.line for r in result.rejects] == [18]
    assert len(result.records) == 9_999


def test_a_quoted_cell_may_span_lines_but_only_a_bounded_number(tmp_path: Path) -> None:
    ok = '"RequestID","SerialNumber","CommonName"\n"1","0a","two\nlines"\n"2","0b","x"\n'
    path = tmp_path / "ok.csv"
    path.write_text(ok, encoding="utf-8")
    result = read_export(path)
    assert [(r.line, r.common_name) for r in result.records] == [(2, "two\nlines"), (4, "x")]
    long = ['"RequestID","SerialNumber","CommonName"', '"1","0a","open']
    long += [f"line {n}" for n in range(MAX_RECORD_LINES + 2)] + ['end"', '"2","0b","x"']
    path.write_text("\n".join(long) + "\n", encoding="utf-8")
    result = read_export(path)
    assert result.rejects[0].line == 2 and "unbalanced" in result.rejects[0].reason
    assert [r.line for r in result.records] == [len(long)]
    assert result.input_file.rows == len(result.rejects) + 1


def test_a_lone_cr_in_index_txt_does_not_hide_the_next_certificate() -> None:
    result = read_export(FIXTURES / "openssl-index-damaged.txt")
    assert [(r.line, r.common_name) for r in result.records][:3] == [
        (1, "host-a"),
        (2, "host-b"),
        (2, "host-c"),
    ]
    assert result.rejects == []


def test_certutil_text_output_takes_the_same_column_map(tmp_path: Path) -> None:
    text = (
        "Row 1:\r\n"
        "  Id. de solicitud emitida: 0x4\r\n"
        '  Número de serie: "4400000004a1b2c3d4e5f6a7b80000000000000004"\r\n'
        "  Fecha efectiva del certificado: 15/01/2026 9:05:30\r\n"
        "  Fecha de revocación: VACÍO\r\n"
        '  Plantilla de certificado: "Equipo"\r\n'
        "Maximum Row Index: 1\r\n"
    )
    path = tmp_path / "es.txt"
    path.write_bytes(b"\xff\xfe" + text.encode("utf-16-le"))
    result = read_export(path, column_map=FIXTURES / "certutil-columns-es.toml")
    (record,) = result.records
    assert result.format == "certutil-text" and result.rejects == []
    assert (record.request_id, record.template_name, record.revoked_at) == ("4", "Equipo", None)
    assert record.not_before == datetime(2026, 1, 15, 9, 5, 30, tzinfo=UTC)
