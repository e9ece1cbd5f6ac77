"""OpenSSL index.txt: V/R/E lines, UTCTime and GeneralizedTime, hex serials."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconcile.ca import ExportReader, ReaderOptions
from reconcile.errors import InputError
from tests.ca.conftest import Result

Read = Callable[..., Result]


def test_index_rows(read: Read, ca_fixtures: Path) -> None:
    result = read(ca_fixtures / "openssl-index.txt", issuer="Contoso Root CA")
    assert result.format == "openssl-index"
    rows = result.by_line()
    assert sorted(rows) == [1, 2, 3, 4]
    assert rows[1].serial == 0x1000
    assert rows[1].subject == "/C=ZZ/O=Contoso/CN=DESKTOP-7QK2M1"
    assert rows[1].common_name == "DESKTOP-7QK2M1"
    assert rows[1].issuer == "Contoso Root CA"
    assert rows[1].not_after == datetime(2027, 4, 25, 19, 36, tzinfo=UTC)
    assert rows[1].revoked_at is None and rows[1].thumbprint is None
    assert rows[2].revoked_at == datetime(2026, 5, 1, 10, 0, tzinfo=UTC)  # ",keyCompromise"
    assert rows[3].not_after == datetime(2025, 1, 1, tzinfo=UTC)  # E rows are kept
    assert rows[4].not_after == datetime(2051, 1, 1, tzinfo=UTC)  # GeneralizedTime


def test_index_rejects(read: Read, ca_fixtures: Path) -> None:
    result = read(ca_fixtures / "openssl-index.txt")
    assert [(r.line, r.reason) for r in result.rejects] == [
        (6, "status R without a revocation time"),
        (7, "serial: serial number 'XYZ' is not hexadecimal"),
        (8, "5 tab-separated fields where index.txt has 6"),
        (9, "expiry: '271301000000Z' is not a valid time"),
    ]
    assert (result.input_file.rows, result.input_file.rejected) == (8, 4)  # line 5 is blank


def test_forced_index_format_on_a_csv(ca_fixtures: Path) -> None:
    with pytest.raises(InputError, match="not an OpenSSL index.txt: line 1 is"):
        ExportReader(ca_fixtures / "certutil-en.csv", ReaderOptions(format="openssl-index"))
