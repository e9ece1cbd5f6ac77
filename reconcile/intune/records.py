"""Turn raw Graph JSON (and report-export rows) into frozen records.

This is the edge: nothing past these functions sees a Graph dict. Unknown issuance states pass
through as text and are never delivered.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconcile.identity import parse_serial, parse_thumbprint
from reconcile.model import (
    DELIVERED_ISSUANCE_STATE,
    CertificateProfile,
    IntuneCertificate,
    IntuneSource,
    ManagedDevice,
)
from reconcile.timeparse import parse_iso

PROFILE_ID_KEY = "@reconcile.profileId"
PROFILE_TYPE_KEY = "@reconcile.profileType"
PROFILE_NAME_KEY = "@reconcile.profileName"

# Columns requested from the CertificatesByRAPolicy export; the docs warn not to rely on defaults.
REPORT_COLUMNS = (
    "DeviceId",
    "DeviceName",
    "UPN",
    "UserId",
    "PolicyId",
    "SerialNumber",
    "Thumbprint",
    "IssuerName",
    "SubjectName",
    "CertificateStatus",
    "ValidFrom",
    "ValidTo",
    "CaConfiguration",
)


def _text(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _serial(obj: Mapping[str, Any], key: str) -> int | None:
    text = _text(obj, key)
    return parse_serial(text) if text else None


def _thumbprint(obj: Mapping[str, Any], key: str) -> str | None:
    text = _text(obj, key)
    return parse_thumbprint(text) if text else None


def _int(obj: Mapping[str, Any], key: str) -> int | None:
    value = obj.get(key)
    if value is None or value == "":
        return None
    return int(value)


def certificate_from_state(obj: Mapping[str, Any]) -> IntuneCertificate:
    """A managedDeviceCertificateState, annotated by the fetcher with its profile."""
    state = _text(obj, "certificateIssuanceState") or "unknown"
    return IntuneCertificate(
        source=IntuneSource.STATES,
        record_id=_text(obj, "id") or "",
        serial=_serial(obj, "certificateSerialNumber"),
        thumbprint=_thumbprint(obj, "certificateThumbprint"),
        issuer=_text(obj, "certificateIssuer"),
        state=state,
        delivered=state == DELIVERED_ISSUANCE_STATE,
        device_name=_text(obj, "deviceDisplayName"),
        device_id=None,
        user=_text(obj, "userDisplayName"),
        profile_id=_text(obj, PROFILE_ID_KEY),
        profile_name=_text(obj, "certificateProfileDisplayName") or _text(obj, PROFILE_NAME_KEY),
        platform=_text(obj, "devicePlatform"),
        issued_at=parse_iso(_text(obj, "certificateIssuanceDateTime")),
        expires_at=parse_iso(_text(obj, "certificateExpirationDateTime")),
        state_changed_at=parse_iso(
            _text(obj, "certificateLastIssuanceStateChangedDateTime")
            or _text(obj, "lastCertificateStateChangeDateTime")
        ),
        error_code=_int(obj, "certificateErrorCode"),
    )


def certificate_from_report_row(
    row: Mapping[str, Any], delivered_statuses: frozenset[str], record_id: str
) -> IntuneCertificate:
    """One row of the CertificatesByRAPolicy export (column names as the report spells them)."""
    state = _text(row, "CertificateStatus") or "unknown"
    return IntuneCertificate(
        source=IntuneSource.REPORT,
        record_id=record_id,
        serial=_serial(row, "SerialNumber"),
        thumbprint=_thumbprint(row, "Thumbprint"),
        issuer=_text(row, "IssuerName"),
        state=state,
        delivered=state.casefold() in delivered_statuses,
        device_name=_text(row, "DeviceName"),
        device_id=_text(row, "DeviceId"),
        user=_text(row, "UPN"),
        profile_id=_text(row, "PolicyId"),
        profile_name=_text(row, "PolicyName"),
        platform=None,
        issued_at=parse_iso(_text(row, "ValidFrom")),
        expires_at=parse_iso(_text(row, "ValidTo")),
        state_changed_at=None,
        error_code=None,
        subject=_text(row, "SubjectName"),
    )


def device_from_graph(obj: Mapping[str, Any]) -> ManagedDevice:
    device_id = _text(obj, "id")
    if not device_id:
        raise ValueError("managed device without id")
    return ManagedDevice(
        id=device_id,
        device_name=_text(obj, "deviceName"),
        azure_ad_device_id=_text(obj, "azureADDeviceId"),
        serial_number=_text(obj, "serialNumber"),
        user_principal_name=_text(obj, "userPrincipalName"),
        operating_system=_text(obj, "operatingSystem"),
        last_sync=parse_iso(_text(obj, "lastSyncDateTime")),
    )


def profile_from_graph(obj: Mapping[str, Any]) -> CertificateProfile:
    profile_id = _text(obj, "id")
    if not profile_id:
        raise ValueError("certificate profile without id")
    odata_type = (_text(obj, "@odata.type") or "").removeprefix("#microsoft.graph.")
    return CertificateProfile(
        id=profile_id, display_name=_text(obj, "displayName"), odata_type=odata_type
    )
