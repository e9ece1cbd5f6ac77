"""Any CSV with a column map: fields, serial base, date formats, map validation."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconcile.ca import ExportReader, ReaderOptions
from reconcile.errors import ConfigError
from tests.ca.conftest import Result

Read = Callable[..., Result]
CONFIG = Path(__file__).parents[2] / "config"


def test_inventory_with_map(read: Read, ca_fixtures: Path) -> None:
    result = read(
        ca_fixtures / "mapped-inventory.csv", column_map=ca_fixtures / "mapped-inventory.toml"
    )
    assert result.format == "mapped"
    rows = result.by_line()
    assert rows[2].serial == 0x176716B0B94558C03A29  # colon separated
    assert rows[2].issuer == "Vault Issuing CA"
    assert rows[2].template_name == "wifi"
    assert rows[2].not_before == datetime(2026, 4, 25, 19, 36, tzinfo=UTC)
    assert rows[2].revoked_at is None
    assert rows[3].serial == 0x22D0F72FF6C1  # hyphen separated
    assert rows[3].revoked_at == datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
    assert rows[4].revoked_at == rows[4].not_before  # "REVOKED" in state, no date
    assert [r.line for r in result.rejects] == [5]


def write_map(path: Path, body: str) -> Path:
    path.write_text(body, encoding="utf-8")
    return path


def test_decimal_serials_epoch_seconds(read: Read, tmp_path: Path) -> None:
    data = tmp_path / "x.csv"
    data.write_text("sn\tvalid_to\n255\t1808681760\n0xff\t1808681760\n", encoding="utf-8")
    column_map = write_map(
        tmp_path / "m.toml",
        'format = "mapped"\nserial_base = 10\ndate_format = "epoch-s"\n'
        '[columns]\nsn = "serial"\nvalid_to = "not_after"\n',
    )
    result = read(data, column_map=column_map)
    assert [(r.serial, r.not_after) for r in result.records] == [
        (255, datetime(2027, 4, 25, 19, 36, tzinfo=UTC))
    ]
    assert result.rejects[0].reason == "sn: serial number '0xff' is not decimal"


def test_strptime_pattern_in_the_configured_zone(read: Read, tmp_path: Path) -> None:
    data = tmp_path / "x.csv"
    data.write_text("Serial,Expires\n0a,2027.04.25-21h36\n0b,tomorrow\n", encoding="utf-8")
    column_map = write_map(
        tmp_path / "m.toml",
        'format = "mapped"\ndate_format = "%Y.%m.%d-%Hh%M"\n'
        '[columns]\nSerial = "serial"\nExpires = "not_after"\n',
    )
    result = read(data, column_map=column_map, timezone="Europe/Berlin")
    assert result.records[0].not_after == datetime(2027, 4, 25, 19, 36, tzinfo=UTC)
    assert result.rejects[0].reason == "Expires: 'tomorrow' does not match '%Y.%m.%d-%Hh%M'"


def test_shipped_example_map_is_valid(read: Read, tmp_path: Path) -> None:
    data = tmp_path / "x.csv"
    data.write_text(
        "Serial,Thumbprint,Issuer,Subject,Template,Not Before,Not After,Revoked On,Status\n"
        "0a:1b,a9993e364706816aba3e25717850c26c9cd0d89d,Example CA,CN=host,Wifi,"
        "2026-04-25 19:36:00,2027-04-25 19:36:00,,Issued\n",
        encoding="utf-8",
    )
    result = read(data, format="mapped", column_map=CONFIG / "column-map.example.toml")
    (row,) = result.records
    assert row.serial == 0x0A1B and row.common_name == "host" and row.template_name == "Wifi"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('format = "mapped"\ncolour = 1\n[columns]\nS = "serial"\n', "unknown key"),
        ('format = "mapped"\n[columns]\nS = "serial_no"\n', "maps to 'serial_no'"),
        ('format = "mapped"\n[columns]\nS = "subject"\n', "no column is mapped to 'serial'"),
        ('format = "mapped"\nserial_base = 8\n[columns]\nS = "serial"\n', "serial_base"),
        ('format = "mapped"\ndate_format = "dd.mm"\n[columns]\nS = "serial"\n', "date_format"),
        ('format = "mapped"\ndelimiter = "||"\n[columns]\nS = "serial"\n', "delimiter"),
        ('format = "mapped"\n[columns\n', "not valid TOML"),
        ('format = "certutil"\n[columns]\nS = "serial"\n', "says format = 'certutil'"),
    ],
)
def test_bad_maps_are_config_errors(
    tmp_path: Path, ca_fixtures: Path, body: str, message: str
) -> None:
    column_map = write_map(tmp_path / "m.toml", body)
    with pytest.raises(ConfigError, match=message):
        ExportReader(
            ca_fixtures / "mapped-inventory.csv",
            ReaderOptions(format="mapped", column_map=column_map),
        )


def test_map_without_format_under_auto(tmp_path: Path, ca_fixtures: Path) -> None:
    column_map = write_map(tmp_path / "m.toml", '[columns]\nS = "serial"\n')
    with pytest.raises(ConfigError, match="set format"):
        ExportReader(ca_fixtures / "certutil-en.csv", ReaderOptions(column_map=column_map))


def test_mapped_needs_a_map() -> None:
    with pytest.raises(ConfigError, match="needs a column map"):
        ReaderOptions(format="mapped")


def test_missing_map_file(tmp_path: Path, ca_fixtures: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the column map"):
        ExportReader(
            ca_fixtures / "mapped-inventory.csv",
            ReaderOptions(format="mapped", column_map=tmp_path / "nope.toml"),
        )


def notes_of(tmp_path: Path, serials: list[str], base: str = "") -> list[str]:
    data = tmp_path / "x.csv"
    data.write_text("sn\n" + "".join(f"{s}\n" for s in serials), encoding="utf-8")
    column_map = write_map(
        tmp_path / "m.toml", f'format = "mapped"\n{base}[columns]\nsn = "serial"\n'
    )
    reader = ExportReader(data, ReaderOptions(column_map=column_map))
    assert len(list(reader)) == len(serials)
    return reader.notes


# 39 decimal digits: a 128-bit serial as EJBCA and many inventories write it.
DECIMAL = [f"{(0x6100000A5B3C0000 << 64) + n * 977:d}" for n in range(1, 7)]


def test_decimal_serials_read_as_hex_get_a_hint(tmp_path: Path) -> None:
    (note,) = notes_of(tmp_path, DECIMAL)
    assert note.endswith(
        "every serial has 20 or more digits and no letter (first at line 2), read as hex: "
        "if the CA writes decimal serials, set serial_base = 10 in the column map"
    )


@pytest.mark.parametrize(
    ("serials", "base"),
    [
        (DECIMAL, "serial_base = 10\n"),  # read as decimal: nothing to say
        (DECIMAL[:4], ""),  # too few rows to tell
        ([*DECIMAL[:5], "6100000A5B3C00000000000000000003D1"], ""),  # one has a letter
        ([*DECIMAL[:5], "1000"], ""),  # one is short: sequential hex serials look like this
        ([f"{n:020d}" for n in range(1, 7)], ""),  # leading zeros: short once read
    ],
)
def test_no_hint_without_reason(tmp_path: Path, serials: list[str], base: str) -> None:
    assert notes_of(tmp_path, serials, base) == []
