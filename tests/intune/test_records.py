"""How a report row's CertificateStatus is read: code map, then _loc text, then the value."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest

from reconcile.intune.records import (
    ReportStatuses,
    decode_device,
    decode_device_light,
    decode_profile,
    decode_report_row,
    decode_state,
    decode_state_light,
    scan_report_row,
    scan_state,
)

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


# One managedDeviceCertificateState line as the fetcher stores it (profile annotated).
STATE_LINE = (
    b'{"@reconcile.profileId":"62f746b4-84e6-4ceb-95bd-447e7184d454",'
    b'"@reconcile.profileName":"Contoso Windows Device SCEP","certificateErrorCode":0,'
    b'"certificateExpirationDateTime":"2026-09-02T09:14:00.0000000Z",'
    b'"certificateIssuanceDateTime":"2025-09-02T09:22:20.5780775Z",'
    b'"certificateIssuanceState":"installed",'
    b'"certificateIssuer":"CN=Contoso Issuing CA 1, DC=corp, DC=contoso",'
    b'"certificateLastIssuanceStateChangedDateTime":"2025-09-02T09:46:05.3667278Z",'
    b'"certificateProfileDisplayName":"Contoso Windows Device SCEP",'
    b'"certificateSerialNumber":"610000042D9E6A1947D75762EF00000000042D",'
    b'"certificateThumbprint":"C2725BE1D06B80C414E376BF38DCA85402132D7E",'
    b'"deviceDisplayName":"CONTOSO-LT-0101","devicePlatform":"windows10AndLater",'
    b'"id":"d6924459-eb54-4768-a3a0-921f4393262e","userDisplayName":"Adele Vance"}'
)
REPORT_LINE = (
    b'{"CaConfiguration":"ca01.corp.contoso.com\\\\Contoso Issuing CA 1",'
    b'"CertificateStatus":"Active","DeviceId":"5e571eaa-66c1-44e7-8859-90d2e844c762",'
    b'"DeviceName":"CONTOSO-DT-0202","IssuerName":"CN=Contoso Issuing CA 1, DC=corp, DC=contoso",'
    b'"PolicyId":"62f746b4-84e6-4ceb-95bd-447e7184d454",'
    b'"SerialNumber":"61 00 00 04 37 F2 01 DA 49 CA C8 58 BB 00 00 00 00 04 37",'
    b'"SubjectName":"CN=CONTOSO-DT-0202","Thumbprint":"A5F361C8B6C759ACF1B165E410F835FFAF4D2AD4",'
    b'"UPN":"johanna.lorenz@contoso.com","ValidFrom":"2025-11-25T09:00:00Z",'
    b'"ValidTo":"0001-01-01T00:00:00Z"}'
)


def test_a_state_line_decodes_and_scans_to_the_same_certificate() -> None:
    record = decode_state(STATE_LINE)
    assert record.serial == 0x610000042D9E6A1947D75762EF00000000042D
    assert (record.state, record.delivered, record.source) == ("installed", True, "states")
    assert record.profile_id == "62f746b4-84e6-4ceb-95bd-447e7184d454"
    assert record.issued_at == datetime(2025, 9, 2, 9, 22, 20, 578077, tzinfo=UTC)
    entry = scan_state(STATE_LINE, 3)
    assert (entry.serial, entry.thumbprint, entry.delivered) == (record.serial, None, True)
    assert entry.device_name == "CONTOSO-LT-0101" and entry.where == 3
    assert entry.issued_at == record.issued_at.timestamp()


def test_a_state_without_serial_is_matched_by_thumbprint_and_named_profile() -> None:
    line = STATE_LINE.replace(b'"610000042D9E6A1947D75762EF00000000042D"', b'""').replace(
        b'"@reconcile.profileId":"62f746b4-84e6-4ceb-95bd-447e7184d454",', b""
    )
    entry = scan_state(line, 1)
    assert entry.serial is None
    assert entry.thumbprint == "C2725BE1D06B80C414E376BF38DCA85402132D7E"
    assert entry.profile == "contoso windows device scep"


def test_a_report_row_resolves_its_status_and_year_one_means_unknown() -> None:
    record = decode_report_row(REPORT_LINE, frozenset({"active"}), "report:1")
    assert record.serial == 0x6100000437F201DA49CAC858BB000000000437
    assert (record.delivered, record.source, record.record_id) == (True, "report", "report:1")
    assert record.expires_at is None
    assert record.device_id == "5e571eaa-66c1-44e7-8859-90d2e844c762"
    assert record.subject == "CN=CONTOSO-DT-0202"
    entry = scan_report_row(REPORT_LINE, frozenset({"active"}), 1)
    assert entry.delivered and entry.profile == record.profile_id
    revoked = REPORT_LINE.replace(b'"Active"', b'"Revoked"')
    assert decode_report_row(revoked, frozenset({"active"}), "report:2").delivered is False


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'{"certificateSerialNumber": 12}', "Expected `str | null`"),
        (b"{not json", "invalid JSON"),
        (b'{"certificateSerialNumber": "0xZZ"}', "is not hexadecimal"),
        (b'{"certificateIssuanceDateTime": "yesterday"}', "Invalid isoformat"),
    ],
)
def test_a_bad_state_line_is_a_value_error_with_the_reason(line: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_state(line)


def test_devices_and_profiles_need_an_id() -> None:
    device = decode_device(
        b'{"azureADDeviceId":"561a8d80-e000-432e-b0b3-47223848e4fb",'
        b'"deviceName":" CONTOSO-LT-0101 ","id":"e500bddf-37b0-4307-8f0f-4c3c2052e52b",'
        b'"lastSyncDateTime":"2026-11-19T17:38:00.2155775Z",'
        b'"operatingSystem":"Windows","userPrincipalName":"adele.vance@contoso.com"}'
    )
    assert (device.device_name, device.operating_system) == ("CONTOSO-LT-0101", "Windows")
    assert device.last_sync == datetime(2026, 11, 19, 17, 38, 0, 215577, tzinfo=UTC)
    profile = decode_profile(
        b'{"@odata.type":"#microsoft.graph.iosScepCertificateProfile",'
        b'"displayName":"Contoso iOS User SCEP","id":"b61e6ba5-3682-4dd6-b804-69b84b2d451c"}'
    )
    assert (profile.odata_type, profile.display_name) == (
        "iosScepCertificateProfile",
        "Contoso iOS User SCEP",
    )
    with pytest.raises(ValueError, match="managed device without id"):
        decode_device(b'{"deviceName":"x"}')
    with pytest.raises(ValueError, match="certificate profile without id"):
        decode_profile(b'{"displayName":"x"}')


def test_the_light_decoders_give_what_light_keeps() -> None:
    """The view-only certificates are decoded light; random lines are checked in
    tests/engine/test_snapshot.py."""
    light = decode_state_light(STATE_LINE)
    assert light == decode_state(STATE_LINE).light()
    assert (light.user, light.profile_name, light.serial, light.expires_at) == (
        "Adele Vance",
        "Contoso Windows Device SCEP",
        None,
        None,
    )
    named = STATE_LINE.replace(
        b'"certificateProfileDisplayName":"Contoso Windows Device SCEP",', b""
    )
    assert decode_state_light(named) == decode_state(named).light()
    assert decode_state_light(named).profile_name == "Contoso Windows Device SCEP"
    line = b'{"deviceName":" PC-7 ","id":"d7","operatingSystem":"iOS","userPrincipalName":"a@b"}'
    assert decode_device_light(line) == decode_device(line).light()
    assert decode_device_light(line).device_name == "PC-7"
    with pytest.raises(ValueError, match="managed device without id"):
        decode_device_light(b'{"deviceName":"x"}')
