"""PSPKI Get-IssuedRequest / Get-RevokedRequest | Export-Csv."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from tests.ca.conftest import Result

Read = Callable[..., Result]


def test_issued_export_with_type_line_and_config_string(read: Read, ca_fixtures: Path) -> None:
    result = read(ca_fixtures / "pspki-issued.csv")
    assert result.format == "pspki"
    first, second = result.records
    assert first.line == 3  # line 1 is "#TYPE ...", line 2 the header
    assert first.serial == 0x44000000030D20CA71500BA5C4000000000003
    assert first.issuer == "Contoso Issuing CA 1"  # the CA name from ConfigString
    assert first.requester == "CONTOSO\\svc-ndes"
    assert first.common_name == "DESKTOP-7QK2M1"
    assert first.thumbprint == "4231D56BB0F61260E1C1A74D64CBCF0F29A1F3BB"
    assert first.template_oid is not None and first.template_oid.startswith("1.3.6.1.4.1.311.21.8.")
    assert first.not_before == datetime(2026, 4, 25, 19, 36, tzinfo=UTC)
    assert first.request_id == "3"
    assert second.template_name == "Machine"
    assert second.thumbprint is None
    assert [(r.line, r.reason) for r in result.rejects] == [
        (5, "NotBefore: 'not a date' is not a date")
    ]


def test_configured_issuer_wins_over_config_string(read: Read, ca_fixtures: Path) -> None:
    result = read(ca_fixtures / "pspki-issued.csv", issuer="CN=Other CA")
    assert {r.issuer for r in result.records} == {"CN=Other CA"}


def test_revoked_export(read: Read, ca_fixtures: Path) -> None:
    result = read(ca_fixtures / "pspki-revoked.csv")
    assert result.format == "pspki"
    assert [r.revoked_at for r in result.records] == [
        datetime(2026, 5, 1, 10, 0, tzinfo=UTC),
        datetime(2026, 5, 2, 11, 30, tzinfo=UTC),
    ]
    assert result.records[0].issuer is None


def test_use_culture_semicolons_and_german_dates(read: Read, tmp_path: Path) -> None:
    # Export-Csv -UseCulture on a de-DE machine: ';' and dd.MM.yyyy HH:mm:ss, local time.
    path = tmp_path / "de.csv"
    path.write_bytes(
        (
            '"RequestID";"CommonName";"NotBefore";"NotAfter";"SerialNumber"\r\n'
            '"7";"PC-07";"25.04.2026 21:36:00";"25.04.2027 21:36:00";"0a1b"\r\n'
        ).encode("utf-8-sig")
    )
    result = read(path, date_order="dmy", timezone="Europe/Berlin")
    (row,) = result.records
    assert row.serial == 0x0A1B
    assert row.not_before == datetime(2026, 4, 25, 19, 36, tzinfo=UTC)
