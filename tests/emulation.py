"""What tests need around the emulator besides its fixtures (those are in ``conftest.py``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from reconcile.emulator import Tenant


def self_signed(kind: str = "rsa", password: bytes | None = None) -> tuple[bytes, bytes]:
    """An app registration's certificate: (certificate PEM, PKCS#8 key PEM), valid for a day.

    ``kind`` is ``rsa`` or ``ec`` (P-256); ``password`` encrypts the key as a PFX export would.
    """
    key: Any = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if kind == "rsa"
        else ec.generate_private_key(ec.SECP256R1())
    )
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "reconcile-emulator-app")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


class ListTenant(Tenant):
    """A tenant written out in the test: profiles, states per profile id, devices, report rows."""

    def __init__(
        self,
        profiles: Sequence[dict[str, Any]] = (),
        states: Mapping[str, Sequence[dict[str, Any]]] | None = None,
        devices: Sequence[dict[str, Any]] = (),
        report: Sequence[Mapping[str, Any]] = (),
    ):
        self._profiles = list(profiles)
        self._states = {k: list(v) for k, v in (states or {}).items()}
        self._devices = list(devices)
        self._report = list(report)

    @property
    def profiles(self) -> list[dict[str, Any]]:
        return self._profiles

    def state_count(self, profile_id: str) -> int:
        return len(self._states.get(profile_id, []))

    def states(self, profile_id: str, start: int, stop: int) -> list[dict[str, Any]]:
        return self._states.get(profile_id, [])[start:stop]

    def device_count(self) -> int:
        return len(self._devices)

    def devices(self, start: int, stop: int) -> list[dict[str, Any]]:
        return self._devices[start:stop]

    def report_rows(self) -> Iterator[Mapping[str, Any]]:
        return iter(self._report)


def state(serial: str, issuance: str = "installed") -> dict[str, Any]:
    """One managedDeviceCertificateState with the fields reconcile reads."""
    return {
        "id": f"state-{serial}",
        "certificateSerialNumber": serial,
        "certificateIssuanceState": issuance,
        "deviceDisplayName": f"PC-{serial}",
    }
