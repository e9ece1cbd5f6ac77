"""The shipped English certutil map."""

from __future__ import annotations

from pathlib import Path

from reconcile.ca.columns import english_certutil_map, header_key

ROOT = Path(__file__).parents[2]


def test_package_copy_matches_the_reference_in_config() -> None:
    packaged = ROOT / "reconcile" / "data" / "certutil-columns-en.toml"
    assert packaged.read_bytes() == (ROOT / "config" / "certutil-columns-en.toml").read_bytes()


def test_english_headers() -> None:
    columns = english_certutil_map().columns
    expected = {
        "Issued Request ID": "request_id",
        "Serial Number": "serial",
        "Certificate Hash": "thumbprint",
        "Certificate Effective Date": "not_before",
        "Certificate Expiration Date": "not_after",
        "Certificate Template": "template",
        "Requester Name": "requester",
        "Issued Common Name": "common_name",
        "Issued Distinguished Name": "subject",
        "Revocation Date": "revoked_at",
        "Request Disposition": "disposition",
        "User Principal Name": "upn",
    }
    assert {h: columns[header_key(h)] for h in expected} == expected
    assert english_certutil_map().null_values == frozenset({"EMPTY"})


def test_header_key_ignores_case_quotes_spaces_and_bom() -> None:
    assert header_key('\ufeff "Serial Number" ') == header_key("serial number")
