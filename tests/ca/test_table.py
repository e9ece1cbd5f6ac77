"""The one header-driven converter every CSV export format shares (ca/table.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reconcile.ca.table import Dialect, build_converter, certutil_request_id
from reconcile.timeparse import parse_utc

COLUMNS = {
    "serial number": "serial",
    "serial": "serial",
    "thumbprint": "thumbprint",
    "subject": "subject",
    "cn": "common_name",
    "template": "template",
    "not before": "not_before",
    "not after": "not_after",
    "revoked at": "revoked_at",
    "disposition": "disposition",
    "status": "status",
    "request id": "request_id",
    "upn": "upn",
    "config": "config_string",
    "cert type": "cert_type",
    "comment": "ignore",
}


def _status(text: str) -> bool | None:
    if text == "weird":
        raise ValueError("'weird' is no status")
    return {"revoked": True, "active": False}.get(text)


DIALECT = Dialect(
    name="test",
    columns=COLUMNS,
    nulls=frozenset({"", "EMPTY"}),
    serial_base=16,
    dates=parse_utc,
    status_rule=_status,
    request_id=certutil_request_id,
)
NOT_BEFORE = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def convert(row: dict[str, str], issuer: str | None = None, dialect: Dialect = DIALECT):
    header = list(row)
    to_cert = build_converter(dialect, header, source="export.csv", issuer=issuer)
    return to_cert(list(row.values()), 7)


def test_a_full_row_becomes_one_certificate() -> None:
    cert = convert(
        {
            "\ufeffSerial Number": "61 00 00 04 11",
            "Thumbprint": "a5f361c8b6c759acf1b165e410f835ffaf4d2ad4",
            "Subject": "CN=PC-01, O=Contoso",
            "Template": "1.3.6.1.4.1.311.21.8.1.2 ContosoIntuneSCEP",
            "Not Before": "2024-03-01T09:00:00Z",
            "Not After": "2025-03-01T09:00:00Z",
            "Disposition": "20 -- Issued",
            "Request ID": "0xb (11)",
            "UPN": "alex@contoso.com",
            "Config": "ca01.corp\\Contoso Issuing CA 1",
            "Comment": "anything",
        }
    )
    assert cert.serial == 0x6100000411
    assert cert.thumbprint == "A5F361C8B6C759ACF1B165E410F835FFAF4D2AD4"
    assert cert.common_name == "PC-01"  # from the subject: the file has no CN column
    assert (cert.template_oid, cert.template_name) == (
        "1.3.6.1.4.1.311.21.8.1.2",
        "ContosoIntuneSCEP",
    )
    assert cert.not_before == NOT_BEFORE
    assert cert.revoked_at is None
    assert cert.request_id == "11"
    assert cert.san == "UPN=alex@contoso.com"
    assert cert.issuer == "Contoso Issuing CA 1"
    assert (cert.source, cert.line, cert.out_of_scope) == ("export.csv", 7, None)


def test_the_first_column_mapped_to_a_field_wins_and_nulls_are_none() -> None:
    cert = convert({"Serial": "0A", "Serial Number": "0B", "CN": "EMPTY", "Subject": ""})
    assert cert.serial == 0x0A
    assert cert.common_name is None and cert.subject is None


def test_the_configured_issuer_is_used_when_rows_name_none() -> None:
    assert convert({"Serial": "0A"}, issuer="Contoso Issuing CA 1").issuer == "Contoso Issuing CA 1"
    assert convert({"Serial": "0A", "Config": "ca01\\Row CA"}, issuer="Set CA").issuer == "Set CA"


@pytest.mark.parametrize(
    ("disposition", "revoked_at"),
    [
        ("21 -- Revoked", NOT_BEFORE),  # revoked without a date: revoked since issuance
        ("0x15 (21) -- Revoked", NOT_BEFORE),
        ("20", None),
        ("EMPTY", None),
    ],
)
def test_dispositions(disposition: str, revoked_at: datetime | None) -> None:
    row = {"Serial": "0A", "Not Before": "2024-03-01T09:00:00Z", "Disposition": disposition}
    assert convert(row).revoked_at == revoked_at


def test_a_revocation_date_is_kept_and_a_status_rule_overrides_the_disposition() -> None:
    row = {"Serial": "0A", "Revoked At": "2024-04-01T00:00:00Z", "Disposition": "21"}
    assert convert(row).revoked_at == datetime(2024, 4, 1, tzinfo=UTC)
    assert convert({**row, "Status": "active"}).revoked_at is None
    assert convert({"Serial": "0A", "Status": "revoked"}).revoked_at == datetime(
        1970, 1, 1, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            {"Serial": "0A", "Disposition": "9 -- Pending"},
            r"Disposition: 9 \(pending\) is a request",
        ),
        ({"Serial": "0A", "Disposition": "Revoked"}, "Disposition: 'Revoked' is not a disposition"),
        ({"Serial": "0A", "Status": "weird"}, "Status: 'weird' is no status"),
        ({"Serial": "EMPTY"}, "Serial: no serial number"),
        ({"Serial": "0xZZ"}, "Serial: serial number '0xZZ' is not hexadecimal"),
        ({"Serial": "0A", "Not After": "yesterday"}, "Not After: "),
        ({"Serial": "0A", "Thumbprint": "abc"}, "Thumbprint: thumbprint 'abc' is not 40"),
    ],
)
def test_a_bad_cell_names_its_column(row: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        convert(row)


def test_a_row_with_the_wrong_number_of_cells_is_refused() -> None:
    to_cert = build_converter(DIALECT, ["Serial", "CN"], source="x.csv", issuer=None)
    with pytest.raises(ValueError, match="3 columns where the header has 2"):
        to_cert(["0A", "PC-01", "extra"], 2)


def test_ca_certificates_are_out_of_scope_by_template_or_ejbca_type() -> None:
    assert convert({"Serial": "0A", "Template": "SubCA"}).out_of_scope == (
        "template SubCA issues CA certificates, not a device's"
    )
    assert convert({"Serial": "0A", "Cert Type": "8"}).out_of_scope == (
        "EJBCA type 8: a root CA certificate, not a device's"
    )
    assert convert({"Serial": "0A", "Cert Type": "1"}).out_of_scope is None


def test_a_template_cell_without_oid_is_a_name() -> None:
    cert = convert({"Serial": "0A", "Template": '"ContosoIntuneSCEP"'})
    assert (cert.template_oid, cert.template_name) == (None, "ContosoIntuneSCEP")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0xb (11)", "11"), ("0xb", "11"), ("11", "11"), ("0xZZ", "0xZZ"), (" 12 ", "12")],
)
def test_certutil_request_ids(text: str, expected: str) -> None:
    assert certutil_request_id(text) == expected
