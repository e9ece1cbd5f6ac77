"""What the emulated tenant holds: a snapshot read back, or N records computed on demand.

The generated tenant computes each record from its index, so an emulator serving 100,000
certificate states holds none of them in memory and a memory benchmark measures the client.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from reconcile.errors import InputError
from reconcile.intune.records import PROFILE_ID_KEY

ANNOTATION_PREFIX = "@reconcile."

# Certificate profile types the generator cycles through, with the platform Graph reports.
GENERATED_PROFILE_TYPES = (
    ("windows81SCEPCertificateProfile", "windows10AndLater"),
    ("iosScepCertificateProfile", "iOS"),
    ("androidWorkProfileScepCertificateProfile", "androidWorkProfile"),
    ("windows10PkcsCertificateProfile", "windows10AndLater"),
    ("macOSScepCertificateProfile", "macOS"),
    ("androidDeviceOwnerPkcsCertificateProfile", "androidForWork"),
    ("iosPkcsCertificateProfile", "iOS"),
    ("aospDeviceOwnerScepCertificateProfile", "androidAOSP"),
)
# Device configurations that are not certificate profiles: a client must skip them.
GENERATED_OTHER_TYPES = ("windows10GeneralConfiguration", "iosDeviceFeaturesConfiguration")

STATE_PROPERTIES = frozenset(
    {
        "id",
        "devicePlatform",
        "certificateKeyUsage",
        "certificateValidityPeriodUnits",
        "certificateIssuanceState",
        "certificateKeyStorageProvider",
        "certificateSubjectNameFormat",
        "certificateSubjectAlternativeNameFormat",
        "certificateRevokeStatus",
        "certificateProfileDisplayName",
        "deviceDisplayName",
        "userDisplayName",
        "certificateExpirationDateTime",
        "certificateLastIssuanceStateChangedDateTime",
        "lastCertificateStateChangeDateTime",
        "certificateIssuer",
        "certificateThumbprint",
        "certificateSerialNumber",
        "certificateKeyLength",
        "certificateEnhancedKeyUsage",
        "certificateValidityPeriod",
        "certificateSubjectNameFormatString",
        "certificateSubjectAlternativeNameFormatString",
        "certificateIssuanceDateTime",
        "certificateErrorCode",
    }
)
DEVICE_PROPERTIES = frozenset(
    {
        "id",
        "userId",
        "deviceName",
        "managedDeviceOwnerType",
        "enrolledDateTime",
        "lastSyncDateTime",
        "operatingSystem",
        "complianceState",
        "jailBroken",
        "managementAgent",
        "osVersion",
        "easActivated",
        "easDeviceId",
        "azureADRegistered",
        "deviceEnrollmentType",
        "emailAddress",
        "azureADDeviceId",
        "deviceRegistrationState",
        "deviceCategoryDisplayName",
        "isSupervised",
        "isEncrypted",
        "userPrincipalName",
        "model",
        "manufacturer",
        "imei",
        "serialNumber",
        "phoneNumber",
        "userDisplayName",
        "wiFiMacAddress",
        "managedDeviceName",
        "enrollmentProfileName",
    }
)
PROFILE_PROPERTIES = frozenset(
    {
        "id",
        "lastModifiedDateTime",
        "roleScopeTagIds",
        "supportsScopeTags",
        "createdDateTime",
        "description",
        "displayName",
        "version",
        "renewalThresholdPercentage",
        "subjectNameFormat",
        "certificateValidityPeriodValue",
        "certificateValidityPeriodScale",
        "extendedKeyUsages",
        "subjectAlternativeNameType",
        "certificationAuthority",
        "certificationAuthorityName",
        "certificateTemplateName",
        "certificateStore",
        "scepServerUrls",
        "keyUsage",
        "keySize",
        "hashAlgorithm",
        "subjectNameFormatString",
        "subjectAlternativeNameFormatString",
    }
)
# CertificatesByRAPolicy columns as ref-graph-available-reports lists them (not reconcile's list,
# so a client asking for a column the docs do not name gets the 400 Graph gives).
REPORT_ALL_COLUMNS = frozenset(
    {
        "CaConfiguration",
        "CertificateStatus",
        "DeviceId",
        "DeviceName",
        "EnhancedKeyUsage",
        "IssuerName",
        "KeyUsage",
        "PolicyId",
        "SerialNumber",
        "SubjectName",
        "Thumbprint",
        "UPN",
        "UserId",
        "ValidFrom",
        "ValidTo",
    }
)
# Numeric codes the emulator serves for CertificateStatus under LocalizedValuesAsAdditionalColumn.
# Microsoft documents no values for this column: these codes are the emulator's own invention,
# and the client must not need them (it reads the _loc text, or a configured code map).
REPORT_STATUS_CODES = {"Unknown": "0", "Active": "1", "Revoked": "2", "Expired": "3"}
REPORT_ENUM_COLUMNS = frozenset({"CertificateStatus"})


class Tenant(ABC):
    """The collections the emulator pages through; ranges keep memory flat for large tenants."""

    @property
    @abstractmethod
    def profiles(self) -> list[dict[str, Any]]:
        """Every deviceConfiguration, certificate profiles and others."""

    @abstractmethod
    def state_count(self, profile_id: str) -> int: ...

    @abstractmethod
    def states(self, profile_id: str, start: int, stop: int) -> list[dict[str, Any]]: ...

    @abstractmethod
    def device_count(self) -> int: ...

    @abstractmethod
    def devices(self, start: int, stop: int) -> list[dict[str, Any]]: ...

    @abstractmethod
    def report_rows(self) -> Iterator[Mapping[str, Any]]: ...

    def profile(self, profile_id: str) -> dict[str, Any] | None:
        return next((p for p in self.profiles if p.get("id") == profile_id), None)


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    if not path.exists():
        return
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"invalid JSON: {exc.msg}", path, number) from None
            if not isinstance(obj, dict):
                raise InputError("line is not a JSON object", path, number)
            yield number, obj


class SnapshotTenant(Tenant):
    """Serves exactly what a snapshot directory holds, minus reconcile's own annotations."""

    def __init__(self, directory: Path):
        if not directory.is_dir():
            raise InputError("snapshot directory not found", directory)
        self._profiles = [obj for _, obj in _read_jsonl(directory / "profiles.jsonl")]
        known = {str(p.get("id")) for p in self._profiles}
        self._states: dict[str, list[dict[str, Any]]] = {pid: [] for pid in known}
        path = directory / "certificate_states.jsonl"
        for number, obj in _read_jsonl(path):
            profile_id = obj.get(PROFILE_ID_KEY)
            if not isinstance(profile_id, str) or profile_id not in known:
                raise InputError(f"state names unknown profile {profile_id!r}", path, number)
            served = {k: v for k, v in obj.items() if not k.startswith(ANNOTATION_PREFIX)}
            self._states[profile_id].append(served)
        self._devices = [obj for _, obj in _read_jsonl(directory / "managed_devices.jsonl")]
        self._report = [obj for _, obj in _read_jsonl(directory / "report_rows.jsonl")]

    @property
    def profiles(self) -> list[dict[str, Any]]:
        return self._profiles

    def state_count(self, profile_id: str) -> int:
        return len(self._states.get(profile_id, ()))

    def states(self, profile_id: str, start: int, stop: int) -> list[dict[str, Any]]:
        return self._states.get(profile_id, [])[start:stop]

    def device_count(self) -> int:
        return len(self._devices)

    def devices(self, start: int, stop: int) -> list[dict[str, Any]]:
        return self._devices[start:stop]

    def report_rows(self) -> Iterator[Mapping[str, Any]]:
        return iter(self._report)


def _digest(*parts: object, size: int = 16) -> str:
    return hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=size).hexdigest()


def _guid(*parts: object) -> str:
    h = _digest(*parts)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _graph_time(value: datetime) -> str:
    """Graph's DateTimeOffset with seven fraction digits."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


_EPOCH = datetime(2025, 1, 6, 8, 30, tzinfo=UTC)
_ISSUER = "CN=Contoso Issuing CA 01, DC=contoso, DC=com"


class GeneratedTenant(Tenant):
    """``certificates`` synthetic states spread over ``profiles`` certificate profiles.

    Most states are ``installed``; every 20th is ``installFailed`` and every 20th (offset 1)
    ``responsePending``, every 50th ``revoked``. About 2% of the devices the states name are
    absent from managedDevices, as retired devices are.
    """

    def __init__(
        self,
        certificates: int,
        *,
        profiles: int = 10,
        devices: int | None = None,
        seed: str = "reconcile",
    ):
        if certificates < 0 or profiles < 1:
            raise ValueError("need certificates >= 0 and profiles >= 1")
        self._seed = seed
        self._n_devices = devices if devices is not None else max(1, certificates // 2)
        self._named_devices = self._n_devices + self._n_devices // 50
        base, extra = divmod(certificates, profiles)
        self._counts: dict[str, int] = {}
        self._offsets: dict[str, int] = {}
        self._types: dict[str, tuple[str, str, str]] = {}
        self._profiles: list[dict[str, Any]] = []
        offset = 0
        for index in range(profiles):
            odata, platform = GENERATED_PROFILE_TYPES[index % len(GENERATED_PROFILE_TYPES)]
            profile_id = _guid(seed, "profile", index)
            name = f"{odata.removesuffix('CertificateProfile')} certificate {index + 1:02d}"
            self._profiles.append(
                {
                    "@odata.type": f"#microsoft.graph.{odata}",
                    "id": profile_id,
                    "displayName": name,
                    "description": "generated by reconcile's emulator",
                    "createdDateTime": _graph_time(_EPOCH),
                    "lastModifiedDateTime": _graph_time(_EPOCH),
                    "version": 1,
                    "roleScopeTagIds": ["0"],
                    "supportsScopeTags": True,
                }
            )
            count = base + (1 if index < extra else 0)
            self._counts[profile_id] = count
            self._offsets[profile_id] = offset
            self._types[profile_id] = (odata, platform, name)
            offset += count
        for index, odata in enumerate(GENERATED_OTHER_TYPES):
            self._profiles.append(
                {
                    "@odata.type": f"#microsoft.graph.{odata}",
                    "id": _guid(seed, "other", index),
                    "displayName": f"{odata} baseline",
                    "createdDateTime": _graph_time(_EPOCH),
                    "lastModifiedDateTime": _graph_time(_EPOCH),
                    "version": 3,
                }
            )

    @property
    def profiles(self) -> list[dict[str, Any]]:
        return self._profiles

    def state_count(self, profile_id: str) -> int:
        return self._counts.get(profile_id, 0)

    def _device_index(self, k: int) -> int:
        return (k * 7919) % self._named_devices

    @staticmethod
    def _issuance_state(k: int) -> str:
        if k % 50 == 3:
            return "revoked"
        if k % 20 == 0:
            return "installFailed"
        if k % 20 == 1:
            return "responsePending"
        return "installed"

    def _serial(self, k: int) -> str:
        return "61" + _digest(self._seed, "serial", k, size=9).upper()

    def _state(self, profile_id: str, k: int) -> dict[str, Any]:
        odata, platform, name = self._types[profile_id]
        device = self._device_index(k)
        serial = self._serial(k)
        issued = _EPOCH + timedelta(days=k % 300, minutes=k % 1440)
        state = self._issuance_state(k)
        return {
            "@odata.type": "#microsoft.graph.managedDeviceCertificateState",
            "id": _guid(self._seed, "state", k),
            "devicePlatform": platform,
            "certificateKeyUsage": "keyEncipherment,digitalSignature",
            "certificateValidityPeriodUnits": "years",
            "certificateIssuanceState": state,
            "certificateKeyStorageProvider": "useSoftwareKsp",
            "certificateSubjectNameFormat": "custom",
            "certificateSubjectAlternativeNameFormat": "userPrincipalName",
            "certificateRevokeStatus": "revoked" if state == "revoked" else "none",
            "certificateProfileDisplayName": name,
            "deviceDisplayName": f"DEV-{device:06d}",
            "userDisplayName": f"User {device % 1000:04d}",
            "certificateExpirationDateTime": _graph_time(issued + timedelta(days=365)),
            "certificateLastIssuanceStateChangedDateTime": _graph_time(issued),
            "lastCertificateStateChangeDateTime": _graph_time(issued),
            "certificateIssuer": _ISSUER,
            "certificateThumbprint": _digest(self._seed, "thumb", k, size=20).upper(),
            "certificateSerialNumber": serial,
            "certificateKeyLength": 2048,
            "certificateEnhancedKeyUsage": "1.3.6.1.5.5.7.3.2",
            "certificateValidityPeriod": 1,
            "certificateSubjectNameFormatString": "CN={{DeviceName}}",
            "certificateSubjectAlternativeNameFormatString": "{{UserPrincipalName}}",
            "certificateIssuanceDateTime": _graph_time(issued),
            "certificateErrorCode": 0 if state != "installFailed" else -2146885628,
        }

    def states(self, profile_id: str, start: int, stop: int) -> list[dict[str, Any]]:
        count = self._counts.get(profile_id, 0)
        base = self._offsets.get(profile_id, 0)
        return [self._state(profile_id, base + i) for i in range(start, min(stop, count))]

    def device_count(self) -> int:
        return self._n_devices

    def _device(self, j: int) -> dict[str, Any]:
        return {
            "id": _guid(self._seed, "device", j),
            "deviceName": f"DEV-{j:06d}",
            "azureADDeviceId": _guid(self._seed, "aad", j),
            "serialNumber": _digest(self._seed, "hw", j, size=6).upper(),
            "userPrincipalName": f"user{j % 1000:04d}@contoso.example",
            "operatingSystem": ("Windows", "iOS", "Android", "macOS")[j % 4],
            "lastSyncDateTime": _graph_time(_EPOCH + timedelta(days=300, minutes=j % 5000)),
        }

    def devices(self, start: int, stop: int) -> list[dict[str, Any]]:
        return [self._device(j) for j in range(start, min(stop, self._n_devices))]

    def report_rows(self) -> Iterator[Mapping[str, Any]]:
        """Valid and recently revoked certificates only, as the Intune report lists them."""
        for profile in self._profiles:
            profile_id = str(profile["id"])
            base = self._offsets.get(profile_id)
            if base is None:
                continue
            for k in range(base, base + self._counts[profile_id]):
                state = self._issuance_state(k)
                if state not in ("installed", "revoked"):
                    continue
                j = self._device_index(k)
                issued = _EPOCH + timedelta(days=k % 300, minutes=k % 1440)
                yield {
                    "DeviceId": _guid(self._seed, "device", j) if j < self._n_devices else "",
                    "DeviceName": f"DEV-{j:06d}",
                    "UPN": f"user{j % 1000:04d}@contoso.example",
                    "UserId": _guid(self._seed, "user", j % 1000),
                    "PolicyId": profile_id,
                    "SerialNumber": self._serial(k),
                    "Thumbprint": _digest(self._seed, "thumb", k, size=20).upper(),
                    "IssuerName": _ISSUER,
                    "SubjectName": f"CN=DEV-{j:06d}",
                    "CertificateStatus": "Active" if state == "installed" else "Revoked",
                    "ValidFrom": issued.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "ValidTo": (issued + timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "CaConfiguration": "ca01.contoso.example\\Contoso Issuing CA 01",
                    "EnhancedKeyUsage": "Client Authentication",
                    "KeyUsage": "Digital Signature, Key Encipherment",
                }
