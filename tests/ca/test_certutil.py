"""certutil -view csv exports: fields, encodings, dates, revocation, rejects, trailers."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconcile.ca import ExportReader, ReaderOptions
from reconcile.errors import InputError
from tests.ca.conftest import Result

SCEP_OID = "1.3.6.1.4.1.311.21.8.3914223.11151747.14434950.1182173.15338666.248.74687331.11658720"
Read = Callable[..., Result]


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


def fixture_text(path: Path) -> str:
    """The fixture with its CRLFs intact (read_text would translate them)."""
    return path.read_bytes().decode("utf-8")


def write(path: Path, text: str, encoding: str) -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_english_export_fields(read: Read, ca_fixtures: Path) -> None:
    result = read(ca_fixtures / "certutil-en.csv", issuer="Contoso Issuing CA 1")
    assert result.format == "certutil"
    assert [r.line for r in result.records] == [2, 3, 4, 5, 6]
    assert result.rejects == []
    first = result.records[0]
    assert first.serial == 0x44000000030D20CA71500BA5C4000000000003
    assert first.thumbprint == "4231D56BB0F61260E1C1A74D64CBCF0F29A1F3BB"
    assert first.issuer == "Contoso Issuing CA 1"
    assert first.subject == "CN=DESKTOP-7QK2M1, OU=Devices, DC=corp, DC=contoso"
    assert first.common_name == "DESKTOP-7QK2M1"
    assert first.requester == "CONTOSO\\svc-ndes"
    assert (first.template_oid, first.template_name) == (SCEP_OID, "Intune SCEP Device")
    assert first.request_id == "3"
    assert first.not_before == utc(2026, 4, 25, 19, 36)
    assert first.not_after == utc(2027, 4, 25, 19, 36)
    assert first.revoked_at is None
    assert first.san is None
    assert first.source == str(ca_fixtures / "certutil-en.csv")


def test_template_forms_request_ids_upn_and_seconds(read: Read, ca_fixtures: Path) -> None:
    rows = read(ca_fixtures / "certutil-en.csv").by_line()
    assert (rows[3].template_oid, rows[3].template_name) == (None, "Machine")
    assert (rows[4].template_oid, rows[4].template_name) == (SCEP_OID, None)
    assert rows[3].request_id == "11"  # "0xb (11)"
    assert rows[3].san == "UPN=zoe.mueller@contoso.com"
    assert rows[3].common_name == "Zoë Müller"
    assert rows[3].not_before == utc(2026, 4, 26, 8, 5, 9)  # "8:05:09 AM GMT"
    assert rows[6].not_before == utc(2026, 4, 29, 14, 30)  # 24-hour clock
    assert rows[6].thumbprint is None  # EMPTY, unquoted
    assert rows[3].revoked_at is None  # "EMPTY", quoted


def test_revoked_by_date_and_by_disposition(read: Read, ca_fixtures: Path) -> None:
    rows = read(ca_fixtures / "certutil-en.csv").by_line()
    assert rows[4].revoked_at == utc(2026, 5, 1, 10, 0)  # date and 0x15 (21)
    # Disposition 21 without a date: not_before stands in, so the row still counts as revoked.
    assert rows[5].revoked_at == rows[5].not_before == utc(2026, 4, 28, 23, 15)


def test_revocation_date_without_disposition_column(read: Read, tmp_path: Path) -> None:
    text = '"Serial Number","Revocation Date"\r\n"0a","5/1/2026 10:00 AM GMT"\r\n"0b",EMPTY\r\n'
    rows = read(write(tmp_path / "x.csv", text, "utf-8")).records
    assert [r.revoked_at for r in rows] == [utc(2026, 5, 1, 10, 0), None]


def test_disposition_issued_overrides_a_stale_revocation_date(read: Read, tmp_path: Path) -> None:
    # Un-revoked from hold: disposition back to 20 while the old date may still show.
    text = (
        '"Serial Number","Revocation Date","Request Disposition"\r\n'
        '"0a","5/1/2026 10:00 AM GMT","20 -- Issued"\r\n'
    )
    (row,) = read(write(tmp_path / "x.csv", text, "utf-8")).records
    assert row.revoked_at is None


@pytest.mark.parametrize(
    ("encoding", "bom"),
    [
        ("utf-16-le", b"\xff\xfe"),
        ("utf-16-be", b"\xfe\xff"),
        ("utf-8", b"\xef\xbb\xbf"),
        ("utf-8", b""),
        ("utf-16-le", b""),
        ("utf-16-be", b""),
        ("utf-32-le", b"\xff\xfe\x00\x00"),
    ],
    ids=[
        "utf16le-bom",
        "utf16be-bom",
        "utf8-bom",
        "utf8",
        "utf16le-no-bom",
        "utf16be-no-bom",
        "utf32",
    ],
)
@pytest.mark.parametrize("fixture", ["certutil-en.csv", "certutil-malformed.csv"])
def test_encodings_give_identical_results(
    read: Read, ca_fixtures: Path, tmp_path: Path, encoding: str, bom: bytes, fixture: str
) -> None:
    text = fixture_text(ca_fixtures / fixture)
    path = tmp_path / fixture
    data = bom + text.encode(encoding)
    path.write_bytes(data)
    expected = read(ca_fixtures / fixture)
    got = read(path)
    assert [(r.line, r.serial, r.common_name, r.not_before) for r in got.records] == [
        (r.line, r.serial, r.common_name, r.not_before) for r in expected.records
    ]
    assert [(r.line, r.reason) for r in got.rejects] == [
        (r.line, r.reason) for r in expected.rejects
    ]
    assert got.input_file.sha256 == hashlib.sha256(data).hexdigest()
    assert (got.input_file.rows, got.input_file.rejected) == (
        expected.input_file.rows,
        expected.input_file.rejected,
    )


def test_legacy_code_page_non_ascii_common_name(
    read: Read, ca_fixtures: Path, tmp_path: Path
) -> None:
    text = fixture_text(ca_fixtures / "certutil-en.csv")
    path = write(tmp_path / "cp1252.csv", text, "cp1252")
    assert "Zoë".encode("cp1252") in path.read_bytes()
    rows = read(path).by_line()
    assert rows[3].common_name == "Zoë Müller"
    assert rows[3].subject == "CN=Zoë Müller, OU=Users, DC=corp, DC=contoso"


def test_other_legacy_code_page(read: Read, ca_fixtures: Path, tmp_path: Path) -> None:
    text = fixture_text(ca_fixtures / "certutil-en.csv")
    path = write(tmp_path / "oem.csv", text, "cp850")
    rows = read(path, legacy_encoding="cp850").by_line()
    assert rows[3].common_name == "Zoë Müller"


def test_forced_encoding_rejects_undecodable_rows(
    read: Read, ca_fixtures: Path, tmp_path: Path
) -> None:
    text = fixture_text(ca_fixtures / "certutil-en.csv")
    path = write(tmp_path / "cp1252.csv", text, "cp1252")
    result = read(path, encoding="utf-8")
    assert [r.line for r in result.records] == [2, 4, 5, 6]
    assert [(r.line, r.reason) for r in result.rejects] == [(3, "bytes that are not valid utf-8")]


def test_forced_utf16_encoding_with_bom(read: Read, ca_fixtures: Path, tmp_path: Path) -> None:
    text = fixture_text(ca_fixtures / "certutil-en.csv")
    path = tmp_path / "x.csv"
    path.write_bytes(b"\xff\xfe" + text.encode("utf-16-le"))
    assert len(read(path, encoding="utf-16-le").records) == 5


def test_malformed_rows_are_rejects_with_lines(read: Read, ca_fixtures: Path) -> None:
    result = read(ca_fixtures / "certutil-malformed.csv")
    assert [r.line for r in result.records] == [2, 7, 12]
    assert result.by_line()[7].common_name == "TWO\r\nLINES"
    assert [(r.line, r.reason) for r in result.rejects] == [
        (3, "Serial Number: serial number 'xyz-not-hex' is not hexadecimal"),
        (4, "Certificate Effective Date: '31/31/2026 7:00 PM' is not a date"),
        (5, "4 columns where the header has 6"),
        (6, "Serial Number: no serial number"),
        (9, "Request Disposition: 31 (denied) is a request, not an issued certificate"),
        (10, "7 columns where the header has 6"),
        (11, "Request Disposition: 'Issued' is not a disposition code"),
    ]
    assert all(r.source == str(ca_fixtures / "certutil-malformed.csv") for r in result.rejects)
    # The trailing status lines are neither rows nor rejects.
    assert (result.input_file.rows, result.input_file.rejected) == (10, 7)


def test_unterminated_quote_is_one_reject(read: Read, tmp_path: Path) -> None:
    text = '"Serial Number","Issued Common Name"\r\n"0a","ok"\r\n"0b","broken\r\n'
    result = read(write(tmp_path / "x.csv", text, "utf-8"))
    assert [r.line for r in result.records] == [2]
    assert [r.line for r in result.rejects] == [3]


def test_bare_carriage_return_is_a_reject_not_a_crash(read: Read, tmp_path: Path) -> None:
    text = '"Serial Number","Issued Common Name"\n0a,bad\rvalue\n0b,ok\n'
    result = read(write(tmp_path / "x.csv", text, "utf-8"))
    assert [r.line for r in result.records] == [3]
    assert result.rejects[0].line == 2
    assert result.rejects[0].reason.startswith("not valid CSV")


def test_localized_headers_with_column_map(read: Read, ca_fixtures: Path, tmp_path: Path) -> None:
    # Spanish CA in Madrid: dmy dates in local time, a localized null word, UTF-16 on disk.
    text = fixture_text(ca_fixtures / "certutil-es.csv")
    path = tmp_path / "es.csv"
    path.write_bytes(b"\xff\xfe" + text.encode("utf-16-le"))
    result = read(
        path,
        column_map=ca_fixtures / "certutil-columns-es.toml",
        date_order="dmy",
        timezone="Europe/Madrid",
    )
    assert result.format == "certutil"
    first, second = result.records
    assert first.common_name == "PORTÁTIL-Ñ01"
    assert first.not_before == utc(2026, 4, 25, 19, 36)  # 21:36 CEST
    assert first.template_name == "Dispositivo SCEP de Intune"
    assert first.revoked_at is None  # "VACÍO"
    assert second.thumbprint is None
    assert second.not_before == utc(2026, 1, 15, 8, 5, 30)  # 9:05:30 CET
    assert second.revoked_at == utc(2026, 2, 1, 9, 0)


def test_localized_headers_without_map_list_the_headers(ca_fixtures: Path) -> None:
    with pytest.raises(InputError) as caught:
        ExportReader(ca_fixtures / "certutil-es.csv", ReaderOptions())
    message = str(caught.value)
    assert message.startswith(str(ca_fixtures / "certutil-es.csv") + ": ")
    assert "'Número de serie'" in message and "'Id. de solicitud emitida'" in message
    assert "--column-map" in message
    assert "\n" not in message


def test_forced_certutil_without_serial_column(ca_fixtures: Path) -> None:
    with pytest.raises(InputError, match="no 'Serial Number' column; headers found: 'Name'"):
        ExportReader(ca_fixtures / "unknown-headers.csv", ReaderOptions(format="certutil"))


def test_certutil_header_without_serial(tmp_path: Path) -> None:
    path = write(
        tmp_path / "x.csv", '"Issued Request ID","Issued Common Name"\r\n"1","a"\r\n', "utf-8"
    )
    with pytest.raises(InputError, match="certutil export without the 'Serial Number' column"):
        ExportReader(path, ReaderOptions())


@pytest.mark.parametrize(
    ("zone", "expected"),
    [("UTC", utc(2026, 4, 25, 19, 36)), ("America/New_York", utc(2026, 4, 25, 23, 36))],
)
def test_dates_without_gmt_use_the_configured_zone(
    read: Read, ca_fixtures: Path, tmp_path: Path, zone: str, expected: datetime
) -> None:
    text = fixture_text(ca_fixtures / "certutil-en.csv").replace(" GMT", "")
    rows = read(write(tmp_path / "local.csv", text, "utf-8"), timezone=zone).by_line()
    assert rows[2].not_before == expected


def test_gmt_marker_wins_over_the_zone(read: Read, ca_fixtures: Path) -> None:
    rows = read(ca_fixtures / "certutil-en.csv", timezone="Asia/Tokyo").by_line()
    assert rows[2].not_before == utc(2026, 4, 25, 19, 36)


def test_input_file_before_reading_is_an_error(ca_fixtures: Path) -> None:
    reader = ExportReader(ca_fixtures / "certutil-en.csv", ReaderOptions())
    with reader, pytest.raises(RuntimeError):
        reader.input_file()


def test_reader_streams_once(ca_fixtures: Path) -> None:
    reader = ExportReader(ca_fixtures / "certutil-en.csv", ReaderOptions())
    assert len(list(reader)) == 5
    with pytest.raises(RuntimeError):
        iter(reader)


def test_rows_missing_against_certutils_row_count_stop_the_read(
    read: Read, ca_fixtures: Path, tmp_path: Path
) -> None:
    lines = fixture_text(ca_fixtures / "certutil-en.csv").split("\r\n")
    data = [n for n, line in enumerate(lines) if line.startswith('"') and n > 0]
    del lines[data[1] : data[3]]
    path = write(tmp_path / "x.csv", "\r\n".join(lines), "utf-16")
    with pytest.raises(InputError, match=r"certutil printed 5 rows, the file holds 3"):
        read(path)


def test_a_row_count_trailer_that_matches_reads_quietly(read: Read, ca_fixtures: Path) -> None:
    result = read(ca_fixtures / "certutil-en.csv")
    assert result.input_file.rows == 5


@pytest.mark.parametrize("cut", ['"0b","bro', '"0b"'])
def test_a_file_that_ends_inside_a_row_was_cut_short(read: Read, tmp_path: Path, cut: str) -> None:
    text = '"Serial Number","Issued Common Name"\r\n"0a","ok"\r\n' + cut
    with pytest.raises(InputError, match=r":3: the file ends inside a row"):
        read(write(tmp_path / "x.csv", text, "utf-16"))


def test_a_last_row_without_a_line_break_still_reads(read: Read, tmp_path: Path) -> None:
    text = '"Serial Number","Issued Common Name"\r\n"0a","ok"\r\n"0b","ok"'
    assert [r.line for r in read(write(tmp_path / "x.csv", text, "utf-8")).records] == [2, 3]


def test_nul_padding_after_the_last_row_is_a_reject_not_a_cut(read: Read, tmp_path: Path) -> None:
    text = '\ufeff"Serial Number","Issued Common Name"\r\n"0a","ok"\r\n\x00'
    result = read(write(tmp_path / "x.csv", text, "utf-8"))
    assert [r.line for r in result.records] == [2]
    assert [r.line for r in result.rejects] == [3]
