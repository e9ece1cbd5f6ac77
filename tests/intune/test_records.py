"""How a report row's CertificateStatus is read: code map, then _loc text, then the value."""

from __future__ import annotations

import json
import logging

import pytest

from reconcile.intune.records import ReportStatuses, decode_report_row, scan_report_row

DELIVERED = ("installed", "issued", "active", "valid")


def row(**columns: str) -> bytes:
    return json.dumps({"SerialNumber": "0A", **columns}).encode()


@pytest.mark.parametrize(
    ("columns", "state", "delivered"),
    [
        ({"CertificateStatus": "1", "CertificateStatus_loc": "Active"}, "Active", True),
        ({"CertificateStatus": "2", "CertificateStatus_loc": "Revoked"}, "Revoked", False),
        ({"CertificateStatus": "Active"}, "Active", True),  # text, as seen in the wild
        ({"CertificateStatus": "VALID"}, "VALID", True),
        ({"CertificateStatus": "1"}, "1", False),  # a bare code nobody mapped
        ({}, "unknown", False),
    ],
)
def test_status_resolution(columns: dict[str, str], state: str, delivered: bool) -> None:
    record = decode_report_row(row(**columns), ReportStatuses(DELIVERED), "report:1")
    assert (record.state, record.delivered) == (state, delivered)


def test_the_code_map_wins_over_loc_text() -> None:
    statuses = ReportStatuses(DELIVERED, {"1": "Installed", "5": "Pending"})
    got = decode_report_row(
        row(CertificateStatus="1", CertificateStatus_loc="Aktiv"), statuses, "report:1"
    )
    assert (got.state, got.delivered) == ("Installed", True)
    entry = scan_report_row(row(CertificateStatus="5"), statuses, 1)
    assert entry.delivered is False and statuses.unknown == {}  # mapped, so known


def test_unknown_values_are_counted_and_warned_once(caplog: pytest.LogCaptureFixture) -> None:
    statuses = ReportStatuses(DELIVERED)
    for value in ("7", "7", "Aktiv", "Revoked", "Active", "x\x1b[31m"):
        scan_report_row(row(CertificateStatus=value), statuses, 1)
    assert statuses.unknown == {"7": 2, "Aktiv": 1, "x\x1b[31m": 1}
    with caplog.at_level(logging.WARNING, logger="reconcile.intune"):
        statuses.warn_unknown()
        ReportStatuses(DELIVERED).warn_unknown()  # nothing unknown: silent
    (message,) = [r.getMessage() for r in caplog.records]
    assert "'7' x2, 'Aktiv' x1, 'x?[31m' x1" in message
    assert "\x1b" not in message


def test_frozensets_still_work_and_codes_parse() -> None:
    entry = scan_report_row(row(CertificateStatus="Active"), frozenset({"active"}), 1)
    assert entry.delivered is True
    assert ReportStatuses.parse_codes(["1=Active", " 2 = Revoked "]) == {
        "1": "Active",
        "2": "Revoked",
    }
    with pytest.raises(ValueError, match="'3' is not code=text"):
        ReportStatuses.parse_codes(["3"])
