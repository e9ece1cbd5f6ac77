"""EJBCA CertificateData exports: decimal serials, epoch milliseconds, status codes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from tests.ca.conftest import Result

Read = Callable[..., Result]


def test_certificate_data_export(read: Read, ca_fixtures: Path) -> None:
    result = read(ca_fixtures / "ejbca-certificatedata.csv", issuer="ignored when a row has one")
    assert result.format == "ejbca"
    rows = result.by_line()
    first = rows[2]
    assert first.serial == 1516450673515925533479039859305637852330590211  # decimal in the DB
    assert first.thumbprint == "3F786850E387550FDAB836ED7E6DC881DE23001B"
    assert first.issuer == "CN=ManagementCA,O=EJBCA Sample,C=SE"
    assert first.subject == "CN=DESKTOP-7QK2M1,O=Contoso"
    assert first.common_name == "DESKTOP-7QK2M1"
    assert first.san == "dNSName=desktop-7qk2m1.corp.contoso.com"
    assert first.requester == "desktop-7qk2m1"
    assert first.template_name == "1234567"  # certificateProfileId
    assert first.not_before == datetime(2026, 4, 25, 19, 36, tzinfo=UTC)
    assert first.not_after == datetime(2027, 4, 25, 19, 36, tzinfo=UTC)
    assert first.revoked_at is None  # revocationDate -1


def test_status_codes(read: Read, ca_fixtures: Path) -> None:
    rows = read(ca_fixtures / "ejbca-certificatedata.csv").by_line()
    assert rows[3].serial == 4660
    assert rows[3].revoked_at == datetime(2026, 5, 1, 10, 0, tzinfo=UTC)  # 40 with a date
    assert rows[3].san is None  # NULL
    assert rows[4].revoked_at is None  # 60 archived, never revoked
    assert rows[5].revoked_at is None  # 21 notified about expiration: still valid
    assert rows[5].san is None  # \N
    assert rows[7].revoked_at == rows[7].not_before  # 40 (on hold) without a date


def test_hex_serial_in_a_decimal_column_is_rejected(read: Read, ca_fixtures: Path) -> None:
    result = read(ca_fixtures / "ejbca-certificatedata.csv")
    assert [(r.line, r.reason) for r in result.rejects] == [
        (6, "serialNumber: serial number '1A2B' is not decimal")
    ]


def test_lower_case_columns_and_unknown_status(read: Read, tmp_path: Path) -> None:
    # PostgreSQL folds unquoted identifiers: serialnumber, expiredate, ...
    path = tmp_path / "pg.csv"
    path.write_text(
        "fingerprint,serialnumber,expiredate,status,revocationdate\n"
        "a9993e364706816aba3e25717850c26c9cd0d89d,10,1808681760000,20,-1\n"
        "a9993e364706816aba3e25717850c26c9cd0d89d,11,1808681760000,x,-1\n"
        "a9993e364706816aba3e25717850c26c9cd0d89d,12,99999999999999999999,20,-1\n",
        encoding="utf-8",
    )
    result = read(path)
    assert result.format == "ejbca"
    assert [r.serial for r in result.records] == [10]
    assert [(r.line, r.reason) for r in result.rejects] == [
        (3, "status: 'x' is not an EJBCA status code"),
        (4, "expiredate: 99999999999999999999 milliseconds is past year 9999"),
    ]
