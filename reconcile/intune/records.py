"""Turn raw Graph JSON lines (and report-export rows) into frozen records.

This is the edge: the msgspec structs below are the only place Graph's field names appear, and
nothing past the ``decode_*`` functions sees them. msgspec decodes and type-checks a line in
one C pass, which matters at a million certificate records. Unknown issuance states pass
through as text and are never delivered.
"""

from __future__ import annotations

import collections
import logging
import sys
from collections.abc import Iterable, Mapping
from typing import TypeVar

import msgspec

from reconcile.identity import fold, parse_serial, parse_thumbprint
from reconcile.intune.side import Entry, stamp
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
RAW_ROW_KEY = "@reconcile.raw"
"""Where a compact report row keeps its whole CSV row, when intune.report_raw_rows asks."""

log = logging.getLogger("reconcile.intune")

# The CertificatesByRAPolicy columns reconcile requests and reads: one list, so nothing is asked
# for that is never read, nor read that was never asked for. The docs warn not to rely on the
# default columns, so they are always selected explicitly.
REPORT_COLUMNS = (
    "DeviceId",
    "DeviceName",
    "UPN",
    "PolicyId",
    "SerialNumber",
    "Thumbprint",
    "IssuerName",
    "SubjectName",
    "CertificateStatus",
    "ValidFrom",
    "ValidTo",
)
# The smallest selection the join can work with, asked for when Graph refuses the full one.
REPORT_MINIMAL_COLUMNS = (
    "DeviceId",
    "DeviceName",
    "SerialNumber",
    "Thumbprint",
    "IssuerName",
    "CertificateStatus",
)
# With localizationType LocalizedValuesAsAdditionalColumn (the default) Graph returns an enum
# column's numeric code and adds "<Column>_loc" with its text; it is read, never selected.
STATUS_LOC = "CertificateStatus_loc"
REPORT_ROW_KEYS = (*REPORT_COLUMNS, STATUS_LOC)
# Not delivered, but expected: the report lists revoked and expired certificates for 30 days.
REPORT_KNOWN_UNDELIVERED = frozenset({"revoked", "expired"})

STATES, REPORT = 0, 1
"""Entry.collection values."""


class _LightState(msgspec.Struct, rename="camel"):
    """The fields of a state record ``IntuneCertificate.light`` keeps (``decode_state_light``)."""

    certificate_issuance_state: str | None = None
    device_display_name: str | None = None
    user_display_name: str | None = None
    certificate_profile_display_name: str | None = None
    certificate_issuance_date_time: str | None = None
    profile_id: str | None = msgspec.field(default=None, name=PROFILE_ID_KEY)
    profile_name: str | None = msgspec.field(default=None, name=PROFILE_NAME_KEY)


class _State(_LightState):
    """managedDeviceCertificateState (beta), annotated with its profile by the fetcher: the
    light fields and the rest."""

    id: str | None = None
    certificate_serial_number: str | None = None
    certificate_thumbprint: str | None = None
    certificate_issuer: str | None = None
    device_platform: str | None = None
    certificate_expiration_date_time: str | None = None
    certificate_last_issuance_state_changed_date_time: str | None = None
    last_certificate_state_change_date_time: str | None = None
    certificate_error_code: int | None = None


class _ReportRow(msgspec.Struct):
    """One CertificatesByRAPolicy row; the report's own column names (``REPORT_ROW_KEYS``)."""

    DeviceId: str | None = None
    DeviceName: str | None = None
    UPN: str | None = None
    PolicyId: str | None = None
    SerialNumber: str | None = None
    Thumbprint: str | None = None
    IssuerName: str | None = None
    SubjectName: str | None = None
    CertificateStatus: str | None = None
    CertificateStatus_loc: str | None = None
    ValidFrom: str | None = None
    ValidTo: str | None = None


class ReportStatuses:
    """What a report row's CertificateStatus means: delivered, known, or unknown.

    The numeric code goes through ``codes`` (intune.report_status_codes), else the ``_loc``
    text is read, else the value itself (exports seen in the wild carry text). A value that
    none of these resolves to a known status is not delivered and is counted, so the run can
    warn once with every distinct value it did not understand.
    """

    def __init__(self, delivered: Iterable[str], codes: Mapping[str, str] | None = None):
        self.delivered = frozenset(s.casefold() for s in delivered)
        self.codes = {k.strip(): v.strip() for k, v in (codes or {}).items()}
        self._known = (
            self.delivered | REPORT_KNOWN_UNDELIVERED | {v.casefold() for v in self.codes.values()}
        )
        self.unknown: collections.Counter[str] = collections.Counter()

    @classmethod
    def coerce(cls, value: ReportStatuses | Iterable[str]) -> ReportStatuses:
        return value if isinstance(value, ReportStatuses) else cls(value)

    @classmethod
    def parse_codes(cls, entries: Iterable[str]) -> dict[str, str]:
        """``code=text`` entries; ValueError names the first malformed one."""
        codes: dict[str, str] = {}
        for entry in entries:
            code, sep, text = entry.partition("=")
            if not sep or not code.strip() or not text.strip():
                raise ValueError(f"report status code {entry!r} is not code=text")
            codes[code.strip()] = text.strip()
        return codes

    def resolve(self, raw: str | None, loc: str | None) -> str:
        """The status text of a row: mapped code, else ``_loc`` text, else the raw value."""
        value = _clean(raw)
        if value is not None and value in self.codes:
            return self.codes[value]
        return _clean(loc) or value or "unknown"

    def is_delivered(self, text: str, *, count: bool = False) -> bool:
        folded = text.casefold()
        if count and folded not in self._known:
            self.unknown[text] += 1
        return folded in self.delivered

    def warn_unknown(self) -> None:
        """One warning for the whole run, listing each value not understood with its count."""
        if not self.unknown:
            return
        seen = ", ".join(
            f"{_printable(v)!r} x{n}" for v, n in sorted(self.unknown.items(), key=_by_count)
        )
        log.warning(
            "report export: CertificateStatus value(s) not understood, counted as not "
            "delivered: %s; map codes with intune.report_status_codes (code=text) or list "
            "delivered texts in intune.report_delivered",
            seen,
        )


def _by_count(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)[:80]


class _LightDevice(msgspec.Struct, rename="camel"):
    """The fields of a device ``ManagedDevice.light`` keeps (``decode_device_light``)."""

    id: str | None = None
    device_name: str | None = None
    user_principal_name: str | None = None


class _Device(_LightDevice):
    azure_ad_device_id: str | None = msgspec.field(default=None, name="azureADDeviceId")
    serial_number: str | None = None
    operating_system: str | None = None
    last_sync_date_time: str | None = None


class _Profile(msgspec.Struct):
    id: str | None = None
    displayName: str | None = None
    odata_type: str | None = msgspec.field(default=None, name="@odata.type")


_STATE = msgspec.json.Decoder(_State)
_REPORT = msgspec.json.Decoder(_ReportRow)
_DEVICE = msgspec.json.Decoder(_Device)
_PROFILE = msgspec.json.Decoder(_Profile)
_LIGHT_STATE = msgspec.json.Decoder(_LightState)
_LIGHT_DEVICE = msgspec.json.Decoder(_LightDevice)
STATE_DECODER, DEVICE_DECODER = _STATE, _DEVICE
"""For a type check of a whole line without building a record (the engine's byte pass)."""
_T = TypeVar("_T")


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def _shared(value: str | None) -> str | None:
    """Intern values that repeat across records (issuer, state, profile, device, user): a
    million records share a few thousand of them."""
    value = _clean(value)
    return None if value is None else sys.intern(value)


def _serial(value: str | None) -> int | None:
    value = _clean(value)
    return parse_serial(value) if value else None


def _thumbprint(value: str | None) -> str | None:
    value = _clean(value)
    return parse_thumbprint(value) if value else None


def _decode(decoder: msgspec.json.Decoder[_T], line: bytes) -> _T:
    try:
        return decoder.decode(line)
    except msgspec.ValidationError as exc:
        raise ValueError(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ValueError(f"invalid JSON: {exc}") from None


def decode_state(line: bytes) -> IntuneCertificate:
    """Raises ValueError with the reason when the line is not a usable state record."""
    return _state_record(_decode(_STATE, line))


def scan_state(line: bytes, where: int) -> Entry:
    """The join's view of a state record; validates exactly what ``decode_state`` parses."""
    raw = _decode(_STATE, line)
    state = _shared(raw.certificate_issuance_state) or "unknown"
    serial = _serial(raw.certificate_serial_number)
    thumbprint = _thumbprint(raw.certificate_thumbprint)
    parse_iso(raw.certificate_expiration_date_time)
    return Entry(
        serial=serial,
        thumbprint=thumbprint if serial is None else None,
        issuer=_shared(raw.certificate_issuer),
        delivered=state == DELIVERED_ISSUANCE_STATE,
        device_id=None,
        device_name=_shared(raw.device_display_name),
        profile=_shared(raw.profile_id)
        or fold(_clean(raw.certificate_profile_display_name) or _clean(raw.profile_name)),
        issued_at=stamp(parse_iso(raw.certificate_issuance_date_time)),
        changed_at=stamp(parse_iso(_state_changed(raw))),
        collection=STATES,
        where=where,
    )


def _state_changed(raw: _State) -> str | None:
    return (
        raw.certificate_last_issuance_state_changed_date_time
        or raw.last_certificate_state_change_date_time
    )


def decode_state_light(line: bytes) -> IntuneCertificate:
    """``decode_state(line).light()``, without decoding what ``light`` drops: for the
    certificates a run keeps for its views alone (at 1M rows about 79,000). Only for a line
    ``scan_state`` accepted: the fields it skips are not type-checked again."""
    raw = _decode(_LIGHT_STATE, line)
    state = _state_of(raw)
    return IntuneCertificate(
        source=IntuneSource.STATES,
        record_id="",
        serial=None,
        thumbprint=None,
        issuer=None,
        state=state,
        delivered=state == DELIVERED_ISSUANCE_STATE,
        device_name=_shared(raw.device_display_name),
        device_id=None,
        user=_shared(raw.user_display_name),
        profile_id=_shared(raw.profile_id),
        profile_name=_profile_name(raw),
        platform=None,
        issued_at=parse_iso(raw.certificate_issuance_date_time),
        expires_at=None,
        state_changed_at=None,
        error_code=None,
    )


def _state_of(raw: _LightState) -> str:
    return _shared(raw.certificate_issuance_state) or "unknown"


def _profile_name(raw: _LightState) -> str | None:
    return _shared(raw.certificate_profile_display_name) or _shared(raw.profile_name)


def _state_record(raw: _State) -> IntuneCertificate:
    state = _state_of(raw)
    return IntuneCertificate(
        source=IntuneSource.STATES,
        record_id=raw.id or "",
        serial=_serial(raw.certificate_serial_number),
        thumbprint=_thumbprint(raw.certificate_thumbprint),
        issuer=_shared(raw.certificate_issuer),
        state=state,
        delivered=state == DELIVERED_ISSUANCE_STATE,
        device_name=_shared(raw.device_display_name),
        device_id=None,
        user=_shared(raw.user_display_name),
        profile_id=_shared(raw.profile_id),
        profile_name=_profile_name(raw),
        platform=_shared(raw.device_platform),
        issued_at=parse_iso(raw.certificate_issuance_date_time),
        expires_at=parse_iso(raw.certificate_expiration_date_time),
        state_changed_at=parse_iso(_state_changed(raw)),
        error_code=raw.certificate_error_code,
    )


def decode_report_row(
    line: bytes, statuses: ReportStatuses | Iterable[str], record_id: str
) -> IntuneCertificate:
    """A report row is delivered when its CertificateStatus resolves to a delivered text."""
    return _report_record(_decode(_REPORT, line), ReportStatuses.coerce(statuses), record_id)


def scan_report_row(line: bytes, statuses: ReportStatuses | Iterable[str], where: int) -> Entry:
    """The join's view of a report row; validates exactly what ``decode_report_row`` parses.

    Counts the statuses it does not understand (``ReportStatuses.warn_unknown``)."""
    raw = _decode(_REPORT, line)
    reader = ReportStatuses.coerce(statuses)
    state = sys.intern(reader.resolve(raw.CertificateStatus, raw.CertificateStatus_loc))
    serial = _serial(raw.SerialNumber)
    thumbprint = _thumbprint(raw.Thumbprint)
    parse_iso(raw.ValidTo)
    return Entry(
        serial=serial,
        thumbprint=thumbprint if serial is None else None,
        issuer=_shared(raw.IssuerName),
        delivered=reader.is_delivered(state, count=True),
        device_id=_shared(raw.DeviceId),
        device_name=_shared(raw.DeviceName),
        profile=_shared(raw.PolicyId),
        issued_at=stamp(parse_iso(raw.ValidFrom)),
        changed_at=None,
        collection=REPORT,
        where=where,
    )


def _report_record(raw: _ReportRow, statuses: ReportStatuses, record_id: str) -> IntuneCertificate:
    state = sys.intern(statuses.resolve(raw.CertificateStatus, raw.CertificateStatus_loc))
    return IntuneCertificate(
        source=IntuneSource.REPORT,
        record_id=record_id,
        serial=_serial(raw.SerialNumber),
        thumbprint=_thumbprint(raw.Thumbprint),
        issuer=_shared(raw.IssuerName),
        state=state,
        delivered=statuses.is_delivered(state),
        device_name=_shared(raw.DeviceName),
        device_id=_shared(raw.DeviceId),
        user=_shared(raw.UPN),
        profile_id=_shared(raw.PolicyId),
        profile_name=None,
        platform=None,
        issued_at=parse_iso(raw.ValidFrom),
        expires_at=parse_iso(raw.ValidTo),
        state_changed_at=None,
        error_code=None,
        subject=_clean(raw.SubjectName),
    )


def decode_device(line: bytes) -> ManagedDevice:
    raw = _decode(_DEVICE, line)
    if not raw.id:
        raise ValueError("managed device without id")
    return ManagedDevice(
        id=raw.id,
        device_name=_clean(raw.device_name),
        azure_ad_device_id=_clean(raw.azure_ad_device_id),
        serial_number=_clean(raw.serial_number),
        user_principal_name=_shared(raw.user_principal_name),
        operating_system=_shared(raw.operating_system),
        last_sync=parse_iso(raw.last_sync_date_time),
    )


def decode_device_light(line: bytes) -> ManagedDevice:
    """``decode_device(line).light()``, without decoding what ``light`` drops."""
    raw = _decode(_LIGHT_DEVICE, line)
    if not raw.id:
        raise ValueError("managed device without id")
    return ManagedDevice(
        id=raw.id,
        device_name=_clean(raw.device_name),
        azure_ad_device_id=None,
        serial_number=None,
        user_principal_name=_shared(raw.user_principal_name),
        operating_system=None,
        last_sync=None,
    )


def decode_profile(line: bytes) -> CertificateProfile:
    raw = _decode(_PROFILE, line)
    if not raw.id:
        raise ValueError("certificate profile without id")
    return CertificateProfile(
        id=raw.id,
        display_name=_clean(raw.displayName),
        odata_type=(raw.odata_type or "").removeprefix("#microsoft.graph."),
    )
